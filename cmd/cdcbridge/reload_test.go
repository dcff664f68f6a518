package main

import (
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cdcbridge/cdcbridge/internal/bridgetest"
	"github.com/cdcbridge/cdcbridge/internal/pgtest"
)

// upper maps v to upper case, and throws on 'bad' (the broken release of
// a script); fixed maps 'bad' too; lower is another valid script.
const (
	upperJS = "function forward(r) { if (r.v === 'bad') throw new Error('cannot map ' + r.id); return {...r, v: r.v.toUpperCase()} }\nfunction backward(r) { return {...r, v: r.v.toLowerCase()} }\n"
	fixedJS = "function forward(r) { return {...r, v: r.v.toUpperCase()} }\nfunction backward(r) { return {...r, v: r.v.toLowerCase()} }\n"
	lowerJS = "function forward(r) { return {...r, v: r.v + '!'} }\nfunction backward(r) { return {...r, v: r.v.replace(/!$/, '')} }\n"
)

func (d *daemonProc) hup(t *testing.T) {
	t.Helper()
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
}

// TestHaltStaysUpAndReloadGoesOn: a change the transform cannot map halts
// the direction just before it; the process stays up (its metrics serve,
// /readyz says no, status says why and where); nothing at or after the bad
// change is applied. The script fixed on disk and SIGHUP, it goes on from
// exactly that change.
func TestHaltStaysUpAndReloadGoesOn(t *testing.T) {
	bin := buildBinary(t)
	e := bridgetest.NewEnv(t, `CREATE TABLE a (id int PRIMARY KEY, v text)`, `CREATE TABLE a (id int PRIMARY KEY, v text)`)
	e.WriteFile("t.js", upperJS)
	p := e.MappingFile("halting", "metrics:\n  listen: 127.0.0.1:0\ntables:\n  - source: a\n    target: a\n    transform: t.js\n")
	r := newRig(t, bin, p)
	d := r.startStreaming()
	defer d.stop()
	get := newScraper(t, r).get
	for _, sql := range []string{"INSERT INTO a VALUES (1, 'one')", "INSERT INTO a VALUES (2, 'bad')", "INSERT INTO a VALUES (3, 'three')"} {
		pgtest.MustExec(t, e.Src, sql)
	}
	pgtest.WaitFor(t, 30*time.Second, "the daemon to halt", func() bool {
		return strings.Contains(r.Logs.String(), "halted before a bad change")
	}, &r.Logs)
	if d.exited(time.Second) {
		t.Fatalf("the daemon exited on the halt\n%s", r.Logs.String())
	}
	if got := bridgetest.Query(t, e.Tgt, "SELECT id, v FROM a ORDER BY id"); got != "(1,ONE)" {
		t.Fatalf("rows while halted: %q, want only the one before the bad change", got)
	}
	if code, body := get("/metrics"); code != 200 || !strings.Contains(body, "cdcbridge_transform_errors_total") {
		t.Fatalf("/metrics while halted: %d", code)
	}
	if code, _ := get("/readyz"); code == 200 {
		t.Fatalf("/readyz is 200 while halted")
	}
	code, out, errs := run("status", "-c", p)
	if !strings.Contains(out, "HALTED: forward stopped before a bad change") || !strings.Contains(out, "cannot map 2") || !regexp.MustCompile(`at LSN [0-9A-F]+/[0-9A-F]+`).MatchString(out) {
		t.Fatalf("status while halted: exit %d\n%s%s", code, out, errs)
	}

	e.WriteFile("t.js", fixedJS)
	d.hup(t)
	bridgetest.Eventually(t, e.Tgt, "SELECT id, v FROM a ORDER BY id", "(1,ONE)\n(2,BAD)\n(3,THREE)", nil)
	pgtest.MustExec(t, e.Src, "INSERT INTO a VALUES (4, 'four')")
	bridgetest.Eventually(t, e.Tgt, "SELECT v FROM a WHERE id = 4", "(FOUR)", nil)
	if _, out, _ := run("status", "-c", p); strings.Contains(out, "HALTED") {
		t.Fatalf("status still shows the halt after the reload:\n%s", out)
	}
	// Stopped and cleaned up, nothing of the bridge is left, the table of
	// halts included.
	if err := d.stop(); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	if code, out, errs := run("cleanup", "-c", p); code != 0 || !strings.Contains(out, "dropped the schema cdcbridge on the target") {
		t.Fatalf("cleanup after a halt: exit %d\n%s%s", code, out, errs)
	}
}

// TestReloadKeepsOldScriptOnError: a reload with a broken script keeps the
// running one; a script changed on disk is not picked up by a restart of a
// pipeline (here its walsender is killed), only by a reload.
func TestReloadKeepsOldScriptOnError(t *testing.T) {
	bin := buildBinary(t)
	e := bridgetest.NewEnv(t, `CREATE TABLE a (id int PRIMARY KEY, v text)`, `CREATE TABLE a (id int PRIMARY KEY, v text)`)
	e.WriteFile("t.js", fixedJS)
	p := e.MappingFile("reloading", "tables:\n  - source: a\n    target: a\n    transform: t.js\n")
	r := newRig(t, bin, p)
	d := r.startStreaming()
	defer d.stop()

	e.WriteFile("t.js", "function forward(r) { return {...r, v: }\n")
	from := len(r.Logs.String())
	d.hup(t)
	pgtest.WaitFor(t, 30*time.Second, "the failed reload to be logged", func() bool {
		return strings.Contains(r.Logs.String()[from:], "reload failed; the daemon goes on with the mapping and scripts it had")
	}, &r.Logs)
	pgtest.MustExec(t, e.Src, "INSERT INTO a VALUES (1, 'one')")
	bridgetest.Eventually(t, e.Tgt, "SELECT v FROM a WHERE id = 1", "(ONE)", nil)

	// A valid new script on disk, and the pipeline restarted by a lost
	// connection: still the old script.
	e.WriteFile("t.js", lowerJS)
	from = len(r.Logs.String())
	pgtest.MustExec(t, e.Src, "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = 'cdcbridge_reloading_forward'")
	pgtest.WaitFor(t, 30*time.Second, "the pipeline to restart", func() bool {
		return strings.Contains(r.Logs.String()[from:], "msg=streaming component=pipeline")
	}, &r.Logs)
	pgtest.MustExec(t, e.Src, "INSERT INTO a VALUES (2, 'two')")
	bridgetest.Eventually(t, e.Tgt, "SELECT v FROM a WHERE id = 2", "(TWO)", nil)

	from = len(r.Logs.String())
	d.hup(t)
	// Written once the pipelines run the new script, not before.
	pgtest.WaitFor(t, 30*time.Second, "the reload to restart both pipelines", func() bool {
		s := r.Logs.String()[from:]
		return strings.Contains(s, "reloading the mapping and its scripts") && strings.Count(s, "msg=streaming component=pipeline") >= 2
	}, &r.Logs)
	pgtest.MustExec(t, e.Src, "INSERT INTO a VALUES (3, 'three')")
	bridgetest.Eventually(t, e.Tgt, "SELECT v FROM a WHERE id = 3", "(three!)", nil)
	if got := bridgetest.Query(t, e.Tgt, "SELECT id, v FROM a ORDER BY id"); got != "(1,ONE)\n(2,TWO)\n(3,three!)" {
		t.Fatalf("rows: %q", got)
	}
}
