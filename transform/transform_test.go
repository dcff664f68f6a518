package transform

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/cdcbridge/cdcbridge/catalog"
	"github.com/cdcbridge/cdcbridge/change"
)

// The schemas of the design's example: orders on the old slice,
// orders_v2 on the new one.
func ordersTables() (orders, v2 *catalog.Table) {
	orders = table("public", "orders", []string{"id"},
		col("id", pgtype.Int8OID), col("amount", pgtype.NumericOID), col("status", pgtype.TextOID),
		col("doc", pgtype.JSONOID), col("bio", pgtype.TextOID), col("img", pgtype.ByteaOID))
	total := col("total", pgtype.NumericOID)
	total.Generated = true
	v2 = table("public", "orders_v2", []string{"id"},
		col("id", pgtype.Int8OID), col("amount_cents", pgtype.Int8OID), col("state", pgtype.Int2OID),
		col("doc", pgtype.JSONOID), col("bio", pgtype.TextOID), col("img", pgtype.ByteaOID), total)
	return orders, v2
}

const ordersJS = `// orders <-> orders_v2
const STATES = { new: 0, paid: 1, shipped: 2 };
const NAMES = ["new", "paid", "shipped"];
function forward(row, change) {
  return { id: row.id, amount_cents: Math.round(Number(row.amount) * 100), state: STATES[row.status] };
}
function backward(row, change) {
  return { id: row.id, amount: (row.amount_cents / 100).toFixed(2), status: NAMES[row.state] };
}
`

// mapJS maps one change of orders through src (a forward function) to
// orders_v2.
func ordersMapper(t *testing.T, src string) (*Mapper, *change.Relation) {
	t.Helper()
	orders, v2 := ordersTables()
	path := script(t, "orders.js", src)
	m := newMapper(t, []Spec{{Entry: "tables[1] (public.orders -> public.orders_v2)", Read: orders.Name, Write: v2.Name, Script: path}},
		newCatalog(orders), newCatalog(v2))
	return m, relation(orders, 16384, "id")
}

var orderRow = row("42", "19.90", "paid", `{"n": 12345678901234567890, "a": 1}`, "bio", `\x00ff10`)

func TestNumericToCentsAndBack(t *testing.T) {
	orders, v2 := ordersTables()
	path := script(t, "orders.js", ordersJS)
	fwd := newMapper(t, []Spec{{Entry: "e", Read: orders.Name, Write: v2.Name, Script: path}}, newCatalog(orders), newCatalog(v2))
	outs := mustMap(t, fwd, insert(relation(orders, 1, "id"), orderRow))
	if got := vals(outs[0]); got != "id=42 amount_cents=1990 state=1" {
		t.Fatalf("forward wrote %s", got)
	}

	back, err := New([]Spec{{Entry: "e", Read: v2.Name, Write: orders.Name, Script: path}},
		Options{Func: "backward", Read: newCatalog(v2), Write: newCatalog(orders)})
	if err != nil {
		t.Fatal(err)
	}
	outs = mustMap(t, back, insert(relation(v2, 2, "id"), row("42", "1990", "1", nil, "bio", `\x`)))
	if got := vals(outs[0]); got != "id=42 amount=19.90 status=paid" {
		t.Fatalf("backward wrote %s", got)
	}
}

func TestUnchangedKeepsOriginalBytes(t *testing.T) {
	cases := []struct {
		name, body string
		col, want  string
	}{
		{"Number of a numeric", "return {id: r.id, amount: Number(r.amount)}", "amount", "19.90"},
		{"Number of a big int8", "return {id: Number(r.id)}", "id", "9007199254740993"},
		{"BigInt of an int8", "return {id: BigInt(r.id)}", "id", "9007199254740993"},
		{"json with mutated copy equal", "const d = JSON.parse(JSON.stringify(r.doc)); return {id: r.id, doc: d}", "doc", `{"n": 12345678901234567890, "a":  1, "a": 1}`},
		{"json edit keeps the 20 digits", "r.doc.a = 2; return r", "doc", `{"n":12345678901234567890,"a":2}`},
		{"json spread edit keeps the 20 digits", "return {...r, doc: {...r.doc, b: [r.doc.n]}}", "doc", `{"n":12345678901234567890,"a":1,"b":[12345678901234567000]}`},
		{"json number changed", "r.doc.n = 5; return r", "doc", `{"n":5,"a":1}`},
		{"Uint8Array edited", "r.img[0] = 7; return r", "img", `\x07ff10`},
		{"Uint8Array edited back", "r.img[0] = 7; r.img[0] = 0; return r", "img", `\x00ff10`},
		{"numeric edited", "return {...r, amount: '19.9'}", "amount", "19.9"},
	}
	src := table("public", "s", []string{"id"}, col("id", pgtype.Int8OID), col("amount", pgtype.NumericOID),
		col("doc", pgtype.JSONOID), col("img", pgtype.ByteaOID))
	in := row("9007199254740993", "19.90", `{"n": 12345678901234567890, "a":  1, "a": 1}`, `\x00ff10`)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := script(t, "t.js", "function forward(r) { "+tc.body+" }\nfunction backward(r) { return r }\n")
			cat := newCatalog(src)
			m := newMapper(t, []Spec{{Entry: "e", Read: src.Name, Write: src.Name, Script: path}}, cat, cat)
			outs := mustMap(t, m, insert(relation(src, 1, "id"), in))
			got, _ := outs[0].Lookup(tc.col)
			if got.String() != tc.want {
				t.Errorf("%s wrote %s, want %s", tc.col, got, tc.want)
			}
		})
	}
}

