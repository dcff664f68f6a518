package bridgetest

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cdcbridge/cdcbridge/config"
	"github.com/cdcbridge/cdcbridge/internal/pgtest"
)

// Env is a pair of fresh databases, one per cluster.
type Env struct {
	*pgtest.Pair
	T *testing.T
}

// NewEnv creates the pair with srcDDL run on the source and tgtDDL on the
// target.
func NewEnv(t *testing.T, srcDDL, tgtDDL string) *Env {
	t.Helper()
	return &Env{Pair: pgtest.NewPair(t, srcDDL, tgtDDL), T: t}
}

// Mapping writes a mapping file named name (with the given tables section,
// and files beside it) for the pair, and loads it.
func (e *Env) Mapping(name, tables string, files map[string]string) *config.Mapping {
	e.T.Helper()
	for f, body := range files {
		e.WriteFile(f, body)
	}
	y := fmt.Sprintf("name: %s\nsource:\n  dsn: %q\ntarget:\n  dsn: %q\ntables:\n%s", name, e.SrcDSN, e.TgtDSN, tables)
	p := filepath.Join(e.Dir, name+".yaml")
	if err := os.WriteFile(p, []byte(y), 0o644); err != nil {
		e.T.Fatal(err)
	}
	m, err := config.Load(p)
	if err != nil {
		e.T.Fatalf("loading the mapping: %v\n%s", err, y)
	}
	return m
}

// WriteFile writes body to the file name beside the mapping files and
// returns its path.
func (e *Env) WriteFile(name, body string) string {
	e.T.Helper()
	p := filepath.Join(e.Dir, name)
	os.MkdirAll(filepath.Dir(p), 0o755)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		e.T.Fatal(err)
	}
	return p
}

// MappingFile writes a mapping file named name, with rest after its
// source and target, and returns its path without loading it: for tests
// that hand the file to the cdcbridge command. Its DSNs name the
// variables TEST_SRC_DSN and TEST_TGT_DSN, set for the test, as users
// write them.
func (e *Env) MappingFile(name, rest string) string {
	e.T.Helper()
	e.T.Setenv("TEST_SRC_DSN", e.SrcDSN)
	e.T.Setenv("TEST_TGT_DSN", e.TgtDSN)
	return e.WriteFile(name+".yaml", "name: "+name+"\nsource:\n  dsn: ${TEST_SRC_DSN}\ntarget:\n  dsn: ${TEST_TGT_DSN}\n"+rest)
}

// ExecSource runs sql on the source, failing the test with the statement.
func (e *Env) ExecSource(t *testing.T, sql string) {
	t.Helper()
	if _, err := e.Src.Exec(t.Context(), sql); err != nil {
		t.Fatalf("%v\n%s", err, sql)
	}
}

// Query returns the rows of sql on conn, one per line.
func Query(t testing.TB, conn *pgx.Conn, sql string) string {
	t.Helper()
	return pgtest.Query(t, conn, sql)
}

// Eventually waits until Query(conn, sql) == want. p, if not nil, is the
// process expected to make it so: the test fails at once, with its logs,
// if p stops meanwhile.
func Eventually(t testing.TB, conn *pgx.Conn, sql, want string, p *Proc) {
	t.Helper()
	var got string
	if pgtest.Until(20*time.Second, func() bool {
		got = Query(t, conn, sql)
		if got == want {
			return true
		}
		failIfStopped(t, p)
		return false
	}) {
		return
	}
	t.Fatalf("timed out waiting for\n%s\n got:\n%s\nwant:\n%s%s", sql, got, want, logsOf(p))
}
