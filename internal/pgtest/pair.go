package pgtest

import (
	"bytes"
	"context"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
)

// Pair is a fresh database on the source cluster and one on the target
// cluster, with a connection to each and a temporary directory for mapping
// files: the setting of every end-to-end test.
type Pair struct {
	SrcDSN, TgtDSN string
	Src, Tgt       *pgx.Conn
	Dir            string
}

// NewPair creates the two databases and runs srcDDL and tgtDDL in them.
func NewPair(tb testing.TB, srcDDL, tgtDDL string) *Pair {
	tb.Helper()
	p := &Pair{Dir: tb.TempDir()}
	p.SrcDSN = Source(tb).NewDB(tb)
	p.TgtDSN = Target(tb).NewDB(tb)
	p.Src = Connect(tb, p.SrcDSN)
	p.Tgt = Connect(tb, p.TgtDSN)
	if srcDDL != "" {
		MustExec(tb, p.Src, srcDDL)
	}
	if tgtDDL != "" {
		MustExec(tb, p.Tgt, tgtDDL)
	}
	return p
}

// Query returns the rows of sql as text, one per line, sorted, so that two
// sides can be compared as strings.
func Query(tb testing.TB, conn *pgx.Conn, sql string) string {
	tb.Helper()
	var s string
	if err := conn.QueryRow(context.Background(), "SELECT coalesce(string_agg(r::text, E'\\n' ORDER BY r::text), '') FROM ("+sql+") r").Scan(&s); err != nil {
		tb.Fatalf("%v\n%s", err, sql)
	}
	return s
}

// Buffer is a bytes.Buffer safe for concurrent writers, for capturing the
// logs of a daemon under test.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
