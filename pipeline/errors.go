package pipeline

import (
	"context"
	"errors"
	"io"
	"net"
	"syscall"

	"github.com/cdcbridge/cdcbridge/checkpoint"
	"github.com/cdcbridge/cdcbridge/fault"
	"github.com/cdcbridge/cdcbridge/transform"
	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5/pgconn"
)

// Retryable reports whether the pipeline should restart after err.
func Retryable(err error) bool {
	if err == nil {
		return false
	}
	var f *fault.FatalError
	if errors.As(err, &f) {
		return false
	}
	var r *fault.RetryableError
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
		case pgerrcode.IsConnectionException(pg.Code),
			pgerrcode.IsTransactionRollback(pg.Code), // serialization failure, deadlock
			pgerrcode.IsInsufficientResources(pg.Code),
			pg.Code == pgerrcode.AdminShutdown, pg.Code == pgerrcode.CrashShutdown, pg.Code == pgerrcode.CannotConnectNow,
			pg.Code == pgerrcode.DatabaseDropped, pg.Code == pgerrcode.IdleSessionTimeout,
			pg.Code == pgerrcode.ObjectInUse,                  // a slot still held by a dying walsender
			pg.Code == pgerrcode.ObjectNotInPrerequisiteState: // e.g. recovery in progress
			return true
		}
		return false
	}
	var ne net.Error
	var ce *pgconn.ConnectError
	if errors.As(err, &ne) || errors.As(err, &ce) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, context.DeadlineExceeded) || pgconn.SafeToRetry(err) || pgconn.Timeout(err) ||
		errors.Is(err, pgconn.ErrConnClosed) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		return true
	}
	return false
}

// classify wraps an error that Retryable does not retry in a
// fault.FatalError, and returns every other error (nil included) as it is.
func classify(err error) error {
	if err == nil || Retryable(err) {
		return err
	}
	var f *fault.FatalError
	if errors.As(err, &f) {
		return err
	}
	return &fault.FatalError{Err: err}
}
