package replication

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"

	"github.com/cdcbridge/cdcbridge/change"
	"github.com/cdcbridge/cdcbridge/internal/pgtest"
)

// changeString renders a change compactly: op table new old(kind).
func changeString(c *change.Change) string {
	switch c.Op {
	case change.Truncate:
		var ts []string
		for _, r := range c.Truncated {
			ts = append(ts, r.Table.Name)
		}
		s := "truncate " + strings.Join(ts, ",")
		if c.Cascade {
			s += " cascade"
		}
		if c.RestartIdentity {
			s += " restart"
		}
		return s
	}
	s := c.Op.String() + " " + c.Rel.Table.Name
	if c.New != nil {
		s += " new" + rowString(c.New)
	}
	if c.Old != nil {
		kind := "O"
		if c.OldIsKey {
			kind = "K"
		}
		s += " old" + kind + rowString(c.Old)
	}
	return s
}

func txnChanges(tx txn) []string {
	var out []string
	for _, c := range tx.Changes {
		out = append(out, changeString(c))
	}
	return out
}

func TestStreamChanges(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	db.exec(t, `CREATE TABLE a (id int PRIMARY KEY, v text);
		CREATE TABLE b (id serial PRIMARY KEY, v text);
		CREATE TABLE f (id int, v text); ALTER TABLE f REPLICA IDENTITY FULL`)
	start := setupStream(t, db, "pub_c", db.slot("c"), tbl("public", "a"), tbl("public", "b"), tbl("public", "f"))

	var mu sync.Mutex
	var recorded [][]byte // the raw messages, for the decoder test below
	s := startStream(t, StreamConfig{ConnString: db.dsn, Slot: db.slot("c"), Publication: "pub_c",
		OnMessage: func(_ pglogrepl.LSN, _ time.Time, data []byte) {
			mu.Lock()
			recorded = append(recorded, append([]byte(nil), data...))
			mu.Unlock()
		}}, start)

	for _, sql := range []string{
		`INSERT INTO a VALUES (1, 'x')`,
		`UPDATE a SET v = 'y' WHERE id = 1`,
		`UPDATE a SET id = 2 WHERE id = 1`,
		`INSERT INTO f VALUES (1, 'p')`,
		`UPDATE f SET v = 'q'`,
		`DELETE FROM a WHERE id = 2`,
		`DELETE FROM f`,
		`BEGIN; INSERT INTO b (v) VALUES ('rolled back'); INSERT INTO a VALUES (99, 'rolled back'); ROLLBACK`,
		`BEGIN; INSERT INTO a VALUES (3, 'm'); INSERT INTO b (id, v) VALUES (3, 'n'); UPDATE a SET v = NULL WHERE id = 3;
		 DELETE FROM b WHERE id = 3; INSERT INTO a VALUES (4, ''); COMMIT`,
		`TRUNCATE a, b RESTART IDENTITY CASCADE`,
	} {
		db.exec(t, sql)
	}
	want := [][]string{
		{"insert a new(1,x)"},
		{"update a new(1,y)"},
		{"update a new(2,y) oldK(1,NULL)"},
		{"insert f new(1,p)"},
		{"update f new(1,q) oldO(1,p)"},
		{"delete a oldK(2,NULL)"},
		{"delete f oldO(1,q)"},
		{"insert a new(3,m)", "insert b new(3,n)", "update a new(3,NULL)", "delete b oldK(3,NULL)", "insert a new(4,)"},
		{"truncate a,b cascade restart"},
	}
	var prev pglogrepl.LSN = start
	for i, w := range want {
		tx := s.nextTxn(t)
		if got := txnChanges(tx); strings.Join(got, "; ") != strings.Join(w, "; ") {
			t.Fatalf("transaction %d: got\n  %s\nwant\n  %s", i, strings.Join(got, "; "), strings.Join(w, "; "))
		}
		if tx.Txn.FinalLSN <= prev || tx.Txn.Xid == 0 || tx.Txn.CommitTime.IsZero() || tx.Txn.Origin != "" {
			t.Fatalf("transaction %d: %+v after %s", i, tx.Txn, prev)
		}
		prev = tx.Txn.EndLSN
	}
	// The relations as announced.
	mu.Lock()
	msgs := recorded
	mu.Unlock()
	d := NewDecoder(nil)
	var insert []byte
	var relMsgs [][]byte
	for i, m := range msgs {
		if _, err := d.Decode(pglogrepl.LSN(i+1), m); err != nil {
			t.Fatalf("replaying recorded message %d: %v", i, err)
		}
		switch m[0] {
		case 'R':
			relMsgs = append(relMsgs, m)
		case 'I':
			if insert == nil {
				insert = m
			}
		}
	}
	var a, f *change.Relation
	for id := range d.rels {
		switch r := d.Relation(id); r.Table.Name {
		case "a":
			a = r
		case "f":
			f = r
		}
	}
	if a == nil || a.Table != tbl("public", "a") || a.ReplicaIdentity != 'd' || len(a.Columns) != 2 ||
		a.Columns[0].Name != "id" || !a.Columns[0].Key || a.Columns[0].TypeOID != 23 || a.Columns[1].Key || a.Columns[1].TypeOID != 25 {
		t.Errorf("relation a: %+v", a)
	}
	if f == nil || f.ReplicaIdentity != 'f' || !f.Columns[0].Key || !f.Columns[1].Key {
		t.Errorf("relation f (REPLICA IDENTITY FULL: every column is key): %+v", f)
	}

	// Every cut of a real Insert message is an error naming the LSN, never a panic.
	t.Run("cut insert", func(t *testing.T) {
		checkCuts(t, append(relMsgs, msgBegin(1, 1)), insert)
	})
}

