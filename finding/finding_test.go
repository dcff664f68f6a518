package finding

import "testing"

// TestString: a finding prints its mark, where, message and fix, the way
// `cdcbridge check` shows it; a ConfigError lists the problems on lines.
func TestString(t *testing.T) {
	for _, c := range []struct {
		name string
		f    Finding
		want string
	}{
		{"ok", Finding{Where: "source", OK: true, Message: "connected"}, "ok   source: connected"},
		{"warning", Finding{Where: "target table t", OK: true, Warn: true, Message: "trigger x does not fire", Fix: "ENABLE ALWAYS"},
			"WARN target table t: trigger x does not fire\n       fix: ENABLE ALWAYS"},
		{"problem", Finding{Where: "mapping", Message: "no such column", Fix: "correct it"}, "FAIL mapping: no such column\n       fix: correct it"},
	} {
		if got := c.f.String(); got != c.want {
			t.Errorf("%s: got %q, want %q", c.name, got, c.want)
		}
	}
	fs := []Finding{{Where: "a", OK: true, Message: "fine"}, {Where: "b", Message: "broken", Fix: "mend it"}, {Where: "c", Message: "gone"}}
	probs := Problems(fs)
	if len(probs) != 2 || probs[0].Where != "b" || probs[1].Where != "c" {
		t.Fatalf("Problems = %v", probs)
	}
	want := "the mapping cannot run (`cdcbridge check` lists every finding):\nb: broken; fix: mend it\nc: gone"
	if got := (&ConfigError{Findings: probs}).Error(); got != want {
		t.Errorf("ConfigError:\n got %q\nwant %q", got, want)
	}
}
