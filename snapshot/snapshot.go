package snapshot

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cdcbridge/cdcbridge/apply"
	"github.com/cdcbridge/cdcbridge/catalog"
	"github.com/cdcbridge/cdcbridge/change"
	"github.com/cdcbridge/cdcbridge/replication"
	"github.com/cdcbridge/cdcbridge/transform"
)

// Options configures Copy.
type Options struct {
	// ReadConnString and WriteConnString are the two sides' connection
	// strings; every worker opens its own pair of connections.
	ReadConnString, WriteConnString string
	// Snapshot is the exported snapshot to read under.
	Snapshot string
	// Tables are the tables read, in the order given.
	Tables            []change.Table
	ReadCat, WriteCat *catalog.Catalog
	// NewMapper returns a Mapper for one worker (a Mapper is not safe for
	// concurrent use).
	NewMapper func() (*transform.Mapper, error)
	// Workers copy that many tables at once (default 2).
	Workers int
	// Origin names the replication origin of worker n, which tags its
	// writes as the bridge's so that the other direction skips them (one
	// session at a time may use an origin). Nil leaves them untagged.
	Origin func(n int) string
	// ChunkRows bounds the rows buffered per target table and column set
	// before they are sent with COPY (default 10000).
	ChunkRows int
	// Commit, if set, runs in the transaction that writes a table's rows
	// (read is the table read), after them and before the commit: what it
	// writes commits with the rows or not at all. It is called from the
	// copying goroutines.
	Commit func(ctx context.Context, tx pgx.Tx, read change.Table) error
	// Copied, if set, is called once a table's copy has committed, from
	// the copying goroutine.
	Copied func(table change.Table)
	// Progress, if set, is called now and then and when a table is done,
	// from the copying goroutines.
	Progress func(table change.Table, copied, estimated int64)
	Logger   *slog.Logger
}

// Stats says what Copy did.
type Stats struct {
	Rows    int64 // rows read
	Written int64 // rows written (a split writes more than it reads)
	Took    time.Duration
}

// Copy copies every table and returns when all are committed on the
// written side, or at the first error (the others are then cancelled and
// their transactions rolled back).
func Copy(ctx context.Context, o Options) (Stats, error) {
	if o.Workers <= 0 {
		o.Workers = 2
	}
	if o.ChunkRows <= 0 {
		o.ChunkRows = 10000
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	log := o.Logger.With("component", "snapshot")
	start := time.Now()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	jobs := make(chan change.Table)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		st       Stats
	)
	fail := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		mu.Unlock()
		cancel()
	}
	for i := 0; i < min(o.Workers, len(o.Tables)); i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w, err := newWorker(ctx, o, i+1)
			if err != nil {
				fail(err)
				for range jobs {
				}
				return
			}
			defer w.close()
			for t := range jobs {
				if ctx.Err() != nil {
					continue
				}
				read, written, err := w.copyTable(ctx, t, log)
				if err != nil {
					fail(err)
					continue
				}
				mu.Lock()
				st.Rows += read
				st.Written += written
				mu.Unlock()
			}
		}()
	}
	for _, t := range o.Tables {
		select {
		case jobs <- t:
		case <-ctx.Done():
		}
	}
	close(jobs)
	wg.Wait()
	st.Took = time.Since(start)
	if firstErr != nil {
		return st, firstErr
	}
	return st, ctx.Err()
}

type worker struct {
	o           Options
	read, write *pgx.Conn
	mapper      *transform.Mapper
}

