package daemon_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cdcbridge/cdcbridge/config"
	"github.com/cdcbridge/cdcbridge/daemon"
	"github.com/cdcbridge/cdcbridge/internal/bridgetest"
	"github.com/cdcbridge/cdcbridge/internal/pgtest"
	"github.com/cdcbridge/cdcbridge/pipeline"
)

// BenchmarkRecovery measures what a fault of either database costs the
// daemon under a steady load: after a restart of the source, a restart of
// the target (each down for one second) and a kill of the forward
// direction's walsender, how long until a row committed on the source at the
// moment the database is back has reached the target. It prints the figures;
// nothing is asserted (the tests check that the daemon comes back, this
// says how fast). Both databases live on clusters of their own.
func BenchmarkRecovery(b *testing.B) {
	bridgetest.TuneGC()
	sc, tc := pgtest.Get(b, "recovery-source"), pgtest.Get(b, "recovery-target")
	srcDSN, tgtDSN := sc.NewDB(b), tc.NewDB(b)
	ddl := bridgetest.BenchTable
	pgtest.MustExec(b, pgtest.Connect(b, srcDSN), ddl)
	pgtest.MustExec(b, pgtest.Connect(b, tgtDSN), ddl)
	dir := b.TempDir()
	p := filepath.Join(dir, "m.yaml")
	os.WriteFile(p, []byte(fmt.Sprintf("name: recovery\nsource:\n  dsn: %q\ntarget:\n  dsn: %q\ntables:\n  - source: items\n    target: items\n", srcDSN, tgtDSN)), 0o644)
	m, err := config.Load(p)
	if err != nil {
		b.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	sink := &bridgetest.LogSink{}
	var logs io.Writer = sink
	if f := os.Getenv("BENCH_LOG"); f != "" { // the daemon's logs, for a closer look
		w, err := os.Create(f)
		if err != nil {
			b.Fatal(err)
		}
		defer w.Close()
		logs = io.MultiWriter(logs, w)
	}
	go func() {
		done <- daemon.Run(ctx, daemon.Options{Options: pipeline.Options{Mapping: m,
			Logger: slog.New(slog.NewTextHandler(logs, nil))}})
	}()
	defer func() {
		cancel()
		select {
		case <-done:
		case <-time.After(time.Minute):
			// Say where it hangs rather than hang the run.
			buf := make([]byte, 1<<20)
			b.Errorf("the daemon did not stop within a minute; its goroutines:\n%s", buf[:runtime.Stack(buf, true)])
		}
	}()

	// The load: 100-row transactions, one every 10ms, that keep going
	// (reconnecting) through the faults.
	var (
		loadMu sync.Mutex
		nextID int64 = 1
	)
	insert := func(ctx context.Context, conn *pgx.Conn, rows int64) (last int64, err error) {
		loadMu.Lock()
		first := nextID
		nextID += rows
		loadMu.Unlock()
		_, err = conn.Exec(ctx, `INSERT INTO items SELECT g, 'item ' || g, g % 100, g / 100.0, now() FROM generate_series($1::bigint, $2::bigint) g`, first, first+rows-1)
		return first + rows - 1, err
	}
	loadCtx, stopLoad := context.WithCancel(ctx)
	var loadDone sync.WaitGroup
	loadDone.Add(1)
	go func() {
		defer loadDone.Done()
		var conn *pgx.Conn
		for loadCtx.Err() == nil {
			if conn == nil || conn.IsClosed() {
				conn, _ = pgx.Connect(loadCtx, srcDSN)
			}
			if conn != nil {
				if _, err := insert(loadCtx, conn, 100); err != nil {
					conn.Close(context.Background())
					conn = nil
				}
			}
			select {
			case <-loadCtx.Done():
			case <-time.After(10 * time.Millisecond):
			}
		}
		if conn != nil {
			conn.Close(context.Background())
		}
	}()
	defer func() {
		stopLoad()
		loadDone.Wait()
	}()

	// arrived waits until the row with the given id is on the target and
	// says how long that took.
	arrived := func(id int64) time.Duration {
		t0 := time.Now()
		pgtest.WaitFor(b, 3*time.Minute, fmt.Sprintf("row %d to reach the target", id), func() bool {
			conn, err := pgx.Connect(ctx, tgtDSN)
			if err == nil {
				var n int
				err = conn.QueryRow(ctx, `SELECT count(*) FROM items WHERE id = $1`, id).Scan(&n)
				conn.Close(context.Background())
				if err == nil && n == 1 {
					return true
				}
			}
			select {
			case err := <-done:
				b.Fatalf("the daemon stopped: %v", err)
			default:
			}
			return false
		}, sink)
		return time.Since(t0)
	}
	// mark commits one row on the source, retrying until the source takes it.
	mark := func() int64 {
		var id int64
		var err error
		if !pgtest.Until(time.Minute, func() bool {
			var conn *pgx.Conn
			if conn, err = pgx.Connect(ctx, srcDSN); err != nil {
				return false
			}
			id, err = insert(ctx, conn, 1)
			conn.Close(context.Background())
			return err == nil
		}) {
			b.Fatalf("the source does not take writes: %v", err)
		}
		return id
	}
	arrived(mark()) // streaming (after the initial copy)

	faults := []struct {
		name   string
		inject func()
	}{
		// The sleeps below are the fault being injected (an outage of 1s), not a wait.
		{"restart of the source (down 1s)", func() { sc.Stop(b); time.Sleep(time.Second); sc.Start(b) }},
		{"restart of the target (down 1s)", func() { tc.Stop(b); time.Sleep(time.Second); tc.Start(b) }},
		{"walsender killed", func() {
			conn := pgtest.Connect(b, srcDSN)
			defer conn.Close(context.Background())
			var killed bool
			err := conn.QueryRow(ctx, `SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1 AND active_pid IS NOT NULL`,
				m.SlotName(config.Forward)).Scan(&killed)
			if err != nil && !errors.Is(err, pgx.ErrNoRows) {
				b.Fatal(err)
			}
		}},
	}
	rounds := max(b.N, 3)
	b.ResetTimer()
	for _, f := range faults {
		var worst, sum time.Duration
		for range rounds {
			f.inject()
			fmt.Fprintf(logs, "---- %s: back\n", f.name)
			took := arrived(mark())
			sum += took
			worst = max(worst, took)
			// Caught up again before the next fault.
			arrived(mark())
		}
		fmt.Printf("cdcbridge recovery after a %s: streaming again %.2fs after the database was back (mean of %d), worst %.2fs\n",
			f.name, (sum / time.Duration(rounds)).Seconds(), rounds, worst.Seconds())
	}
}
