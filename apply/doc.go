// Package apply writes transformed changes to the target database.
//
// An Applier reads an ordered stream of events (Begin, EvChange carrying
// Outs, Commit, Position) from a channel that its producer owns and closes,
// and keeps three promises:
//
//   - Source transactions are applied in commit order, each atomically.
//     Several small ones may share one target transaction; one is never
//     split across two.
//   - The checkpoint row (package checkpoint) is updated in the same target
//     transaction as the changes it covers, and the transaction is tagged
//     with the bridge's replication origin, so the other direction can tell
//     the bridge's writes from a client's.
//   - Flushed only ever returns the end LSN of a source transaction (or of
//     an idle stretch) whose target transaction has committed. That is the
//     only position the replication stage may report to the source.
//
// Rows are sent in runs: consecutive changes of the same op to the same
// table with the same columns become one statement over unnest() of
// per-column text arrays, cast on the server to the column types, so values
// keep PostgreSQL's text form end to end. Statements are pipelined with
// pgx.Batch: a small target transaction costs one round trip.
//
// A statement of several rows that the server rejects for a row's values
// (a CHECK, NOT NULL or unique violation, a value out of range, a trigger
// that raises) is reported with the row it rejected: once the target
// transaction is rolled back, the statement's rows are tried one by one in
// a transaction that is always rolled back (see Error).
//
// An insert is an upsert on the target key in effect, but not in every
// statement: the server spends about half as much again on INSERT ... ON
// CONFLICT as on a plain INSERT, and the stream's inserts meet a row on the
// target only when someone else wrote it there. With Config.Upserts, inserts
// are plain until one meets a row; that target transaction is rolled back,
// the table's inserts are upserts from then on, and the caller applies again
// from the checkpoint (see Conflict).
package apply
