// Package fault classifies the errors that stop a part of the bridge by what
// to do about them, never by their text.
//
// A FatalError stops the daemon: retrying cannot help (a refusal of the
// checkpoint, a transform failure, a change the target rejects, a mapping
// that does not fit the databases). A RetryableError, a lost connection or
// a server shutting down restarts the pipeline from its checkpoint after a
// backoff. Retryable tells the two apart with errors.As; Classify marks an
// error that Retryable does not retry as fatal, so that a caller further up
// does not have to judge it again.
package fault
