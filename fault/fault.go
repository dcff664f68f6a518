package fault

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"syscall"
	"time"

	"github.com/jackc/pgerrcode"
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

// Classify wraps an error that Retryable does not retry in a FatalError,
// and returns every other error (nil included) as it is.
func Classify(err error) error {
	if err == nil || Retryable(err) {
		return err
	}
	var f *FatalError
	if errors.As(err, &f) {
		return err
	}
	return &FatalError{Err: err}
}

// Jitter spreads a retry's wait d over [d/2, d], so that restarts (of the
// two directions, of several daemons) do not march in step.
func Jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}
