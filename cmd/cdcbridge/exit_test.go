package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/cdcbridge/cdcbridge/control"
	"github.com/cdcbridge/cdcbridge/fault"
	"github.com/cdcbridge/cdcbridge/finding"
)

// TestExitCode: the one mapping of errors to exit codes. A server that
// does not answer, or answers that it is starting or shutting down, is 1
// however it is wrapped; a login the server refuses, a file that is not
// there and a mapping that does not fit are not "unreachable".
func TestExitCode(t *testing.T) {
	_, refused := pgconn.Connect(context.Background(), "postgres://u@127.0.0.1:1/db?connect_timeout=5")
	if refused == nil {
		t.Fatal("connecting to port 1 worked")
	}
	_, noFile := os.Open("/nonexistent/mapping.yaml")
	for _, c := range []struct {
		name      string
		err       error
		otherwise int
		want      int
	}{
		{"nil", nil, exitUsage, exitOK},
		{"connection refused", refused, exitUsage, exitFinding},
		{"wrapped and fatal", &fault.FatalError{Err: fmt.Errorf("connecting to the target: %w", refused)}, exitUsage, exitFinding},
		{"server starting up", &pgconn.PgError{Code: "57P03"}, exitUsage, exitFinding},
		{"connection lost", &pgconn.PgError{Code: "08006"}, exitUsage, exitFinding},
		{"wrong password", &pgconn.PgError{Code: "28P01"}, exitUsage, exitUsage},
		{"no such file", noFile, exitFinding, exitFinding},
		{"config error", &fault.FatalError{Err: &finding.ConfigError{}}, exitFinding, exitUsage},
		{"never ran", fmt.Errorf("reading the state: %w", control.ErrNoState), exitFinding, exitUsage},
		{"other", errors.New("boom"), exitFinding, exitFinding},
	} {
		if got := exitCode(c.err, c.otherwise); got != c.want {
			t.Errorf("%s: exitCode(%v) = %d, want %d", c.name, c.err, got, c.want)
		}
	}
	// check: findings that are only servers out of reach are 1; any other
	// failed finding makes it 2.
	down := finding.Finding{Where: "target", Message: "connecting", Err: refused}
	bad := finding.Finding{Where: "mapping", Message: "no such column"}
	ok := finding.Finding{Where: "source", OK: true}
	for _, c := range []struct {
		fs   []finding.Finding
		want int
	}{
		{[]finding.Finding{ok}, exitOK},
		{[]finding.Finding{ok, down}, exitFinding},
		{[]finding.Finding{down, bad}, exitUsage},
		{[]finding.Finding{bad}, exitUsage},
	} {
		if got := findingsExit(c.fs); got != c.want {
			t.Errorf("findingsExit(%v) = %d, want %d", c.fs, got, c.want)
		}
	}
}
