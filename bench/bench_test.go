package bench_test

import (
	"bufio"
	"cmp"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cdcbridge/cdcbridge/internal/pgtest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	pgtest.StopAll()
	printTable()
	os.Exit(code)
}

// A row of the table: one workload, cdcbridge beside PostgreSQL.
type row struct {
	workload     string
	ours, native float64
	unit         string
	higherBetter bool
	target       string // what the issue asks, for the reader
}

var (
	rowsMu sync.Mutex
	rows   []row
)

func record(r row) {
	rowsMu.Lock()
	rows = append(rows, r)
	rowsMu.Unlock()
	fmt.Printf("  %s: cdcbridge %s, PostgreSQL %s\n", r.workload, format(r.ours, r.unit), format(r.native, r.unit))
}

func format(v float64, unit string) string {
	switch {
	case v < 0:
		return "—"
	case unit == "MB":
		return fmt.Sprintf("%.0f MB", v)
	case unit == "ms":
		return fmt.Sprintf("%.0f ms", v)
	default:
		return fmt.Sprintf("%.0f %s", v, unit)
	}
}

func printTable() {
	if len(rows) == 0 {
		return
	}
	host, _ := os.Hostname()
	fmt.Printf("\n%d cores, %s, %s\n\n", runtime.NumCPU(), runtime.GOOS+"/"+runtime.GOARCH, host)
	fmt.Println("| workload | cdcbridge | PostgreSQL | cdcbridge ÷ PostgreSQL | target |")
	fmt.Println("|---|---|---|---|---|")
	for _, r := range rows {
		ratio := "—"
		if r.ours > 0 && r.native > 0 {
			x := r.ours / r.native
			if !r.higherBetter {
				x = r.native / r.ours
			}
			ratio = fmt.Sprintf("%.2f×", x)
		}
		fmt.Printf("| %s | %s | %s | %s | %s |\n", r.workload, format(r.ours, r.unit), format(r.native, r.unit), ratio, r.target)
	}
}

// scale multiplies the default sizes (BENCH_SCALE, default 1).
func scale(n int) int {
	if f, err := strconv.ParseFloat(os.Getenv("BENCH_SCALE"), 64); err == nil && f > 0 {
		return max(1, int(float64(n)*f))
	}
	return n
}

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// binary builds cdcbridge once, as a release would be built.
func binary(b *testing.B) string {
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "cdcbridge-bench-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "cdcbridge")
		out, err := exec.Command("go", "build", "-o", binPath, "../cmd/cdcbridge").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("building cdcbridge: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		b.Fatal(binErr)
	}
	return binPath
}

// pair is a fresh database on each cluster, with the DSNs and connections.
type pair struct {
	src, tgt       *pgx.Conn
	srcDSN, tgtDSN string
	dir            string
	sub            string // the subscription, once made
}

func newPair(b *testing.B, ddl string) *pair {
	p := pgtest.NewPair(b, ddl, ddl)
	return &pair{src: p.Src, tgt: p.Tgt, srcDSN: p.SrcDSN, tgtDSN: p.TgtDSN, dir: p.Dir}
}

func exec1(b *testing.B, c *pgx.Conn, sql string, args ...any) {
	b.Helper()
	if _, err := c.Exec(context.Background(), sql, args...); err != nil {
		b.Fatalf("%s: %v", sql, err)
	}
}

func scalar(b *testing.B, c *pgx.Conn, sql string) string {
	b.Helper()
	var s string
	if err := c.QueryRow(context.Background(), "SELECT ("+sql+")::text").Scan(&s); err != nil {
		b.Fatalf("%s: %v", sql, err)
	}
	return s
}

