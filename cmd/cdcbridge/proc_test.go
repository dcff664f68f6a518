package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cdcbridge/cdcbridge/internal/pgtest"
)

// buildBinary builds the cdcbridge command, with its failpoints, for the
// test.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "cdcbridge")
	if out, err := exec.Command("go", "build", "-tags", "failpoints", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("building: %v\n%s", err, out)
	}
	return bin
}

// rig is one mapping file run by the cdcbridge binary, as an operator runs
// it: each daemon it starts is a process of its own, and all of them write
// to Logs.
type rig struct {
	t            *testing.T
	bin, mapping string
	// Logs is the output of every daemon started, in order.
	Logs pgtest.Buffer
}

// newRig runs the mapping file at path with the binary bin (buildBinary).
func newRig(t *testing.T, bin, mapping string) *rig {
	return &rig{t: t, bin: bin, mapping: mapping}
}

// daemonProc runs `cdcbridge run` as a process.
type daemonProc struct {
	cmd *exec.Cmd
	// done is closed once the process has exited and been waited for.
	done chan struct{}
}

// start starts `cdcbridge run` on the mapping, and returns at once; args
// of the form NAME=VALUE go to its environment, the others to its command
// line.
func (r *rig) start(args ...string) *daemonProc {
	r.t.Helper()
	cmdArgs := []string{"run", "-c", r.mapping, "--quiet-period", "1s"}
	env := os.Environ()
	for _, a := range args {
		if strings.Contains(a, "=") {
			env = append(env, a)
		} else {
			cmdArgs = append(cmdArgs, a)
		}
	}
	cmd := exec.Command(r.bin, cmdArgs...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = &r.Logs, &r.Logs
	if err := cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	d := &daemonProc{cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); close(d.done) }()
	return d
}

// startStreaming starts the daemon as start does and waits until it says
// that both its directions stream.
func (r *rig) startStreaming(args ...string) *daemonProc {
	r.t.Helper()
	from := len(r.Logs.String())
	d := r.start(args...)
	pgtest.WaitFor(r.t, 30*time.Second, "both directions to stream", func() bool {
		return strings.Count(r.Logs.String()[from:], "msg=streaming component=pipeline") >= 2
	}, &r.Logs)
	return d
}

func (d *daemonProc) exited(timeout time.Duration) bool {
	select {
	case <-d.done:
		return true
	case <-time.After(timeout):
		return false
	}
}

// stop ends it with SIGTERM, as an operator would, and returns how it
// exited.
func (d *daemonProc) stop() error {
	d.cmd.Process.Signal(syscall.SIGTERM)
	if !d.exited(30 * time.Second) {
		return errors.New("it did not stop within 30s")
	}
	if !d.cmd.ProcessState.Success() {
		return errors.New(d.cmd.ProcessState.String())
	}
	return nil
}

// kill ends it with SIGKILL and waits for it to be gone.
func (d *daemonProc) kill() {
	d.cmd.Process.Signal(syscall.SIGKILL)
	d.exited(30 * time.Second)
}
