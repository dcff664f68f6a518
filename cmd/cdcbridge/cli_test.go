package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cdcbridge/cdcbridge/internal/pgtest"
	"github.com/cdcbridge/cdcbridge/internal/version"
)

// TestCommandLineConventions runs every command through Main with the
// cases every command must handle alike: help on stdout with exit 0 (three
// ways of asking), usage errors as one line on stderr with exit 2, a
// mapping file that cannot be read (2), and a database that cannot be
// reached, which is exit 1 on every command that connects.
func TestCommandLineConventions(t *testing.T) {
	dir := t.TempDir()
	down := filepath.Join(dir, "down.yaml")
	dsn := "postgres://postgres:" + pgtest.Canary + "@127.0.0.1:1/postgres?connect_timeout=5"
	if err := os.WriteFile(down, []byte("name: down\nsource:\n  dsn: "+dsn+"\ntarget:\n  dsn: "+dsn+"\ntables:\n  - source: a\n    target: a\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	fixture := filepath.Join(dir, "f.jsonl")
	// needs are the arguments a command needs besides -c to get as far as
	// reading the mapping and connecting.
	needs := map[string][]string{
		"record": {"--out", filepath.Join(dir, "out.jsonl")},
		"test":   {fixture},
	}
	var names []string
	for name := range commands {
		names = append(names, name)
	}
	slices.Sort(names)
	if len(names) < 9 {
		t.Fatalf("commands: %v", names)
	}
	connects := map[string]bool{"run": true, "check": true, "flip": true, "status": true, "cleanup": true, "verify": true, "record": true}

	type tcase struct {
		name string
		args []string
		code int
		// out, errs: what stdout and stderr must contain ("" for nothing
		// at all); oneLine: stderr is one line.
		out, errs string
		oneLine   bool
	}
	var cases []tcase
	for _, cmd := range names {
		withC := func(extra ...string) []string {
			if cmd == "version" {
				return append([]string{cmd}, extra...)
			}
			return append(append([]string{cmd, "-c", down}, needs[cmd]...), extra...)
		}
		cases = append(cases,
			tcase{name: cmd + " --help", args: []string{cmd, "--help"}, out: "Usage: cdcbridge " + cmd},
			tcase{name: cmd + " -h", args: []string{cmd, "-h"}, out: "Usage: cdcbridge " + cmd},
			tcase{name: "help " + cmd, args: []string{"help", cmd}, out: "Usage: cdcbridge " + cmd},
			tcase{name: cmd + " unknown flag", args: withC("--frobnicate"), code: 2, errs: "cdcbridge " + cmd + ": flag provided but not defined: -frobnicate", oneLine: true},
		)
		if cmd == "version" {
			cases = append(cases,
				tcase{name: "version extra", args: []string{"version", "extra"}, code: 2, errs: `unexpected argument "extra"`, oneLine: true},
				tcase{name: "version", args: []string{"version"}, out: version.Get().String() + "\n"},
				tcase{name: "--version", args: []string{"--version"}, out: version.Get().String() + "\n"},
			)
			continue
		}
		cases = append(cases,
			tcase{name: cmd + " without -c", args: append([]string{cmd}, needs[cmd]...), code: 2, errs: "the mapping file is required: -c mapping.yaml", oneLine: true},
			tcase{name: cmd + " bad log format", args: withC("--log-format", "xml"), code: 2, errs: `--log-format "xml": want text or json`, oneLine: true},
			tcase{name: cmd + " flag without value", args: []string{cmd, "-c"}, code: 2, errs: "flag needs an argument: -c", oneLine: true},
			tcase{name: cmd + " no mapping file", args: append([]string{cmd, "-c", filepath.Join(dir, "nosuch.yaml")}, needs[cmd]...), code: 2, errs: "nosuch.yaml"},
		)
		if cmd != "test" {
			cases = append(cases, tcase{name: cmd + " extra argument", args: withC("extra"), code: 2, errs: `cdcbridge ` + cmd + `: unexpected argument "extra"`, oneLine: true})
		}
		// run does not give up on a database that is down: it tries again
		// until it comes up (daemon's TestStartsWhileTargetIsDown).
		if connects[cmd] && cmd != "run" {
			cases = append(cases, tcase{name: cmd + " database down", args: withC(), code: 1, errs: "127.0.0.1:1"})
		}
	}
	cases = append(cases,
		tcase{name: "no command", args: nil, code: 2, errs: "Usage:"},
		tcase{name: "unknown command", args: []string{"frobnicate"}, code: 2, errs: `unknown command "frobnicate"`, oneLine: true},
		tcase{name: "help", args: []string{"help"}, out: "Usage:"},
		tcase{name: "--help", args: []string{"--help"}, out: "cdcbridge version"},
		tcase{name: "help unknown", args: []string{"help", "frobnicate"}, code: 2, errs: `unknown command "frobnicate"`, oneLine: true},
		tcase{name: "help two", args: []string{"help", "run", "check"}, code: 2, errs: "one command at most", oneLine: true},
		tcase{name: "flip conflicting", args: []string{"flip", "-c", down, "--include-target-writes", "--discard-target-writes"}, code: 2,
			errs: "--include-target-writes and --discard-target-writes exclude each other", oneLine: true},
		tcase{name: "verify conflicting", args: []string{"verify", "-c", down, "--roundtrip", "--catch-up", "1s"}, code: 2,
			errs: "--roundtrip and --catch-up exclude each other", oneLine: true},
		tcase{name: "verify --roundtrip database down", args: []string{"verify", "-c", down, "--roundtrip"}, code: 1, errs: "127.0.0.1:1"},
		tcase{name: "check --json database down", args: []string{"check", "-c", down, "--json"}, code: 1, out: `"ok": false`},
		tcase{name: "verify --json database down", args: []string{"verify", "-c", down, "--json"}, code: 1, out: `"error": "connecting to the`},
		tcase{name: "record negative duration", args: []string{"record", "-c", down, "--out", "x", "--duration", "-1s"}, code: 2, errs: "--duration", oneLine: true},
	)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, out, errs := run(c.args...)
			if code != c.code {
				t.Fatalf("%q: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", c.args, code, c.code, out, errs)
			}
			noCanary(t, out, errs)
			if c.code == 0 {
				if errs != "" {
					t.Errorf("%q: exit 0 with something on stderr:\n%s", c.args, errs)
				}
				if !strings.Contains(out, c.out) {
					t.Errorf("%q: stdout lacks %q:\n%s", c.args, c.out, out)
				}
				if strings.Contains(out, "Usage: cdcbridge") && !strings.Contains(out, "Exit status") {
					t.Errorf("%q: the help does not document the exit codes:\n%s", c.args, out)
				}
				return
			}
			if !strings.Contains(out, c.out) || (c.out == "" && out != "" && c.code == 2) {
				t.Errorf("%q: stdout: want %q, got:\n%s", c.args, c.out, out)
			}
			if !strings.Contains(errs, c.errs) && !(c.code == 1 && strings.Contains(out, c.errs)) {
				t.Errorf("%q: stderr lacks %q:\n%s", c.args, c.errs, errs)
			}
			if c.oneLine && (strings.Count(errs, "\n") != 1 || !strings.HasSuffix(errs, "\n")) {
				t.Errorf("%q: want one line on stderr, got:\n%s", c.args, errs)
			}
			if c.out != "" && strings.HasPrefix(strings.TrimSpace(out), "{") {
				var v map[string]any
				if err := json.Unmarshal([]byte(out), &v); err != nil {
					t.Errorf("%q: stdout is not one JSON document: %v\n%s", c.args, err, out)
				}
			}
		})
	}
}
