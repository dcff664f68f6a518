// Package transform owns what becomes of one row change between reading and
// writing: it maps a source change to the writes of the target tables,
// through a user's JavaScript transform or by column name, runs the
// transform stage of a pipeline (Stage: ordered parallel mapping and the
// mapping's error policy, on_error), and owns the
// JavaScript side: compiling scripts once, running them in
// sandboxed goja runtimes under a time limit, converting column values
// between PostgreSQL's text form and JavaScript (one codec per kind of
// type), and describing what a script did wrong. It reads no stream and
// writes no database; it does no I/O but reading the scripts.
//
// # Lifecycle
//
// Check compiles one script and verifies that it defines both forward and
// backward; it is what a configuration check calls. Compile reads and
// compiles the scripts of a set of mapping entries, each file once, into a
// *Scripts that is safe for concurrent use and may be shared by every
// Mapper of a mapping, in both directions. New makes a Mapper: one
// sandboxed goja runtime that runs each script's top level, with the
// programs of Options.Scripts or, without them, compiling the scripts
// itself; it checks the entries against the catalogs of the database read
// from and the database written to. Map then turns one *change.Change into
// zero or more change.Out. A Mapper is not safe for concurrent use: one
// Mapper per goroutine, all of them sharing one *Scripts. Nothing here does
// I/O after New.
//
// # Stage
//
// Stage is the pipeline's transform stage over a stream of events: its
// Mappers (Workers of them) map ahead in parallel and the events leave in
// the order they came; a change that fails halts the stage with a
// fault.FatalError under on_error: halt, is dropped under skip, and becomes
// a cdcbridge.deadletter row under deadletter. The caller closes the
// output once Run has returned. See Stage for the whole contract.
//
// # Entries
//
// A change selects the entries whose Read table is its relation's table, in
// entry order (several entries make a split). A truncate becomes a single
// Out truncating the Write tables of every entry that reads a truncated
// table, without calling any script.
//
// An entry without a script maps columns by name and passes values through
// byte for byte. An update's target key comes from the old row image when
// the source sent one, else from the new row, where only replica identity
// columns are sure to hold the key the target row has now; a target key
// column the source does not send is an error that names the fix (REPLICA
// IDENTITY FULL on the source, or a transform).
//
// # Scripts
//
// Each script runs in a function scope of its own, so entries with
// different scripts share the runtime without their top-level names
// colliding. A call is forward(row, change) (or backward): row is the new row
// for insert and update and the old row image for delete, change is
// {op, table: "schema.name", old: the old row image or null, lsn:
// "0/16B3748", commitTime: an ISO 8601 string or null}. A column without a
// value (an unchanged TOASTed value, or a column outside the replica
// identity in a key-only old image) is not a property of the row.
//
// The script returns:
//   - null or undefined: the change is dropped;
//   - a row object: written to the entry's Write table with the change's op;
//   - a full-control object {op, table, row, old} or an array of them. An
//     object counts as full control only when it has an own row property
//     holding a plain object and no own properties but op, table, row and
//     old; any other object is a row (so a target whose only columns are
//     among those four names cannot be written with a plain row). op
//     defaults to the change's op, table to the entry's Write table and may
//     be "schema.name" or a bare name of a table in the written database;
//     old, if given, is the target row (at least its key) before an update.
//
// Only the properties of a returned row with a defined value are written:
// a partial row is a partial update, undefined never means NULL. A property
// that is not a column of the written table is an error; generated columns
// are left out (the target computes them). Inserts carry the target key
// column names in KeyCols; updates and deletes also carry the key values
// in Key. A delete uses only the target key columns of the returned row.
// For an update with an old row image, the function is called a second
// time with the old image and op "delete": when the target key it yields
// differs from the returned row's, the update changes the key (Key holds
// the old key, Vals the new one).
//
// The time limit (Options.Timeout) bounds everything one entry does for one
// change, the second call included; a runaway script is interrupted and the
// runtime is reused for the next change.
//
// A throw, a return of the wrong type, an unknown column, a value that does
// not fit its column and a call past the time limit are *Error values that
// name the entry, the source table and row, the LSN and the JavaScript
// stack. The runtime has no require, file, network or process access; only
// console.log, console.warn and console.error, which write to the logger.
//
// # Values
//
// Values arrive in PostgreSQL's text output and are handed to scripts as:
//
//	NULL                          null
//	int2, int4, oid               number
//	int8                          number, or BigInt beyond ±(2^53-1)
//	numeric                       string ("19.90", "NaN", "Infinity")
//	float4, float8                number (NaN, ±Infinity and -0 kept)
//	bool                          boolean
//	json, jsonb                   the parsed value, as JSON.parse returns it
//	bytea                         Uint8Array
//	date, time, timestamp, ...    the string PostgreSQL printed
//	arrays                        arrays, nested for more dimensions
//	anything else                 the string PostgreSQL printed
//
// and are written back by the type of the written column: integers from
// integer numbers (int8 also from BigInt and decimal strings), numeric from
// strings, numbers and BigInts, floats from numbers, bytea from Uint8Array
// or ArrayBuffer, date and time types from strings or Dates (UTC, with
// milliseconds), json from any JSON-able value, arrays from arrays, and
// every other type from strings.
// A string that holds a lone surrogate (half of a UTF-16 pair, as slicing
// through an emoji leaves) is an error wherever it would be written, inside
// a json value or an array too: UTF-8 text cannot hold it, and writing
// U+FFFD in its place would change the value without a word.
//
// A returned value that is deeply equal to the value handed to the script
// under the same column name (and of a type that maps the same way) is
// written with the original bytes: json keeps its spacing and duplicate
// keys, numeric its scale, int8 every digit. Numbers compare as JavaScript
// sees them: for numeric and int8 a Number equals the value whose nearest
// double it is, so Number("19.90") is 19.90; for floats NaN equals NaN and
// -0 does not equal 0. Inside a json value that did change, a number keeps
// its original literal wherever the original document has a number
// JavaScript cannot tell from it, so large integers survive edits
// elsewhere in the document; NaN and Infinity, which JSON cannot hold, are
// errors rather than null.
package transform
