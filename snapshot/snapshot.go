package snapshot

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
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
	// Specs are the entries the Mappers map, for choosing the tables that
	// pass through in binary form: those whose only entry maps columns by
	// name to columns of the same built-in types. Nil sends every row
	// through the Mapper.
	Specs []transform.Spec
	// Workers copy that many parts at once (default 2), each over its own
	// pair of connections.
	Workers int
	// PartBytes cuts a table larger than this into parts of about that
	// size, copied at once by the workers, each in its own transaction on
	// the side written. 0 (the default) cuts a table only as much as it
	// takes to keep every worker busy; negative never cuts one.
	PartBytes int64
	// Origin names the replication origin of worker n, which tags its
	// writes as the bridge's so that the other direction skips them (one
	// session at a time may use an origin). Nil leaves them untagged.
	Origin func(n int) string
	// ChunkRows bounds the rows buffered per target table and column set
	// before they are sent with COPY (default 10000).
	ChunkRows int
	// Commit, if set, runs in the transaction that writes the last part of
	// a table's rows (read is the table read), after them and before the
	// commit, once every other part of the table has committed: what it
	// writes commits with the last rows or not at all. It is called from
	// the copying goroutines.
	Commit func(ctx context.Context, tx pgx.Tx, read change.Table) error
	// Copied, if set, is called once every part of a table has committed,
	// from the copying goroutine.
	Copied func(table change.Table)
	// Progress, if set, is called about every second for each table being
	// copied, and once more when a table is done (Done set, Rows exact),
	// from goroutines of Copy's.
	Progress func(Progress)
	// ProgressEvery is how often a table being copied is logged, with its
	// rows, percent of the estimate, rate and time to go (default 10s).
	ProgressEvery time.Duration
	Logger        *slog.Logger
}

// Progress is how far the copy of one table is.
type Progress struct {
	Table change.Table
	// Rows and Bytes are the rows and the bytes of row data (in COPY's
	// text or binary form) read so far.
	Rows, Bytes int64
	// Estimated is the rows expected: the planner's estimate, or Rows when
	// that is more.
	Estimated int64
	// Done is set once every row of the table is committed.
	Done bool
}

// Stats says what Copy did.
type Stats struct {
	Rows    int64 // rows read
	Written int64 // rows written (a split writes more than it reads)
	Took    time.Duration
	// Tables says how each table was copied, in the order of
	// Options.Tables.
	Tables []TableStats
}

// TableStats says how one table was copied.
type TableStats struct {
	Table         change.Table
	Rows, Written int64
	// Parts is the number of transactions its rows took on the side
	// written.
	Parts int
	// Binary is true when its rows passed from server to server in binary
	// form, not through the Mapper.
	Binary bool
}

// Copy copies every table and returns when all are committed on the
// written side, or at the first error (the others are then cancelled and
// the transactions not yet committed rolled back). A table cut into parts
// commits each part on its own: after an error some of its rows may be
// written, which the caller empties before copying again.
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

	q, err := replication.ConnectSQL(ctx, o.ReadConnString)
	if err != nil {
		return Stats{}, fmt.Errorf("connecting to the side read for the initial copy: %w", err)
	}
	tabs, parts, err := plan(ctx, q, o)
	q.Close(context.WithoutCancel(ctx))
	if err != nil {
		return Stats{}, err
	}
	for _, tc := range tabs {
		log.Info("copying", "table", tc.t.String(), "parts", tc.parts, "binary", tc.pass != nil, "estimated", tc.estimate)
	}
	stopReports := report(ctx, o, tabs, log)
	defer stopReports()

	jobs := make(chan *part)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	fail := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		mu.Unlock()
		cancel()
	}
	for i := 0; i < min(o.Workers, len(parts)); i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w, err := newWorker(ctx, o, i+1, log)
			if err != nil {
				fail(err)
				for range jobs {
				}
				return
			}
			defer w.close()
			for p := range jobs {
				if ctx.Err() != nil {
					continue
				}
				if err := w.copyPart(ctx, p); err != nil {
					fail(err)
				}
			}
		}()
	}
	for _, p := range parts {
		select {
		case jobs <- p:
		case <-ctx.Done():
		}
	}
	close(jobs)
	wg.Wait()
	stopReports()
	st := Stats{Took: time.Since(start)}
	for _, tc := range tabs {
		st.Rows += tc.read
		st.Written += tc.written
		st.Tables = append(st.Tables, TableStats{Table: tc.t, Rows: tc.read, Written: tc.written, Parts: tc.parts, Binary: tc.pass != nil})
	}
	if firstErr != nil {
		return st, firstErr
	}
	return st, ctx.Err()
}