func TestJSONBEditKeepsScale(t *testing.T) {
	src := table("public", "s", []string{"id"}, col("id", pgtype.Int4OID), col("doc", pgtype.JSONBOID))
	cat := newCatalog(src)
	path := script(t, "t.js", "function forward(r) { r.doc.q = 2; return r }\nfunction backward(r) { return r }\n")
	m := newMapper(t, []Spec{{Entry: "e", Read: src.Name, Write: src.Name, Script: path}}, cat, cat)
	outs := mustMap(t, m, insert(relation(src, 1, "id"), row("1", `{"price": 19.90, "q": 1, "l": [1.0, 2.50]}`)))
	if got, _ := outs[0].Lookup("doc"); got.String() != `{"price":19.90,"q":2,"l":[1.0,2.50]}` {
		t.Errorf("doc = %s", got)
	}
}

func TestPartialRowsAndUndefined(t *testing.T) {
	m, rel := ordersMapper(t, `
function forward(r, c) {
  if (c.op === "insert") return {id: r.id, bio: r.bio, doc: undefined};
  if (!("bio" in r) && r.bio !== undefined) throw new Error("absent column is a property");
  return {id: r.id, bio: r.bio, state: r.status === "clear" ? null : undefined};
}
function backward(r) { return r }
`)
	outs := mustMap(t, m, insert(rel, orderRow))
	if got := vals(outs[0]); got != "id=42 bio=bio" {
		t.Errorf("insert of a partial row wrote %s", got)
	}
	// bio unchanged and TOASTed: pgoutput did not send it.
	upd := row("42", "19.90", "paid", `{}`, absent, `\x`)
	outs = mustMap(t, m, update(rel, nil, upd, false))
	if got := vals(outs[0]); got != "id=42" || keys(outs[0]) != "id=42" {
		t.Errorf("update with an unchanged TOASTed bio wrote %s key %s; want only id", got, keys(outs[0]))
	}
	upd = row("42", "19.90", "clear", `{}`, absent, `\x`)
	outs = mustMap(t, m, update(rel, nil, upd, false))
	if got := vals(outs[0]); got != "id=42 state=NULL" {
		t.Errorf("null wrote %s, want state=NULL", got)
	}
}

func TestDrop(t *testing.T) {
	m, rel := ordersMapper(t, "function forward(r) { return r.status === 'paid' ? null : undefined }\nfunction backward(r) { return r }")
	if outs := mustMap(t, m, insert(rel, orderRow)); len(outs) != 0 {
		t.Errorf("a dropped change gave %+v", outs)
	}
}

func TestGeneratedColumnsAreLeftOut(t *testing.T) {
	m, rel := ordersMapper(t, "function forward(r) { return {id: r.id, total: 5} }\nfunction backward(r) { return r }")
	outs := mustMap(t, m, insert(rel, orderRow))
	if got := vals(outs[0]); got != "id=42" {
		t.Errorf("wrote %s, want the generated column left out", got)
	}
}

func TestChangeObject(t *testing.T) {
	m, rel := ordersMapper(t, `
function forward(r, c) {
  return {id: r.id, bio: [c.op, c.table, c.old === null ? "null" : c.old.id + "/" + Object.keys(c.old).join("+"), c.lsn, c.commitTime,
    new Date(c.commitTime).getTime()].join(" ")};
}
function backward(r) { return r }`)
	outs := mustMap(t, m, insert(rel, orderRow))
	want := "insert public.orders null 0/16B3748 2024-02-29T12:34:56.123456Z 1709210096123"
	if got, _ := outs[0].Lookup("bio"); got.String() != want {
		t.Errorf("change object: %s\nwant %s", got, want)
	}
	old := row("41", nil, nil, nil, nil, nil)
	outs = mustMap(t, m, update(rel, old, orderRow, true))
	if got, _ := outs[1-1].Lookup("bio"); !strings.HasPrefix(got.String(), "update public.orders 41/id ") {
		t.Errorf("change object of an update with a key-only old image: %s", got)
	}
}

func TestSplit(t *testing.T) {
	users := table("public", "users", []string{"id"}, col("id", pgtype.Int4OID), col("name", pgtype.TextOID), col("street", pgtype.TextOID))
	names := table("public", "names", []string{"id"}, col("id", pgtype.Int4OID), col("name", pgtype.TextOID), col("street", pgtype.TextOID))
	addrs := table("app", "addresses", []string{"user_id"}, col("user_id", pgtype.Int4OID), col("street", pgtype.TextOID))
	path := script(t, "addr.js", "function forward(r) { return {user_id: r.id, street: r.street} }\nfunction backward(r) { return r }")
	m := newMapper(t, []Spec{
		{Entry: "a", Read: users.Name, Write: names.Name},
		{Entry: "b", Read: users.Name, Write: addrs.Name, Script: path},
	}, newCatalog(users), newCatalog(names, addrs))
	outs := mustMap(t, m, insert(relation(users, 1, "id"), row("7", "Ann", "Main St")))
	if len(outs) != 2 || outs[0].Table != names.Name || outs[1].Table != addrs.Name ||
		vals(outs[0]) != "id=7 name=Ann street=Main St" || vals(outs[1]) != "user_id=7 street=Main St" ||
		outs[0].Entry != "a" || outs[1].Entry != "b" || outs[1].Source != users.Name || outs[1].LSN != testLSN {
		t.Fatalf("split gave %+v", outs)
	}
	outs = mustMap(t, m, del(relation(users, 1, "id"), row("7", nil, nil), true))
	if len(outs) != 2 || keys(outs[0]) != "id=7" || keys(outs[1]) != "user_id=7" {
		t.Fatalf("split delete gave %+v", outs)
	}
}

