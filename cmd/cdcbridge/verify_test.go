package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/cdcbridge/cdcbridge/internal/bridgetest"
	"github.com/cdcbridge/cdcbridge/internal/pgtest"
)

// runVerify calls the verify command directly, as Main would.
func runVerify(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := cmdVerify(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestVerifyCommand(t *testing.T) {
	e := bridgetest.NewEnv(t, `
		CREATE TABLE orders (id bigint PRIMARY KEY, amount numeric(12,2), status text);
		INSERT INTO orders VALUES (1, 19.90, 'new'), (2, 5.00, 'paid');`, `
		CREATE TABLE orders_v2 (order_id bigint PRIMARY KEY, amount_cents bigint, state smallint);
		INSERT INTO orders_v2 VALUES (1, 1990, 0), (2, 500, 1);`)
	// Not bridgetest.OrdersJS: these tables have no note, which its backward would name.
	e.WriteFile("orders.js", `
const STATES = { new: 0, paid: 1 }, NAMES = ["new", "paid"];
function forward(r) { return { order_id: r.id, amount_cents: Math.round(Number(r.amount) * 100), state: STATES[r.status] }; }
function backward(r) { return { id: r.order_id, amount: (r.amount_cents / 100).toFixed(2), status: NAMES[r.state] }; }
`)
	e.WriteFile("lossy.js", `
function forward(r) { return { order_id: r.id, amount_cents: Math.round(Number(r.amount) * 100) }; }
function backward(r) { return { id: r.order_id, amount: (r.amount_cents / 100).toFixed(2) }; }
`)
	good := e.MappingFile("good", ordersTables)
	lossy := e.MappingFile("lossy", "tables:\n  - source: orders\n    target: orders_v2\n    transform: lossy.js\n")
	missing := e.MappingFile("missing", "tables:\n  - source: orders\n    target: nosuch\n    transform: orders.js\n")

	cases := []struct {
		name string
		args []string
		code int
		want []string
	}{
		{"equal", []string{"-c", good, "--catch-up", "0"}, 0, []string{`ok   target "public"."orders_v2": equal`, "are equal"}},
		{"equal reverse", []string{"-c", good, "--reverse", "--catch-up", "0"}, 0, []string{`ok   source "public"."orders": equal`}},
		{"roundtrip", []string{"-c", good, "--roundtrip"}, 0, []string{"backward(forward(row)) == row for all 2 rows", "lossless"}},
		{"lossy roundtrip", []string{"--roundtrip", "-c", lossy}, 1, []string{`FAIL source "public"."orders": 2 of 2 rows`, "(id='1')", "status: was 'new', came back nothing"}},
		{"missing table", []string{"-c", missing}, 2, []string{`"public"."nosuch"`, "target"}},
		{"no mapping", []string{"--roundtrip"}, 2, []string{"-c mapping.yaml"}},
		{"bad flag", []string{"-c", good, "--frobnicate"}, 2, []string{"frobnicate"}},
		{"negative catch-up", []string{"-c", good, "--catch-up", "-1s"}, 2, []string{"--catch-up"}},
		{"help", []string{"--help"}, 0, []string{"Usage: cdcbridge verify", "--roundtrip", "--catch-up", "Exit 0"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, out, errs := runVerify(c.args...)
			if code != c.code {
				t.Fatalf("exit %d, want %d\n%s%s", code, c.code, out, errs)
			}
			for _, w := range c.want {
				if !strings.Contains(out+errs, w) {
					t.Errorf("output lacks %q:\n%s%s", w, out, errs)
				}
			}
			noCanary(t, out, errs)
		})
	}

	// --json: one document on stdout, the same exit codes.
	verifyJSON := func(t *testing.T, want int, args ...string) map[string]any {
		t.Helper()
		code, out, errs := runVerify(append(args, "--json")...)
		var doc map[string]any
		if err := json.Unmarshal([]byte(out), &doc); err != nil || code != want {
			t.Fatalf("verify %q --json: exit %d, want %d (%v)\n%s%s", args, code, want, err, out, errs)
		}
		noCanary(t, out, errs)
		return doc
	}
	t.Run("json equal", func(t *testing.T) {
		doc := verifyJSON(t, 0, "-c", good, "--catch-up", "0")
		tables, _ := doc["tables"].([]any)
		if doc["mode"] != "compare" || doc["equal"] != true || doc["direction"] != "forward" || len(tables) != 1 {
			t.Fatalf("%v", doc)
		}
		if tb := tables[0].(map[string]any); tb["table"] != "public.orders_v2" || tb["compared"] != 2.0 || tb["rows"] != 2.0 || tb["equal"] != true {
			t.Fatalf("%v", tb)
		}
	})
	t.Run("json lossy roundtrip", func(t *testing.T) {
		doc := verifyJSON(t, 1, "-c", lossy, "--roundtrip")
		tb := doc["tables"].([]any)[0].(map[string]any)
		ex := tb["examples"].([]any)[0].(map[string]any)
		col := ex["columns"].([]any)[0].(map[string]any)
		if doc["mode"] != "roundtrip" || doc["ok"] != false || tb["failed"] != 2.0 || ex["key"] != "(id='1')" || col["column"] != "status" || col["want"] != "'new'" {
			t.Fatalf("%v", doc)
		}
	})
	t.Run("json missing table", func(t *testing.T) {
		doc := verifyJSON(t, 2, "-c", missing)
		if doc["ok"] != false || !strings.Contains(fmt.Sprint(doc["error"]), "nosuch") {
			t.Fatalf("%v", doc)
		}
	})

	// A difference: exit 1, naming the row and the column.
	pgtest.MustExec(t, e.Tgt, `UPDATE orders_v2 SET amount_cents = 1999 WHERE order_id = 1`)
	code, out, errs := runVerify("-c", good, "--catch-up", "0")
	if code != 1 || !strings.Contains(out, "different (order_id='1')") || !strings.Contains(out, "amount_cents: the source gives '1990', the target has '1999'") {
		t.Fatalf("exit %d, want 1 naming the row\n%s%s", code, out, errs)
	}
	noCanary(t, out, errs)
	doc := verifyJSON(t, 1, "-c", good, "--catch-up", "0")
	tb := doc["tables"].([]any)[0].(map[string]any)
	ex := tb["examples"].([]any)[0].(map[string]any)
	col := ex["columns"].([]any)[0].(map[string]any)
	if doc["equal"] != false || tb["different"] != 1.0 || ex["kind"] != "different" || ex["key"] != "(order_id='1')" ||
		col["column"] != "amount_cents" || col["want"] != "'1990'" || col["got"] != "'1999'" {
		t.Fatalf("verify --json of a difference: %v", doc)
	}

	// A server that is not there: exit 1 (as on every command), the side
	// named, no password.
	u, err := url.Parse(e.TgtDSN)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = "127.0.0.1:1"
	t.Setenv("TEST_TGT_DSN", u.String())
	down := e.WriteFile("down.yaml", "name: down\nsource:\n  dsn: ${TEST_SRC_DSN}\ntarget:\n  dsn: ${TEST_TGT_DSN}\ntables:\n  - source: orders\n    target: orders_v2\n    transform: orders.js\n")
	code, out, errs = runVerify("-c", down)
	if code != 1 || !strings.Contains(errs, "target") {
		t.Fatalf("an unreachable target: exit %d\n%s%s", code, out, errs)
	}
	noCanary(t, out, errs)
}
