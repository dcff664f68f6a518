// Package config reads mapping files: the user's description of which tables
// the bridge carries between the source slice and the target slice, through
// which transforms, and how it connects to both.
//
// Load (or Parse) validates everything that can be checked without a
// database: the YAML shape, unknown and repeated keys, required fields, names,
// durations, table names, transform files and connection strings. It does no
// network I/O; connectivity, privileges and catalog checks belong to the
// commands that open connections. Every problem is reported at once, each
// naming the file, line and column, the field path and the fix:
//
//	shop.yaml:4:8: source.dsn: environment variable GREEN_DSN is not set; export it or write the DSN here
//	shop.yaml:9:7: tables[1].trasform: unknown key; did you mean transform? (keys here: source, target, transform, key)
//
// ${VAR} in any value expands from the environment; $$ is a literal $. An
// unset variable is an error, never an empty string, and values taken from
// the environment are not expanded again.
//
// Connection strings live in DSN, the one type that holds passwords. Every way
// of printing, logging or encoding a DSN (String, fmt verbs, slog, JSON)
// shows user@host:port/dbname; ConnString is the only way to the raw string.
// DSN.Redact and Mapping.Redact scrub passwords out of error messages from
// drivers while keeping errors.As working.
//
// A Mapping describes both directions. Forward reads the source slice and
// writes the target slice with forward(); Reverse reads the target and writes
// the source with backward(). Mapping.View answers, for one direction, which
// side it reads and which it writes, what the file calls them, and the names
// of its replication slot, publication and origin; those names are derived
// from the mapping's name and the direction, so two bridges with different
// names never touch each other's objects. A side may name instead a
// publication made beforehand on it (source.publication, target.publication):
// the direction reading that side uses it as it is (View.PublicationGiven).
package config