func TestStreamUnchangedToast(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	db.exec(t, `CREATE TABLE t (id int PRIMARY KEY, big text, n int)`)
	start := setupStream(t, db, "pub_t", db.slot("t"), tbl("public", "t"))
	s := startStream(t, StreamConfig{ConnString: db.dsn, Slot: db.slot("t"), Publication: "pub_t"}, start)

	// 100 kB of md5 hex: too big to stay inline, and pglz barely compresses it.
	db.exec(t, `INSERT INTO t SELECT 1, string_agg(md5(i::text), ''), 1 FROM generate_series(1, 3200) i`)
	db.exec(t, `UPDATE t SET n = 2`)
	var big string
	if err := db.conn.QueryRow(ctxT(t), `SELECT big FROM t`).Scan(&big); err != nil {
		t.Fatal(err)
	}
	var external bool
	if err := db.conn.QueryRow(ctxT(t), `SELECT pg_column_size(big) > 8000 FROM t`).Scan(&external); err != nil || !external {
		t.Fatalf("the value is not stored out of line (%v)", err)
	}

	ins := s.nextTxn(t)
	if c := ins.Changes[0]; c.New[1].Kind != change.Text || string(c.New[1].Data) != big || len(big) != 102400 {
		t.Fatalf("insert: big column %d bytes, kind %d", len(c.New[1].Data), c.New[1].Kind)
	}
	upd := s.nextTxn(t)
	if got := changeString(upd.Changes[0]); got != "update t new(1,<unchanged>,2)" {
		t.Fatalf("update of another column: %s, want the TOASTed column Absent", got)
	}
}

