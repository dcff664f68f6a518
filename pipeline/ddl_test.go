package pipeline_test

import (
	"strings"
	"testing"
	"time"

	"github.com/cdcbridge/cdcbridge/config"
	"github.com/cdcbridge/cdcbridge/internal/bridgetest"
)

// TestTablesChangedWhileRunning: a column added to both sides while the
// daemon runs does not stop it: the change that needs it makes the
// pipeline read the tables again and apply again from the checkpoint. A
// column added to the source only still halts, with the fix named, and
// nothing at or after the change applied.
func TestTablesChangedWhileRunning(t *testing.T) {
	e := bridgetest.NewEnv(t, `CREATE TABLE a (id int PRIMARY KEY, v text)`, `CREATE TABLE a (id int PRIMARY KEY, v text)`)
	m := e.Mapping("ddl", "  - source: a\n    target: a\n", nil)
	d := e.Start(m, config.Forward)
	e.ExecSource(t, "INSERT INTO a VALUES (1, 'one')")
	bridgetest.Eventually(t, e.Tgt, "SELECT count(*) FROM a", "(1)", d)

	// Both sides: applied.
	e.ExecSource(t, "ALTER TABLE a ADD COLUMN w int")
	if _, err := e.Tgt.Exec(t.Context(), "ALTER TABLE a ADD COLUMN w int"); err != nil {
		t.Fatal(err)
	}
	e.ExecSource(t, "INSERT INTO a VALUES (2, 'two', 22)")
	bridgetest.Eventually(t, e.Tgt, "SELECT * FROM a", "(1,one,)\n(2,two,22)", d)
	if n := strings.Count(d.Logs.String(), "reading them again"); n != 1 {
		t.Fatalf("%d catalog re-reads logged, want 1:\n%s", n, d.Logs.String())
	}

	// The source only: the daemon halts, naming the column and the fix.
	e.ExecSource(t, "ALTER TABLE a ADD COLUMN x int")
	e.ExecSource(t, "INSERT INTO a VALUES (3, 'three', 33, 333)")
	err := d.Wait(t, 30*time.Second)
	if err == nil || !strings.Contains(err.Error(), "column x") || !strings.Contains(err.Error(), "add it there") {
		t.Fatalf("halt: %v", err)
	}
	if got := bridgetest.Query(t, e.Tgt, "SELECT id FROM a"); got != "(1)\n(2)" {
		t.Fatalf("after the halt the target holds %s", got)
	}
	// Fixed on the target, a restart carries the change over.
	if _, err := e.Tgt.Exec(t.Context(), "ALTER TABLE a ADD COLUMN x int"); err != nil {
		t.Fatal(err)
	}
	d = e.Start(m, config.Forward)
	bridgetest.Eventually(t, e.Tgt, "SELECT * FROM a", "(1,one,,)\n(2,two,22,)\n(3,three,33,333)", d)
}
