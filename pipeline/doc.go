// Package pipeline runs one direction of a mapping: the replication stream
// of the side read, the transform stage, and the applier on the side
// written, with the checkpoint deciding where to start.
//
// A start (runOnce) connects to both sides, takes the direction's lock on
// the side written, runs the up-front checks (check.Preflight), resumes
// from the checkpoint or, on a first start, creates the slot and copies
// every mapped table under its snapshot, and copies the entries added to
// the mapping (backfill) while the others stream. Then it runs the stages,
// joined by bounded channels: the stream sends events and never closes its
// channel (the start closes it once the stream has returned); the
// transform stage (transform.Stage; in Armed mode, the hold stage) ends
// when its input ends and its goroutine then closes its output; the applier drains what arrived, commits the
// complete transactions and rolls back a partial one. The applier runs
// under a context that outlives the caller's, so a stop never cuts a
// transaction in half. The first stage error stops the others; every
// goroutine is waited for.
//
// Run restarts a start after a retryable error (see Retryable) from
// the checkpoint, with a capped, jittered backoff, and at once after an
// insert met a row already on the target (its table's inserts become
// upserts) or a change did not fit the tables as they were read (the
// catalogs are read again, once per kind of failure). It returns nil when
// ctx ends, after a clean stop, and the error otherwise: a fault.FatalError
// stops the daemon, before the change that failed, with nothing skipped.
//
// The transforms are compiled once (Options.Scripts, or at each start when
// unset) and every runtime of the start runs the same compiled scripts: the
// checks' mapper, the transform stage's workers, the initial copy's and the
// backfill's.
//
// In Live mode a pipeline applies every change; in Armed mode it applies
// nothing, advances its slot past the bridge's own transactions and idle
// stretches, and holds at the first foreign write, which it reports.
//
// Each direction keeps its state in Options.Health (metrics.Health), which
// readiness and the scrape-time gauges are read from: streaming from when
// the stream comes up until the start ends; copying while an initial copy
// or a backfill runs; halted once Run returns an error; and the committed
// source transactions received (their Begin passed the transform stage)
// and not yet applied (the checkpoint passed their commit), whose oldest
// commit time is the direction's lag. A clean stop forgets those (the next
// start receives them again); a halt keeps them, so the lag of a halted
// direction grows.
package pipeline
