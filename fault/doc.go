// Package fault holds the two errors that say what to do about a failure,
// for every package of the bridge to return and none to match by text.
//
// A FatalError stops the daemon: retrying cannot help (a refusal of the
// checkpoint, a transform failure, a change the target rejects, a mapping
// that does not fit the databases, a DSN that cannot be parsed, another
// daemon holding the lock). A RetryableError restarts the pipeline from its
// checkpoint after a backoff, or asks the operator to try again. Which other
// errors are worth a retry (a lost connection, a server shutting down) is
// the pipeline's judgement (pipeline.Retryable). Jitter spreads the waits
// between retries. The package has no dependencies, so that the lowest
// packages can return its errors.
package fault
