package pipeline_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cdcbridge/cdcbridge/config"
	"github.com/cdcbridge/cdcbridge/internal/bridgetest"
)

// backlogSQL commits n source transactions one by one: updates of 7 rows
// in turn, every fifth one a delete and re-insert, so that any change
// applied out of order leaves a different final state.
func backlogSQL(n int) string {
	return fmt.Sprintf(`DO $$ BEGIN
  FOR i IN 1..%d LOOP
    IF i %% 5 = 0 THEN
      DELETE FROM a WHERE id = i %% 7;
      INSERT INTO a VALUES (i %% 7, i, 'again ' || i);
    ELSE
      UPDATE a SET v = i, note = 'step ' || i WHERE id = i %% 7;
    END IF;
    COMMIT;
  END LOOP;
END $$`, n)
}

const doubling = "function forward(r) { if (r.v === 2500 && globalThis.THROW) throw new Error('bad step ' + r.v); return {...r, v: r.v === undefined ? undefined : r.v * 2} }\nfunction backward(r) { return {...r, v: r.v === undefined ? undefined : r.v / 2} }\n"

// backlogEnv copies 7 rows through the doubling transform, stops the
// daemon and commits a backlog of 3000 transactions behind it.
func backlogEnv(t *testing.T, name string) (*bridgetest.Env, *config.Mapping) {
	ddl := `CREATE TABLE a (id int PRIMARY KEY, v int, note text); INSERT INTO a SELECT g, 0, 'start' FROM generate_series(0, 6) g`
	e := bridgetest.NewEnv(t, ddl, `CREATE TABLE a (id int PRIMARY KEY, v int, note text)`)
	m := e.Mapping(name, "  - source: a\n    target: a\n    transform: t.js\n", map[string]string{"t.js": doubling})
	d := e.Start(m, config.Forward)
	bridgetest.Eventually(t, e.Tgt, "SELECT count(*) FROM a", "(7)", d)
	d.Stop(t)
	e.ExecSource(t, backlogSQL(3000))
	return e, m
}

// TestTransformBacklogInOrder: a backlog of thousands of small transactions
// through a JavaScript transform, which several runtimes map at once on a
// machine with more than one CPU, lands in commit order.
func TestTransformBacklogInOrder(t *testing.T) {
	e, m := backlogEnv(t, "order")
	d := e.Start(m, config.Forward)
	bridgetest.Eventually(t, e.Tgt, "SELECT id, v, note FROM a", bridgetest.Query(t, e.Src, "SELECT id, v * 2, note FROM a"), d)
}

// TestTransformHaltInBacklog: a transform that throws in the middle of a
// backlog halts the daemon with nothing at or after the failing change
// applied, whatever the other runtimes had mapped ahead; with the script
// fixed, a restart resumes there and ends exact.
func TestTransformHaltInBacklog(t *testing.T) {
	e, m := backlogEnv(t, "halt")
	script := filepath.Join(e.Dir, "t.js")
	if err := os.WriteFile(script, []byte("globalThis.THROW = true;\n"+doubling), 0o644); err != nil {
		t.Fatal(err)
	}
	d := e.Start(m, config.Forward)
	err := d.Wait(t, 60*time.Second)
	if err == nil || !strings.Contains(err.Error(), "bad step 2500") {
		t.Fatalf("halt: %v", err)
	}
	// Step 2500 (id 1) and everything after it are not on the target.
	var maxV int
	if err := e.Tgt.QueryRow(t.Context(), "SELECT max(v) FROM a").Scan(&maxV); err != nil {
		t.Fatal(err)
	}
	if maxV >= 2*2500 {
		t.Fatalf("the target has v = %d: changes at or after the failing one were applied", maxV)
	}
	if err := os.WriteFile(script, []byte(doubling), 0o644); err != nil {
		t.Fatal(err)
	}
	d = e.Start(m, config.Forward)
	bridgetest.Eventually(t, e.Tgt, "SELECT id, v, note FROM a", bridgetest.Query(t, e.Src, "SELECT id, v * 2, note FROM a"), d)
}
