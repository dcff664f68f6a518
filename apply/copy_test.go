package apply

import (
	"context"
	"fmt"
	"testing"

	"github.com/cdcbridge/cdcbridge/change"
)

func TestAppendCopyValue(t *testing.T) {
	for _, c := range []struct {
		in   []byte
		want string
	}{
		{nil, `\N`},
		{[]byte{}, ``},
		{[]byte(`plain`), `plain`},
		{[]byte("a\tb\nc\rd\\e"), `a\tb\nc\rd\\e`},
		{[]byte(`\N`), `\\N`},
		{[]byte("é\x00x"), "é\x00x"},
	} {
		if got := string(appendCopyValue([]byte("|"), c.in)); got != "|"+c.want {
			t.Errorf("appendCopyValue(%q) = %q, want %q", c.in, got, "|"+c.want)
		}
	}
}

// Runs of plain inserts go by COPY from copyMin rows on; upserts, smaller
// runs and tables with rules that fire for the bridge's writes go as
// INSERTs.
func TestWhichRunsCopy(t *testing.T) {
	h := newHarness(t, 0x1000, func(c *Config) { c.MaxRows = 1000; c.Upserts = &TableSet{} })
	rules := h.a.cfg.Catalog.Table(items)
	for _, c := range []struct {
		name   string
		rows   int
		upsert bool
		rules  bool
		want   itemKind
	}{
		{"plain inserts", copyMin, false, false, itemCopy},
		{"too few", copyMin - 1, false, false, itemRows},
		{"upserts", copyMin, true, false, itemRows},
		{"a table with rules", copyMin, false, true, itemRows},
	} {
		b := newBuilder()
		saved := rules.FiresRules
		rules.FiresRules = c.rules
		b.flushRun(&run{op: change.Insert, table: items, info: rules, cols: []string{"a", "b"}, keyCols: []string{"a", "b"},
			upsert: c.upsert, sig: fmt.Sprint(c.name), n: c.rows})
		rules.FiresRules = saved
		if len(b.items) != 1 || b.items[0].kind != c.want {
			t.Errorf("%s: queued %v, want one %s", c.name, b.items, c.want)
		}
	}
}

// What goes by COPY lands exactly as what goes by INSERT: every value
// escaping could spoil, NULL against the empty string, identity columns
// GENERATED ALWAYS, modifiers applied (char(n), numeric(p,s)), partitions.
func TestCopyLandsAsInsertDoes(t *testing.T) {
	values := []change.Value{v(""), null, v(`back\slash`), v("tab\there"), v("new\nline"), v("cr\rhere"), v(`\N`), v("é ü 😀"), v(`{"a":"\"q\" \\ \n"}`)}
	oc := []string{"Id", "select", "code", "amount", "qty", "big"}
	var outs []change.Out
	for i := 1; i <= 2*copyMin; i++ {
		val := values[i%len(values)]
		outs = append(outs,
			ins(order, oc, v(fmt.Sprint(i)), val, v("ab"), v(fmt.Sprintf("%d.125", i)), v(fmt.Sprint(i)), val),
			ins(bag, []string{"n", "j", "p", "c"}, v(fmt.Sprint(i)), v(`{"k": "v\\n"}`), v("(1,2)"), v("x")),
			ins(parted, []string{"a", "b"}, v(fmt.Sprint(1+i%2)), val),
		)
	}
	// The same rows, once in runs of copyMin rows and more (COPY), once in
	// runs of one table's rows each (INSERT over unnest).
	digest := func(grouped bool) string {
		h := newHarness(t, 0x1000, func(c *Config) { c.MaxRows = 10000; c.Upserts = &TableSet{} })
		send := outs
		if grouped {
			send = nil
			for _, tbl := range []change.Table{order, bag, parted} {
				for _, o := range outs {
					if o.Table == tbl {
						send = append(send, o)
					}
				}
			}
		}
		h.waitFlushed(h.sendTxn(0x10000, send...))
		// The origin is the cluster's: the next harness takes it.
		close(h.in)
		if err := <-h.done; err != nil {
			t.Fatal(err)
		}
		h.conn.Close(context.Background())
		return h.rows(`SELECT "Id", "select", code, amount, qty, total, big FROM "Shop Schema"."Order"`) + "\n" +
			h.rows(`SELECT n, j::text, p::text, c, id FROM bag`) + "\n" + h.rows(`SELECT tableoid::regclass, * FROM parted`)
	}
	byCopy, byInsert := digest(true), digest(false)
	if byCopy != byInsert {
		t.Fatalf("COPY and INSERT differ:\n copy   %s\n insert %s", byCopy, byInsert)
	}
	if byCopy == "\n\n" {
		t.Fatal("nothing was applied")
	}
}