func TestFullControl(t *testing.T) {
	users := table("public", "users", []string{"id"}, col("id", pgtype.Int4OID), col("name", pgtype.TextOID), col("street", pgtype.TextOID))
	people := table("public", "people", []string{"id"}, col("id", pgtype.Int4OID), col("name", pgtype.TextOID), col("street", pgtype.TextOID))
	addrs := table("app", "addresses", []string{"user_id"}, col("user_id", pgtype.Int4OID), col("street", pgtype.TextOID))
	other := table("other", "row", nil, col("op", pgtype.TextOID), col("row", pgtype.JSONOID))
	path := script(t, "fc.js", `
function forward(r, c) {
  switch (r.name) {
  case "split":
    return [{table: "public.people", row: {id: r.id, name: r.name}}, null, {table: "addresses", row: {user_id: r.id, street: r.street}}];
  case "to update":
    // the reverse of a split: a delete clears columns instead
    return {op: "update", row: {id: r.id, street: null}};
  case "rekey":
    return {op: "update", row: {id: r.id + 100, name: "x"}, old: {id: r.id}};
  case "quoted":
    return {table: '"other"."row"', row: {op: "x", row: {a: 1}}};
  case "plain":
    return {op: "insert", row: {id: 1}, extra: 1};
  }
}
function backward(r) { return r }`)
	m := newMapper(t, []Spec{{Entry: "e", Read: users.Name, Write: people.Name, Script: path}}, newCatalog(users), newCatalog(people, addrs, other))
	rel := relation(users, 1, "id")

	outs := mustMap(t, m, insert(rel, row("1", "split", "Main St")))
	if len(outs) != 2 || outs[0].Table != people.Name || outs[1].Table != addrs.Name || vals(outs[1]) != "user_id=1 street=Main St" {
		t.Fatalf("split with full control gave %+v", outs)
	}
	outs = mustMap(t, m, del(rel, row("2", "to update", "x"), false))
	if len(outs) != 1 || outs[0].Op != change.Update || vals(outs[0]) != "id=2 street=NULL" || keys(outs[0]) != "id=2" {
		t.Fatalf("delete turned into update gave %+v", outs)
	}
	outs = mustMap(t, m, update(rel, nil, row("3", "rekey", "x"), false))
	if len(outs) != 1 || vals(outs[0]) != "id=103 name=x" || keys(outs[0]) != "id=3" {
		t.Fatalf("explicit old gave %+v", outs)
	}
	outs = mustMap(t, m, insert(rel, row("4", "quoted", "x")))
	if len(outs) != 1 || outs[0].Table != other.Name || vals(outs[0]) != `op=x row={"a":1}` {
		t.Fatalf("quoted table name gave %+v", outs)
	}
	// Extra keys make it a row, and "extra" is then an unknown column.
	e := mapErrOf(t, m, insert(rel, row("5", "plain", "x")))
	if e.Column != "op" {
		t.Errorf("an object with keys beyond op/table/row/old was not taken as a row: %v", e)
	}
}

func TestFullControlErrors(t *testing.T) {
	users := table("public", "users", []string{"id"}, col("id", pgtype.Int4OID), col("name", pgtype.TextOID))
	cases := map[string]string{
		`return {table: "nope", row: {id: 1}}`:          `returned table "nope", which is not a table of the database written to`,
		`return {op: "truncate", row: {id: 1}}`:         `returned op string "truncate"`,
		`return {op: 5, row: {id: 1}}`:                  `returned op number 5`,
		`return [{row: {id: 1}}, 7]`:                    `element [1] is number 7`,
		`return [{row: {id: 1, nope: 2}}]`:              `in element [0]: `,
		`return {op: "delete", row: {name: "x"}}`:       `no value for this key column`,
		`return {op: "update", row: {id: null}}`:        `null for this key column`,
		`return {op: "update", row: {id: 1}, old: 5}`:   `returned old number 5`,
		`return {op: "update", row: {id: 1}, old: {}}`:  `in old: the returned row has no value`,
		`return {table: 5, row: {id: 1}}`:               `returned table number 5`,
		`return {op: "insert", table: "users", row: 1}`: `column op: not a column`,
	}
	for body, want := range cases {
		path := script(t, "fc.js", "function forward(r) { "+body+" }\nfunction backward(r) { return r }")
		m := newMapper(t, []Spec{{Entry: "e", Read: users.Name, Write: users.Name, Script: path}}, newCatalog(users), newCatalog(users))
		e := mapErrOf(t, m, insert(relation(users, 1, "id"), row("1", "x")))
		if !strings.Contains(e.Error(), want) {
			t.Errorf("%s: error %q, want %q", body, e, want)
		}
	}
}

