package mappingtest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cdcbridge/cdcbridge/change"
	"github.com/cdcbridge/cdcbridge/config"
)

// TestJSPassThroughEqualsIdentityOnRecordedValues replays the recorded
// value-table fixture, without a database, through an identity mapping and
// through JavaScript pass-throughs, and requires byte-identical output and
// lossless round trips.
func TestJSPassThroughEqualsIdentityOnRecordedValues(t *testing.T) {
	fx, err := filepath.Abs(filepath.Join("..", "testdata", "fixtures", "values.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	outputs := map[string]string{}
	for _, c := range []struct{ name, script string }{
		{"identity", ""},
		{"same", "function forward(r) { return r }\nfunction backward(r) { return r }\n"},
		{"spread", "function forward(r) { return {...r} }\nfunction backward(r) { return {...r} }\n"},
		{"copy", "function forward(r) { const o = {}; for (const k of Object.keys(r)) o[k] = r[k]; return o }\nfunction backward(r) { return r }\n"},
	} {
		dir := t.TempDir()
		tr := ""
		if c.script != "" {
			os.WriteFile(filepath.Join(dir, "t.js"), []byte(c.script), 0o644)
			tr = "    transform: t.js\n"
		}
		p := filepath.Join(dir, "m.yaml")
		os.WriteFile(p, []byte("name: v\nsource:\n  dsn: ${X}\ntarget:\n  dsn: ${Y}\ntables:\n  - source: values_types\n    target: values_types\n"+tr), 0o644)
		m, err := config.LoadOffline(p)
		if err != nil {
			t.Fatal(err)
		}
		local := filepath.Join(dir, "values.jsonl")
		b, _ := os.ReadFile(fx)
		os.WriteFile(local, b, 0o644)
		res, err := Run(local, Options{Mapping: m, Direction: config.Forward, Update: true})
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if len(res.RoundTrip) > 0 || res.Changes == 0 {
			t.Fatalf("%s: %d changes, round trip failures: %v", c.name, res.Changes, res.RoundTrip)
		}
		golden, _ := os.ReadFile(res.Golden)
		outputs[c.name] = string(golden)
	}
	for name, out := range outputs {
		if out != outputs["identity"] {
			t.Errorf("%s differs from identity:\n%s", name, diff(outputs["identity"], out))
		}
	}
	if !strings.Contains(outputs["identity"], "12345678901234567890") {
		t.Fatalf("the fixture lacks the 20-digit json number:\n%s", outputs["identity"])
	}
}

func TestLiteral(t *testing.T) {
	cases := map[string]string{"a'b": "'a''b'", "x\ny": `E'x\ny'`, `back\slash`: `E'back\\slash'`}
	for in, want := range cases {
		if got := literal(valueOf(in)); got != want {
			t.Errorf("literal(%q) = %s, want %s", in, got, want)
		}
	}
}

func valueOf(s string) change.Value { return change.TextValue(s) }
