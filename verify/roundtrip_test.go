package verify_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/cdcbridge/cdcbridge/config"
	"github.com/cdcbridge/cdcbridge/internal/bridgetest"
	"github.com/cdcbridge/cdcbridge/internal/pgtest"
	"github.com/cdcbridge/cdcbridge/transform"
	"github.com/cdcbridge/cdcbridge/verify"
)

func roundTrip(t *testing.T, o verify.Options) (verify.RoundTripReport, string) {
	t.Helper()
	rep, err := verify.RoundTrip(context.Background(), o)
	if err != nil {
		t.Fatalf("round trip: %v", err)
	}
	var b bytes.Buffer
	if err := rep.Write(&b); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s", b.String())
	return rep, b.String()
}

func TestRoundTrip(t *testing.T) {
	p := bridgetest.NewEnv(t, srcDDL, tgtDDL)
	pgtest.MustExec(t, p.Src, `
		INSERT INTO orders VALUES (1, 19.90, 'new', 'a'), (2, 5.00, 'paid', NULL), (3, 1.00, 'shipped', 'c');
		INSERT INTO items VALUES (1, 'x', 1.5, '{a,"b c"}', '{"k": [1, 2]}', '2024-01-01 10:00:00+02')`)
	// Target rows that no source row made: the mirror round trip covers
	// them too.
	pgtest.MustExec(t, p.Tgt, `INSERT INTO v2.orders_v2 VALUES (7, 700, 2, 'only here')`)

	t.Run("lossless", func(t *testing.T) {
		m := p.Mapping("good", shopTables, map[string]string{"orders.js": bridgetest.OrdersJS})
		rep, out := roundTrip(t, verify.Options{Mapping: m})
		if !rep.OK() || len(rep.Tables) != 4 {
			t.Fatalf("a lossless mapping failed:\n%s", out)
		}
		if rep.Tables[0].Rows != 3 || rep.Tables[2].Rows != 1 || rep.Tables[0].Via != "backward(forward(row))" || rep.Tables[2].Via != "forward(backward(row))" {
			t.Errorf("tables: %+v", rep.Tables)
		}
	})

	t.Run("drops a column", func(t *testing.T) {
		lossy := strings.Replace(bridgetest.OrdersJS, "status: NAMES[r.state], note: r.note", "status: NAMES[r.state]", 1)
		m := p.Mapping("lossy", shopTables, map[string]string{"orders.js": lossy})
		rep, out := roundTrip(t, verify.Options{Mapping: m})
		if rep.OK() {
			t.Fatalf("a backward() that drops note passed:\n%s", out)
		}
		src, tgt := rep.Tables[0], rep.Tables[2]
		if src.Side != "source" || src.Table.Name != "orders" || src.Failed != 3 || src.Rows != 3 {
			t.Fatalf("source orders: %+v", src)
		}
		mm := src.Examples[0]
		if mm.Key != "(id='1')" || len(mm.Columns) != 1 || mm.Columns[0].Name != "note" || mm.Columns[0].Want != "'a'" {
			t.Errorf("first mismatch: %+v", mm)
		}
		if tgt.Side != "target" || tgt.Table.Name != "orders_v2" || tgt.Failed != 1 || tgt.Examples[0].Key != "(order_id='7')" {
			t.Errorf("target orders_v2: %+v", tgt)
		}
		if rep.Tables[1].Failed != 0 || rep.Tables[3].Failed != 0 {
			t.Errorf("items failed: %+v", rep.Tables)
		}
		for _, want := range []string{`FAIL source "public"."orders": 3 of 3 rows`, "(id='1')", "note: was 'a', came back nothing",
			`FAIL target "v2"."orders_v2": 1 of 1 rows`, "(order_id='7')"} {
			if !strings.Contains(out, want) {
				t.Errorf("the report lacks %q:\n%s", want, out)
			}
		}
		// Reverse reads the target first; the same rows fail.
		rev, out := roundTrip(t, verify.Options{Mapping: m, Direction: config.Reverse})
		if rev.OK() || rev.Tables[0].Side != "target" || rev.Tables[0].Failed != 1 || rev.Tables[2].Failed != 3 {
			t.Errorf("reverse:\n%s", out)
		}
	})

	t.Run("a transform that throws", func(t *testing.T) {
		throws := strings.Replace(bridgetest.OrdersJS, "function backward(r) {", "function backward(r) {\n  if (r.order_id === 7) throw new Error('no seven');", 1)
		m := p.Mapping("throws", shopTables, map[string]string{"orders.js": throws})
		_, err := verify.RoundTrip(context.Background(), verify.Options{Mapping: m})
		var te *transform.Error
		if !errors.As(err, &te) || !strings.Contains(err.Error(), "no seven") {
			t.Fatalf("want the transform's error, got %v", err)
		}
	})
}
