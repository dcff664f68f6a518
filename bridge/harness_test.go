package bridge_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"

	"github.com/cdcbridge/cdcbridge/bridge"
	"github.com/cdcbridge/cdcbridge/config"
	"github.com/cdcbridge/cdcbridge/internal/pgtest"
)

// allLogs collects every log line of the package's tests, to be searched
// for the password canary at the end.
var allLogs pgtest.Buffer

// logSink captures one daemon's logs and copies them into allLogs.
type logSink struct{ pgtest.Buffer }

func (l *logSink) Write(p []byte) (int, error) {
	allLogs.Write(p)
	return l.Buffer.Write(p)
}

func TestMain(m *testing.M) {
	code := m.Run()
	pgtest.StopAll()
	leaked := strings.Contains(allLogs.String(), pgtest.Canary)
	n := len(allLogs.String())
	if leaked {
		fmt.Fprintln(os.Stderr, "FAIL: the password canary appears in the logs of the bridge tests")
		code = 1
	} else if code == 0 && n == 0 {
		fmt.Fprintln(os.Stderr, "FAIL: no log lines were captured, so the canary check proved nothing")
		code = 1
	}
	os.Exit(code)
}

// env is a pair of fresh databases, one per cluster.
type env struct {
	*pgtest.Pair
	t *testing.T
}

func newEnv(t *testing.T, srcDDL, tgtDDL string) *env {
	t.Helper()
	return &env{Pair: pgtest.NewPair(t, srcDDL, tgtDDL), t: t}
}

// mapping writes a mapping file (with the given tables section and files)
// and loads it.
func (e *env) mapping(name, tables string, files map[string]string) *config.Mapping {
	e.t.Helper()
	for f, body := range files {
		p := filepath.Join(e.Dir, f)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			e.t.Fatal(err)
		}
	}
	y := fmt.Sprintf("name: %s\nsource:\n  dsn: %q\ntarget:\n  dsn: %q\ntables:\n%s", name, e.SrcDSN, e.TgtDSN, tables)
	p := filepath.Join(e.Dir, name+".yaml")
	if err := os.WriteFile(p, []byte(y), 0o644); err != nil {
		e.t.Fatal(err)
	}
	m, err := config.Load(p)
	if err != nil {
		e.t.Fatalf("loading the mapping: %v\n%s", err, y)
	}
	return m
}

// daemon is a bridge.Run in a goroutine.
type daemon struct {
	cancel context.CancelFunc
	done   chan error
	logs   *logSink
}

func (e *env) start(m *config.Mapping, dir config.Direction) *daemon {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	d := &daemon{cancel: cancel, done: make(chan error, 1), logs: &logSink{}}
	log := slog.New(slog.NewTextHandler(d.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	started := make(chan struct{}, 1)
	go func() {
		d.done <- bridge.Run(ctx, bridge.Options{Mapping: m, Direction: dir, Logger: log, MaxBackoff: time.Second,
			Started: func(_ pglogrepl.LSN) {
				select {
				case started <- struct{}{}:
				default:
				}
			}})
	}()
	select {
	case <-started:
	case err := <-d.done:
		e.t.Fatalf("the daemon did not start: %v\nlogs:\n%s", err, d.logs.String())
	case <-time.After(30 * time.Second):
		e.t.Fatalf("the daemon did not start within 30s\nlogs:\n%s", d.logs.String())
	}
	e.t.Cleanup(func() { d.stop(e.t) })
	return d
}

func (d *daemon) stop(t *testing.T) {
	if d.cancel == nil {
		return
	}
	d.cancel()
	d.cancel = nil
	select {
	case err := <-d.done:
		if err != nil {
			t.Errorf("the daemon stopped with %v\nlogs:\n%s", err, d.logs.String())
		}
	case <-time.After(30 * time.Second):
		t.Errorf("the daemon did not stop within 30s")
	}
}

func query(t testing.TB, conn *pgx.Conn, sql string) string {
	t.Helper()
	return pgtest.Query(t, conn, sql)
}

// eventually waits until query(conn, sql) == want.
func eventually(t testing.TB, conn *pgx.Conn, sql, want string, d *daemon) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var got string
	for time.Now().Before(deadline) {
		got = query(t, conn, sql)
		if got == want {
			return
		}
		if d != nil {
			select {
			case err := <-d.done:
				d.cancel = nil
				t.Fatalf("the daemon stopped: %v\nlogs:\n%s", err, d.logs.String())
			default:
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	logs := ""
	if d != nil {
		logs = d.logs.String()
	}
	t.Fatalf("timed out waiting for\n%s\n got:\n%s\nwant:\n%s\nlogs:\n%s", sql, got, want, logs)
}

// testLogger writes into allLogs, where the canary check looks.
func testLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(&logSink{}, nil))
}

func slogText(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
