// Package finding is the one result type of the bridge's up-front checks:
// replication's preflight of the side read, `cdcbridge check`, and the
// checks a pipeline runs before it starts. A Finding says what was checked
// (Where), whether it passed, what was found and how to fix it.
//
// ConfigError carries the findings that keep a mapping from running: fixing
// them needs the operator, not a retry, and the command line exits with
// the usage code for it. It has no I/O.
package finding