func newWorker(ctx context.Context, o Options, n int) (*worker, error) {
	w := &worker{o: o}
	var err error
	if w.mapper, err = o.NewMapper(); err != nil {
		return nil, err
	}
	if w.read, err = replication.ConnectSQL(ctx, o.ReadConnString); err != nil {
		return nil, fmt.Errorf("connecting to the side read for the initial copy: %w", err)
	}
	if w.write, err = replication.ConnectSQL(ctx, o.WriteConnString); err != nil {
		w.read.Close(context.Background())
		return nil, fmt.Errorf("connecting to the side written for the initial copy: %w", err)
	}
	// The text forms the stream delivers.
	for _, c := range []*pgx.Conn{w.read, w.write} {
		if err := replication.SetTextForm(ctx, c); err != nil {
			w.close()
			return nil, fmt.Errorf("setting up the copy session: %w", err)
		}
	}
	if err := apply.ReplicaRole(ctx, w.write); err != nil {
		w.close()
		return nil, err
	}
	if o.Origin != nil {
		origin := o.Origin(n)
		if _, err := w.write.Exec(ctx, `SELECT pg_replication_origin_create($1) WHERE pg_replication_origin_oid($1) IS NULL`, origin); err != nil {
			w.close()
			return nil, fmt.Errorf("creating the replication origin %s: %w", origin, err)
		}
		if _, err := w.write.Exec(ctx, `SELECT pg_replication_origin_session_setup($1)`, origin); err != nil {
			w.close()
			return nil, fmt.Errorf("taking the replication origin %s: %w", origin, err)
		}
	}
	return w, nil
}

func (w *worker) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	w.read.Close(ctx)
	w.write.Close(ctx)
}

// copyTable copies one table in one transaction on each side.
func (w *worker) copyTable(ctx context.Context, t change.Table, log *slog.Logger) (read, written int64, err error) {
	info := w.o.ReadCat.Table(t)
	if info == nil {
		return 0, 0, fmt.Errorf("initial copy: %s is not in the catalog of the side read", t)
	}
	rel := info.Relation()
	var estimate int64
	w.read.QueryRow(ctx, `SELECT greatest(reltuples, 0)::bigint FROM pg_class WHERE oid = $1`, info.OID).Scan(&estimate)

	rtx, err := w.read.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return 0, 0, fmt.Errorf("initial copy of %s: %w", t, err)
	}
	defer rtx.Rollback(context.Background())
	if _, err := rtx.Exec(ctx, "SET TRANSACTION SNAPSHOT "+quoteLiteral(w.o.Snapshot)); err != nil {
		return 0, 0, fmt.Errorf("initial copy of %s: importing snapshot %s: %w", t, w.o.Snapshot, err)
	}
	wtx, err := w.write.Begin(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("initial copy of %s: %w", t, err)
	}
	defer wtx.Rollback(context.Background())

	cols := make([]string, len(rel.Columns))
	for i, c := range rel.Columns {
		cols[i] = pgx.Identifier{c.Name}.Sanitize()
	}
	// A plain table is read without its inheritance children, which its
	// publication does not carry either; a partitioned table through its
	// partitions, which are published under its name.
	from := " FROM ONLY "
	if info.Kind == 'p' {
		from = " FROM "
	}
	rows, err := rtx.Query(ctx, "SELECT "+strings.Join(cols, ", ")+from+t.String(), pgx.QueryResultFormats{pgx.TextFormatCode})
	if err != nil {
		return 0, 0, fmt.Errorf("initial copy of %s: reading: %w", t, err)
	}
	defer rows.Close()
	out := newSink(w.write, w.o.ChunkRows)
	lastReport := time.Now()
	for rows.Next() {
		raw := rows.RawValues()
		row := make(change.Row, len(raw))
		for i, v := range raw {
			if v == nil {
				row[i] = change.Value{Kind: change.Null}
			} else {
				row[i] = change.Value{Kind: change.Text, Data: bytes.Clone(v)}
			}
		}
		read++
		outs, err := w.mapper.Map(&change.Change{Op: change.Insert, Rel: rel, New: row})
		if err != nil {
			return read, written, fmt.Errorf("initial copy of %s: %w", t, err)
		}
		for i := range outs {
			if err := out.add(ctx, &outs[i]); err != nil {
				return read, written, fmt.Errorf("initial copy of %s: %w", t, err)
			}
			written++
		}
		if w.o.Progress != nil && time.Since(lastReport) > time.Second {
			w.o.Progress(t, read, max(estimate, read))
			lastReport = time.Now()
		}
		if time.Since(lastReport) > 10*time.Second {
			log.Info("copying", "table", t.String(), "rows", read, "estimated", estimate)
		}
	}
	if err := rows.Err(); err != nil {
		return read, written, fmt.Errorf("initial copy of %s: reading: %w", t, err)
	}
	if err := out.flushAll(ctx); err != nil {
		return read, written, fmt.Errorf("initial copy of %s: %w", t, err)
	}
	if w.o.Commit != nil {
		if err := w.o.Commit(ctx, wtx, t); err != nil {
			return read, written, fmt.Errorf("initial copy of %s: %w", t, err)
		}
	}
	if err := wtx.Commit(ctx); err != nil {
		return read, written, fmt.Errorf("initial copy of %s: committing: %w", t, err)
	}
	if w.o.Progress != nil {
		w.o.Progress(t, read, read)
	}
	if w.o.Copied != nil {
		w.o.Copied(t)
	}
	log.Info("copied", "table", t.String(), "rows", read, "written", written)
	return read, written, nil
}

