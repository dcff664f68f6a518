package pgtest

import (
	"context"
	"testing"
)

func TestMain(m *testing.M) { Main(m) }

func TestClusterIsLogicalAndNeedsPassword(t *testing.T) {
	c := Source(t)
	dsn := c.NewDB(t)
	conn := Connect(t, dsn)
	var level string
	if err := conn.QueryRow(context.Background(), "SHOW wal_level").Scan(&level); err != nil {
		t.Fatal(err)
	}
	if level != "logical" {
		t.Fatalf("wal_level = %s, want logical", level)
	}
	bad := "postgres://postgres:wrong@127.0.0.1:" + itoa(c.Port) + "/postgres?sslmode=disable"
	if _, err := pgxConnect(bad); err == nil {
		t.Fatal("connected with a wrong password: the cluster does not check passwords")
	}
}
