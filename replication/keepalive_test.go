package replication

import (
	"testing"
)

// TestSessionsAskForServerKeepalives: every session the bridge opens asks
// the server to probe it (so a daemon on a dead host lets go of its locks
// and slots), unless the connection string chose other settings.
func TestSessionsAskForServerKeepalives(t *testing.T) {
	db := newTestDB(t)
	conn, err := ConnectSQL(ctxT(t), db.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctxT(t))
	var idle, interval, count string
	if err := conn.QueryRow(ctxT(t), `SELECT current_setting('tcp_keepalives_idle'), current_setting('tcp_keepalives_interval'), current_setting('tcp_keepalives_count')`).Scan(&idle, &interval, &count); err != nil {
		t.Fatal(err)
	}
	if idle != "10" || interval != "5" || count != "3" {
		t.Fatalf("keepalives over TCP: idle %s interval %s count %s, want 10 5 3", idle, interval, count)
	}

	own, err := ConnectSQL(ctxT(t), db.dsn+"&tcp_keepalives_idle=30")
	if err != nil {
		t.Fatal(err)
	}
	defer own.Close(ctxT(t))
	if err := own.QueryRow(ctxT(t), `SELECT current_setting('tcp_keepalives_idle')`).Scan(&idle); err != nil {
		t.Fatal(err)
	}
	if idle != "30" {
		t.Fatalf("a DSN's own tcp_keepalives_idle=30 became %s", idle)
	}

	rc, err := connectReplication(ctxT(t), db.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close(ctxT(t))
	res := rc.Exec(ctxT(t), `SHOW tcp_keepalives_idle`)
	rows, err := res.ReadAll()
	if err != nil || len(rows) != 1 || len(rows[0].Rows) != 1 || string(rows[0].Rows[0][0]) != "10" {
		t.Fatalf("keepalives of a replication session: %v %v", rows, err)
	}
}
