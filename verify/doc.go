// Package verify compares the two sides of a mapping row by row, and proves
// that a mapping's transforms are lossless.
//
// # Comparing (Run)
//
// Run compares what the side read would look like after the transform with
// what the side written holds, key by key, in two passes over one snapshot
// of each side (read-only REPEATABLE READ transactions, the side read
// first):
//
//   - Missing and different: every row of every table read is fetched in
//     PostgreSQL's text form (the form the replication stream delivers,
//     with the daemon's session settings), mapped as an insert with the
//     forward transform, and each insert or update it yields is looked up
//     on the side written by its key, a batch per query. A row that is not
//     there is missing; a row whose written columns do not hold the same
//     values is different. Values are compared after PostgreSQL's own
//     normalisation: both sides are cast to the column's declared type
//     (with its modifier) and printed, so 19.9 equals 19.90 in a
//     numeric(12,2) and 'ab' equals 'ab   ' in a char(5). Columns a
//     transform does not return are not compared.
//   - Extra: every row of every table written is mapped back with the
//     opposite transform, which names the row of the side read it would
//     come from (table and primary key); a row whose source does not exist
//     is extra. A row already found different is not counted again.
//
// A table written without a key (no primary key, no unique index on NOT
// NULL columns, no key: in the mapping) has no row to look a transformed
// row up by: it is compared as a multiset. The transformed rows are printed
// as the side written prints its columns and sorted, the rows of the side
// written stream in the same order, and a merge names each row held more
// often on one side than on the other, duplicates counted: a row the side
// written lacks is missing, one it holds too often is extra (a changed row
// is both). Its differences are checked again by comparing everything
// again. The transformed rows of such a table are held in memory while it
// is compared.
//
// Memory does not otherwise grow with the tables: rows stream in batches, and only
// counts, a few examples per table and the keys that differ (up to a bound)
// are kept. Transforms may change keys and split or merge tables: nothing
// relies on the two sides sorting alike.
//
// While a daemon applies changes, a row written between the two snapshots
// differs for a moment. So when the first pass finds differences, Run
// checks those rows again, in fresh snapshots: the side read (A), whose
// rows are fetched by key and transformed and whose WAL position is noted;
// the side written (T), taken once the checkpoint of the mapping and
// direction there has reached that position (waiting at most
// Options.CatchUp), where the rows are compared; and the side read again
// (B). T holds every change up to A, so a row that differs in T while its
// source row is the same in A and B differs for good, and is reported. A
// row whose source changed in between is unsettled: it is checked again in
// another round (a few at most), and one that keeps changing is named in a
// note but not counted as a difference. A row of the side written whose
// source is not in B is extra if it is still there once the daemon has
// caught up with B (a delete may have been in flight). Without a daemon
// holding the mapping's lock there is nothing to wait for, and one round
// is made. When there were too many differences to keep their keys, or a
// table read has no primary key to fetch its rows by, the whole comparison
// runs again once instead, after the wait.
//
// # Round trips (RoundTrip)
//
// RoundTrip checks, for every row of every table read, that
// backward(forward(row)) == row, and for every row of every table written
// that forward(backward(row)) == row, byte for byte in PostgreSQL's text
// form; it names the table, key and columns that do not come back. It
// needs no daemon and changes nothing.
//
// # Progress
//
// While a table is read (compared, searched for extra rows, sent through a
// round trip), a record is logged every Options.ProgressEvery (10s) with
// the rows read, the percent of the table's estimated size
// (pg_class.reltuples, as of the last VACUUM or ANALYZE; none for a table
// never analyzed), the rate and the time left. When it is done, one
// record says what the table came to.
//
// # Errors
//
// An error means the comparison could not be made: a side that cannot be
// reached, a mapped table that does not exist. Errors name the side and table and never hold a password.
// A transform that fails on a row returns its *transform.Error, which names
// the entry, table and row. Differences are not errors: they are in the
// report.
package verify
