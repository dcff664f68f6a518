package change

import "testing"

func TestParseTable(t *testing.T) {
	cases := []struct {
		in   string
		want Table
		err  bool
	}{
		{"orders", Table{"public", "orders"}, false},
		{"Shop.Orders", Table{"shop", "orders"}, false},
		{`"My Schema"."Order.Items"`, Table{"My Schema", "Order.Items"}, false},
		{`public."select"`, Table{"public", "select"}, false},
		{`"a""b".c`, Table{`a"b`, "c"}, false},
		{`"ünï".tâble`, Table{"ünï", "tâble"}, false},
		{`Ünï.Tâble`, Table{"Ünï", "tâble"}, false},
		{"a.b.c", Table{}, true},
		{`"open.x`, Table{}, true},
		{"", Table{}, true},
		{"a.", Table{}, true},
	}
	for _, c := range cases {
		got, err := ParseTable(c.in)
		if (err != nil) != c.err {
			t.Fatalf("ParseTable(%q) error = %v, want error %v", c.in, err, c.err)
		}
		if got != c.want {
			t.Fatalf("ParseTable(%q) = %+v, want %+v", c.in, got, c.want)
		}
	}
}

func TestTableString(t *testing.T) {
	if got := (Table{"My Schema", `a"b`}).String(); got != `"My Schema"."a""b"` {
		t.Fatalf("got %s", got)
	}
}

func TestQuoteLiteral(t *testing.T) {
	cases := map[string]string{
		"plain": "'plain'", "a'b": "'a''b'", "x\ny": `E'x\ny'`, `back\slash`: `E'back\\slash'`,
		"t\tq'": `E't\tq'''`, "bell\x07": `E'bell\x07'`, "ünï": "'ünï'", "": "''",
	}
	for in, want := range cases {
		if got := QuoteLiteral(in); got != want {
			t.Errorf("QuoteLiteral(%q) = %s, want %s", in, got, want)
		}
	}
}