func TestKeyChange(t *testing.T) {
	m, rel := ordersMapper(t, ordersJS)
	// REPLICA IDENTITY DEFAULT: the key changed, the old image holds only
	// the key. The second call sees {id: 41} and computes NaN for the
	// other columns, which do not matter for a key.
	old := row("41", nil, nil, nil, nil, nil)
	outs := mustMap(t, m, update(rel, old, orderRow, true))
	if len(outs) != 1 || keys(outs[0]) != "id=41" || vals(outs[0]) != "id=42 amount_cents=1990 state=1" {
		t.Fatalf("key change gave %+v", outs)
	}
	// Without a key change the key is the returned row's.
	outs = mustMap(t, m, update(rel, nil, orderRow, false))
	if keys(outs[0]) != "id=42" {
		t.Fatalf("update key = %s", keys(outs[0]))
	}
	// REPLICA IDENTITY FULL, key unchanged: the old image yields the same key.
	outs = mustMap(t, m, update(rel, orderRow, orderRow, false))
	if keys(outs[0]) != "id=42" {
		t.Fatalf("update key with a full old image = %s", keys(outs[0]))
	}
}

func TestDerivedKeyChange(t *testing.T) {
	src := table("public", "s", []string{"id"}, col("id", pgtype.Int4OID), col("code", pgtype.TextOID), col("v", pgtype.TextOID))
	dst := table("public", "d", []string{"code"}, col("code", pgtype.TextOID), col("v", pgtype.TextOID))
	path := script(t, "k.js", "function forward(r) { return {code: r.code.toUpperCase(), v: r.v} }\nfunction backward(r) { return r }")
	m := newMapper(t, []Spec{{Entry: "e", Read: src.Name, Write: dst.Name, Script: path}}, newCatalog(src), newCatalog(dst))
	rel := relation(src, 1, "id", "code", "v") // REPLICA IDENTITY FULL
	outs := mustMap(t, m, update(rel, row("1", "ab", "x"), row("1", "cd", "y"), false))
	if keys(outs[0]) != "code=AB" || vals(outs[0]) != "code=CD v=y" {
		t.Fatalf("derived key change gave key %s vals %s", keys(outs[0]), vals(outs[0]))
	}
	// The key override names other target columns.
	m = newMapper(t, []Spec{{Entry: "e", Read: src.Name, Write: dst.Name, Script: path, Key: []string{"v"}}}, newCatalog(src), newCatalog(dst))
	outs = mustMap(t, m, update(rel, row("1", "ab", "x"), row("1", "cd", "y"), false))
	if keys(outs[0]) != "v=x" {
		t.Fatalf("override key gave %s", keys(outs[0]))
	}
}

func TestIdentity(t *testing.T) {
	src := table("public", "s", []string{"id"}, col("id", pgtype.Int4OID), col("a", pgtype.TextOID), col("b", pgtype.JSONOID))
	gen := col("g", pgtype.Int4OID)
	gen.Generated = true
	dst := table("public", "d", []string{"id"}, col("b", pgtype.JSONOID), col("id", pgtype.Int4OID), col("a", pgtype.TextOID), gen, col("extra", pgtype.TextOID))
	m := newMapper(t, []Spec{{Entry: "e", Read: src.Name, Write: dst.Name}}, newCatalog(src), newCatalog(dst))
	rel := relation(src, 1, "id")
	rel.Columns = append(rel.Columns, change.Column{Name: "g", TypeOID: pgtype.Int4OID})

	outs := mustMap(t, m, insert(rel, row("1", "x", `{"a":  1}`, "5")))
	if got := vals(outs[0]); got != `b={"a":  1} id=1 a=x` || outs[0].Table != dst.Name || outs[0].KeyCols[0] != "id" {
		t.Errorf("identity insert wrote %s (target column order, generated left out)", got)
	}
	outs = mustMap(t, m, update(rel, nil, row("1", absent, "null", absent), false))
	if vals(outs[0]) != "b=null id=1" || keys(outs[0]) != "id=1" {
		t.Errorf("identity update wrote %s key %s", vals(outs[0]), keys(outs[0]))
	}
	outs = mustMap(t, m, update(rel, row("1", nil, nil, nil), row("2", "y", "1", "0"), true))
	if keys(outs[0]) != "id=1" || vals(outs[0]) != "b=1 id=2 a=y" {
		t.Errorf("identity key change wrote %s key %s", vals(outs[0]), keys(outs[0]))
	}
	outs = mustMap(t, m, del(rel, row("3", nil, nil, nil), true))
	if outs[0].Op != change.Delete || keys(outs[0]) != "id=3" || len(outs[0].Cols) != 0 {
		t.Errorf("identity delete gave %+v", outs[0])
	}
}

