// Command cdcbridge keeps two PostgreSQL databases with different schemas in
// step during a blue-green release: it tails one side's WAL through logical
// replication, runs each change through the mapping's JavaScript transforms,
// and applies it to the other side. It only parses flags and wires the
// packages together; each subcommand is a thin cmd function over the package
// that does the work:
//
//   - run (main.go, cmdRun): the daemon (package daemon), with the metrics
//     and health endpoints (metrics), the profiler if asked (pprof.go) and
//     the garbage collector tuned for it (gc.go);
//   - check (main.go, cmdCheck): the up-front checks of a direction (check),
//     streaming nothing;
//   - flip (flip.go): hands traffic over to the other direction (flip);
//   - status and cleanup (admin.go, rendered by status.go): where the
//     mapping stands, and dropping what the bridge made (admin);
//   - verify (verify.go): compares the sides key by key, or proves the
//     mapping lossless with --roundtrip (verify);
//   - record and test (fixtures.go): record a WAL fixture from a temporary
//     slot (fixture), and run the transforms over fixtures (mappingtest);
//   - version (version.go): the build (internal/version).
//
// Every command but help and version takes the mapping with -c, and parses
// its flags the same way (parseArgs): help on stdout with exit 0, a usage
// error as one line on stderr with exit 2. The exit code (exit.go) is 0
// when all is well, 1 on a finding, a runtime failure or a database that
// cannot be reached (on every command), and 2 on a usage or configuration
// error; "cdcbridge help [command]" prints the usage. check, status and
// verify print one JSON document with --json. run logs in the chosen
// format from its first line to its last: a start-up record, a record for
// each signal (signals.go), and the error that stops it (stoplog.go).
package main
