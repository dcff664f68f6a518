package main

import (
	"log/slog"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cdcbridge/cdcbridge/internal/pgtest"
)

// TestSignalRecords: the first SIGTERM or SIGINT ends the context with a
// record naming it and what happens next; every later one is a record
// too, and the context stays ended.
func TestSignalRecords(t *testing.T) {
	var logs pgtest.Buffer
	ctx, stop := loggedSignalContext(slog.New(slog.NewTextHandler(&logs, nil)), "stopping the test")
	defer stop()
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	pgtest.WaitFor(t, 10*time.Second, "the context to end", func() bool { return ctx.Err() != nil }, &logs)
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	pgtest.WaitFor(t, 10*time.Second, "a record of the second signal", func() bool { return strings.Count(logs.String(), "\n") >= 2 }, &logs)
	stop()
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], `msg="signal received; stopping the test" signal=SIGTERM`) ||
		!strings.Contains(lines[1], `msg="signal received while stopping; still stopping" signal=SIGINT`) {
		t.Fatalf("signal records:\n%s", logs.String())
	}
}