// waitFor polls sql on conn until it returns want; d, when not nil, is
// the daemon whose work is awaited: its exit ends the wait, with its logs.
func waitFor(b *testing.B, c *pgx.Conn, sql, want string, timeout time.Duration, d *daemon) {
	b.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got := scalar(b, c, sql)
		if got == want {
			return
		}
		if d != nil && d.exited() {
			b.Fatalf("cdcbridge exited while %s was %s, not %s:\n%s", sql, got, want, d.logs.String())
		}
		if time.Now().After(deadline) {
			logs := ""
			if d != nil {
				logs = d.logs.String()
			}
			b.Fatalf("after %s, %s is %s, not %s\n%s", timeout, sql, got, want, logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ---- cdcbridge as a process ----

type daemon struct {
	cmd  *exec.Cmd
	logs *pgtest.Buffer
	peak func() float64
	done chan struct{} // closed when the process has exited
}

func (d *daemon) exited() bool {
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

// mapping writes a mapping of the given tables (all identity, or through
// t.js when js) and returns its path.
func (p *pair) mapping(b *testing.B, name string, tables []string, js bool) string {
	var t strings.Builder
	for _, tb := range tables {
		fmt.Fprintf(&t, "  - source: %s\n    target: %s\n", tb, tb)
		if js {
			t.WriteString("    transform: t.js\n")
		}
	}
	os.WriteFile(filepath.Join(p.dir, "t.js"), []byte("function forward(r) { return {...r} }\nfunction backward(r) { return {...r} }\n"), 0o644)
	path := filepath.Join(p.dir, name+".yaml")
	y := fmt.Sprintf("name: %s\nsource:\n  dsn: %q\ntarget:\n  dsn: %q\nmetrics:\n  listen: \"\"\ntables:\n%s", name, p.srcDSN, p.tgtDSN, t.String())
	if err := os.WriteFile(path, []byte(y), 0o644); err != nil {
		b.Fatal(err)
	}
	return path
}

// start runs `cdcbridge run` and waits until it logs that the forward
// direction streams (after its initial copy, if any).
func start(b *testing.B, mapping string, args ...string) *daemon {
	b.Helper()
	logs := &pgtest.Buffer{}
	cmd := exec.Command(binary(b), append([]string{"run", "-c", mapping}, args...)...)
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	d := &daemon{cmd: cmd, logs: logs, done: make(chan struct{})}
	d.peak = func() float64 { return peakRSS(cmd.Process.Pid) }
	go func() { cmd.Wait(); close(d.done) }()
	b.Cleanup(func() { d.stop() })
	return d
}

// waitStreaming waits for the forward pipeline's "streaming" line (after
// the slot, the checkpoint and any initial copy).
func (d *daemon) waitStreaming(b *testing.B) {
	b.Helper()
	deadline := time.Now().Add(10 * time.Minute)
	streaming := regexp.MustCompile(`(?m)^.*msg=streaming .*direction=forward`)
	for !streaming.MatchString(d.logs.String()) {
		if d.exited() || time.Now().After(deadline) {
			b.Fatalf("cdcbridge did not start streaming:\n%s", d.logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (d *daemon) stop() {
	if d.exited() {
		return
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(30 * time.Second):
		d.cmd.Process.Kill()
		<-d.done
	}
}

// peakRSS reads a process's peak resident set (VmHWM) in MB, -1 if unknown.
func peakRSS(pid int) float64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if rest, ok := strings.CutPrefix(s.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return kb / 1024
		}
	}
	return -1
}

// BENCH_PROFILE=dir saves a CPU profile of cdcbridge draining each
// backlog there, named after the workload (go tool pprof dir/<name>.pprof).
var profiles = os.Getenv("BENCH_PROFILE")

const pprofAddr = "127.0.0.1:16060"

// profile starts a CPU profile of the daemon serving pprofAddr when
// BENCH_PROFILE is set; the returned func ends it and writes the file.
func profile(b *testing.B, name string) func() {
	if profiles == "" {
		return func() {}
	}
	file := filepath.Join(profiles, strings.NewReplacer(" ", "_", ",", "", "(", "", ")", "", ":", "").Replace(name)+".pprof")
	done := make(chan struct{})
	go func() {
		defer close(done)
		// The profile runs for BENCH_PROFILE_SECONDS (default 30, pick
		// about the drain's time): the daemon must still run then.
		resp, err := http.Get("http://" + pprofAddr + "/debug/pprof/profile?seconds=" + cmp.Or(os.Getenv("BENCH_PROFILE_SECONDS"), "30"))
		if err != nil {
			fmt.Printf("  (profile of %s: %v)\n", name, err)
			return
		}
		defer resp.Body.Close()
		f, err := os.Create(file)
		if err != nil {
			return
		}
		defer f.Close()
		io.Copy(f, resp.Body)
	}()
	return func() { <-done; fmt.Printf("  (profile of cdcbridge: %s)\n", file) }
}

// ---- PostgreSQL's own subscription ----

// subscribe creates a publication of tables on the source and a disabled
// subscription on the target.
// The subscription of a pair is named bench_sub_<n>, and so is its slot
// (slot names are the cluster's).
var subs int

func (p *pair) subscribe(b *testing.B, tables []string, copyData bool, enabled bool) {
	b.Helper()
	subs++
	p.sub = fmt.Sprintf("bench_sub_%d", subs)
	exec1(b, p.src, "CREATE PUBLICATION bench_pub FOR TABLE "+strings.Join(tables, ", "))
	conninfo := strings.Replace(p.srcDSN, "postgres://", "postgresql://", 1)
	exec1(b, p.tgt, fmt.Sprintf(`CREATE SUBSCRIPTION %s CONNECTION '%s' PUBLICATION bench_pub WITH (copy_data = %t, enabled = %t)`, p.sub, conninfo, copyData, enabled))
	b.Cleanup(func() {
		ctx := context.Background()
		p.tgt.Exec(ctx, `ALTER SUBSCRIPTION `+p.sub+` DISABLE`)
		p.tgt.Exec(ctx, `ALTER SUBSCRIPTION `+p.sub+` SET (slot_name = NONE)`)
		p.tgt.Exec(ctx, `DROP SUBSCRIPTION `+p.sub)
		p.src.Exec(ctx, `SELECT pg_drop_replication_slot($1)`, p.sub)
	})
}

// ---- workloads ----

const itemsDDL = `CREATE TABLE items (id bigint PRIMARY KEY, name text, qty int, price numeric(12,2), created timestamptz)`

// insertItems commits rows first..last in transactions of 100 rows.
func insertItems(b *testing.B, c *pgx.Conn, first, last int) {
	b.Helper()
	for i := first; i <= last; i += 1000 {
		batch := &pgx.Batch{}
		for j := i; j < i+1000 && j <= last; j += 100 {
			batch.Queue(`INSERT INTO items SELECT g, 'item ' || g, g % 100, g / 100.0, now() FROM generate_series($1::bigint, $2::bigint) g`, j, min(j+99, last))
		}
		if err := c.SendBatch(context.Background(), batch).Close(); err != nil {
			b.Fatal(err)
		}
	}
}

// inTxns runs sql (with $1, $2 the bounds of an id range of 100) over
// 1..n, a transaction each.
func inTxns(b *testing.B, c *pgx.Conn, n int, sql string) {
	b.Helper()
	for i := 1; i <= n; i += 1000 {
		batch := &pgx.Batch{}
		for j := i; j < i+1000 && j <= n; j += 100 {
			batch.Queue(sql, j, min(j+99, n))
		}
		if err := c.SendBatch(context.Background(), batch).Close(); err != nil {
			b.Fatal(err)
		}
	}
}

// backlog measures the drain of a backlog made by load on the source, by
// cdcbridge and by a subscription, each in its own pair prepared by
// prepare, until done holds on the target.
func backlog(b *testing.B, name, target, unit string, ddl string, tables []string, js bool, prepare, load func(p *pair), done func(p *pair) (sql, want string), units func() float64) {
	b.Helper()
	var ours, native float64
	var cpuOurs string
	{
		p := newPair(b, ddl)
		prepare(p)
		m := p.mapping(b, "bench", tables, js)
		// Rows prepared on both sides: the first start only makes the slots.
		d := start(b, m, "--skip-copy")
		d.waitStreaming(b)
		d.stop()
		load(p)
		sql, want := done(p)
		t0 := time.Now()
		var args []string
		if profiles != "" {
			args = append(args, "--pprof", pprofAddr)
		}
		d = start(b, m, args...)
		d.waitStreaming(b)
		up := time.Since(t0)
		stopProfile := profile(b, name)
		waitFor(b, p.tgt, sql, want, 10*time.Minute, d)
		ours = units() / time.Since(t0).Seconds()
		// Every process counted was born with this start, so its CPU
		// time is what the drain cost.
		cpu := map[string]float64{"cdcbridge": cpuSeconds(d.cmd.Process.Pid)}
		serverCPU(b, p.src, "source", cpu)
		serverCPU(b, p.tgt, "target", cpu)
		cpuOurs = cpuLine("cdcbridge", cpu, units())
		stopProfile()
		fmt.Printf("  (%s: cdcbridge streamed %.2fs after its start, drained in %.2fs)\n", name, up.Seconds(), time.Since(t0).Seconds())
		d.stop()
	}
	{
		// The subscription has no transform: the same yardstick for both.
		p := newPair(b, ddl)
		prepare(p)
		p.subscribe(b, tables, false, false)
		// Let the slots exist before the load, as the bridge's did.
		makeCeilingSlot(b, p)
		load(p)
		sql, want := done(p)
		alone := readCeilingSlot(b, p)
		t0 := time.Now()
		exec1(b, p.tgt, `ALTER SUBSCRIPTION `+p.sub+` ENABLE`)
		waitFor(b, p.tgt, sql, want, 10*time.Minute, nil)
		native = units() / time.Since(t0).Seconds()
		cpu := map[string]float64{}
		serverCPU(b, p.src, "source", cpu)
		serverCPU(b, p.tgt, "target", cpu)
		fmt.Printf("  (%s: CPU per %s: %s; %s)\n", name, strings.TrimSuffix(unit, "/s"), cpuOurs, cpuLine("PostgreSQL", cpu, units()))
		fmt.Printf("  (%s: one walsender alone, read by pg_recvlogical into /dev/null: %.0f %s)\n", name, units()/alone.Seconds(), unit)
	}
	record(row{workload: name, ours: ours, native: native, unit: unit, higherBetter: true, target: target})
}

// BenchmarkInserts: a backlog of inserts in transactions of 100 rows,
// through an identity mapping and through a JavaScript transform.
func BenchmarkInserts(b *testing.B) {
	n := scale(200_000)
	for _, js := range []bool{false, true} {
		name, target := "insert backlog, identity", "≥ 1.5×"
		if js {
			name, target = "insert backlog, JS transform", "≥ 1.0×"
		}
		backlog(b, fmt.Sprintf("%s (%d rows)", name, n), target, "rows/s", itemsDDL, []string{"items"}, js,
			func(p *pair) {},
			func(p *pair) { insertItems(b, p.src, 1, n) },
			func(p *pair) (string, string) { return `SELECT count(*) FROM items`, strconv.Itoa(n) },
			func() float64 { return float64(n) })
	}
}

// BenchmarkUpdates and deletes: a backlog of updates (deletes) of 100 rows
// a transaction over rows both sides hold.
func BenchmarkUpdatesDeletes(b *testing.B) {
	n := scale(200_000)
	both := func(p *pair) {
		insertItems(b, p.src, 1, n)
		insertItems(b, p.tgt, 1, n)
	}
	backlog(b, fmt.Sprintf("update backlog (%d rows, 100 a transaction)", n), "≥ 1.0×", "rows/s", itemsDDL, []string{"items"}, false, both,
		func(p *pair) {
			inTxns(b, p.src, n, `UPDATE items SET qty = qty + 1, name = name || '+' WHERE id BETWEEN $1 AND $2`)
		},
		func(p *pair) (string, string) {
			return `SELECT sum(qty) FROM items`, scalar(b, p.src, `SELECT sum(qty) FROM items`)
		},
		func() float64 { return float64(n) })
	backlog(b, fmt.Sprintf("delete backlog (%d rows, 100 a transaction)", n), "≥ 1.0×", "rows/s", itemsDDL, []string{"items"}, false, both,
		func(p *pair) { inTxns(b, p.src, n, `DELETE FROM items WHERE id BETWEEN $1 AND $2`) },
		func(p *pair) (string, string) { return `SELECT count(*) FROM items`, "0" },
		func() float64 { return float64(n) })
}

// BenchmarkOLTP: pgbench's TPC-B transactions (three single-row updates on
// accounts, tellers and branches, and an insert into the keyless history)
// piled up on the source, then drained.
func BenchmarkOLTP(b *testing.B) {
	txns := scale(20_000)
	pgbench := filepath.Join(pgtest.BinDir(), "pgbench")
	tables := []string{"pgbench_accounts", "pgbench_branches", "pgbench_tellers", "pgbench_history"}
	initBoth := func(p *pair) {
		for _, dsn := range []string{p.srcDSN, p.tgtDSN} {
			if out, err := exec.Command(pgbench, "-i", "-s", "2", "-q", dsn).CombinedOutput(); err != nil {
				b.Fatalf("pgbench -i: %v\n%s", err, out)
			}
		}
	}
	load := func(p *pair) {
		if out, err := exec.Command(pgbench, "-n", "-c", "4", "-j", "2", "-t", strconv.Itoa(txns/4), "-M", "prepared", p.srcDSN).CombinedOutput(); err != nil {
			b.Fatalf("pgbench: %v\n%s", err, out)
		}
	}
	fingerprint := `SELECT (SELECT sum(abalance) FROM pgbench_accounts) || '/' || (SELECT count(*) FROM pgbench_history)`
	backlog(b, fmt.Sprintf("OLTP backlog: pgbench TPC-B (%d transactions)", txns), "≥ 1.0×", "txns/s", "", tables, false, initBoth, load,
		func(p *pair) (string, string) { return fingerprint, scalar(b, p.src, fingerprint) },
		func() float64 { return float64(txns) })
}

const wideDDL = `CREATE TABLE %s (id bigint PRIMARY KEY, customer text, email text, status int, amount numeric(12,2),
	created timestamptz, updated timestamptz, note text, tags text[], attrs jsonb)`

func fillWide(b *testing.B, c *pgx.Conn, table string, n int) {
	exec1(b, c, fmt.Sprintf(`INSERT INTO %s SELECT g, 'customer ' || g, 'c' || g || '@example.com', g %% 7, g / 100.0,
		now() - g * interval '1 second', now(), repeat(md5(g::text), 2), ARRAY['a' || g %% 10, 'b'], jsonb_build_object('n', g, 'k', 'v')
		FROM generate_series(1, %d) g`, table, n))
}

// copyBench measures the initial copy of tables (each of n rows) by
// cdcbridge and by a subscription's copy_data.
func copyBench(b *testing.B, name string, tables []string, n int, target string) {
	var ddl []string
	for _, t := range tables {
		ddl = append(ddl, fmt.Sprintf(wideDDL, t))
	}
	var ours, native float64
	{
		p := newPair(b, strings.Join(ddl, ";\n"))
		for _, t := range tables {
			fillWide(b, p.src, t, n)
		}
		m := p.mapping(b, "benchcopy", tables, false)
		binary(b) // built before the clock starts, not counted as copying
		t0 := time.Now()
		d := start(b, m)
		d.waitStreaming(b)
		ours = float64(n*len(tables)) / time.Since(t0).Seconds()
		d.stop()
	}
	{
		p := newPair(b, strings.Join(ddl, ";\n"))
		for _, t := range tables {
			fillWide(b, p.src, t, n)
		}
		t0 := time.Now()
		p.subscribe(b, tables, true, true)
		waitFor(b, p.tgt, `SELECT count(*) FILTER (WHERE srsubstate IN ('r', 's')) FROM pg_subscription_rel`, strconv.Itoa(len(tables)), 10*time.Minute, nil)
		native = float64(n*len(tables)) / time.Since(t0).Seconds()
	}
	record(row{workload: name, ours: ours, native: native, unit: "rows/s", higherBetter: true, target: target})
}

// BenchmarkCopy: the initial copy of one populated wide table, and of
// several tables at once, beside copy_data.
func BenchmarkCopy(b *testing.B) {
	n := scale(2_000_000)
	copyBench(b, fmt.Sprintf("initial copy, one table (%d wide rows)", n), []string{"wide"}, n, "≥ 1.0×")
	copyBench(b, fmt.Sprintf("initial copy, four tables (4 × %d rows)", n/4), []string{"w1", "w2", "w3", "w4"}, n/4, "≥ 1.5×")
}

// BenchmarkMemory: peak RSS of cdcbridge (and of PostgreSQL's apply
// worker) while applying one source transaction of 1,000,000 small rows,
// and one of 1,000 rows of 1 MB.
func BenchmarkMemory(b *testing.B) {
	for _, w := range []struct {
		name, ddl, load, count string
		rows                   int
	}{
		{fmt.Sprintf("peak RSS, one transaction of %d rows", scale(1_000_000)), itemsDDL,
			fmt.Sprintf(`INSERT INTO items SELECT g, 'item ' || g, g %% 100, g / 100.0, now() FROM generate_series(1, %d) g`, scale(1_000_000)),
			`SELECT count(*) FROM items`, scale(1_000_000)},
		{fmt.Sprintf("peak RSS, one transaction of %d rows of 1 MB", scale(1000)), `CREATE TABLE docs (id int PRIMARY KEY, body text)`,
			fmt.Sprintf(`INSERT INTO docs SELECT g, repeat(md5(g::text), 32768) FROM generate_series(1, %d) g`, scale(1000)),
			`SELECT count(*) FROM docs`, scale(1000)},
	} {
		table := "items"
		if strings.Contains(w.ddl, "docs") {
			table = "docs"
		}
		var ours, native float64
		{
			p := newPair(b, w.ddl)
			m := p.mapping(b, "benchmem", []string{table}, false)
			d := start(b, m)
			d.waitStreaming(b)
			exec1(b, p.src, w.load)
			waitFor(b, p.tgt, w.count, strconv.Itoa(w.rows), 10*time.Minute, d)
			ours = d.peak()
			d.stop()
		}
		{
			p := newPair(b, w.ddl)
			p.subscribe(b, []string{table}, false, true)
			waitFor(b, p.tgt, `SELECT count(*) FROM pg_stat_subscription WHERE pid IS NOT NULL AND subname = '`+p.sub+`'`, "1", time.Minute, nil)
			pid, _ := strconv.Atoi(scalar(b, p.tgt, `SELECT pid FROM pg_stat_subscription WHERE pid IS NOT NULL AND subname = '`+p.sub+`'`))
			exec1(b, p.src, w.load)
			waitFor(b, p.tgt, w.count, strconv.Itoa(w.rows), 10*time.Minute, nil)
			native = peakRSS(pid)
		}
		record(row{workload: w.name, ours: ours, native: native, unit: "MB", target: "< 150 MB"})
	}
}

// BenchmarkLag: source commit to target commit at a steady rate of 5,000
// rows/s (50-row transactions every 10 ms) for 20 s, p50 and p99.
func BenchmarkLag(b *testing.B) {
	// The target stamps each row as the apply inserts it, by a trigger
	// that fires for replicated rows too (ENABLE ALWAYS); both sides have
	// the column, so the mapping runs in both directions.
	const ddlSrc = `CREATE TABLE ticks (id bigint PRIMARY KEY, at timestamptz NOT NULL, applied timestamptz)`
	const stamp = `CREATE FUNCTION stamp() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.applied := clock_timestamp(); RETURN NEW; END $$;
		CREATE TRIGGER stamp BEFORE INSERT ON ticks FOR EACH ROW EXECUTE FUNCTION stamp();
		ALTER TABLE ticks ENABLE ALWAYS TRIGGER stamp`
	duration := time.Duration(scale(20)) * time.Second
	run := func(p *pair, d *daemon) {
		var id int64
		next := time.Now()
		for end := time.Now().Add(duration); time.Now().Before(end); {
			exec1(b, p.src, `INSERT INTO ticks SELECT g, clock_timestamp() FROM generate_series($1::bigint, $2::bigint) g`, id+1, id+50)
			id += 50
			next = next.Add(10 * time.Millisecond)
			time.Sleep(time.Until(next)) // the pace of the workload (5,000 rows/s), not a wait
		}
		waitFor(b, p.tgt, `SELECT count(*) FROM ticks`, strconv.FormatInt(id, 10), 5*time.Minute, d)
	}
	lag := func(p *pair, q float64) float64 {
		v, _ := strconv.ParseFloat(scalar(b, p.tgt, fmt.Sprintf(`SELECT percentile_cont(%g) WITHIN GROUP (ORDER BY extract(epoch FROM applied - at) * 1000) FROM ticks`, q)), 64)
		return v
	}
	var ours, native [2]float64
	{
		p := newPair(b, ddlSrc)
		exec1(b, p.tgt, stamp)
		d := start(b, p.mapping(b, "benchlag", []string{"ticks"}, false))
		d.waitStreaming(b)
		run(p, d)
		ours = [2]float64{lag(p, 0.5), lag(p, 0.99)}
		d.stop()
	}
	{
		p := newPair(b, ddlSrc)
		exec1(b, p.tgt, stamp)
		p.subscribe(b, []string{"ticks"}, false, true)
		waitFor(b, p.tgt, `SELECT count(*) FROM pg_stat_subscription WHERE pid IS NOT NULL AND subname = '`+p.sub+`'`, "1", time.Minute, nil)
		run(p, nil)
		native = [2]float64{lag(p, 0.5), lag(p, 0.99)}
	}
	record(row{workload: "lag p50 at 5,000 rows/s", ours: ours[0], native: native[0], unit: "ms"})
	record(row{workload: "lag p99 at 5,000 rows/s", ours: ours[1], native: native[1], unit: "ms", target: "< 1000 ms"})
}
