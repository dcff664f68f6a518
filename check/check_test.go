package check_test

import (
	"context"
	"strings"
	"testing"

	"github.com/cdcbridge/cdcbridge/check"
	"github.com/cdcbridge/cdcbridge/config"
	"github.com/cdcbridge/cdcbridge/internal/bridgetest"
)

func TestMain(m *testing.M) { bridgetest.Main(m) }

// TestMissingTableHint: a table with capitals or spaces written unquoted in
// the mapping folds to lower case and is not found; check says how to
// write it.
func TestMissingTableHint(t *testing.T) {
	e := bridgetest.NewEnv(t, `CREATE TABLE "Order Items" (id int PRIMARY KEY)`, `CREATE TABLE "Order Items" (id int PRIMARY KEY)`)
	m := e.Mapping("hint", "  - source: public.Order Items\n    target: public.Order Items\n", nil)
	var got []string
	for _, f := range check.Check(context.Background(), m.View(config.Forward)) {
		if !f.OK && strings.Contains(f.Fix, `did you mean public."Order Items"?`) {
			got = append(got, f.Where)
		}
	}
	if len(got) != 2 {
		t.Fatalf("want the hint for the side read and the side written, got it for %q", got)
	}
	m = e.Mapping("hint", "  - source: public.\"Order Items\"\n    target: public.\"Order Items\"\n", nil)
	for _, f := range check.Check(context.Background(), m.View(config.Forward)) {
		if !f.OK {
			t.Errorf("quoted as the hint says, check still fails: %s", f)
		}
	}
}