func TestStreamOrigin(t *testing.T) {
	t.Parallel()
	for _, skip := range []bool{true, false} {
		name := map[bool]string{true: "skipped", false: "forwarded"}[skip]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			db := newTestDB(t)
			origin := "cdcbridge_x_forward"
			if !skip {
				origin = "cdcbridge_y_forward" // origins are cluster-wide; the subtests run at once
			}
			db.exec(t, `CREATE TABLE a (id int PRIMARY KEY)`)
			db.exec(t, `SELECT pg_replication_origin_create($1)`, origin)
			t.Cleanup(func() { db.cluster.Exec(t, "postgres", `SELECT pg_replication_origin_drop($1)`, origin) })
			start := setupStream(t, db, "pub_o", db.slot("o"), tbl("public", "a"))
			s := startStream(t, StreamConfig{ConnString: db.dsn, Slot: db.slot("o"), Publication: "pub_o",
				SkipOrigin: func(o string) bool { return skip && o == origin }}, start)

			db.exec(t, `INSERT INTO a VALUES (1)`)
			bridge := connectTB(t, db.dsn)
			pgtest.MustExec(t, bridge, `SELECT pg_replication_origin_session_setup($1)`, origin)
			pgtest.MustExec(t, bridge, `BEGIN; INSERT INTO a VALUES (2); INSERT INTO a VALUES (3); COMMIT`)
			pgtest.MustExec(t, bridge, `SELECT pg_replication_origin_session_reset()`)
			db.exec(t, `INSERT INTO a VALUES (4)`)

			first := s.nextTxn(t)
			if got := strings.Join(txnChanges(first), "; "); got != "insert a new(1)" {
				t.Fatalf("first transaction: %s", got)
			}
			if skip {
				ev := s.next(t, 10*time.Second)
				if ev.Kind != change.EvPosition || ev.LSN <= first.Txn.EndLSN {
					t.Fatalf("after the first transaction got %+v, want a position past %s for the skipped one", ev, first.Txn.EndLSN)
				}
				last := s.nextTxn(t)
				if got := strings.Join(txnChanges(last), "; "); got != "insert a new(4)" || last.Txn.FinalLSN <= ev.LSN {
					t.Fatalf("after the skipped transaction (ending %s): %s %+v", ev.LSN, got, last.Txn)
				}
				return
			}
			mid := s.nextTxn(t)
			if got := strings.Join(txnChanges(mid), "; "); got != "insert a new(2); insert a new(3)" || mid.Txn.Origin != origin {
				t.Fatalf("the transaction under the origin: %s, origin %q", got, mid.Txn.Origin)
			}
			last := s.nextTxn(t)
			if got := strings.Join(txnChanges(last), "; "); got != "insert a new(4)" || last.Txn.Origin != "" {
				t.Fatalf("last transaction: %s, origin %q", got, last.Txn.Origin)
			}
		})
	}
}

// TestStreamKeepaliveAdvances: with nothing published being written, keepalives
// still bring positions, and reporting one as flushed moves the slot.
func TestStreamKeepaliveAdvances(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	db.exec(t, `CREATE TABLE a (id int PRIMARY KEY); CREATE TABLE unpublished (id int)`)
	start := setupStream(t, db, "pub_k", db.slot("k"), tbl("public", "a"))
	s := startStream(t, StreamConfig{ConnString: db.dsn, Slot: db.slot("k"), Publication: "pub_k"}, start)

	db.exec(t, `INSERT INTO unpublished SELECT generate_series(1, 100)`)
	target := db.currentLSN(t)
	var pos pglogrepl.LSN
	deadline := time.Now().Add(20 * time.Second)
	for pos < target {
		if time.Now().After(deadline) {
			t.Fatalf("no position at or past %s within 20s (last %s)", target, pos)
		}
		ev := s.next(t, 20*time.Second)
		if ev.Kind != change.EvPosition {
			t.Fatalf("got %+v, want only positions", ev)
		}
		if ev.LSN <= pos {
			t.Fatalf("position %s does not move past %s", ev.LSN, pos)
		}
		pos = ev.LSN
	}
	info, err := InspectSlot(ctxT(t), db.conn, db.slot("k"))
	if err != nil || info.ConfirmedFlushLSN != start || !info.Active {
		t.Fatalf("before anything is flushed the slot should stay at %s: %+v, %v", start, info, err)
	}
	s.flushed.Store(uint64(pos))
	pgtest.WaitFor(t, 10*time.Second, "the slot to confirm "+pos.String(), func() bool {
		info, err = InspectSlot(ctxT(t), db.conn, db.slot("k"))
		return err == nil && info.ConfirmedFlushLSN == pos
	})
}

