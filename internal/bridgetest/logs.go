package bridgetest

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/cdcbridge/cdcbridge/internal/pgtest"
)

// allLogs collects every log line of the test binary, to be searched for
// the password canary at the end.
var allLogs pgtest.Buffer

// loggerMade is set once a test has made a logger here (Logger,
// TextLogger, or a Proc's): only then must some line have been captured.
var loggerMade atomic.Bool

// LogSink captures the logs of one run and copies them into the lines Main
// checks.
type LogSink struct{ pgtest.Buffer }

func (l *LogSink) Write(p []byte) (int, error) {
	allLogs.Write(p)
	return l.Buffer.Write(p)
}

// Main runs the package's tests, stops the clusters they started, and
// fails the run if the canary password appears in the captured logs, or if
// tests made loggers here and yet no log line was captured (the check
// would prove nothing). A run of tests that log nothing, such as a single
// unit test chosen with -run, makes no logger and is not held to it.
func Main(m *testing.M) {
	code := m.Run()
	pgtest.StopAll()
	leaked := strings.Contains(allLogs.String(), pgtest.Canary)
	n := len(allLogs.String())
	if leaked {
		fmt.Fprintln(os.Stderr, "FAIL: the password canary appears in the logs of the tests")
		code = 1
	} else if code == 0 && n == 0 && loggerMade.Load() {
		fmt.Fprintln(os.Stderr, "FAIL: no log lines were captured, so the canary check proved nothing")
		code = 1
	}
	os.Exit(code)
}

// Logger returns a logger at the default level whose lines Main checks.
func Logger() *slog.Logger {
	loggerMade.Store(true)
	return slog.New(slog.NewTextHandler(&LogSink{}, nil))
}

// TextLogger returns a debug-level text logger writing to w (a LogSink, so
// that Main checks its lines).
func TextLogger(w io.Writer) *slog.Logger {
	loggerMade.Store(true)
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
