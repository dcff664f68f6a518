package bridgetest

import (
	"os"
	"runtime/debug"
)

// Digest summarises a query's rows so that large tables compare cheaply.
func Digest(sql string) string {
	return "SELECT count(*), md5(coalesce(string_agg(r::text, ',' ORDER BY r::text), '')) FROM (" + sql + ") r"
}

// BenchTable is the table the benchmarks fill, on both sides.
const BenchTable = `CREATE TABLE items (id bigint PRIMARY KEY, name text, qty int, price numeric(12,2), created timestamptz)`

// TuneGC sets the garbage collector as `cdcbridge run` does (see
// cmd/cdcbridge/gc.go), unless GOGC is set.
func TuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
}
