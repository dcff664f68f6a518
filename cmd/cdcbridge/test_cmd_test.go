package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestTestCommand runs `cdcbridge test` on recorded fixtures, without a
// database: goldens are written, then a transform change and a lossy
// transform are caught with the change, column and reason.
func TestTestCommand(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"keys.jsonl", "values.jsonl"} {
		b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "fixtures", f))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, f), b, 0o644)
	}
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// DSNs name variables that are not set: test needs no database.
	mapping := write("m.yaml", `name: fx
source:
  dsn: ${UNSET_SOURCE_DSN_FOR_TEST}
target:
  dsn: ${UNSET_TARGET_DSN_FOR_TEST}
tables:
  - source: keys_pk
    target: keys_pk
    transform: keys.js
  - source: values_types
    target: values_types
`)
	write("keys.js", "function forward(r) { return r }\nfunction backward(r) { return r }\n")
	fx := []string{filepath.Join(dir, "keys.jsonl"), filepath.Join(dir, "values.jsonl")}

	code, out, errs := run(append([]string{"test", "-c", mapping, "--update"}, fx...)...)
	if code != 0 || !strings.Contains(out, "updated") {
		t.Fatalf("--update: exit %d\n%s%s", code, out, errs)
	}
	golden, err := os.ReadFile(filepath.Join(dir, "keys.fx.golden"))
	if err != nil || !strings.Contains(string(golden), `insert "public"."keys_pk" row(id='1'::integer, v='one'::text)`) {
		t.Fatalf("golden file: %v\n%s", err, golden)
	}
	if code, out, errs := run(append([]string{"test", "-c", mapping}, fx...)...); code != 0 {
		t.Fatalf("unchanged mapping: exit %d\n%s%s", code, out, errs)
	}

	// A transform whose output changed: the diff names the change.
	write("keys.js", "function forward(r) { return {...r, v: r.v === undefined ? undefined : r.v + '!'} }\nfunction backward(r) { return {...r, v: r.v === undefined ? undefined : r.v.slice(0, -1)} }\n")
	code, out, _ = run("test", "-c", mapping, fx[0])
	if code != 1 || !strings.Contains(out, "- ") || !strings.Contains(out, "v='one!'::text") {
		t.Fatalf("changed output: exit %d, want 1 with a diff\n%s", code, out)
	}

	// A lossy transform: the round trip names the table, key and column.
	write("keys.js", "function forward(r) { return {id: r.id} }\nfunction backward(r) { return {id: r.id} }\n")
	run("test", "-c", mapping, "--update", fx[0])
	code, out, _ = run("test", "-c", mapping, fx[0])
	if code != 1 || !strings.Contains(out, `round trip: "public"."keys_pk" (id='1')`) || !strings.Contains(out, "v: was 'one', came back nothing") {
		t.Fatalf("lossy transform: exit %d, want 1 naming the column\n%s", code, out)
	}

	// A throwing transform is a finding too, with the script's line.
	write("keys.js", "function forward(r) {\n  throw new Error('boom')\n}\nfunction backward(r) { return r }\n")
	code, out, _ = run("test", "-c", mapping, fx[0])
	if code != 1 || !strings.Contains(out, "boom") || !strings.Contains(out, "keys.js:2") {
		t.Fatalf("throwing transform: exit %d\n%s", code, out)
	}

	// Usage errors.
	if code, _, _ := run("test", "-c", mapping); code != 2 {
		t.Fatalf("no fixture: exit %d, want 2", code)
	}
	if code, _, _ := run("test", "-c", mapping, filepath.Join(dir, "nosuch.jsonl")); code != 2 {
		t.Fatalf("missing fixture: exit %d, want 2", code)
	}
}