// sink buffers outs per target table and column set and sends each buffer
// with COPY in text format.
type sink struct {
	conn  *pgx.Conn
	chunk int
	bufs  map[string]*copyBuf
	order []string
}

type copyBuf struct {
	sql  string
	data bytes.Buffer
	n    int
}

func newSink(conn *pgx.Conn, chunk int) *sink {
	return &sink{conn: conn, chunk: chunk, bufs: map[string]*copyBuf{}}
}

var errNotInsert = errors.New("the transform returned a delete or truncate for a row of the initial copy; only rows to write make sense there")

func (s *sink) add(ctx context.Context, o *change.Out) error {
	if o.Op != change.Insert && o.Op != change.Update {
		return errNotInsert
	}
	if len(o.Cols) == 0 {
		return nil
	}
	sig := o.Table.String() + "\x00" + strings.Join(o.Cols, "\x00")
	b := s.bufs[sig]
	if b == nil {
		cols := make([]string, len(o.Cols))
		for i, c := range o.Cols {
			cols[i] = pgx.Identifier{c}.Sanitize()
		}
		b = &copyBuf{sql: "COPY " + o.Table.String() + " (" + strings.Join(cols, ", ") + ") FROM STDIN"}
		s.bufs[sig] = b
		s.order = append(s.order, sig)
	}
	for i, v := range o.Vals {
		if i > 0 {
			b.data.WriteByte('\t')
		}
		appendCopyText(&b.data, v)
	}
	b.data.WriteByte('\n')
	b.n++
	if b.n >= s.chunk {
		return s.flush(ctx, b)
	}
	return nil
}

func (s *sink) flushAll(ctx context.Context) error {
	for _, sig := range s.order {
		if err := s.flush(ctx, s.bufs[sig]); err != nil {
			return err
		}
	}
	return nil
}

func (s *sink) flush(ctx context.Context, b *copyBuf) error {
	if b.n == 0 {
		return nil
	}
	if _, err := s.conn.PgConn().CopyFrom(ctx, bytes.NewReader(b.data.Bytes()), b.sql); err != nil {
		return fmt.Errorf("writing with %s: %w", b.sql, err)
	}
	b.data.Reset()
	b.n = 0
	return nil
}

// appendCopyText writes a value in COPY's text format: \N for NULL, and
// backslash escapes for the characters that delimit rows and columns.
func appendCopyText(b *bytes.Buffer, v change.Value) {
	if v.Kind != change.Text {
		b.WriteString(`\N`)
		return
	}
	for _, c := range v.Data {
		switch c {
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		default:
			b.WriteByte(c)
		}
	}
}

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