// TestStreamFlushBound: the slot never confirms more than flushed returns,
// however far the stream has read.
func TestStreamFlushBound(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	db.exec(t, `CREATE TABLE a (id int PRIMARY KEY)`)
	start := setupStream(t, db, "pub_f", db.slot("f"), tbl("public", "a"))
	s := startStream(t, StreamConfig{ConnString: db.dsn, Slot: db.slot("f"), Publication: "pub_f", StatusInterval: 50 * time.Millisecond}, start)

	for i := 1; i <= 5; i++ {
		db.exec(t, `INSERT INTO a VALUES ($1)`, i)
	}
	first := s.nextTxn(t)
	for i := 2; i <= 5; i++ {
		s.nextTxn(t)
	}
	// Nothing flushed yet: the stream reports its start, never 0 and never what it read.
	calls := s.calls.Load()
	pgtest.WaitFor(t, 5*time.Second, "a few status updates", func() bool { return s.calls.Load() >= calls+3 })
	if info, err := InspectSlot(ctxT(t), db.conn, db.slot("f")); err != nil || info.ConfirmedFlushLSN != start {
		t.Fatalf("with flushed() = 0 the slot moved from %s: %+v, %v", start, info, err)
	}

	s.flushed.Store(uint64(first.Txn.EndLSN))
	pgtest.WaitFor(t, 10*time.Second, "the slot to confirm the first transaction", func() bool {
		info, err := InspectSlot(ctxT(t), db.conn, db.slot("f"))
		if err != nil {
			t.Fatal(err)
		}
		if info.ConfirmedFlushLSN > first.Txn.EndLSN {
			t.Fatalf("the slot confirmed %s, past the flushed %s", info.ConfirmedFlushLSN, first.Txn.EndLSN)
		}
		return info.ConfirmedFlushLSN == first.Txn.EndLSN
	})
	// Keep watching while status updates go on: ten of them, observed as
	// the walsender's reply time moving.
	db.exec(t, `INSERT INTO a VALUES (6)`)
	replyTime := func() string {
		return pgtest.Query(t, db.conn, `SELECT w.reply_time FROM pg_stat_replication w JOIN pg_replication_slots s ON s.active_pid = w.pid WHERE s.slot_name = '`+db.slot("f")+`'`)
	}
	for i := 0; i < 10; i++ {
		last := replyTime()
		pgtest.WaitFor(t, 10*time.Second, "a status update", func() bool { return replyTime() != last })
		if info, err := InspectSlot(ctxT(t), db.conn, db.slot("f")); err != nil || info.ConfirmedFlushLSN != first.Txn.EndLSN {
			t.Fatalf("the slot left the flushed %s: %+v, %v", first.Txn.EndLSN, info, err)
		}
	}

	// Restarting from the flushed position sends the unconfirmed transactions again.
	s.cancel()
	if err := <-s.done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run after cancel: %v", err)
	}
	s.done <- context.Canceled
	again := startStream(t, StreamConfig{ConnString: db.dsn, Slot: db.slot("f"), Publication: "pub_f"}, first.Txn.EndLSN)
	if got := strings.Join(txnChanges(again.nextTxn(t)), "; "); got != "insert a new(2)" {
		t.Fatalf("after a restart from the first transaction's end the stream sent %s, want the second", got)
	}
}

