package snapshot_test

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cdcbridge/cdcbridge/catalog"
	"github.com/cdcbridge/cdcbridge/change"
	"github.com/cdcbridge/cdcbridge/internal/bridgetest"
	"github.com/cdcbridge/cdcbridge/internal/pgtest"
	"github.com/cdcbridge/cdcbridge/replication"
	"github.com/cdcbridge/cdcbridge/snapshot"
	"github.com/cdcbridge/cdcbridge/transform"
)

func TestMain(m *testing.M) { bridgetest.Main(m) }

// copyRun is one Copy between a fresh pair of databases.
type copyRun struct {
	*pgtest.Pair
	specs []transform.Spec
}

func newRun(t testing.TB, srcDDL, tgtDDL string) *copyRun {
	t.Helper()
	return &copyRun{Pair: pgtest.NewPair(t, srcDDL, tgtDDL)}
}

// entry adds a mapping entry from read to write, through the script body
// (a file beside the pair's) or, with "", by column name.
func (r *copyRun) entry(t testing.TB, read, write, script string) {
	t.Helper()
	rt, err := change.ParseTable(read)
	if err != nil {
		t.Fatal(err)
	}
	wt, err := change.ParseTable(write)
	if err != nil {
		t.Fatal(err)
	}
	s := transform.Spec{Entry: read + " -> " + write, Read: rt, Write: wt}
	if script != "" {
		s.Script = r.Dir + "/" + rt.Name + ".js"
		if err := os.WriteFile(s.Script, []byte(script), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r.specs = append(r.specs, s)
}

// copy runs Copy of every entry's table under a new slot's snapshot, with
// opts changed by mod, and writes made while the slot exists: the copy
// must not see them.
func (r *copyRun) copy(t testing.TB, mod func(*snapshot.Options), after ...string) snapshot.Stats {
	t.Helper()
	ctx := context.Background()
	var reads, writes []change.Table
	for _, s := range r.specs {
		reads = append(reads, s.Read)
		writes = append(writes, s.Write)
	}
	readCat, err := catalog.Load(ctx, r.Src, reads)
	if err != nil {
		t.Fatal(err)
	}
	writeCat, err := catalog.Load(ctx, r.Tgt, writes)
	if err != nil {
		t.Fatal(err)
	}
	slot, err := replication.CreateSlot(ctx, r.SrcDSN, "copy_test", true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { replication.DropSlot(context.Background(), r.Src, "copy_test") })
	defer slot.Close(ctx)
	for _, sql := range after {
		pgtest.MustExec(t, r.Src, sql)
	}
	o := snapshot.Options{
		ReadConnString: r.SrcDSN, WriteConnString: r.TgtDSN,
		Snapshot: slot.SnapshotName, Tables: reads,
		ReadCat: readCat, WriteCat: writeCat, Specs: r.specs,
		NewMapper: func() (*transform.Mapper, error) {
			return transform.New(r.specs, transform.Options{Func: "forward", Read: readCat, Write: writeCat})
		},
		Origin: func(n int) string { return "cdcbridge_test_copy_" + string(rune('0'+n)) },
		Logger: bridgetest.Logger(),
	}
	if mod != nil {
		mod(&o)
	}
	st, err := snapshot.Copy(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	slot.Close(ctx)
	return st
}

// same requires the digest of sql on the target to equal that of want on
// the source.
func (r *copyRun) same(t testing.TB, want, sql string) {
	t.Helper()
	w := bridgetest.Query(t, r.Src, bridgetest.Digest(want))
	if g := bridgetest.Query(t, r.Tgt, bridgetest.Digest(sql)); g != w {
		t.Fatalf("the target's %s\n is %s, want %s (the source's %s)", sql, g, w, want)
	}
}

func tableStats(t testing.TB, st snapshot.Stats, name string) snapshot.TableStats {
	t.Helper()
	for _, ts := range st.Tables {
		if ts.Table.Name == name {
			return ts
		}
	}
	t.Fatalf("no stats for %s in %+v", name, st.Tables)
	return snapshot.TableStats{}
}

const wide = `(id bigint PRIMARY KEY, customer text, status int, amount numeric(12,2), created timestamptz,
	note text, tags text[], attrs jsonb, raw bytea, at interval, d date, ok bool, f float8)`

const fillWide = `INSERT INTO %s SELECT g, 'customer ' || g || E'\t\\x\n', g % 7, g / 100.0, '2024-01-01'::timestamptz + g * interval '1 minute',
	CASE WHEN g % 5 = 0 THEN NULL ELSE repeat(md5(g::text), 2) END, ARRAY['a' || g % 10, NULL, 'b c'],
	jsonb_build_object('n', g, 'big', 12345678901234567890), decode(md5(g::text), 'hex'), g * interval '1 second',
	'2000-01-01'::date + g % 1000, g % 2 = 0, g / 3.0
	FROM generate_series(1, %d) g`

func fill(table string, n int) string {
	return strings.NewReplacer("%s", table, "%d", strconv.Itoa(n)).Replace(fillWide)
}

// TestPassThrough: a table mapped by column name into the same types goes
// from server to server in binary form; one with a transform, or a column
// of another type, goes through the Mapper. Every row arrives as it was in
// the snapshot either way, and the rows written after the snapshot do not.
func TestPassThrough(t *testing.T) {
	// A reg* value is an OID in binary form: the same name may have
	// another OID on the target (the type made here first shifts them).
	const reg = "(id bigint PRIMARY KEY, t regtype, ts regtype[]);"
	r := newRun(t,
		"CREATE TABLE same "+wide+"; CREATE TABLE other "+wide+"; CREATE TABLE scripted "+wide+"; CREATE TYPE mood AS ENUM ('ok'); CREATE TABLE reg "+reg+
			fill("same", 5000)+";"+fill("other", 5000)+";"+fill("scripted", 5000)+";"+
			"INSERT INTO reg SELECT g, 'mood', ARRAY['mood', 'int4']::regtype[] FROM generate_series(1, 5000) g",
		"CREATE TYPE unrelated AS (a int); CREATE TYPE mood AS ENUM ('ok'); CREATE TABLE same "+wide+"; CREATE TABLE scripted "+wide+"; CREATE TABLE reg "+reg+
			"CREATE TABLE other "+strings.Replace(wide, "status int", "status bigint", 1))
	r.entry(t, "same", "same", "")
	r.entry(t, "other", "other", "")
	r.entry(t, "scripted", "scripted", "function forward(r) { return {...r} }")
	r.entry(t, "reg", "reg", "")
	st := r.copy(t, nil, "INSERT INTO same (id) VALUES (-1)", "INSERT INTO other (id) VALUES (-1)", "INSERT INTO scripted (id) VALUES (-1)", "INSERT INTO reg (id) VALUES (-1)")
	for _, c := range []struct {
		table  string
		binary bool
	}{{"same", true}, {"other", false}, {"scripted", false}, {"reg", false}} {
		ts := tableStats(t, st, c.table)
		if ts.Binary != c.binary || ts.Rows != 5000 || ts.Written != 5000 || ts.Parts != 1 {
			t.Errorf("%s: %+v, want binary %v, 5000 rows in one part", c.table, ts, c.binary)
		}
		r.same(t, "SELECT * FROM "+c.table+" WHERE id > 0", "SELECT * FROM "+c.table)
	}
}

// TestParts: tables larger than PartBytes are cut into ctid ranges that
// several workers copy at once; every row of the snapshot arrives exactly
// once, for a table with a key, one without, one partitioned, and through
// both paths.
func TestParts(t *testing.T) {
	const parted = `(id bigint NOT NULL, v text, pad text) PARTITION BY RANGE (id)`
	src := "CREATE TABLE keyed " + wide + "; CREATE TABLE nokey (id bigint, v text, pad text); CREATE TABLE scripted " + wide + ";" +
		"CREATE TABLE parted " + parted + "; CREATE TABLE parted_1 PARTITION OF parted FOR VALUES FROM (MINVALUE) TO (10000);" +
		"CREATE TABLE parted_2 PARTITION OF parted FOR VALUES FROM (10000) TO (MAXVALUE);" +
		fill("keyed", 20000) + ";" + fill("scripted", 10000) + ";" +
		"INSERT INTO nokey SELECT g % 1000, 'v' || g, repeat('x', 100) FROM generate_series(1, 30000) g;" +
		"INSERT INTO nokey SELECT 7, 'same', 'same' FROM generate_series(1, 50);" +
		"INSERT INTO parted SELECT g, 'p' || g, repeat('y', 100) FROM generate_series(1, 25000) g;" +
		// Holes and moved rows, so that ranges meet rows anywhere in a block.
		"DELETE FROM keyed WHERE id % 13 = 0; UPDATE keyed SET status = -1 WHERE id % 17 = 0;"
	tgt := "CREATE TABLE keyed " + wide + "; CREATE TABLE nokey (id bigint, v text, pad text); CREATE TABLE scripted " + wide + ";" +
		"CREATE TABLE parted " + parted + "; CREATE TABLE parted_a PARTITION OF parted FOR VALUES FROM (MINVALUE) TO (5000);" +
		"CREATE TABLE parted_b PARTITION OF parted FOR VALUES FROM (5000) TO (MAXVALUE);"
	r := newRun(t, src, tgt)
	for _, n := range []string{"keyed", "nokey", "parted"} {
		r.entry(t, n, n, "")
	}
	r.entry(t, "scripted", "scripted", "function forward(r) { return {...r} }")
	var copied atomic.Int64
	st := r.copy(t, func(o *snapshot.Options) {
		o.PartBytes = 64 << 10
		o.Workers = 3
		o.ChunkRows = 333
		o.Copied = func(change.Table) { copied.Add(1) }
	}, "INSERT INTO keyed (id) VALUES (-1)", "INSERT INTO parted VALUES (-1, 'late')", "DELETE FROM nokey WHERE v = 'v5'")
	for _, n := range []string{"keyed", "nokey", "parted", "scripted"} {
		ts := tableStats(t, st, n)
		if ts.Parts < 3 || ts.Binary != (n != "scripted") {
			t.Errorf("%s: %+v, want several parts, binary %v", n, ts, n != "scripted")
		}
	}
	if copied.Load() != 4 {
		t.Errorf("Copied was called %d times, want once per table (4)", copied.Load())
	}
	r.same(t, "SELECT * FROM keyed WHERE id > 0", "SELECT * FROM keyed")
	r.same(t, "SELECT * FROM nokey UNION ALL SELECT 5, 'v5', repeat('x', 100)", "SELECT * FROM nokey")
	r.same(t, "SELECT * FROM parted WHERE id > 0", "SELECT * FROM parted")
	r.same(t, "SELECT * FROM scripted", "SELECT * FROM scripted")
}

// TestCommitHookWithLastPart: the Commit hook of a table cut into parts
// runs once, in the transaction of its last part, when every other part
// has committed.
func TestCommitHookWithLastPart(t *testing.T) {
	r := newRun(t, "CREATE TABLE big "+wide+";"+fill("big", 20000), "CREATE TABLE big "+wide+"; CREATE TABLE marks (n bigint)")
	r.entry(t, "big", "big", "")
	var calls atomic.Int64
	st := r.copy(t, func(o *snapshot.Options) {
		o.PartBytes = 128 << 10
		o.Commit = func(ctx context.Context, tx pgx.Tx, read change.Table) error {
			calls.Add(1)
			// The rows of every other part are committed, this part's are
			// in tx: all of them show here.
			_, err := tx.Exec(ctx, `INSERT INTO marks SELECT count(*) FROM big`)
			return err
		}
	})
	if ts := tableStats(t, st, "big"); ts.Parts < 3 || calls.Load() != 1 {
		t.Fatalf("%+v, %d calls of the hook; want several parts and one call", ts, calls.Load())
	}
	if got := bridgetest.Query(t, r.Tgt, "SELECT n FROM marks"); got != "(20000)" {
		t.Fatalf("the hook saw %s rows, want every row (20000)", got)
	}
}

// BenchmarkCopy copies wide tables (COPY_ROWS rows in all, default
// 500,000) in one table or four, by name (binary-) or through a script
// (js-), and reports rows/s. COPY_WORKERS and COPY_PART_MB set
// Options.Workers and PartBytes.
func BenchmarkCopy(b *testing.B) {
	n := 500_000
	if v, err := strconv.Atoi(os.Getenv("COPY_ROWS")); err == nil {
		n = v
	}
	const ddl = `(id bigint PRIMARY KEY, customer text, email text, status int, amount numeric(12,2),
		created timestamptz, updated timestamptz, note text, tags text[], attrs jsonb)`
	const fill = `INSERT INTO %s SELECT g, 'customer ' || g, 'c' || g || '@example.com', g %% 7, g / 100.0,
		now() - g * interval '1 second', now(), repeat(md5(g::text), 2), ARRAY['a' || g %% 10, 'b'], jsonb_build_object('n', g, 'k', 'v')
		FROM generate_series(1, %d) g`
	for _, tables := range []int{1, 4} {
		for _, js := range []bool{false, true} {
			name := "binary-" + strconv.Itoa(tables)
			if js {
				name = "js-" + strconv.Itoa(tables)
			}
			b.Run(name, func(b *testing.B) {
				var src, tgt strings.Builder
				for i := range tables {
					t := "w" + strconv.Itoa(i)
					src.WriteString("CREATE TABLE " + t + " " + ddl + ";" + fmt.Sprintf(fill, t, n/tables) + ";")
					tgt.WriteString("CREATE TABLE " + t + " " + ddl + ";")
				}
				for range b.N {
					b.StopTimer()
					r := newRun(b, src.String(), tgt.String())
					for i := range tables {
						t := "w" + strconv.Itoa(i)
						script := ""
						if js {
							script = "function forward(r) { return {...r} }"
						}
						r.entry(b, t, t, script)
					}
					b.StartTimer()
					st := r.copy(b, func(o *snapshot.Options) {
						if v, err := strconv.Atoi(os.Getenv("COPY_WORKERS")); err == nil {
							o.Workers = v
						}
						if v, err := strconv.ParseInt(os.Getenv("COPY_PART_MB"), 10, 64); err == nil {
							o.PartBytes = v << 20
						}
					})
					b.ReportMetric(float64(st.Rows)/st.Took.Seconds(), "rows/s")
				}
			})
		}
	}
}

// TestProgress: while a table is being copied, the copy logs its progress
// every ProgressEvery (rows, percent of the estimate, rate, time to go) and
// reports it, with the bytes read, to Progress; a last report gives the
// exact rows once the table is done. Both paths, binary and mapped, are
// held up by a lock on the target tables until each has logged twice.
func TestProgress(t *testing.T) {
	r := newRun(t,
		"CREATE TABLE same "+wide+"; CREATE TABLE scripted "+wide+";"+fill("same", 5000)+";"+fill("scripted", 5000)+"; ANALYZE same, scripted;",
		"CREATE TABLE same "+wide+"; CREATE TABLE scripted "+wide+";")
	r.entry(t, "same", "same", "")
	r.entry(t, "scripted", "scripted", "function forward(r) { return {...r} }")

	lock := pgtest.Connect(t, r.TgtDSN)
	pgtest.MustExec(t, lock, "BEGIN; LOCK TABLE same, scripted IN SHARE MODE")
	logs := &bridgetest.LogSink{}
	records := func(table string) []string {
		var rs []string
		for _, l := range strings.Split(logs.String(), "\n") {
			if strings.Contains(l, `msg="copy progress"`) && strings.Contains(l, `table="\"public\".\"`+table+`\""`) {
				rs = append(rs, l)
			}
		}
		return rs
	}
	held := make(chan bool, 1)
	go func() {
		held <- pgtest.Until(30*time.Second, func() bool { return len(records("same")) >= 2 && len(records("scripted")) >= 2 })
		lock.Exec(context.Background(), "COMMIT")
	}()

	var mu sync.Mutex
	var reports []snapshot.Progress
	st := r.copy(t, func(o *snapshot.Options) {
		o.ProgressEvery = 100 * time.Millisecond
		o.Logger = bridgetest.TextLogger(logs)
		o.Progress = func(p snapshot.Progress) {
			mu.Lock()
			defer mu.Unlock()
			reports = append(reports, p)
		}
	})
	if !<-held {
		t.Fatalf("no two progress records per table while the copy was held:\n%s", logs.String())
	}
	attrs := regexp.MustCompile(`rows=\d+ estimated=5000 percent=\d+(\.\d)? rows_per_second=\d+ bytes=\d+ eta=\S+ elapsed=\S+`)
	for _, table := range []string{"same", "scripted"} {
		for _, rec := range records(table) {
			if !attrs.MatchString(rec) {
				t.Errorf("a progress record of %s lacks rows, estimate, percent, rate, bytes or eta:\n%s", table, rec)
			}
		}
		var running, done int
		for _, p := range reports {
			if p.Table.Name != table {
				continue
			}
			if p.Estimated != 5000 || p.Rows < 0 || p.Rows > 5000 {
				t.Errorf("a report of %s: %+v, want 0..5000 rows of an estimated 5000", table, p)
			}
			if p.Done {
				done++
				if p.Rows != 5000 || p.Bytes <= 0 {
					t.Errorf("the last report of %s: %+v, want 5000 rows and their bytes", table, p)
				}
			} else {
				running++
			}
		}
		if running < 2 || done != 1 {
			t.Errorf("%s: %d reports while copying and %d when done, want at least 2 and 1", table, running, done)
		}
		if ts := tableStats(t, st, table); ts.Rows != 5000 {
			t.Errorf("%s: %+v", table, ts)
		}
	}
}
