package apply

import (
	"errors"
	"io"
	"regexp"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/cdcbridge/cdcbridge/change"
)

// copyMin is the fewest rows a run of plain inserts needs to be sent with
// COPY rather than as an INSERT over unnest(): the server spends about
// half as much on a row that COPY brings (it inserts them in groups and
// runs no query per statement), but a COPY takes a round trip of its own,
// which a few rows do not repay.
const copyMin = 32

// copies reports whether a run is sent with COPY: plain inserts (not
// upserts) of enough rows into a table without rules that act on the
// bridge's writes, which COPY would not obey.
func (r *run) copies() bool {
	return r.op == change.Insert && !r.upsert && !r.fullRow && r.n >= copyMin && !r.info.FiresRules
}

// copySQL renders the COPY statement of a run.
func copySQL(r *run) string {
	names := make([]string, len(r.cols))
	for i, c := range r.cols {
		names[i] = ident(c)
	}
	return "COPY " + r.table.String() + " (" + strings.Join(names, ", ") + ") FROM STDIN"
}

// copyReader reads a run's rows in COPY's text format, one row at a time:
// the values are PostgreSQL's text form already, so each is only escaped.
// COPY applies each column's input function with the column's modifier,
// as the assignment of a cast value in an INSERT does.
type copyReader struct {
	r       *run
	row     int
	pending []byte
	buf     []byte
}

func (c *copyReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if len(c.pending) == 0 {
			if c.row == c.r.n {
				break
			}
			c.buf = c.buf[:0]
			for i := range c.r.params {
				if i > 0 {
					c.buf = append(c.buf, '\t')
				}
				c.buf = appendCopyValue(c.buf, c.r.params[i][c.row])
			}
			c.buf = append(c.buf, '\n')
			c.pending = c.buf
			c.row++
		}
		k := copy(p[n:], c.pending)
		c.pending = c.pending[k:]
		n += k
	}
	if n == 0 {
		return 0, io.EOF
	}
	return n, nil
}

// appendCopyValue appends v escaped for COPY's text format; nil is NULL.
func appendCopyValue(b, v []byte) []byte {
	if v == nil {
		return append(b, '\\', 'N')
	}
	start := 0
	for i, ch := range v {
		var esc byte
		switch ch {
		case '\\':
			esc = '\\'
		case '\n':
			esc = 'n'
		case '\r':
			esc = 'r'
		case '\t':
			esc = 't'
		default:
			continue
		}
		b = append(b, v[start:i]...)
		b = append(b, '\\', esc)
		start = i + 1
	}
	return append(b, v[start:]...)
}

// copyLine matches the context PostgreSQL gives an error in a COPY's row.
var copyLine = regexp.MustCompile(`^COPY [^\n]*?, line (\d+)`)

// copyRow returns the index of the row a COPY failed on, from the error's
// context, or -1.
func copyRow(err error, rows int) int {
	var pg *pgconn.PgError
	if !errors.As(err, &pg) {
		return -1
	}
	m := copyLine.FindStringSubmatch(pg.Where)
	if m == nil {
		return -1
	}
	line, perr := strconv.Atoi(m[1])
	if perr != nil || line < 1 || line > rows {
		return -1
	}
	return line - 1
}
