package main

import (
	"errors"
	"io"
	"net"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/cdcbridge/cdcbridge/control"
	"github.com/cdcbridge/cdcbridge/finding"
)

// exitCode is the exit code of a command that stopped on err, the same on
// every command: a database that cannot be reached is exitFinding (a
// runtime failure: the same command may pass once it is back); findings
// that keep a mapping from running, and a mapping that has never run, are
// exitUsage; any other error is otherwise, which the command chooses by
// what its errors are (a comparison that could not be made is a
// configuration error, a flip that failed a runtime one).
func exitCode(err error, otherwise int) int {
	var ce *finding.ConfigError
	switch {
	case err == nil:
		return exitOK
	case unreachable(err):
		return exitFinding
	case errors.As(err, &ce), errors.Is(err, control.ErrNoState):
		return exitUsage
	}
	return otherwise
}

// unreachable reports whether err says that a database could not be
// reached, or was lost: no server answered, the connection broke, or the
// server is starting up or shutting down. A server that answers and
// refuses the login (a wrong password, a database that does not exist) is
// a configuration error, not this.
func unreachable(err error) bool {
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		switch {
		case pgerrcode.IsConnectionException(pg.Code),
			pg.Code == pgerrcode.AdminShutdown, pg.Code == pgerrcode.CrashShutdown, pg.Code == pgerrcode.CannotConnectNow:
			return true
		}
		return false
	}
	var ce *pgconn.ConnectError
	var oe *net.OpError
	var de *net.DNSError
	return errors.As(err, &ce) || errors.As(err, &oe) || errors.As(err, &de) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, pgconn.ErrConnClosed)
}

// findingsExit is the exit code of a list of findings: 0 when all passed,
// exitUsage when one that is not a database out of reach failed (the
// mapping or a database must be fixed), else exitFinding.
func findingsExit(fs []finding.Finding) int {
	code := exitOK
	for _, f := range finding.Problems(fs) {
		if f.Err == nil || !unreachable(f.Err) {
			return exitUsage
		}
		code = exitFinding
	}
	return code
}