// TestStreamSlowConsumer: while nobody reads the events channel, the stream
// still answers the server.
func TestStreamSlowConsumer(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	db.exec(t, `CREATE TABLE a (id int PRIMARY KEY)`)
	start := setupStream(t, db, "pub_s", db.slot("s"), tbl("public", "a"))
	s := startStream(t, StreamConfig{ConnString: db.dsn, Slot: db.slot("s"), Publication: "pub_s", StatusInterval: 50 * time.Millisecond}, start)
	db.exec(t, `INSERT INTO a SELECT generate_series(1, 100)`) // 102 events, channel of 16
	pgtest.WaitFor(t, 10*time.Second, "the events channel to fill", func() bool { return len(s.events) == cap(s.events) })
	calls := s.calls.Load()
	pgtest.WaitFor(t, 5*time.Second, "status updates while blocked", func() bool { return s.calls.Load() >= calls+3 })
}

func TestStreamErrors(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	ctx := ctxT(t)
	db.exec(t, `CREATE TABLE a (id int PRIMARY KEY)`)
	start := setupStream(t, db, "pub_e", db.slot("e"), tbl("public", "a"))
	run := func(cfg StreamConfig, at pglogrepl.LSN) error {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		return NewStream(cfg).Run(ctx, at, make(chan change.Event, 100), func() pglogrepl.LSN { return 0 })
	}

	err := run(StreamConfig{ConnString: db.dsn, Slot: db.slot("missing"), Publication: "pub_e"}, 0)
	t.Logf("missing slot: %v", err)
	if !IsSlotMissing(err) || IsSlotInUse(err) || IsPublicationMissing(err) {
		t.Errorf("missing slot: %v", err)
	}

	s := startStream(t, StreamConfig{ConnString: db.dsn, Slot: db.slot("e"), Publication: "pub_e"}, start)
	pgtest.WaitFor(t, 10*time.Second, "the slot to be active", func() bool {
		info, err := InspectSlot(ctx, db.conn, db.slot("e"))
		return err == nil && info.Active
	})
	var app string
	if err := db.conn.QueryRow(ctx, `SELECT application_name FROM pg_stat_replication r
		JOIN pg_replication_slots s ON s.active_pid = r.pid WHERE s.slot_name = $1`, db.slot("e")).Scan(&app); err != nil || app != "cdcbridge" {
		t.Errorf("application_name of the stream %q (%v), want cdcbridge", app, err)
	}
	err = run(StreamConfig{ConnString: db.dsn, Slot: db.slot("e"), Publication: "pub_e"}, start)
	t.Logf("slot in use: %v", err)
	if !IsSlotInUse(err) || IsSlotMissing(err) {
		t.Errorf("slot in use: %v", err)
	}
	if err := DropSlot(ctx, db.conn, db.slot("e")); !IsSlotInUse(err) {
		t.Errorf("dropping an active slot: %v, want IsSlotInUse", err)
	}
	s.cancel()

	if _, err := CreateSlot(ctx, db.dsn, db.slot("p"), false); err != nil {
		t.Fatal(err)
	}
	db.exec(t, `INSERT INTO a VALUES (1)`)
	err = run(StreamConfig{ConnString: db.dsn, Slot: db.slot("p"), Publication: "pub_missing"}, 0)
	t.Logf("missing publication: %v", err)
	if !IsPublicationMissing(err) || IsSlotMissing(err) {
		t.Errorf("missing publication: %v", err)
	}
	for _, e := range []error{err} {
		if e != nil && strings.Contains(e.Error(), pgtest.Canary) {
			t.Errorf("error shows the password: %v", e)
		}
	}

	if err := run(StreamConfig{ConnString: db.dsn, Slot: "Bad", Publication: "pub_e"}, 0); err == nil || !strings.Contains(err.Error(), "slot name") {
		t.Errorf("bad slot name: %v", err)
	}
	if err := run(StreamConfig{ConnString: db.dsn, Slot: db.slot("e"), Publication: "pub'e"}, 0); err == nil || !strings.Contains(err.Error(), "publication name") {
		t.Errorf("bad publication name: %v", err)
	}
}