type worker struct {
	o           Options
	log         *slog.Logger
	read, write *pgx.Conn
	mapper      *transform.Mapper
}

func newWorker(ctx context.Context, o Options, n int, log *slog.Logger) (*worker, error) {
	w := &worker{o: o, log: log}
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

// copyPart copies one part of a table in one transaction on each side.
func (w *worker) copyPart(ctx context.Context, p *part) error {
	t := p.tab.t
	p.tab.began.CompareAndSwap(0, time.Now().UnixNano())
	rtx, err := w.read.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return fmt.Errorf("initial copy of %s: %w", t, err)
	}
	defer rtx.Rollback(context.Background())
	if _, err := rtx.Exec(ctx, "SET TRANSACTION SNAPSHOT "+quoteLiteral(w.o.Snapshot)); err != nil {
		return fmt.Errorf("initial copy of %s: importing snapshot %s: %w", t, w.o.Snapshot, err)
	}
	wtx, err := w.write.Begin(ctx)
	if err != nil {
		return fmt.Errorf("initial copy of %s: %w", t, err)
	}
	defer wtx.Rollback(context.Background())
	var read, written int64
	if p.tab.pass != nil {
		read, written, err = w.passThrough(ctx, p)
	} else {
		read, written, err = w.mapRows(ctx, rtx, p)
	}
	if err != nil {
		return fmt.Errorf("initial copy of %s: %w", t, err)
	}
	return w.commit(ctx, p, wtx, read, written)
}

