package snapshot

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/jackc/pgx/v5/pgconn"
)

// errWriteStopped ends the read of a part whose write has stopped.
var errWriteStopped = errors.New("the write of the part stopped")

// passThrough copies a part in PostgreSQL's binary COPY form: COPY TO on
// the side read feeds COPY FROM on the side written, in buffers of
// pipeBuffer bytes, and no row is decoded here. The written transaction is
// the worker's open one; the read runs in the worker's open transaction,
// under the snapshot.
func (w *worker) passThrough(ctx context.Context, p *part) (read, written int64, err error) {
	pr, pw := io.Pipe()
	out := "COPY (" + p.selectSQL() + ") TO STDOUT (FORMAT binary)"
	in := "COPY " + p.tab.pass.write.String() + " (" + p.tab.cols + ") FROM STDIN (FORMAT binary)"
	type result struct {
		tag pgconn.CommandTag
		err error
	}
	done := make(chan result, 1)
	go func() {
		bw := bufio.NewWriterSize(pw, pipeBuffer)
		tag, err := w.read.PgConn().CopyTo(ctx, &rowCounter{w: bw, tab: p.tab}, out)
		if err == nil {
			err = bw.Flush()
		}
		pw.CloseWithError(err) // nil: the reader sees io.EOF
		done <- result{tag, err}
	}()
	tag, werr := w.write.PgConn().CopyFrom(ctx, pr, in)
	// Whatever stopped the write, the read must not wait for it.
	pr.CloseWithError(errWriteStopped)
	r := <-done
	switch {
	case r.err != nil && !errors.Is(r.err, errWriteStopped):
		// The write fails too then (the COPY was aborted); the cause is here.
		return 0, 0, fmt.Errorf("reading with %s: %w", out, r.err)
	case werr != nil:
		return 0, 0, fmt.Errorf("writing with %s: %w", in, werr)
	case r.err != nil:
		return 0, 0, fmt.Errorf("reading with %s: %w", out, r.err)
	}
	if r.tag.RowsAffected() != tag.RowsAffected() {
		return 0, 0, fmt.Errorf("%s read %d rows and %s wrote %d", out, r.tag.RowsAffected(), in, tag.RowsAffected())
	}
	return r.tag.RowsAffected(), tag.RowsAffected(), nil
}

// pipeBuffer is the size of the pieces in which rows pass from one server
// to the other: large enough that COPY FROM sends few, large messages.
const pipeBuffer = 256 << 10

// rowCounter counts the rows and bytes of a binary COPY TO as they pass,
// for the progress reports: the server sends one CopyData message per row
// (the file header rides with the first), which pgconn writes with one
// Write each, and a last one holding the trailer alone.
type rowCounter struct {
	w      io.Writer
	tab    *tableCopy
	header bool // the header has passed
}

func (c *rowCounter) Write(b []byte) (int, error) {
	c.tab.bytes.Add(int64(len(b)))
	row := b
	if !c.header {
		c.header = true
		// The signature, the flags and the extension area's length (0).
		row = row[min(len(row), 19):]
	}
	if len(row) >= 2 && !(len(row) == 2 && row[0] == 0xff && row[1] == 0xff) {
		c.tab.rows.Add(1)
	}
	return c.w.Write(b)
}
