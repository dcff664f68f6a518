package pipeline_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"

	"github.com/cdcbridge/cdcbridge/config"
	"github.com/cdcbridge/cdcbridge/internal/bridgetest"
	"github.com/cdcbridge/cdcbridge/internal/pgtest"
	"github.com/cdcbridge/cdcbridge/pipeline"
)

// backlogRows is the size of the insert backlog; BENCH_ROWS overrides it.
func backlogRows() int {
	if n, err := strconv.Atoi(os.Getenv("BENCH_ROWS")); err == nil && n > 0 {
		return n
	}
	return 200_000
}

// insertBacklog commits n rows on the source in transactions of 100 rows,
// as an application would.
func insertBacklog(b *testing.B, conn *pgx.Conn, n int) {
	b.Helper()
	for i := 0; i < n; i += 1000 {
		batch := &pgx.Batch{}
		for j := i; j < i+1000 && j < n; j += 100 {
			batch.Queue(`INSERT INTO items SELECT g, 'item ' || g, g % 100, g / 100.0, now() FROM generate_series($1::bigint, $2::bigint) g`, j+1, min(j+100, n))
		}
		if err := conn.SendBatch(context.Background(), batch).Close(); err != nil {
			b.Fatal(err)
		}
	}
}

func waitCount(b *testing.B, conn *pgx.Conn, n int, timeout time.Duration) {
	b.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var got int
		if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM items`).Scan(&got); err != nil {
			b.Fatal(err)
		}
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("only %d of %d rows after %s", got, n, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// BenchmarkForwardBacklog measures how fast the forward path drains an
// insert backlog that piled up while it was stopped, through an identity
// mapping and through a JavaScript transform.
func BenchmarkForwardBacklog(b *testing.B) {
	bridgetest.TuneGC()
	for _, mode := range []string{"identity", "js"} {
		b.Run(mode, func(b *testing.B) {
			n := backlogRows()
			var total time.Duration
			for i := 0; i < b.N; i++ {
				pair := pgtest.NewPair(b, bridgetest.BenchTable, bridgetest.BenchTable)
				srcDSN, tgtDSN, src, tgt, dir := pair.SrcDSN, pair.TgtDSN, pair.Src, pair.Tgt, pair.Dir
				entry := "  - source: items\n    target: items\n"
				if mode == "js" {
					os.WriteFile(dir+"/t.js", []byte("function forward(r) { return {...r, qty: r.qty === undefined ? undefined : r.qty} }\nfunction backward(r) { return r }\n"), 0o644)
					entry += "    transform: t.js\n"
				}
				p := dir + "/m.yaml"
				os.WriteFile(p, []byte(fmt.Sprintf("name: bench\nsource:\n  dsn: %q\ntarget:\n  dsn: %q\ntables:\n%s", srcDSN, tgtDSN, entry)), 0o644)
				m, err := config.Load(p)
				if err != nil {
					b.Fatal(err)
				}
				log := slog.New(slog.NewTextHandler(&bridgetest.LogSink{}, nil))
				// First start creates the slot; stop, pile up the backlog, start again.
				run := func() (context.CancelFunc, chan error) {
					ctx, cancel := context.WithCancel(context.Background())
					done := make(chan error, 1)
					started := make(chan struct{})
					go func() {
						done <- pipeline.Run(ctx, pipeline.Options{Mapping: m, Logger: log, Started: func(_ pglogrepl.LSN) { close(started) }})
					}()
					select {
					case <-started:
					case err := <-done:
						b.Fatal(err)
					}
					return cancel, done
				}
				cancel, done := run()
				cancel()
				<-done
				insertBacklog(b, src, n)
				b.ResetTimer()
				t0 := time.Now()
				cancel, done = run()
				waitCount(b, tgt, n, 10*time.Minute)
				total += time.Since(t0)
				b.StopTimer()
				cancel()
				<-done
			}
			rate := float64(n*b.N) / total.Seconds()
			b.ReportMetric(rate, "rows/s")
			fmt.Printf("cdcbridge forward (%s): %d rows in %.2fs = %.0f rows/s\n", mode, n, total.Seconds()/float64(b.N), rate)
		})
	}
}

// BenchmarkSubscriptionBacklog is the yardstick: PostgreSQL's own logical
// replication (a subscription, copy_data = false) draining the same backlog
// between the same two clusters.
func BenchmarkSubscriptionBacklog(b *testing.B) {
	n := backlogRows()
	var total time.Duration
	for i := 0; i < b.N; i++ {
		pair := pgtest.NewPair(b, bridgetest.BenchTable+"; CREATE PUBLICATION bench_pub FOR TABLE items", bridgetest.BenchTable)
		srcDSN, src, tgt := pair.SrcDSN, pair.Src, pair.Tgt
		conninfo := strings.Replace(srcDSN, "postgres://", "postgresql://", 1)
		pgtest.MustExec(b, tgt, fmt.Sprintf(`CREATE SUBSCRIPTION bench_sub CONNECTION '%s' PUBLICATION bench_pub WITH (copy_data = false, enabled = false)`, conninfo))
		b.Cleanup(func() {
			ctx := context.Background()
			tgt.Exec(ctx, `ALTER SUBSCRIPTION bench_sub DISABLE`)
			tgt.Exec(ctx, `ALTER SUBSCRIPTION bench_sub SET (slot_name = NONE)`)
			tgt.Exec(ctx, `DROP SUBSCRIPTION bench_sub`)
		})
		insertBacklog(b, src, n)
		b.ResetTimer()
		t0 := time.Now()
		pgtest.MustExec(b, tgt, `ALTER SUBSCRIPTION bench_sub ENABLE`)
		waitCount(b, tgt, n, 10*time.Minute)
		total += time.Since(t0)
		b.StopTimer()
	}
	rate := float64(n*b.N) / total.Seconds()
	b.ReportMetric(rate, "rows/s")
	fmt.Printf("PostgreSQL subscription: %d rows in %.2fs = %.0f rows/s\n", n, total.Seconds()/float64(b.N), rate)
}

// BenchmarkInitialCopy measures the initial copy of a preloaded table (the
// same rows as the backlog benchmarks), through an identity mapping and
// through a JavaScript transform.
func BenchmarkInitialCopy(b *testing.B) {
	bridgetest.TuneGC()
	for _, mode := range []string{"identity", "js"} {
		b.Run(mode, func(b *testing.B) {
			n := backlogRows()
			var total time.Duration
			for i := 0; i < b.N; i++ {
				pair := pgtest.NewPair(b, bridgetest.BenchTable, bridgetest.BenchTable)
				insertBacklog(b, pair.Src, n)
				entry := "  - source: items\n    target: items\n"
				if mode == "js" {
					os.WriteFile(pair.Dir+"/t.js", []byte("function forward(r) { return {...r} }\nfunction backward(r) { return r }\n"), 0o644)
					entry += "    transform: t.js\n"
				}
				p := pair.Dir + "/m.yaml"
				os.WriteFile(p, []byte(fmt.Sprintf("name: benchcopy\nsource:\n  dsn: %q\ntarget:\n  dsn: %q\ntables:\n%s", pair.SrcDSN, pair.TgtDSN, entry)), 0o644)
				m, err := config.Load(p)
				if err != nil {
					b.Fatal(err)
				}
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan error, 1)
				b.ResetTimer()
				t0 := time.Now()
				started := make(chan struct{})
				go func() {
					done <- pipeline.Run(ctx, pipeline.Options{Mapping: m, Logger: slog.New(slog.NewTextHandler(&bridgetest.LogSink{}, nil)),
						Started: func(_ pglogrepl.LSN) { close(started) }})
				}()
				select {
				case <-started:
				case err := <-done:
					b.Fatal(err)
				}
				total += time.Since(t0)
				b.StopTimer()
				waitCount(b, pair.Tgt, n, time.Minute)
				cancel()
				<-done
			}
			rate := float64(n*b.N) / total.Seconds()
			b.ReportMetric(rate, "rows/s")
			fmt.Printf("cdcbridge initial copy (%s): %d rows in %.2fs = %.0f rows/s\n", mode, n, total.Seconds()/float64(b.N), rate)
		})
	}
}

// BenchmarkSubscriptionCopyData is the yardstick for the initial copy:
// PostgreSQL's own subscription with copy_data = true on the same rows.
func BenchmarkSubscriptionCopyData(b *testing.B) {
	n := backlogRows()
	var total time.Duration
	for i := 0; i < b.N; i++ {
		pair := pgtest.NewPair(b, bridgetest.BenchTable+"; CREATE PUBLICATION bench_pub FOR TABLE items", bridgetest.BenchTable)
		insertBacklog(b, pair.Src, n)
		conninfo := strings.Replace(pair.SrcDSN, "postgres://", "postgresql://", 1)
		tgt := pair.Tgt
		b.Cleanup(func() {
			ctx := context.Background()
			tgt.Exec(ctx, `ALTER SUBSCRIPTION bench_sub DISABLE`)
			tgt.Exec(ctx, `ALTER SUBSCRIPTION bench_sub SET (slot_name = NONE)`)
			tgt.Exec(ctx, `DROP SUBSCRIPTION bench_sub`)
		})
		b.ResetTimer()
		t0 := time.Now()
		pgtest.MustExec(b, tgt, fmt.Sprintf(`CREATE SUBSCRIPTION bench_sub CONNECTION '%s' PUBLICATION bench_pub WITH (copy_data = true)`, conninfo))
		// The table sync is done when its state is ready ('r').
		deadline := time.Now().Add(10 * time.Minute)
		for {
			var ready bool
			tgt.QueryRow(context.Background(), `SELECT coalesce(bool_and(srsubstate = 'r'), false) FROM pg_subscription_rel`).Scan(&ready)
			if ready {
				break
			}
			if time.Now().After(deadline) {
				b.Fatal("the subscription did not finish its copy")
			}
			time.Sleep(10 * time.Millisecond)
		}
		total += time.Since(t0)
		b.StopTimer()
	}
	rate := float64(n*b.N) / total.Seconds()
	b.ReportMetric(rate, "rows/s")
	fmt.Printf("PostgreSQL subscription copy_data: %d rows in %.2fs = %.0f rows/s\n", n, total.Seconds()/float64(b.N), rate)
}
