package replication

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"

	"github.com/cdcbridge/cdcbridge/change"
	"github.com/cdcbridge/cdcbridge/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// testDB is a fresh database of the source cluster with a connection to it.
type testDB struct {
	cluster *pgtest.Cluster
	dsn     string
	name    string
	conn    *pgx.Conn
}

func newTestDB(t *testing.T) testDB {
	t.Helper()
	c := pgtest.Source(t)
	dsn := c.NewDB(t)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	return testDB{cluster: c, dsn: dsn, name: strings.TrimPrefix(u.Path, "/"), conn: pgtest.Connect(t, dsn)}
}

// slot returns a slot name unique in the cluster (slots are cluster-wide,
// and tests run in parallel).
func (db testDB) slot(prefix string) string {
	n := prefix + "_" + db.name
	if len(n) > 63 {
		n = n[:63]
	}
	return n
}

// dsnAs returns a DSN for the same database as another user.
func (db testDB) dsnAs(user, password string) string {
	return fmt.Sprintf("postgres://%s:%s@127.0.0.1:%d/%s?sslmode=disable", user, password, db.cluster.Port, db.name)
}

func (db testDB) exec(t testing.TB, sql string, args ...any) {
	t.Helper()
	pgtest.MustExec(t, db.conn, sql, args...)
}

func (db testDB) currentLSN(t testing.TB) pglogrepl.LSN {
	t.Helper()
	lsn, err := CurrentLSN(context.Background(), db.conn)
	if err != nil {
		t.Fatal(err)
	}
	return lsn
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// setupStream creates the publication over tables and a slot, and returns the
// slot's consistent point.
func setupStream(t *testing.T, db testDB, pub, slot string, tables ...change.Table) pglogrepl.LSN {
	t.Helper()
	ctx := ctxT(t)
	if err := EnsurePublication(ctx, db.conn, pub, tables, false); err != nil {
		t.Fatal(err)
	}
	s, err := CreateSlot(ctx, db.dsn, slot, false)
	if err != nil {
		t.Fatal(err)
	}
	return s.ConsistentPoint
}

// streamer runs a Stream in the background for a test.
type streamer struct {
	events  chan change.Event
	flushed atomic.Uint64
	done    chan error
	cancel  context.CancelFunc
	calls   atomic.Int64 // calls of flushed
}

func startStream(t *testing.T, cfg StreamConfig, start pglogrepl.LSN) *streamer {
	t.Helper()
	if cfg.StatusInterval == 0 {
		cfg.StatusInterval = 100 * time.Millisecond
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &streamer{events: make(chan change.Event, 16), done: make(chan error, 1), cancel: cancel}
	st := NewStream(cfg)
	go func() {
		s.done <- st.Run(ctx, start, s.events, func() pglogrepl.LSN {
			s.calls.Add(1)
			return pglogrepl.LSN(s.flushed.Load())
		})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-s.done:
			if err != nil && err != context.Canceled {
				t.Errorf("Run returned %v after cancel, want context.Canceled", err)
			}
			s.done <- err
		case <-time.After(10 * time.Second):
			t.Errorf("Run did not return within 10s of cancel")
		}
	})
	return s
}

// next returns the next event, failing the test after timeout or when Run ends.
func (s *streamer) next(t *testing.T, timeout time.Duration) change.Event {
	t.Helper()
	select {
	case ev := <-s.events:
		return ev
	case err := <-s.done:
		s.done <- err
		t.Fatalf("stream ended: %v", err)
	case <-time.After(timeout):
		t.Fatalf("no event within %s", timeout)
	}
	return change.Event{}
}

// txn is one transaction as received.
type txn struct {
	Txn     *change.Txn
	Changes []*change.Change
}

// nextTxn reads one whole transaction, skipping positions, and checks that
// its events hang together.
func (s *streamer) nextTxn(t *testing.T) txn {
	t.Helper()
	var ev change.Event
	for {
		ev = s.next(t, 15*time.Second)
		if ev.Kind != change.EvPosition {
			break
		}
	}
	if ev.Kind != change.EvBegin || ev.Txn == nil {
		t.Fatalf("got event %+v, want a Begin", ev)
	}
	tx := txn{Txn: ev.Txn}
	last := ev.LSN
	for {
		ev = s.next(t, 15*time.Second)
		switch ev.Kind {
		case change.EvChange:
			if ev.Txn != tx.Txn || ev.Change.Txn != tx.Txn {
				t.Fatalf("change %+v does not belong to the open transaction %+v", ev.Change, tx.Txn)
			}
			if ev.LSN != ev.Change.LSN || ev.LSN < last {
				t.Fatalf("change LSN %s (event %s) goes back from %s", ev.Change.LSN, ev.LSN, last)
			}
			last = ev.LSN
			tx.Changes = append(tx.Changes, ev.Change)
		case change.EvCommit:
			if ev.Txn != tx.Txn {
				t.Fatalf("commit of %+v, want %+v", ev.Txn, tx.Txn)
			}
			if tx.Txn.EndLSN == 0 || tx.Txn.EndLSN <= tx.Txn.FinalLSN || ev.LSN != tx.Txn.EndLSN {
				t.Fatalf("commit: EndLSN %s, FinalLSN %s, event LSN %s", tx.Txn.EndLSN, tx.Txn.FinalLSN, ev.LSN)
			}
			return tx
		default:
			t.Fatalf("got event %+v inside a transaction", ev)
		}
	}
}

// row renders a row as text for comparisons: NULL, <unchanged> or the value.
func rowString(r change.Row) string {
	if r == nil {
		return "nil"
	}
	parts := make([]string, len(r))
	for i, v := range r {
		parts[i] = v.String()
	}
	return "(" + strings.Join(parts, ",") + ")"
}

func tbl(schema, name string) change.Table { return change.Table{Schema: schema, Name: name} }

func connectTB(t testing.TB, dsn string) *pgx.Conn { t.Helper(); return pgtest.Connect(t, dsn) }