func TestIdentityKeyNotSent(t *testing.T) {
	src := table("public", "s", []string{"id"}, col("id", pgtype.Int4OID), col("email", pgtype.TextOID))
	dst := table("public", "d", []string{"email"}, col("id", pgtype.Int4OID), col("email", pgtype.TextOID))
	m := newMapper(t, []Spec{{Entry: "e", Read: src.Name, Write: dst.Name}}, newCatalog(src), newCatalog(dst))
	rel := relation(src, 1, "id")
	for name, ch := range map[string]*change.Change{
		"update": update(rel, nil, row("1", "a@x"), false),
		"delete": del(rel, row("1", nil), true),
	} {
		e := mapErrOf(t, m, ch)
		if e.Column != "email" || !strings.Contains(e.Msg, "REPLICA IDENTITY FULL on \"public\".\"s\"") || e.Key != "id=1" {
			t.Errorf("%s: %v", name, e)
		}
	}
	// With REPLICA IDENTITY FULL every column is in the old image.
	full := relation(src, 2, "id", "email")
	outs := mustMap(t, m, update(full, row("1", "a@x"), row("1", "b@x"), false))
	if keys(outs[0]) != "email=a@x" {
		t.Errorf("key from the full old image = %s", keys(outs[0]))
	}
}

func TestIdentityUnknownColumns(t *testing.T) {
	src := table("public", "s", []string{"id"}, col("id", pgtype.Int4OID), col("gone", pgtype.TextOID))
	dst := table("public", "d", []string{"id"}, col("id", pgtype.Int4OID))
	_, err := New([]Spec{{Entry: "tables[0]", Read: src.Name, Write: dst.Name}}, Options{Func: "forward", Read: newCatalog(src), Write: newCatalog(dst)})
	if err == nil || !strings.Contains(err.Error(), "tables[0]: column gone of \"public\".\"s\" has no column of that name in \"public\".\"d\"") {
		t.Fatalf("New = %v", err)
	}
	// A column added on the source after the catalog was read.
	src2 := table("public", "s", []string{"id"}, col("id", pgtype.Int4OID))
	m := newMapper(t, []Spec{{Entry: "e", Read: src.Name, Write: dst.Name}}, newCatalog(src2), newCatalog(dst))
	e := mapErrOf(t, m, insert(relation(src, 1, "id"), row("1", "x")))
	if e.Column != "gone" {
		t.Errorf("error %v, want column gone", e)
	}
}

func TestTruncate(t *testing.T) {
	a := table("public", "a", []string{"id"}, col("id", pgtype.Int4OID))
	b := table("public", "b", []string{"id"}, col("id", pgtype.Int4OID))
	c := table("public", "c", []string{"id"}, col("id", pgtype.Int4OID))
	x := table("public", "x", []string{"id"}, col("id", pgtype.Int4OID))
	y := table("public", "y", []string{"id"}, col("id", pgtype.Int4OID))
	path := script(t, "t.js", "function forward() { throw new Error('not for truncate') }\nfunction backward() {}")
	m := newMapper(t, []Spec{
		{Entry: "1", Read: a.Name, Write: x.Name},
		{Entry: "2", Read: b.Name, Write: x.Name, Script: path},
		{Entry: "3", Read: a.Name, Write: y.Name, Script: path},
	}, newCatalog(a, b, c), newCatalog(x, y))
	ch := &change.Change{Op: change.Truncate, Truncated: []*change.Relation{relation(a, 1), relation(b, 2), relation(c, 3)}, Cascade: true, RestartIdentity: true, LSN: testLSN}
	outs := mustMap(t, m, ch)
	if len(outs) != 1 || outs[0].Op != change.Truncate || !outs[0].RestartIdentity || outs[0].LSN != testLSN ||
		len(outs[0].Truncate) != 2 || outs[0].Truncate[0] != x.Name || outs[0].Truncate[1] != y.Name {
		t.Fatalf("truncate gave %+v", outs)
	}
	ch.Truncated = ch.Truncated[2:]
	if outs := mustMap(t, m, ch); len(outs) != 0 {
		t.Fatalf("truncate of an unmapped table gave %+v", outs)
	}
}

func TestUnmappedTable(t *testing.T) {
	a := table("public", "a", []string{"id"}, col("id", pgtype.Int4OID))
	other := table("public", "other", []string{"id"}, col("id", pgtype.Int4OID))
	m := newMapper(t, []Spec{{Entry: "1", Read: a.Name, Write: a.Name}}, newCatalog(a), newCatalog(a))
	if outs := mustMap(t, m, insert(relation(other, 9, "id"), row("1"))); outs != nil {
		t.Fatalf("unmapped table gave %+v", outs)
	}
}

