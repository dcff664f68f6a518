#!/bin/sh
# Regenerates the recorded WAL fixtures in testdata/fixtures from the SQL next
# to them: starts throwaway PostgreSQL clusters (PG_BIN names the PostgreSQL 15
# bin directory, default /usr/lib/postgresql/15/bin), creates schema.sql in a
# source and a target database, and records each <scenario>.sql into
# <scenario>.jsonl (big_txn.jsonl.gz) with the code behind `cdcbridge record`.
# Then the fixture tests replay the new files, and the golden files beside
# them (<scenario>.fixture.golden: `cdcbridge test` output) are rewritten;
# review their diff before committing it.
set -eu
cd "$(dirname "$0")/.."
CDCBRIDGE_RECORD_FIXTURES=1 go test ./fixture -run '^TestRecordFixtures$' -count=1 -v "$@"
go test ./fixture -count=1
go test ./mappingtest -run '^TestProjectFixtures$' -count=1 -update
ls -l testdata/fixtures
