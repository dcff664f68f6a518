// Package bridge wires the stages into a running direction: the
// replication stream of the side read, the transform, and the applier on
// the side written, with the checkpoint deciding where to start.
//
// Run owns every goroutine it starts and waits for them. The first stage
// error cancels the others. Errors are classified: a lost connection or a
// server shutting down restarts the pipeline from the checkpoint after a
// backoff; a refusal, a configuration problem, a transform failure or a
// change the target rejects stops the daemon with the reason, before the
// change, with nothing skipped.
package bridge
