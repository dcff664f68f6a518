package bridge

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/cdcbridge/cdcbridge/checkpoint"
	"github.com/cdcbridge/cdcbridge/transform"
)

// FatalError stops the daemon: retrying cannot help.
type FatalError struct{ Err error }

func (e *FatalError) Error() string { return e.Err.Error() }
func (e *FatalError) Unwrap() error { return e.Err }

// RetryableError restarts the pipeline from its checkpoint after a backoff.
type RetryableError struct{ Err error }

func (e *RetryableError) Error() string { return e.Err.Error() }
func (e *RetryableError) Unwrap() error { return e.Err }

// Retryable reports whether the pipeline should restart after err.
func Retryable(err error) bool {
	if err == nil {
		return false
	}
	var f *FatalError
	if errors.As(err, &f) {
		return false
	}
	var r *RetryableError
	if errors.As(err, &r) {
		return true
	}
	var refusal *checkpoint.RefusalError
	var terr *transform.Error
	if errors.As(err, &refusal) || errors.As(err, &terr) {
		return false
	}
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		switch {
		case strings.HasPrefix(pg.Code, "08"), // connection exceptions
			strings.HasPrefix(pg.Code, "40"),  // serialization failure, deadlock
			strings.HasPrefix(pg.Code, "53"),  // insufficient resources
			strings.HasPrefix(pg.Code, "57P"), // admin shutdown, crash shutdown, cannot connect now
			pg.Code == "55006",                // object in use: a slot still held by a dying walsender
			pg.Code == "55000":                // object not in prerequisite state (e.g. recovery in progress)
			return true
		}
		return false
	}
	var ne net.Error
	var ce *pgconn.ConnectError
	if errors.As(err, &ne) || errors.As(err, &ce) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, context.DeadlineExceeded) || pgconn.SafeToRetry(err) || pgconn.Timeout(err) {
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, "conn closed") || strings.Contains(msg, "connection reset") ||
		strings.Contains(msg, "broken pipe") || strings.Contains(msg, "unexpected EOF")
}

// classify marks errors that are certainly fatal; others are judged by
// Retryable.
func classify(err error) error {
	if err == nil || Retryable(err) {
		return err
	}
	var f *FatalError
	if errors.As(err, &f) {
		return err
	}
	return &FatalError{Err: err}
}
