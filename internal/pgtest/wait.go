package pgtest

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// Poll is how often Until asks its condition again.
const Poll = 20 * time.Millisecond

// Until asks cond, every Poll, until it returns true or timeout has passed,
// and reports whether it held. It is the one condition wait of the tests:
// they wait on an observed state, never on a fixed sleep. cond runs on the
// caller's goroutine, so it may itself fail the test (when the process
// expected to make it true has stopped, say).
func Until(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(Poll)
	}
}

// WaitFor waits, as Until does, until cond holds; after timeout it fails
// the test, saying it was waiting for what and showing the last lines of
// each of logs (a process's captured output) as they are then.
func WaitFor(tb testing.TB, timeout time.Duration, what string, cond func() bool, logs ...fmt.Stringer) {
	tb.Helper()
	if Until(timeout, cond) {
		return
	}
	var b strings.Builder
	for _, l := range logs {
		b.WriteString("\nlogs:\n" + Tail(l.String(), 40))
	}
	tb.Fatalf("timed out after %s waiting for %s%s", timeout, what, b.String())
}

// Tail returns the last n lines of s.
func Tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
