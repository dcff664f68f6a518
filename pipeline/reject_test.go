package pipeline_test

import (
	"strings"
	"testing"
	"time"

	"github.com/cdcbridge/cdcbridge/config"
	"github.com/cdcbridge/cdcbridge/internal/bridgetest"
)

// TestApplyErrorPolicies: a change the target refuses (here a CHECK that
// only the target has) goes through on_error as a transform failure does:
// halt stops just before its source transaction (every transaction before
// it applied, nothing at or after it); skip leaves it
// out and applies the rest; deadletter writes it, the error and its LSN to
// cdcbridge.deadletter on the target instead. Each insert is a source
// transaction of its own, so the rows around the bad one are applied or
// not on their own merits.
func TestApplyErrorPolicies(t *testing.T) {
	const srcDDL = `CREATE TABLE a (id int PRIMARY KEY, v text)`
	const tgtDDL = `CREATE TABLE a (id int PRIMARY KEY, v text CHECK (v <> 'bad'))`
	for _, policy := range []string{"skip", "deadletter", "halt"} {
		t.Run(policy, func(t *testing.T) {
			e := bridgetest.NewEnv(t, srcDDL, tgtDDL)
			m := e.Mapping("apol", "  - source: a\n    target: a\non_error: "+policy+"\n", nil)
			d := e.Start(m, config.Forward)
			for _, sql := range []string{
				"INSERT INTO a VALUES (1, 'one')",
				"INSERT INTO a VALUES (2, 'bad')",
				"INSERT INTO a VALUES (3, 'three')",
			} {
				e.ExecSource(t, sql)
			}
			if policy == "halt" {
				err := d.Wait(t, 30*time.Second)
				if err == nil || !strings.Contains(err.Error(), "a_v_check") || !strings.Contains(err.Error(), "on_error: halt") {
					t.Fatalf("halt: %v", err)
				}
				if got := bridgetest.Query(t, e.Tgt, "SELECT id FROM a ORDER BY id"); got != "(1)" {
					t.Fatalf("rows after the halt: %q, want only the one before the refused change", got)
				}
				return
			}
			bridgetest.Eventually(t, e.Tgt, "SELECT id FROM a ORDER BY id", "(1)\n(3)", d)
			if policy == "deadletter" {
				bridgetest.Eventually(t, e.Tgt, `SELECT op, row->>'id', row->>'v', error LIKE '%a_v_check%', lsn > '0/0' FROM cdcbridge.deadletter`, "(insert,2,bad,t,t)", d)
			}
			if _, stopped := d.Stopped(); stopped {
				t.Fatalf("the daemon stopped under on_error: %s", policy)
			}
		})
	}
}

// TestApplyErrorsInARowHalt: under skip, refused changes with applied
// ones between them are skipped one by one, but more than
// max_consecutive_errors in a row halt the direction before the last.
func TestApplyErrorsInARowHalt(t *testing.T) {
	e := bridgetest.NewEnv(t, `CREATE TABLE a (id int PRIMARY KEY, v text)`, `CREATE TABLE a (id int PRIMARY KEY, v text CHECK (v <> 'bad'))`)
	m := e.Mapping("arow", "  - source: a\n    target: a\non_error: skip\nmax_consecutive_errors: 1\n", nil)
	d := e.Start(m, config.Forward)
	for _, sql := range []string{
		"INSERT INTO a VALUES (10, 'bad')",
		"INSERT INTO a VALUES (11, 'good')",
		"INSERT INTO a VALUES (12, 'bad')",
		"INSERT INTO a VALUES (13, 'good')",
	} {
		e.ExecSource(t, sql)
	}
	bridgetest.Eventually(t, e.Tgt, "SELECT id FROM a ORDER BY id", "(11)\n(13)", d)
	e.ExecSource(t, "INSERT INTO a VALUES (14, 'bad')")
	e.ExecSource(t, "INSERT INTO a VALUES (15, 'bad')")
	e.ExecSource(t, "INSERT INTO a VALUES (16, 'good')")
	err := d.Wait(t, 30*time.Second)
	if err == nil || !strings.Contains(err.Error(), "2 changes in a row") || !strings.Contains(err.Error(), "max_consecutive_errors (1)") {
		t.Fatalf("after two refused changes in a row: %v", err)
	}
	if got := bridgetest.Query(t, e.Tgt, "SELECT id FROM a ORDER BY id"); got != "(11)\n(13)" {
		t.Fatalf("rows after the halt: %q; nothing at or after the second refused change may be applied", got)
	}
}

// TestTransformErrorsInARowHalt: the same bound holds for changes whose
// transform fails: failures with a good change between them are skipped,
// more than max_consecutive_errors in a row halt.
func TestTransformErrorsInARowHalt(t *testing.T) {
	const script = "function forward(r) { if (r.v === 'bad') throw new Error('bad row ' + r.id); return r }\nfunction backward(r) { return r }\n"
	e := bridgetest.NewEnv(t, `CREATE TABLE a (id int PRIMARY KEY, v text)`, `CREATE TABLE a (id int PRIMARY KEY, v text)`)
	m := e.Mapping("trow", "  - source: a\n    target: a\n    transform: t.js\non_error: skip\nmax_consecutive_errors: 2\n", map[string]string{"t.js": script})
	d := e.Start(m, config.Forward)
	e.ExecSource(t, "INSERT INTO a VALUES (1, 'bad'), (2, 'bad'), (3, 'good'), (4, 'bad'), (5, 'bad'), (6, 'good')")
	bridgetest.Eventually(t, e.Tgt, "SELECT id FROM a ORDER BY id", "(3)\n(6)", d)
	e.ExecSource(t, "INSERT INTO a VALUES (7, 'bad'), (8, 'bad'), (9, 'bad'), (10, 'good')")
	err := d.Wait(t, 30*time.Second)
	if err == nil || !strings.Contains(err.Error(), "bad row 9") || !strings.Contains(err.Error(), "3 changes in a row failed to transform") {
		t.Fatalf("after three failures in a row: %v", err)
	}
	if got := bridgetest.Query(t, e.Tgt, "SELECT id FROM a ORDER BY id"); got != "(3)\n(6)" {
		t.Fatalf("rows after the halt: %q", got)
	}
}
