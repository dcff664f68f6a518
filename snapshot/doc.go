// Package snapshot copies the mapped tables of the side read, as of a
// replication slot's exported snapshot, through the transform into the side
// written: the initial copy that lets streaming start at the slot's
// consistent point without missing or repeating a change.
//
// Copy runs a few workers, one table at a time each. A worker reads its
// table under the snapshot in PostgreSQL's text form (the form the stream
// delivers, so transforms see the same values), maps each row as an
// insert, and writes the results with COPY in chunks, all in one target
// transaction per table. Copy does not resume: a copy interrupted part-way
// is started over by its caller, after emptying the tables it wrote (they
// were empty when it began).
//
// The same copy fills the entries added to a running mapping: the caller
// gives the tables those entries read, a Mapper of those entries alone, and
// a Commit hook that records each entry's state in the transaction that
// writes its rows.
package snapshot
