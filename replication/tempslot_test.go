package replication

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"

	"github.com/cdcbridge/cdcbridge/change"
	"github.com/cdcbridge/cdcbridge/internal/pgtest"
)

// TestStreamTemporarySlot: Run makes its own temporary slot, streams from it,
// reports keepalives and raw messages in order, and the slot is gone once Run
// has returned.
func TestStreamTemporarySlot(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	db.exec(t, `CREATE TABLE a (id int PRIMARY KEY)`)
	if err := EnsurePublication(ctxT(t), db.conn, "pub_tmp", []change.Table{tbl("public", "a")}, false); err != nil {
		t.Fatal(err)
	}
	slot := db.slot("tmp")
	var (
		mu  sync.Mutex
		log []string // "m" + type byte for a message, "k" for a keepalive
		kas []pglogrepl.LSN
	)
	s := startStream(t, StreamConfig{
		ConnString: db.dsn, Slot: slot, Publication: "pub_tmp", TemporarySlot: true,
		OnMessage: func(_ pglogrepl.LSN, _ time.Time, data []byte) {
			mu.Lock()
			log = append(log, "m"+string(data[0]))
			mu.Unlock()
		},
		OnKeepalive: func(walEnd pglogrepl.LSN, _ time.Time) {
			mu.Lock()
			log = append(log, "k")
			kas = append(kas, walEnd)
			mu.Unlock()
		},
	}, 0)

	// A slot shows before it has found its consistent point, and what
	// commits before that point is not streamed: wait for the point.
	pgtest.WaitFor(t, 10*time.Second, "the temporary slot", func() bool {
		info, err := InspectSlot(ctxT(t), db.conn, slot)
		return err == nil && info.Exists && info.Active && info.ConfirmedFlushLSN != 0
	})
	var temporary bool
	if err := db.conn.QueryRow(ctxT(t), `SELECT temporary FROM pg_replication_slots WHERE slot_name = $1`, slot).Scan(&temporary); err != nil || !temporary {
		t.Fatalf("slot %s: temporary = %v, %v", slot, temporary, err)
	}

	db.exec(t, `INSERT INTO a VALUES (1), (2)`)
	tx := s.nextTxn(t)
	if got := txnChanges(tx); len(got) != 2 || got[0] != "insert a new(1)" {
		t.Fatalf("changes %v", got)
	}
	// Confirming the commit lets the walsender send keepalives past it.
	s.flushed.Store(uint64(tx.Txn.EndLSN))
	pgtest.WaitFor(t, 20*time.Second, "a keepalive", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(kas) > 0 && kas[len(kas)-1] >= tx.Txn.EndLSN
	})
	mu.Lock()
	seq := strings.Join(log, " ")
	mu.Unlock()
	// Keepalives may come before the transaction (the slot's start is not
	// confirmed yet) and come after its commit.
	if trimmed := strings.TrimLeft(seq, "k "); !strings.HasPrefix(trimmed, "mB mR mI mI mC k") {
		t.Fatalf("messages and keepalives in order: %s", seq)
	}

	s.cancel()
	if err := <-s.done; err != nil && err.Error() != "context canceled" {
		t.Fatalf("Run: %v", err)
	}
	s.done <- nil
	pgtest.WaitFor(t, 10*time.Second, "the temporary slot to go", func() bool {
		info, err := InspectSlot(ctxT(t), db.conn, slot)
		return err == nil && !info.Exists
	})
}

// TestStreamTemporarySlotExists: a temporary slot is not made over an
// existing one.
func TestStreamTemporarySlotExists(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	db.exec(t, `CREATE TABLE a (id int PRIMARY KEY)`)
	setupStream(t, db, "pub_tmpx", db.slot("tmpx"), tbl("public", "a"))
	st := NewStream(StreamConfig{ConnString: db.dsn, Slot: db.slot("tmpx"), Publication: "pub_tmpx", TemporarySlot: true})
	err := st.Run(ctxT(t), 0, make(chan change.Event, 1), func() pglogrepl.LSN { return 0 })
	if !IsSlotExists(err) {
		t.Fatalf("Run over an existing slot: %v, want a slot-exists error", err)
	}
}
