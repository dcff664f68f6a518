package fault

import (
	"math/rand/v2"
	"time"
)

// FatalError stops the daemon: retrying cannot help.
type FatalError struct{ Err error }

func (e *FatalError) Error() string { return e.Err.Error() }
func (e *FatalError) Unwrap() error { return e.Err }

// RetryableError restarts the pipeline from its checkpoint after a backoff.
type RetryableError struct{ Err error }

func (e *RetryableError) Error() string { return e.Err.Error() }
func (e *RetryableError) Unwrap() error { return e.Err }

// Jitter spreads a retry's wait d over [d/2, d], so that restarts (of the
// two directions, of several daemons) do not march in step.
func Jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}
