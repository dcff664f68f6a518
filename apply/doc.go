// Package apply writes transformed changes to the side written, through one
// connection per Applier. It owns how they get there: source transactions
// grouped into target transactions, runs of same-shape rows turned into
// statements, one batch in flight while the next is built, the checkpoint
// row committed with the rows it covers, every transaction tagged with the
// bridge's replication origin, the session the bridge writes with
// (ReplicaRole, WithOrigin), and errors that name the change the target
// rejected.
//
// # Contract
//
// Lifecycle. New does no I/O and starts nothing. Prepare sets up the
// session and takes the replication origin for it; Run applies, once. The
// caller owns the connection: the Applier never closes it, no goroutine of
// the Applier outlives Run, and closing the connection after Run releases
// the origin. The checkpoint row (package checkpoint) must exist before
// Run; the Applier only advances it.
//
// Input. Run reads events (EvBegin, EvChange carrying Outs, EvCommit,
// EvPosition) from a channel that its producer owns and closes. Closing it
// is the normal end. Run does not drain the channel when it returns early,
// so the producer must also stop on its own context.
//
// Ordering. Source transactions are applied in the order they arrive, which
// is their commit order, each atomically. Several small ones may share one
// target transaction (up to Config.MaxRows rows, open at most MaxDelay);
// one is never split across two, however large. Within a target
// transaction, the changes of a row keep their order; changes of different
// rows may be grouped out of it, one statement per table, op and column
// set, and the repeated images of a row merged into one (see builder).
// Tables whose triggers fire for the bridge's writes keep the exact order.
// Source transactions that commit before the start LSN given to New are
// skipped.
//
// Committed together. The rows, the origin's progress (the source commit's
// LSN and time) and the checkpoint row's update are in one target
// transaction: after a crash the checkpoint says exactly which source
// transactions are on the target. A position reached without changes
// (EvPosition) is written in a checkpoint-only transaction, at the pace
// that Config.IdleCheckpoint and IdleBytes set. If the checkpoint row is
// gone, nothing commits and Run fails.
//
// Positions. Flushed returns only the end LSN of a source transaction (or
// of an idle position) whose target transaction has committed: the only
// position the replication stage may report to the source as flushed. It
// is safe for concurrent use.
//
// Result. Run returns nil once the input is closed and ctx.Err() once ctx
// ends, in both cases after committing the complete source transactions
// and rolling back a partial one; a batch already in flight is given time
// to finish, not cut short. Any other error comes after the open target
// transaction is rolled back, with Flushed at the last commit that
// succeeded: an *Error names the change the target rejected; a *Conflict
// asks the caller to apply again from the checkpoint (see below).
//
// Rows are sent in runs: changes of the same op to the same table with the
// same columns become one statement over unnest() of per-column text
// arrays, cast on the server to the column types, so values keep
// PostgreSQL's text form end to end; a run of plain inserts of copyMin rows
// or more goes by COPY in text format instead. Statements are pipelined with
// pgx.Batch: a small target transaction costs one round trip. While one
// batch is in flight on a goroutine of its own, which has the connection
// to itself, Run builds the next; the next send waits for it.
//
// A statement of several rows that the server rejects for a row's values
// (a CHECK, NOT NULL or unique violation, a value out of range, a trigger
// that raises) is reported with the row it rejected: once the target
// transaction is rolled back, the statement's rows are tried one by one in
// a transaction that is always rolled back (see Error); for a COPY the
// server names the line.
//
// An insert is an upsert on the target key in effect, but not in every
// statement: the server spends about half as much again on INSERT ... ON
// CONFLICT as on a plain INSERT, and the stream's inserts meet a row on the
// target only when someone else wrote it there. With Config.Upserts, inserts
// are plain until one meets a row; that target transaction is rolled back,
// Run adds the table to Upserts and returns a Conflict, and the caller
// applies again from the checkpoint with a new Applier given the same
// Upserts, whose inserts into that table are upserts. Likewise a unique or
// exclusion constraint that fails on a table whose changes were grouped out
// of the source's order adds it to Config.Ordered: the replay keeps its
// order, and only a failure then is an error.
package apply
