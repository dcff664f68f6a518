package replication

import (
	"strings"
	"testing"
	"time"

	"github.com/cdcbridge/cdcbridge/change"
)

// TestStreamKeepTable: a publication with a table the caller does not read
// (one the tables' owner made): the changes of that table are dropped, a
// transaction that changes only it comes as a position, and a transaction
// that changes both comes with the kept table's changes alone.
func TestStreamKeepTable(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	db.exec(t, `CREATE TABLE a (id int PRIMARY KEY); CREATE TABLE other (id int PRIMARY KEY)`)
	start := setupStream(t, db, "pub_k", db.slot("k"), tbl("public", "a"), tbl("public", "other"))
	s := startStream(t, StreamConfig{ConnString: db.dsn, Slot: db.slot("k"), Publication: "pub_k",
		KeepTable: func(t change.Table) bool { return t == tbl("public", "a") }}, start)

	db.exec(t, `INSERT INTO a VALUES (1)`)
	db.exec(t, `INSERT INTO other VALUES (1); UPDATE other SET id = 2; DELETE FROM other`)
	db.exec(t, `BEGIN; INSERT INTO other VALUES (3); INSERT INTO a VALUES (2); INSERT INTO other VALUES (4); COMMIT`)
	db.exec(t, `TRUNCATE other`)
	db.exec(t, `TRUNCATE a, other`)

	first := s.nextTxn(t)
	if got := strings.Join(txnChanges(first), "; "); got != "insert a new(1)" {
		t.Fatalf("first transaction: %s", got)
	}
	// The transactions of other alone: positions only, then the mixed one.
	var positions int
	for {
		ev := s.next(t, 15*time.Second)
		if ev.Kind == change.EvPosition {
			if ev.LSN <= first.Txn.EndLSN {
				t.Fatalf("a position at %s, not past the first transaction's end %s", ev.LSN, first.Txn.EndLSN)
			}
			positions++
			continue
		}
		if ev.Kind != change.EvBegin {
			t.Fatalf("after the first transaction got %+v, want positions, then the Begin of the mixed transaction", ev)
		}
		break
	}
	if positions == 0 {
		t.Fatalf("the transaction that changed only other brought no position")
	}
	// The Begin is consumed: read the rest of the mixed transaction.
	var changes []string
	for {
		ev := s.next(t, 15*time.Second)
		if ev.Kind == change.EvCommit {
			break
		}
		if ev.Kind != change.EvChange {
			t.Fatalf("inside the mixed transaction got %+v", ev)
		}
		changes = append(changes, changeString(ev.Change))
	}
	if got := strings.Join(changes, "; "); got != "insert a new(2)" {
		t.Fatalf("the mixed transaction: %s, want only a's insert", got)
	}
	// TRUNCATE other alone is a position; TRUNCATE a, other comes whole
	// (the transform truncates only what it maps).
	last := s.nextTxn(t)
	if got := strings.Join(txnChanges(last), "; "); got != "truncate a,other" {
		t.Fatalf("the last transaction: %s", got)
	}
}