func TestScriptErrors(t *testing.T) {
	cases := []struct {
		name, src   string
		column, msg string
		stack       string
	}{
		{"throw", "function forward(r) {\n  if (r.id > 0) {\n    throw new Error('boom ' + r.id);\n  }\n}\nfunction backward(r) {}",
			"", "threw Error: boom 42", "at forward (%s:3:11)"},
		{"throw on line 1", "function forward(r) { throw new TypeError('one') }\nfunction backward(r) {}",
			"", "threw TypeError: one", "at forward (%s:1:29)"},
		{"throw a string", "function forward(r) { helper() }\nfunction helper() { throw 'plain' }\nfunction backward() {}",
			"", `threw "plain"`, "at helper (%s:2:21)\n    at forward (%s:1:29)"},
		{"reference error", "function forward(r) { return nosuch.x }\nfunction backward() {}",
			"", "threw ReferenceError: nosuch is not defined", "at forward (%s:1:30)"},
		{"wrong return type", "function forward(r) { return 'row' }\nfunction backward() {}",
			"", `returned string "row"; want a row object, null, or {op, table, row} (or an array of them)`, ""},
		{"function returned", "function forward(r) { return forward }\nfunction backward() {}",
			"", `returned function; want`, ""},
		{"unknown column", "function forward(r) { return {id: r.id, amount_cent: 1} }\nfunction backward() {}",
			"amount_cent", `not a column of "public"."orders_v2"`, ""},
		{"non-integer", "function forward(r) { return {id: r.id, state: 1.5} }\nfunction backward() {}",
			"state", "got number 1.5, want an integer", ""},
		{"wrong type", "function forward(r) { return {id: r.id, bio: 5} }\nfunction backward() {}",
			"bio", "got number 5, want a string", ""},
		{"NaN cents", "function forward(r) { return {id: r.id, amount_cents: Math.round(Number(r.nope) * 100)} }\nfunction backward() {}",
			"amount_cents", "got number NaN, want an integer", ""},
		{"getter throws", "function forward(r) { return {get id() { throw new Error('getter') }} }\nfunction backward() {}",
			"", "threw Error: getter", "at id (%s:1:48)"},
		{"runaway recursion", "function forward(r) { return forward(r) }\nfunction backward() {}",
			"", "call stack", ""},
		{"throw an object", "function forward(r) { throw {code: 42, why: 'x'} }\nfunction backward() {}",
			"", `threw {"code":42,"why":"x"}`, "at forward (%s:1:23)"},
		{"throw an array", "function forward(r) { throw [1, 2] }\nfunction backward() {}",
			"", "threw [1,2]", ""},
		{"throw null", "function forward(r) { throw null }\nfunction backward() {}",
			"", "threw null", ""},
		{"throw undefined", "function forward(r) { throw undefined }\nfunction backward() {}",
			"", "threw undefined", ""},
		{"throw a number", "function forward(r) { throw 42 }\nfunction backward() {}",
			"", "threw 42", ""},
		{"throw a BigInt", "function forward(r) { throw 5n }\nfunction backward() {}",
			"", "threw 5n", ""},
		{"throw a function", "function forward(r) { throw function boom() {} }\nfunction backward() {}",
			"", "threw function boom", ""},
		{"throw a cyclic object", "function forward(r) { const a = {name: 'a', l: [1]}; a.l.push(a); a.self = a; throw a }\nfunction backward() {}",
			"", `threw {"name":"a","l":[1,"[Circular]"],"self":"[Circular]"}`, ""},
		{"throw what JSON cannot hold", "function forward(r) { throw {n: 10n ** 20n, f() {}, u: undefined, l: [undefined, () => 1, NaN], e: new TypeError('inner')} }\nfunction backward() {}",
			"", `threw {"n":100000000000000000000,"l":[null,null,null],"e":"TypeError: inner"}`, ""},
		{"throw a long object", "function forward(r) { throw {s: 'x'.repeat(500), t: 1} }\nfunction backward() {}",
			"", `threw {"s":"` + strings.Repeat("x", 194) + "...", ""},
		{"throw an object whose getter throws", "function forward(r) { throw {a: 1, get b() { throw new Error('no') }} }\nfunction backward() {}",
			"", `threw {"a":1... (reading it further threw)`, ""},
		{"throw an object whose getter never returns", "function forward(r) { throw {get b() { for (;;) {} }} }\nfunction backward() {}",
			"", `threw {... (reading it further threw)`, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, rel := ordersMapper(t, tc.src)
			path := m.entries[0].Script
			e := mapErrOf(t, m, insert(rel, orderRow))
			if e.Entry != "tables[1] (public.orders -> public.orders_v2)" || e.Table.Name != "orders" || e.Key != "id=42" || e.LSN != testLSN {
				t.Errorf("error context: %+v", e)
			}
			if e.Column != tc.column || !strings.Contains(e.Msg, tc.msg) {
				t.Errorf("column %q msg %q, want %q and %q", e.Column, e.Msg, tc.column, tc.msg)
			}
			if tc.stack != "" {
				want := strings.ReplaceAll(tc.stack, "%s", path)
				if !strings.Contains(e.Stack, want) {
					t.Errorf("stack\n%s\nwant it to contain\n%s", e.Stack, want)
				}
			}
			line := strings.SplitN(e.Error(), "\n", 2)[0]
			if !strings.HasPrefix(line, `tables[1] (public.orders -> public.orders_v2): "public"."orders" id=42 at 0/16B3748: `) {
				t.Errorf("Error() first line: %s", line)
			}
			// The runtime is usable after an error.
			m2, _ := ordersMapper(t, ordersJS)
			mustMap(t, m2, insert(rel, orderRow))
		})
	}
	t.Run("message", func(t *testing.T) {
		m, rel := ordersMapper(t, "function forward(r) { return {id: r.id, state: 'x'} }\nfunction backward() {}")
		e := mapErrOf(t, m, insert(rel, orderRow))
		want := `tables[1] (public.orders -> public.orders_v2): "public"."orders" id=42 at 0/16B3748: column state (int2): got string "x", want an integer number`
		if e.Error() != want {
			t.Errorf("Error() = %s\nwant      %s", e.Error(), want)
		}
	})
}

