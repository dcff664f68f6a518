package verify_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/cdcbridge/cdcbridge/internal/bridgetest"
	"github.com/cdcbridge/cdcbridge/internal/pgtest"
	"github.com/cdcbridge/cdcbridge/verify"
)

// progressRecords returns the progress records of a JSON log with message
// msg, for table.
func progressRecords(t *testing.T, logs, msg, table string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("not JSON: %s", line)
		}
		if rec["msg"] == msg && rec["table"] == table {
			out = append(out, rec)
		}
	}
	return out
}

// TestProgress: reading a table logs its progress at each interval (made
// tiny here, and batches small, so that every batch is past it): rows that
// grow, the percent of pg_class's estimate, the rate; in a comparison, in
// the search for extra rows and in round trips. A table never analyzed
// has no estimate, and its records say rows and rate only.
func TestProgress(t *testing.T) {
	p := bridgetest.NewEnv(t, srcDDL, tgtDDL)
	m := p.Mapping("prog", shopTables, map[string]string{"orders.js": bridgetest.OrdersJS})
	pgtest.MustExec(t, p.Src, `INSERT INTO orders SELECT g, g, 'new', NULL FROM generate_series(1, 100) g; ANALYZE orders`)
	pgtest.MustExec(t, p.Tgt, `INSERT INTO v2.orders_v2 SELECT g, g * 100, 0, NULL FROM generate_series(1, 100) g`)
	var logs bridgetest.LogSink
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	o := verify.Options{Mapping: m, CatchUp: -1, BatchSize: 30, ProgressEvery: time.Nanosecond, Logger: log}
	rep, err := verify.Run(context.Background(), o)
	if err != nil || !rep.Equal() {
		t.Fatalf("verify: %v, equal %v", err, rep.Equal())
	}
	recs := progressRecords(t, logs.String(), "comparing", `"public"."orders"`)
	if len(recs) < 2 {
		t.Fatalf("want a progress record per batch of orders (4), got %d:\n%s", len(recs), logs.String())
	}
	var last float64
	for _, r := range recs {
		rows, _ := r["rows"].(float64)
		if rows <= last || r["side"] != "source" || r["estimated_rows"] != 100.0 || r["rows_per_second"] == nil || r["percent"] != rows {
			t.Errorf("progress record: %v (rows before %v)", r, last)
		}
		last = rows
	}
	// The target's table was never analyzed: no estimate, no percent.
	extra := progressRecords(t, logs.String(), "looking for extra rows", `"v2"."orders_v2"`)
	if len(extra) < 2 || extra[0]["side"] != "target" || extra[0]["percent"] != nil || extra[0]["rows"] != 30.0 {
		t.Fatalf("progress of the search for extra rows: %v\n%s", extra, logs.String())
	}

	// Round trips, and the interval off.
	logs = bridgetest.LogSink{}
	o.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
	if _, err := verify.RoundTrip(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	if n := len(progressRecords(t, logs.String(), "checking round trips", `"public"."orders"`)); n < 2 {
		t.Fatalf("round trips: %d progress records\n%s", n, logs.String())
	}
	logs = bridgetest.LogSink{}
	o.Logger, o.ProgressEvery = slog.New(slog.NewJSONHandler(&logs, nil)), -1
	if _, err := verify.Run(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(logs.String(), `"rows_per_second"`) {
		t.Fatalf("progress logged with ProgressEvery < 0:\n%s", logs.String())
	}
}
