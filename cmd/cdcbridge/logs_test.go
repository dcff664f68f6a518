package main

import (
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cdcbridge/cdcbridge/internal/bridgetest"
	"github.com/cdcbridge/cdcbridge/internal/pgtest"
	"github.com/cdcbridge/cdcbridge/internal/version"
)

// jsonRecords parses a JSON log: every line must be a JSON object.
func jsonRecords(t *testing.T, logs string) []map[string]any {
	t.Helper()
	var recs []map[string]any
	for i, line := range strings.Split(strings.TrimSuffix(logs, "\n"), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("line %d of the log is not a JSON object (%v):\n%s\nlogs:\n%s", i+1, err, line, pgtest.Tail(logs, 40))
		}
		recs = append(recs, rec)
	}
	if len(recs) == 0 {
		t.Fatal("no log records")
	}
	return recs
}

// findRecord returns the first record whose msg starts with prefix.
func findRecord(recs []map[string]any, prefix string) map[string]any {
	for _, r := range recs {
		if msg, _ := r["msg"].(string); strings.HasPrefix(msg, prefix) {
			return r
		}
	}
	return nil
}

var lsnForm = regexp.MustCompile(`^[0-9A-F]+/[0-9A-F]+$`)

// lsnKeys are the attributes that hold an LSN without saying so in their
// name.
var lsnKeys = map[string]bool{"checkpoint": true, "slot_confirmed": true, "point": true, "flush": true, "confirmed": true}

// TestDaemonLogsJSON runs the daemon with JSON logs at the debug level,
// applies a change and stops it with SIGTERM: every line is a JSON object,
// the start-up and signal records are there, no record is logged twice,
// and every LSN is in PostgreSQL's form (0/16B3748), never a number.
func TestDaemonLogsJSON(t *testing.T) {
	bin := buildBinary(t)
	e := flipPair(t)
	p := e.MappingFile("logged", "metrics:\n  listen: 127.0.0.1:0\n"+ordersTables)
	r := newRig(t, bin, p)
	d := r.start("--log-format", "json", "--log-level", "debug")
	pgtest.WaitFor(t, 30*time.Second, "both directions to stream", func() bool {
		return strings.Count(r.Logs.String(), `"msg":"streaming","component":"pipeline"`) >= 2
	}, &r.Logs)
	pgtest.MustExec(t, e.Src, `INSERT INTO orders (amount, status, note) VALUES (1.00, 'new', 'logged')`)
	pgtest.WaitFor(t, 30*time.Second, "the insert to be applied", func() bool {
		return bridgetest.Query(t, e.Tgt, `SELECT count(*) FROM orders_v2 WHERE note = 'logged'`) == "(1)"
	}, &r.Logs)
	if err := d.stop(); err != nil {
		t.Fatalf("SIGTERM: %v\n%s", err, pgtest.Tail(r.Logs.String(), 30))
	}
	logs := r.Logs.String()
	noCanary(t, logs)
	recs := jsonRecords(t, logs)

	start := findRecord(recs, "starting cdcbridge")
	if start == nil {
		t.Fatalf("no start-up record:\n%s", pgtest.Tail(logs, 40))
	}
	if start["version"] != version.Get().Version || start["mapping"] != "logged" || !strings.HasSuffix(start["mapping_file"].(string), "logged.yaml") ||
		start["directions"] != "forward,reverse" || start["metrics"] != "127.0.0.1:0" || start["go_version"] == nil ||
		!strings.HasPrefix(start["source"].(string), "postgres@127.0.0.1:") || !strings.HasPrefix(start["target"].(string), "postgres@127.0.0.1:") {
		t.Errorf("the start-up record lacks something: %v", start)
	}
	if msg, _ := recs[0]["msg"].(string); msg != "starting cdcbridge" {
		t.Errorf("the first record is %q, not the start-up record", msg)
	}
	sig := findRecord(recs, "signal received")
	if sig == nil || sig["signal"] != "SIGTERM" || !strings.Contains(sig["msg"].(string), "stopping") {
		t.Errorf("no record of SIGTERM saying what happens next: %v\n%s", sig, pgtest.Tail(logs, 40))
	}
	if last := recs[len(recs)-1]; last["msg"] != "cdcbridge stopped" || last["exit_code"] != 0.0 {
		t.Errorf("the last record is not the stop with exit code 0: %v", last)
	}

	seen := map[string]bool{}
	lsns := 0
	for _, rec := range recs {
		for k, v := range rec {
			if !strings.Contains(k, "lsn") && !lsnKeys[k] {
				continue
			}
			lsns++
			if s, ok := v.(string); !ok || !lsnForm.MatchString(s) {
				t.Errorf("%s=%v is not an LSN in the form 0/16B3748: %v", k, v, rec)
			}
		}
		delete(rec, "time")
		b, _ := json.Marshal(rec) // keys sorted
		if seen[string(b)] {
			t.Errorf("logged twice: %s", b)
		}
		seen[string(b)] = true
	}
	if lsns == 0 {
		t.Errorf("no record has an LSN, so their form was not checked:\n%s", pgtest.Tail(logs, 40))
	}
}

// TestFatalErrorLogsJSON: the error that stops the daemon (here a mapping
// that does not fit the databases) is log records in the chosen format, one
// per problem, then the stop with its exit code: a JSON log stays JSON to
// its last line.
func TestFatalErrorLogsJSON(t *testing.T) {
	e := bridgetest.NewEnv(t, `CREATE TABLE orders (id bigint PRIMARY KEY, amount numeric(12,2), status text);`, ``)
	e.WriteFile("orders.js", "function forward(r){return {order_id: r.id}}\nfunction backward(r){return {id: r.order_id}}\n")
	p := e.MappingFile("fatal", ordersTables)
	code, out, errs := run("run", "-c", p, "--log-format", "json")
	if code != 2 || out != "" {
		t.Fatalf("exit %d, want 2 with nothing on stdout\n%s%s", code, out, errs)
	}
	noCanary(t, errs)
	recs := jsonRecords(t, errs)
	if findRecord(recs, "starting cdcbridge") == nil {
		t.Errorf("no start-up record:\n%s", errs)
	}
	var problems []string
	for _, r := range recs {
		if r["msg"] == "the mapping cannot run" && r["level"] == "ERROR" {
			problems = append(problems, r["where"].(string)+": "+r["problem"].(string))
		}
	}
	if !slices.ContainsFunc(problems, func(s string) bool { return strings.Contains(s, `"public"."orders_v2"`) }) {
		t.Errorf("no record names the missing table: %q\n%s", problems, errs)
	}
	last := recs[len(recs)-1]
	if last["level"] != "ERROR" || !strings.HasPrefix(last["msg"].(string), "cdcbridge stopped") || last["exit_code"] != 2.0 {
		t.Errorf("the last record is not the stop with exit code 2: %v", last)
	}
}