// commit commits a part's transaction on the side written. The last part
// of a table to finish waits for the others to commit, then runs the
// Commit hook in its own transaction: whatever the hook records commits
// only once every row of the table has.
func (w *worker) commit(ctx context.Context, p *part, wtx pgx.Tx, read, written int64) error {
	tc := p.tab
	tc.mu.Lock()
	tc.finished++
	tc.read += read
	tc.written += written
	last := tc.finished == tc.parts
	copied := tc.read
	tc.mu.Unlock()
	if !last {
		if err := wtx.Commit(ctx); err != nil {
			return fmt.Errorf("initial copy of %s: committing part %d of %d: %w", tc.t, p.n, tc.parts, err)
		}
		tc.committed <- struct{}{}
		return nil
	}
	for range tc.parts - 1 {
		select {
		case <-tc.committed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if w.o.Commit != nil {
		if err := w.o.Commit(ctx, wtx, tc.t); err != nil {
			return fmt.Errorf("initial copy of %s: %w", tc.t, err)
		}
	}
	if err := wtx.Commit(ctx); err != nil {
		return fmt.Errorf("initial copy of %s: committing: %w", tc.t, err)
	}
	tc.reporting.Lock()
	tc.done = true
	if w.o.Progress != nil {
		w.o.Progress(Progress{Table: tc.t, Rows: copied, Bytes: tc.bytes.Load(), Estimated: copied, Done: true})
	}
	tc.reporting.Unlock()
	if w.o.Copied != nil {
		w.o.Copied(tc.t)
	}
	w.log.Info("copied", "table", tc.t.String(), "rows", copied, "written", tc.written, "parts", tc.parts, "binary", tc.pass != nil)
	return nil
}

// mapRows reads a part's rows in text form, maps each as an insert and
// writes the results with COPY.
func (w *worker) mapRows(ctx context.Context, rtx pgx.Tx, p *part) (read, written int64, err error) {
	tc := p.tab
	rows, err := rtx.Query(ctx, p.selectSQL(), pgx.QueryResultFormats{pgx.TextFormatCode})
	if err != nil {
		return 0, 0, fmt.Errorf("reading: %w", err)
	}
	defer rows.Close()
	out := newSink(w.write, w.o.ChunkRows)
	// The rows and bytes read go to the table's counters every so many
	// rows, and at the end.
	var counted, bytes int64
	defer func() {
		tc.rows.Add(read - counted)
		tc.bytes.Add(bytes)
	}()
	for rows.Next() {
		raw := rows.RawValues()
		// One allocation holds the row's values: the mapper and the sink
		// may keep them until the row is written.
		n := 0
		for _, v := range raw {
			n += len(v)
		}
		bytes += int64(n)
		data := make([]byte, 0, n)
		row := make(change.Row, len(raw))
		for i, v := range raw {
			if v == nil {
				row[i] = change.Value{Kind: change.Null}
				continue
			}
			at := len(data)
			data = append(data, v...)
			row[i] = change.Value{Kind: change.Text, Data: data[at:len(data):len(data)]}
		}
		read++
		outs, err := w.mapper.Map(&change.Change{Op: change.Insert, Rel: tc.rel, New: row})
		if err != nil {
			return read, written, err
		}
		for i := range outs {
			if err := out.add(ctx, &outs[i]); err != nil {
				return read, written, err
			}
			written++
		}
		if read%1024 == 0 {
			tc.rows.Add(read - counted)
			tc.bytes.Add(bytes)
			counted, bytes = read, 0
		}
	}
	if err := rows.Err(); err != nil {
		return read, written, fmt.Errorf("reading: %w", err)
	}
	if err := out.flushAll(ctx); err != nil {
		return read, written, err
	}
	return read, written, nil
}

// sink buffers outs per target table and column set and sends each buffer
// with COPY in text format.
type sink struct {
	conn  *pgx.Conn
	chunk int
	bufs  []*copyBuf // in the order first met
	last  *copyBuf   // the buffer of the previous out: most rows go to the same
}

type copyBuf struct {
	table change.Table
	cols  []string
	sql   string
	data  bytes.Buffer
	n     int
}

func newSink(conn *pgx.Conn, chunk int) *sink {
	return &sink{conn: conn, chunk: chunk}
}

var errNotInsert = errors.New("the transform returned a delete or truncate for a row of the initial copy; only rows to write make sense there")

func (s *sink) add(ctx context.Context, o *change.Out) error {
	if o.Op != change.Insert && o.Op != change.Update {
		return errNotInsert
	}
	if len(o.Cols) == 0 {
		return nil
	}
	b := s.buf(o)
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

// buf returns the buffer of o's table and columns.
func (s *sink) buf(o *change.Out) *copyBuf {
	if b := s.last; b != nil && b.table == o.Table && slices.Equal(b.cols, o.Cols) {
		return b
	}
	for _, b := range s.bufs {
		if b.table == o.Table && slices.Equal(b.cols, o.Cols) {
			s.last = b
			return b
		}
	}
	cols := make([]string, len(o.Cols))
	for i, c := range o.Cols {
		cols[i] = pgx.Identifier{c}.Sanitize()
	}
	b := &copyBuf{table: o.Table, cols: slices.Clone(o.Cols),
		sql: "COPY " + o.Table.String() + " (" + strings.Join(cols, ", ") + ") FROM STDIN"}
	s.bufs = append(s.bufs, b)
	s.last = b
	return b
}

func (s *sink) flushAll(ctx context.Context) error {
	for _, b := range s.bufs {
		if err := s.flush(ctx, b); err != nil {
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
	data := v.Data
	for {
		i := bytes.IndexAny(data, "\\\n\r\t")
		if i < 0 {
			b.Write(data)
			return
		}
		b.Write(data[:i])
		switch data[i] {
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		}
		data = data[i+1:]
	}
}

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