func TestTimeout(t *testing.T) {
	orders, v2 := ordersTables()
	for name, body := range map[string]string{
		"loop":           "while (true) {}",
		"getter loop":    "return {get id() { while (true) {} }}",
		"toString loop":  "throw {toString() { while (true) {} }}",
		"loop in catch":  "try { while (true) {} } finally { while (true) {} }",
		"old image loop": "if (c.op === 'delete') while (true) {}; return {id: r.id}",
	} {
		t.Run(name, func(t *testing.T) {
			path := script(t, "slow.js", "function forward(r, c) { "+body+" }\nfunction backward() {}")
			m, err := New([]Spec{{Entry: "e", Read: orders.Name, Write: v2.Name, Script: path}},
				Options{Func: "forward", Read: newCatalog(orders), Write: newCatalog(v2), Timeout: 200 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			rel := relation(orders, 1, "id")
			start := time.Now()
			_, err = m.Map(update(rel, orderRow, orderRow, false))
			took := time.Since(start)
			if err == nil || !strings.Contains(err.Error(), "ran longer than 200ms") {
				if name != "toString loop" || err == nil {
					t.Fatalf("err = %v, want a time limit error", err)
				}
			}
			if took > 2*time.Second {
				t.Errorf("a runaway call returned after %s with a limit of 200ms", took)
			}
			// The same mapper serves the next call: its runtime's interrupt
			// was cleared (a stale one would end the call at once) and is
			// armed again.
			if name == "old image loop" {
				mustMap(t, m, insert(rel, orderRow))
				return
			}
			start = time.Now()
			_, err = m.Map(update(rel, orderRow, orderRow, false))
			took = time.Since(start)
			if err == nil {
				t.Fatal("the second call of a runaway script returned no error")
			}
			// The toString loop's object is reported without calling
			// toString, so neither call runs into the limit.
			if name != "toString loop" && (took < 200*time.Millisecond || took > 2*time.Second) {
				t.Errorf("the second runaway call ended after %s with a limit of 200ms (%v)", took, err)
			}
		})
	}
	t.Run("reuse after timeout", func(t *testing.T) {
		path := script(t, "slow.js", "function forward(r) { if (r.status === 'slow') while (true) {}; return {id: r.id} }\nfunction backward() {}")
		m, err := New([]Spec{{Entry: "e", Read: orders.Name, Write: v2.Name, Script: path}},
			Options{Func: "forward", Read: newCatalog(orders), Write: newCatalog(v2), Timeout: 100 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		rel := relation(orders, 1, "id")
		if _, err := m.Map(insert(rel, row("1", "1", "slow", nil, nil, nil))); err == nil {
			t.Fatal("no time limit error")
		}
		for i := 0; i < 3; i++ {
			mustMap(t, m, insert(rel, orderRow))
		}
	})
}

func TestCheck(t *testing.T) {
	ok := script(t, "ok.js", ordersJS)
	if err := Check(ok); err != nil {
		t.Errorf("Check(valid) = %v", err)
	}
	syntax := script(t, "bad.js", "function forward(r) {\n  return r +;\n}\nfunction backward(r) { return r }\n")
	if err := Check(syntax); err == nil || !strings.HasPrefix(err.Error(), syntax+":2:13: syntax error") {
		t.Errorf("Check(syntax error) = %v", err)
	}
	dup := script(t, "dup.js", "let a = 1;\nlet a = 2;\nfunction forward(r) { return r }\nfunction backward(r) { return r }\n")
	if err := Check(dup); err == nil || !strings.HasPrefix(err.Error(), dup+":2:") {
		t.Errorf("Check(duplicate let) = %v", err)
	}
	noBack := script(t, "fwd.js", "function forward(r) { return r }\nconst backward = 5;\n")
	if err := Check(noBack); err == nil || !strings.Contains(err.Error(), noBack+": backward is not defined as a function") {
		t.Errorf("Check(no backward) = %v", err)
	}
	none := script(t, "none.js", "// nothing\n")
	if err := Check(none); err == nil || !strings.Contains(err.Error(), "neither forward nor backward") {
		t.Errorf("Check(empty) = %v", err)
	}
	throws := script(t, "throws.js", "function forward() {}\nfunction backward() {}\nnull.x;\n")
	if err := Check(throws); err == nil || !strings.Contains(err.Error(), throws+":3:") {
		t.Errorf("Check(top level throws) = %v", err)
	}
	throwsObject := script(t, "throws_object.js", "function forward() {}\nfunction backward() {}\nthrow {missing: 'CONFIG'};\n")
	if err := Check(throwsObject); err == nil || !strings.Contains(err.Error(), throwsObject+`: loading transform: threw {"missing":"CONFIG"}`) {
		t.Errorf("Check(top level throws an object) = %v", err)
	}
	if err := Check(script(t, "strict.js", "'use strict';\nfunction forward(r) { return r }\nfunction backward(r) { return r }\n")); err != nil {
		t.Errorf("Check(use strict) = %v", err)
	}
	if err := Check("/nonexistent/x.js"); err == nil || !strings.Contains(err.Error(), "/nonexistent/x.js") {
		t.Errorf("Check(missing file) = %v", err)
	}
}

func TestNewErrors(t *testing.T) {
	orders, v2 := ordersTables()
	syntax := script(t, "bad.js", "function forward(r) {\n  return r +;\n}\n")
	onlyBack := script(t, "back.js", "function backward(r) { return r }\n")
	_, err := New([]Spec{
		{Entry: "tables[0]", Read: orders.Name, Write: v2.Name, Script: syntax},
		{Entry: "tables[1]", Read: orders.Name, Write: v2.Name, Script: onlyBack},
		{Entry: "tables[2]", Read: change.Table{Schema: "public", Name: "nope"}, Write: v2.Name, Script: onlyBack},
		{Entry: "tables[3]", Read: orders.Name, Write: change.Table{Schema: "public", Name: "gone"}, Script: onlyBack},
		{Entry: "tables[4]", Read: orders.Name, Write: v2.Name, Key: []string{"nokey"}, Script: onlyBack},
	}, Options{Func: "forward", Read: newCatalog(orders), Write: newCatalog(v2)})
	if err == nil {
		t.Fatal("New accepted broken entries")
	}
	for _, want := range []string{
		"tables[0]: " + syntax + ":2:13: syntax error",
		"tables[1]: " + onlyBack + ": forward is not defined as a function",
		`tables[2]: table "public"."nope" does not exist in the database read from`,
		`tables[3]: table "public"."gone" does not exist in the database written to`,
		`tables[4]: key column nokey is not a column of "public"."orders_v2"`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("New error lacks %q:\n%v", want, err)
		}
	}
	if _, err := New(nil, Options{Func: "sideways", Read: newCatalog(), Write: newCatalog()}); err == nil {
		t.Error("New accepted Func sideways")
	}
}

func TestScriptsAreIsolated(t *testing.T) {
	a := table("public", "a", []string{"id"}, col("id", pgtype.Int4OID), col("v", pgtype.TextOID))
	b := table("public", "b", []string{"id"}, col("id", pgtype.Int4OID), col("v", pgtype.TextOID))
	pa := script(t, "a.js", "const TAG = 'a'; let n = 0;\nfunction forward(r) { n++; return {id: r.id, v: TAG + n} }\nfunction backward(r) { return r }")
	pb := script(t, "b.js", "const TAG = 'b'; let n = 10;\nfunction forward(r) { n++; return {id: r.id, v: TAG + n} }\nfunction backward(r) { return r }")
	m := newMapper(t, []Spec{{Entry: "a", Read: a.Name, Write: a.Name, Script: pa}, {Entry: "b", Read: b.Name, Write: b.Name, Script: pb}},
		newCatalog(a, b), newCatalog(a, b))
	outs := mustMap(t, m, insert(relation(a, 1, "id"), row("1", "x")))
	outs = append(outs, mustMap(t, m, insert(relation(b, 2, "id"), row("1", "x")))...)
	if vals(outs[0]) != "id=1 v=a1" || vals(outs[1]) != "id=1 v=b11" {
		t.Errorf("scripts share state: %s / %s", vals(outs[0]), vals(outs[1]))
	}
}

func TestSandboxAndConsole(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	a := table("public", "a", []string{"id"}, col("id", pgtype.Int4OID), col("v", pgtype.TextOID))
	path := script(t, "a.js", `
function forward(r) {
  console.log("row", r, 1n);
  console.warn("careful");
  console.error(new Error("bad"));
  return {id: r.id, v: [typeof require, typeof process, typeof fs, typeof fetch, typeof setTimeout, typeof console.info].join()};
}
function backward(r) { return r }`)
	m, err := New([]Spec{{Entry: "e", Read: a.Name, Write: a.Name, Script: path}}, Options{Func: "forward", Read: newCatalog(a), Write: newCatalog(a), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	outs := mustMap(t, m, insert(relation(a, 1, "id"), row("1", "x")))
	if got, _ := outs[0].Lookup("v"); got.String() != "undefined,undefined,undefined,undefined,undefined,undefined" {
		t.Errorf("globals: %s", got)
	}
	out := buf.String()
	for _, want := range []string{
		`level=INFO msg="row {\"id\":1,\"v\":\"x\"} 1" component=transform entry=e table="\"public\".\"a\"" lsn=0/16B3748 xid=77`,
		`level=WARN msg=careful component=transform`,
		`level=ERROR msg="Error: bad" component=transform`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %s:\n%s", want, out)
		}
	}
}

func TestMutatedInputIsNotUnchanged(t *testing.T) {
	// The script edits the objects it was given and returns them: the
	// comparison is with what it was given, not with the edited objects.
	a := table("public", "a", []string{"id"}, col("id", pgtype.Int4OID), col("tags", pgtype.TextArrayOID), col("doc", pgtype.JSONBOID))
	path := script(t, "a.js", "function forward(r) { r.tags.push('z'); r.doc.k = 'v2'; return r }\nfunction backward(r) { return r }")
	m := newMapper(t, []Spec{{Entry: "e", Read: a.Name, Write: a.Name, Script: path}}, newCatalog(a), newCatalog(a))
	outs := mustMap(t, m, insert(relation(a, 1, "id"), row("1", `{a,"b c"}`, `{"k": "v"}`)))
	if got := vals(outs[0]); got != `id=1 tags={a,"b c",z} doc={"k":"v2"}` {
		t.Errorf("wrote %s", got)
	}
}
