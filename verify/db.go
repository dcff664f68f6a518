package verify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/cdcbridge/cdcbridge/catalog"
	"github.com/cdcbridge/cdcbridge/change"
	"github.com/cdcbridge/cdcbridge/config"
	"github.com/cdcbridge/cdcbridge/dbconn"
	"github.com/cdcbridge/cdcbridge/mappingtest"
	"github.com/cdcbridge/cdcbridge/replication"
)

// side is one database of a comparison: a connection, the catalog of the
// mapped tables on it, and while a pass runs a read-only REPEATABLE READ
// transaction whose snapshot every query of the pass sees.
type side struct {
	name string // "source" or "target", for messages
	dsn  config.DSN
	conn *pgx.Conn
	cat  *catalog.Catalog
	tx   pgx.Tx
	rels map[change.Table]*change.Relation
}

// open connects to a side, sets the session up and loads the catalog of
// tables. A table that does not exist is an error naming the side.
func open(ctx context.Context, name string, dsn config.DSN, tables []change.Table) (*side, error) {
	conn, err := dbconn.Connect(ctx, dsn, name)
	if err != nil {
		return nil, err
	}
	s := &side{name: name, dsn: dsn, conn: conn, rels: map[change.Table]*change.Relation{}}
	// The text form of values of the daemon's replication session, so that
	// rows read here look exactly like the rows the stream delivers to the
	// transforms.
	_, err = conn.Exec(ctx, "SET application_name = 'cdcbridge verify'")
	if err == nil {
		err = replication.SetTextForm(ctx, conn)
	}
	if err != nil {
		s.close()
		return nil, fmt.Errorf("setting up the session on the %s: %w", name, err)
	}
	if s.cat, err = catalog.Load(ctx, conn, tables); err != nil {
		s.close()
		return nil, fmt.Errorf("on the %s: %w", name, err)
	}
	var missing []string
	for _, t := range tables {
		if s.cat.Table(t) == nil {
			missing = append(missing, t.String())
		}
	}
	if len(missing) > 0 {
		s.close()
		return nil, fmt.Errorf("the %s (%s) has no table %s: create it, or correct the mapping", name, dsn, strings.Join(missing, ", "))
	}
	return s, nil
}

func (s *side) close() {
	if s == nil || s.conn == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if s.tx != nil {
		s.tx.Rollback(ctx)
		s.tx = nil
	}
	s.conn.Close(ctx)
}

// begin starts the snapshot that the next queries see.
func (s *side) begin(ctx context.Context) error {
	if err := s.end(ctx); err != nil {
		return err
	}
	tx, err := s.conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return fmt.Errorf("starting a snapshot of the %s: %w", s.name, err)
	}
	s.tx = tx
	return nil
}

// end closes the snapshot (it changed nothing).
func (s *side) end(ctx context.Context) error {
	if s.tx == nil {
		return nil
	}
	err := s.tx.Rollback(ctx)
	s.tx = nil
	if err != nil {
		return fmt.Errorf("ending a snapshot of the %s: %w", s.name, err)
	}
	return nil
}

// relation describes t as the stream would. The same pointer is returned
// for a table each time, which lets a Mapper reuse what it worked out.
func (s *side) relation(t change.Table) *change.Relation {
	if r, ok := s.rels[t]; ok {
		return r
	}
	r := mappingtest.Relation(s.cat, t)
	s.rels[t] = r
	return r
}

// from reads a plain table without its inheritance children, as the
// daemon's stream and initial copy do, and a partitioned one through its
// partitions.
func (s *side) from(t change.Table) string {
	if info := s.cat.Table(t); info != nil && info.Kind == 'p' {
		return " FROM " + t.String()
	}
	return " FROM ONLY " + t.String()
}

func columnList(prefix string, rel *change.Relation) string {
	cols := make([]string, len(rel.Columns))
	for i, c := range rel.Columns {
		cols[i] = prefix + pgx.Identifier{c.Name}.Sanitize()
	}
	return strings.Join(cols, ", ")
}

