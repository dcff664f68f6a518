package replication

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"

	"github.com/cdcbridge/cdcbridge/change"
	"github.com/cdcbridge/cdcbridge/internal/pgtest"
)

func TestSlots(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	ctx := ctxT(t)
	db.exec(t, `CREATE TABLE a (id int PRIMARY KEY)`)

	info, err := InspectSlot(ctx, db.conn, db.slot("plain"))
	if err != nil || info.Exists || info.Name != db.slot("plain") {
		t.Fatalf("InspectSlot of a missing slot: %+v, %v", info, err)
	}

	plain, err := CreateSlot(ctx, db.dsn, db.slot("plain"), false)
	if err != nil {
		t.Fatal(err)
	}
	if plain.Name != db.slot("plain") || plain.ConsistentPoint == 0 || plain.SnapshotName != "" || plain.conn != nil {
		t.Fatalf("CreateSlot without snapshot: %+v", plain)
	}
	info, err = InspectSlot(ctx, db.conn, db.slot("plain"))
	if err != nil {
		t.Fatal(err)
	}
	if !info.Exists || info.Plugin != "pgoutput" || info.Database != db.name || info.Active || info.ActivePID != 0 ||
		info.ConfirmedFlushLSN != plain.ConsistentPoint || info.RestartLSN == 0 || info.RestartLSN > info.ConfirmedFlushLSN ||
		info.WALStatus != "reserved" || info.Lost() {
		t.Fatalf("InspectSlot after CreateSlot (consistent point %s): %+v", plain.ConsistentPoint, info)
	}
	db.exec(t, `INSERT INTO a SELECT generate_series(1, 1000)`)
	if info, err = InspectSlot(ctx, db.conn, db.slot("plain")); err != nil || info.RetainedBytes <= 0 {
		t.Fatalf("retained bytes after writes: %+v, %v", info, err)
	}

	if _, err := CreateSlot(ctx, db.dsn, db.slot("plain"), false); !IsSlotExists(err) {
		t.Fatalf("creating the slot again: %v, want IsSlotExists", err)
	}
	if _, err := CreateSlot(ctx, db.dsn, "Bad-Slot", false); err == nil {
		t.Fatalf("CreateSlot accepted a bad name")
	}

	// An exported snapshot holds what was committed before the consistent
	// point and stays valid until Close.
	snap, err := CreateSlot(ctx, db.dsn, db.slot("snap"), true)
	if err != nil {
		t.Fatal(err)
	}
	if snap.SnapshotName == "" || snap.ConsistentPoint <= plain.ConsistentPoint {
		t.Fatalf("CreateSlot with snapshot: %+v (plain slot at %s)", snap, plain.ConsistentPoint)
	}
	db.exec(t, `INSERT INTO a VALUES (5000)`)
	count := func() (int, error) {
		tx, err := db.conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
		if err != nil {
			return 0, err
		}
		defer tx.Rollback(ctx)
		if _, err := tx.Exec(ctx, `SET TRANSACTION SNAPSHOT '`+snap.SnapshotName+`'`); err != nil {
			return 0, err
		}
		var n int
		err = tx.QueryRow(ctx, `SELECT count(*) FROM a`).Scan(&n)
		return n, err
	}
	if n, err := count(); err != nil || n != 1000 {
		t.Fatalf("rows under the exported snapshot: %d, %v; want 1000 (the later insert invisible)", n, err)
	}
	if err := snap.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := snap.Close(ctx); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	// The server forgets the snapshot when the walsender has gone, just after Close.
	pgtest.WaitFor(t, 5*time.Second, "the snapshot to end after Close", func() bool { _, err := count(); return err != nil })

	for _, name := range []string{db.slot("plain"), db.slot("snap"), db.slot("plain")} {
		if err := DropSlot(ctx, db.conn, name); err != nil {
			t.Fatalf("DropSlot(%s): %v", name, err)
		}
	}
	if info, err = InspectSlot(ctx, db.conn, db.slot("plain")); err != nil || info.Exists {
		t.Fatalf("InspectSlot after DropSlot: %+v, %v", info, err)
	}

	id, err := SystemID(ctx, db.conn)
	if err != nil || len(id) < 10 || strings.Trim(id, "0123456789") != "" {
		t.Fatalf("SystemID = %q, %v", id, err)
	}
	lsn, err := CurrentLSN(ctx, db.conn)
	if err != nil || lsn < snap.ConsistentPoint {
		t.Fatalf("CurrentLSN = %s, %v; want at least %s", lsn, err, snap.ConsistentPoint)
	}
}

func TestConnectErrorsHidePassword(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	ctx := ctxT(t)
	for _, dsn := range []string{
		"postgres://postgres:" + pgtest.Canary + "@127.0.0.1:%zz/db",                          // unparsable
		"host=127.0.0.1 password=" + pgtest.Canary + " port=notaport",                         // unparsable
		db.dsnAs("postgres", pgtest.Canary) + "&dbname=nosuchdb_" + strings.ToLower(t.Name()), // no such database
		db.dsnAs("nosuchuser", pgtest.Canary),                                                 // no such user
	} {
		_, err := CreateSlot(ctx, dsn, db.slot("x"), false)
		if err == nil {
			t.Fatalf("CreateSlot succeeded")
		}
		if strings.Contains(err.Error(), pgtest.Canary) {
			t.Fatalf("the error shows the password: %v", err)
		}
		err = NewStream(StreamConfig{ConnString: dsn, Slot: db.slot("x"), Publication: "pub_x"}).Run(ctx, 0, make(chan change.Event), func() pglogrepl.LSN { return 0 })
		if err == nil || strings.Contains(err.Error(), pgtest.Canary) {
			t.Fatalf("Run: %v", err)
		}
	}
	if err := (&CreatedSlot{}).Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestTemporarySlotSnapshot: a temporary slot exports a snapshot that holds
// what committed before its consistent point, and it is gone once Closed.
func TestTemporarySlotSnapshot(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	ctx := ctxT(t)
	db.exec(t, `CREATE TABLE a (id int PRIMARY KEY); INSERT INTO a SELECT generate_series(1, 10)`)
	s, err := CreateTemporarySlot(ctx, db.dsn, db.slot("sync"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	if s.SnapshotName == "" || s.ConsistentPoint == 0 {
		t.Fatalf("CreateTemporarySlot: %+v", s)
	}
	var temporary bool
	if err := db.conn.QueryRow(ctx, `SELECT temporary FROM pg_replication_slots WHERE slot_name = $1`, db.slot("sync")).Scan(&temporary); err != nil || !temporary {
		t.Fatalf("slot %s: temporary = %v, %v", db.slot("sync"), temporary, err)
	}
	db.exec(t, `INSERT INTO a VALUES (11)`)
	tx, err := db.conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `SET TRANSACTION SNAPSHOT '`+s.SnapshotName+`'`); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := tx.QueryRow(ctx, `SELECT count(*) FROM a`).Scan(&n); err != nil || n != 10 {
		t.Fatalf("rows under the snapshot: %d, %v; want 10", n, err)
	}
	tx.Rollback(ctx)
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	pgtest.WaitFor(t, 5*time.Second, "the temporary slot to go with its connection", func() bool {
		info, err := InspectSlot(ctx, db.conn, db.slot("sync"))
		return err == nil && !info.Exists
	})
	// The name is free again at once for the next one.
	again, err := CreateTemporarySlot(ctx, db.dsn, db.slot("sync"))
	if err != nil {
		t.Fatal(err)
	}
	again.Close(ctx)
}
