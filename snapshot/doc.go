// Package snapshot copies the mapped tables of the side read, as of a
// replication slot's exported snapshot, through the transform into the side
// written: the initial copy that lets streaming start at the slot's
// consistent point without missing or repeating a change.
//
// Copy runs a few workers, each over its own pair of connections, that
// share the tables: a table larger than Options.PartBytes is cut into
// ranges of heap blocks (by ctid, which works for a table without a key and
// for each partition of a partitioned one), so that the workers share one
// large table as they share several. Each part is read in a transaction
// that imports the slot's snapshot, so the parts together hold every row
// of the snapshot exactly once, and written in a transaction of its own.
//
// A table whose only entry maps columns by name, each to a column of the
// same built-in type, passes through: COPY TO in binary form on the side
// read feeds COPY FROM on the side written, and no row is decoded here.
// Every other table is read in PostgreSQL's text form (the form the
// stream delivers, so transforms see the same values), each row mapped as
// an insert, and the results written with COPY in chunks.
//
// The rows and bytes read are counted as they pass (on the binary path,
// one per CopyData message, which the server sends per row), reported to
// Options.Progress every second and logged per table every
// Options.ProgressEvery (10s) with the percent of the planner's estimate,
// the rate and the time to go; the last report of a table, once it is
// committed, has its exact rows.
//
// Copy does not resume: a copy interrupted part-way is started over by its
// caller, after emptying the tables it wrote (they were empty when it
// began).
//
// The same copy fills the entries added to a running mapping: the caller
// gives the tables those entries read, a Mapper of those entries alone, and
// a Commit hook that records each entry's state in the transaction that
// writes the last part of its rows, once every other part has committed.
package snapshot