// rowOf copies raw text values into a row; nil is NULL.
func rowOf(raw [][]byte) change.Row {
	row := make(change.Row, len(raw))
	for i, v := range raw {
		if v == nil {
			row[i] = change.Value{Kind: change.Null}
		} else {
			row[i] = change.Value{Kind: change.Text, Data: bytes.Clone(v)}
		}
	}
	return row
}

// scan streams every row of t, ordered by key (when there is one), to fn in
// batches of n. fn must not use this side's connection.
func (s *side) scan(ctx context.Context, t change.Table, key []string, n int, fn func([]change.Row) error) error {
	rel := s.relation(t)
	sql := "SELECT " + columnList("", rel) + s.from(t)
	if len(key) > 0 {
		sql += " ORDER BY " + strings.Join(quoteAll("", key), ", ")
	}
	rows, err := s.tx.Query(ctx, sql, pgx.QueryResultFormats{pgx.TextFormatCode})
	if err != nil {
		return fmt.Errorf("reading %s on the %s: %w", t, s.name, err)
	}
	defer rows.Close()
	batch := make([]change.Row, 0, n)
	for rows.Next() {
		batch = append(batch, rowOf(rows.RawValues()))
		if len(batch) == n {
			if err := fn(batch); err != nil {
				return err
			}
			batch = make([]change.Row, 0, n)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("reading %s on the %s: %w", t, s.name, err)
	}
	rows.Close()
	if len(batch) > 0 {
		return fn(batch)
	}
	return nil
}

// fetch returns the rows of t whose key columns hold one of keys (text
// values, one slice per key). A key that is not a valid value of its
// column matches nothing.
func (s *side) fetch(ctx context.Context, t change.Table, keyCols []string, keys [][]*string) ([]change.Row, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	rel := s.relation(t)
	info := s.cat.Table(t)
	var on []string
	for j, k := range keyCols {
		on = append(on, fmt.Sprintf("t.%s = u.k%d::%s", pgx.Identifier{k}.Sanitize(), j, castName(info, k)))
	}
	sql := "SELECT " + columnList("t.", rel) + s.from(t) + " t JOIN (SELECT DISTINCT * FROM " + unnest("k", len(keyCols), false) +
		") u ON " + strings.Join(on, " AND ") + " ORDER BY " + strings.Join(quoteAll("t.", keyCols), ", ")
	var out []change.Row
	err := s.guarded(ctx, sql, keyArgs(keys, len(keyCols)), len(keys), func(raw [][]byte) error {
		out = append(out, rowOf(raw))
		return nil
	}, func() error {
		out = out[:0]
		for i := range keys {
			rows, err := s.fetch(ctx, t, keyCols, keys[i:i+1])
			if err != nil {
				return err
			}
			out = append(out, rows...)
		}
		return nil
	})
	var ve *valueError
	if errors.As(err, &ve) {
		return nil, nil // the one key is not a valid value: no row has it
	}
	if err != nil {
		return nil, fmt.Errorf("fetching rows of %s by key on the %s: %w", t, s.name, err)
	}
	return out, nil
}

// probe is one transformed row to look up on the side written.
type probe struct {
	key  []*string // values of the key columns
	vals []*string // values of the compared columns
}

// result is what the side written holds for a probe.
type result struct {
	found bool
	// key is the row's key as the side written prints it.
	key []*string
	// diffs are the compared columns whose values differ.
	diffs []colDiff
	// note explains a probe that could not be compared: a value that is not
	// valid for its column.
	note string
}

type colDiff struct {
	col       int
	want, got *string
}

// compare looks the probes up in t by keyCols and compares cols. Both sides
// of a column go through PostgreSQL's own normalisation: the stored value
// printed, against the transformed value cast to the column's declared type
// (typmod included) and printed.
func (s *side) compare(ctx context.Context, t change.Table, keyCols, cols []string, probes []probe) ([]result, error) {
	info := s.cat.Table(t)
	nk, nc := len(keyCols), len(cols)
	sel := []string{"u.o", "t.ctid IS NOT NULL"}
	for _, k := range keyCols {
		sel = append(sel, "t."+pgx.Identifier{k}.Sanitize()+"::text")
	}
	for j, c := range cols {
		got := "t." + pgx.Identifier{c}.Sanitize() + "::text"
		want := fmt.Sprintf("(u.v%d::%s)::text", j, fullTypeName(info, c))
		sel = append(sel, fmt.Sprintf("CASE WHEN %s IS NOT DISTINCT FROM %s THEN 'e' ELSE coalesce('v' || %s, 'n') END", got, want, got))
	}
	var on []string
	for j, k := range keyCols {
		on = append(on, fmt.Sprintf("t.%s = u.k%d::%s", pgx.Identifier{k}.Sanitize(), j, castName(info, k)))
	}
	names := make([]string, 0, nk+nc)
	for j := range nk {
		names = append(names, "k"+strconv.Itoa(j))
	}
	for j := range nc {
		names = append(names, "v"+strconv.Itoa(j))
	}
	sql := "SELECT " + strings.Join(sel, ", ") + " FROM " + unnestNamed(names, true) + " LEFT JOIN" +
		strings.TrimPrefix(s.from(t), " FROM") + " t ON " + strings.Join(on, " AND ")

	args := make([]any, nk+nc)
	for j := range nk {
		a := make([]*string, len(probes))
		for i, p := range probes {
			a[i] = p.key[j]
		}
		args[j] = a
	}
	for j := range nc {
		a := make([]*string, len(probes))
		for i, p := range probes {
			a[i] = p.vals[j]
		}
		args[nk+j] = a
	}
	res := make([]result, len(probes))
	err := s.guarded(ctx, sql, args, len(probes), func(raw [][]byte) error {
		o, err := strconv.Atoi(string(raw[0]))
		if err != nil || o < 1 || o > len(probes) {
			return fmt.Errorf("unexpected row number %q", raw[0])
		}
		r := &res[o-1]
		if string(raw[1]) != "t" {
			return nil
		}
		// Several rows with one key (a key without a unique index) are each
		// compared; their differences add up.
		r.found = true
		r.key = make([]*string, nk)
		for j := range nk {
			r.key[j] = text(raw[2+j])
		}
		for j := range nc {
			v := raw[2+nk+j]
			if len(v) > 0 && v[0] == 'e' {
				continue
			}
			var got *string
			if len(v) > 0 && v[0] == 'v' {
				g := string(v[1:])
				got = &g
			}
			r.diffs = append(r.diffs, colDiff{col: j, want: probes[o-1].vals[j], got: got})
		}
		return nil
	}, func() error {
		for i := range probes {
			one, err := s.compare(ctx, t, keyCols, cols, probes[i:i+1])
			if err != nil {
				return err
			}
			res[i] = one[0]
		}
		return nil
	})
	var ve *valueError
	if errors.As(err, &ve) {
		// The one probe holds a value its column does not take.
		return []result{{found: true, key: probes[0].key, note: ve.Error()}}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("comparing rows of %s on the %s: %w", t, s.name, err)
	}
	return res, nil
}

// exists reports, for each key, whether t has a row with it.
func (s *side) exists(ctx context.Context, t change.Table, keyCols []string, keys [][]*string) ([]bool, error) {
	info := s.cat.Table(t)
	var on []string
	for j, k := range keyCols {
		on = append(on, fmt.Sprintf("t.%s = u.k%d::%s", pgx.Identifier{k}.Sanitize(), j, castName(info, k)))
	}
	sql := "SELECT u.o FROM " + unnest("k", len(keyCols), true) + " WHERE EXISTS (SELECT 1" + s.from(t) + " t WHERE " +
		strings.Join(on, " AND ") + ")"
	found := make([]bool, len(keys))
	err := s.guarded(ctx, sql, keyArgs(keys, len(keyCols)), len(keys), func(raw [][]byte) error {
		o, err := strconv.Atoi(string(raw[0]))
		if err != nil || o < 1 || o > len(keys) {
			return fmt.Errorf("unexpected row number %q", raw[0])
		}
		found[o-1] = true
		return nil
	}, func() error {
		for i := range keys {
			one, err := s.exists(ctx, t, keyCols, keys[i:i+1])
			if err != nil {
				return err
			}
			found[i] = one[0]
		}
		return nil
	})
	var ve *valueError
	if errors.As(err, &ve) {
		return []bool{false}, nil // the one key is not a valid value: no row has it
	}
	if err != nil {
		return nil, fmt.Errorf("looking up rows of %s on the %s: %w", t, s.name, err)
	}
	return found, nil
}

// valueError is a value that PostgreSQL would not take for its column (a
// data exception, SQLSTATE class 22, or a domain's constraint, class 23):
// a transform's output that does not fit, or a key of the wrong form.
type valueError struct{ err *pgconn.PgError }

func (e *valueError) Error() string { return e.err.Message }

// guarded runs a query of n items in a savepoint, so that a value that does
// not convert fails only this query and not the snapshot's transaction.
// Each row's text values go to each. When a value does not convert, a query
// of one item returns a *valueError; a query of more is rolled back and
// retry is called, to go through the items one at a time and find the ones
// at fault (each may have seen some rows before the failure).
func (s *side) guarded(ctx context.Context, sql string, args []any, n int, each func([][]byte) error, retry func() error) error {
	if _, err := s.tx.Exec(ctx, "SAVEPOINT cdcbridge_verify"); err != nil {
		return err
	}
	err := func() error {
		rows, err := s.tx.Query(ctx, sql, append([]any{pgx.QueryResultFormats{pgx.TextFormatCode}}, args...)...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			if err := each(rows.RawValues()); err != nil {
				return err
			}
		}
		return rows.Err()
	}()
	var pe *pgconn.PgError
	if err != nil && errors.As(err, &pe) && (strings.HasPrefix(pe.Code, "22") || strings.HasPrefix(pe.Code, "23")) {
		if _, rerr := s.tx.Exec(ctx, "ROLLBACK TO SAVEPOINT cdcbridge_verify"); rerr != nil {
			return rerr
		}
		if _, rerr := s.tx.Exec(ctx, "RELEASE SAVEPOINT cdcbridge_verify"); rerr != nil {
			return rerr
		}
		if n == 1 {
			return &valueError{err: pe}
		}
		return retry()
	}
	if err != nil {
		return err
	}
	_, err = s.tx.Exec(ctx, "RELEASE SAVEPOINT cdcbridge_verify")
	return err
}

// unnest is unnest($1::text[], ...) AS u(p0, p1, ..., [o]) for n arrays.
func unnest(prefix string, n int, ordinality bool) string {
	names := make([]string, n)
	for j := range n {
		names[j] = prefix + strconv.Itoa(j)
	}
	return unnestNamed(names, ordinality)
}

func unnestNamed(names []string, ordinality bool) string {
	params := make([]string, len(names))
	for j := range names {
		params[j] = "$" + strconv.Itoa(j+1) + "::text[]"
	}
	s := "unnest(" + strings.Join(params, ", ") + ")"
	if ordinality {
		return s + " WITH ORDINALITY AS u(" + strings.Join(names, ", ") + ", o)"
	}
	return s + " AS u(" + strings.Join(names, ", ") + ")"
}

// keyArgs turns keys (one slice of values per key) into one text array per
// key column.
func keyArgs(keys [][]*string, ncols int) []any {
	args := make([]any, ncols)
	for j := range ncols {
		a := make([]*string, len(keys))
		for i, k := range keys {
			a[i] = k[j]
		}
		args[j] = a
	}
	return args
}

// castName is the type a key value is cast to for the join: without a
// modifier, so that the comparison is the column type's own equality.
func castName(info *catalog.Table, col string) string {
	if c := info.Column(col); c != nil && c.CastName != "" {
		return c.CastName
	}
	return "text"
}

// fullTypeName is the column's declared type, modifier included: a value
// cast to it prints as the column would store it.
func fullTypeName(info *catalog.Table, col string) string {
	if c := info.Column(col); c != nil && c.FullTypeName != "" {
		return c.FullTypeName
	}
	return "text"
}

func quoteAll(prefix string, cols []string) []string {
	out := make([]string, len(cols))
	for i, c := range cols {
		out[i] = prefix + pgx.Identifier{c}.Sanitize()
	}
	return out
}

func text(b []byte) *string {
	if b == nil {
		return nil
	}
	s := string(b)
	return &s
}

// textOf is a change.Value as a nullable string.
func textOf(v change.Value) *string {
	if v.Kind != change.Text {
		return nil
	}
	s := string(v.Data)
	return &s
}
