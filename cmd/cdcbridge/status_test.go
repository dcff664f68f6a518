package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/cdcbridge/cdcbridge/admin"
	"github.com/cdcbridge/cdcbridge/internal/bridgetest"
	"github.com/cdcbridge/cdcbridge/internal/pgtest"
)

// TestStatusSideDown: with a side that cannot be reached, status prints all
// it could read, names the side it could not reach (never the password)
// and exits 1, in text and in JSON. With both sides up it exits 0.
func TestStatusSideDown(t *testing.T) {
	bin := buildBinary(t)
	e := bridgetest.NewEnv(t, `CREATE TABLE a (id int PRIMARY KEY, v text);`, `CREATE TABLE a (id int PRIMARY KEY, v text);`)
	p := e.MappingFile("stat", "tables:\n  - source: a\n    target: a\n")
	// A daemon that ran once leaves a state and a checkpoint on each side.
	r := newRig(t, bin, p)
	d := r.startStreaming()
	d.stop()

	status := func(t *testing.T, mapping string, args ...string) (code int, stdout, stderr string) {
		t.Helper()
		var out, errb bytes.Buffer
		cmd := exec.Command(bin, append([]string{"status", "-c", mapping}, args...)...)
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatal(err)
		}
		noCanary(t, out.String(), errb.String())
		return cmd.ProcessState.ExitCode(), out.String(), errb.String()
	}
	statusJSON := func(t *testing.T, mapping string) (int, admin.Status, string) {
		t.Helper()
		code, out, errs := status(t, mapping, "--json")
		var st admin.Status
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			t.Fatalf("status --json printed no JSON (%v): exit %d\n%s%s", err, code, out, errs)
		}
		return code, st, errs
	}

	t.Run("both up", func(t *testing.T) {
		code, out, errs := status(t, p)
		if code != 0 || errs != "" || strings.Contains(out, "ERROR") || strings.Contains(out, "unknown") {
			t.Fatalf("status: exit %d, want 0\n%s%s", code, out, errs)
		}
		for _, want := range []string{"live direction forward", "forward live", "reverse armed", "; checkpoint "} {
			if !strings.Contains(out, want) {
				t.Errorf("status lacks %q:\n%s", want, out)
			}
		}
		code, st, errs := statusJSON(t, p)
		if code != 0 || len(st.Errors) != 0 || st.Live != "forward" || st.Directions[0].Error != "" || st.Directions[1].Error != "" {
			t.Fatalf("status --json: exit %d, want 0\n%+v\n%s", code, st, errs)
		}
	})

	// A port nothing listens on: connections are refused at once.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	down := "postgres://postgres:" + pgtest.Canary + "@127.0.0.1:" + port + "/gone?sslmode=disable"
	shown := "connecting to the %s (postgres@127.0.0.1:" + port + "/gone)"

	for _, tc := range []struct {
		side     string
		src, tgt string
		text     []string // in the text output
		live     string
		known    [2]bool // whether the slot and the checkpoint of forward are known; reverse is the other way round
	}{
		{"source", down, e.TgtDSN, []string{
			"live direction forward",
			"forward live     reads the source; slot cdcbridge_stat_forward unknown; checkpoint 0/",
			"lag unknown",
			"reverse armed    reads the target; slot cdcbridge_stat_reverse inactive",
			"; checkpoint unknown",
		}, "forward", [2]bool{false, true}},
		{"target", e.SrcDSN, down, []string{
			"live direction unknown",
			"forward unknown  reads the source; slot cdcbridge_stat_forward inactive",
			"; checkpoint unknown",
			"reverse unknown  reads the target; slot cdcbridge_stat_reverse unknown; checkpoint 0/",
		}, "unknown", [2]bool{true, false}},
	} {
		t.Run(tc.side+" down", func(t *testing.T) {
			m := e.WriteFile(tc.side+"-down.yaml", "name: stat\nsource:\n  dsn: "+tc.src+"\ntarget:\n  dsn: "+tc.tgt+"\ntables:\n  - source: a\n    target: a\n")
			name := strings.ReplaceAll(shown, "%s", tc.side)
			code, out, errs := status(t, m)
			if code != 1 {
				t.Fatalf("status with the %s down: exit %d, want 1\n%s%s", tc.side, code, out, errs)
			}
			if !strings.Contains(out, "ERROR: "+name) || !strings.Contains(errs, name) {
				t.Errorf("status does not name the %s it could not reach (%s):\n%s%s", tc.side, name, out, errs)
			}
			for _, want := range tc.text {
				if !strings.Contains(out, want) {
					t.Errorf("status lacks %q:\n%s", want, out)
				}
			}

			code, st, errs := statusJSON(t, m)
			if code != 1 || st.Live != tc.live || len(st.Errors) != 1 || !strings.Contains(st.Errors[0], name) || !strings.Contains(errs, name) {
				t.Fatalf("status --json with the %s down: exit %d, live %q, errors %q\n%s", tc.side, code, st.Live, st.Errors, errs)
			}
			fwd, rev := st.Directions[0], st.Directions[1]
			if (fwd.SlotError == "") != tc.known[0] || (fwd.CheckpointError == "") != tc.known[1] ||
				(rev.SlotError == "") != tc.known[1] || (rev.CheckpointError == "") != tc.known[0] {
				t.Errorf("status --json with the %s down: what is unknown\n%+v\n%+v", tc.side, fwd, rev)
			}
			// What the side up holds is there.
			if tc.known[1] && fwd.Checkpoint == "" || tc.known[0] && !fwd.SlotExists {
				t.Errorf("status --json with the %s down lacks what the other side holds: %+v", tc.side, fwd)
			}
		})
	}
}
