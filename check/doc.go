// Package check runs the up-front checks of a direction of a mapping: the
// transform scripts, connectivity to both sides, replication's preflight of
// the side read (wal_level, privileges, slots, tables), the tables and
// their partitions, write privileges and the replica role on the side
// written, keys, encodings, the mapping resolved against both catalogs,
// replication origins, the schema of the bridge's state, the sequences kept
// in step, and the checkpoint and slot. Every missing privilege comes with
// the exact SQL (GRANT, or the owner's CREATE/ALTER PUBLICATION) that makes
// the bridge work for the role: a role needs to own no table.
//
// Check runs them all and returns every finding, good and bad, for
// `cdcbridge check`. Preflight runs the ones a start needs on the start's
// own connections and returns the problems with what it resolved (the
// catalogs and a mapper), so that a start and `cdcbridge check` can never
// disagree about a mapping. CheckScripts needs no database. None of them
// changes anything but creating cdcbridge.deadletter under the deadletter
// policy.
package check
