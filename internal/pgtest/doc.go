// Package pgtest is the PostgreSQL half of the test harness: throwaway
// clusters for integration tests and fresh databases in them (Pair for a
// source and a target), helpers that fail the test instead of returning an
// error (Connect, MustExec, Query), a Buffer for captured logs, and the one
// condition wait of the tests (Until, WaitFor): tests wait on an observed
// state, never on a fixed sleep.
//
// A test package calls Main from its TestMain; tests then ask for a cluster by
// name (Source, Target, or any other) and a fresh database in it. Clusters are
// started once per package on first use, with wal_level=logical on a free
// loopback port, and removed when the package's tests end. When the tests run
// as root the server runs as the unprivileged user "nobody", because initdb
// refuses root.
//
// Every cluster requires a password over TCP, and that password is Canary:
// tests can check that it never leaks into logs or errors.
//
// A missing PostgreSQL installation skips the test locally and fails it in CI
// (CI=true), so nothing passes by skipping.
package pgtest
