package transform

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/cdcbridge/cdcbridge/catalog"
	"github.com/cdcbridge/cdcbridge/change"
	"github.com/cdcbridge/cdcbridge/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// The session settings the replication connection uses: the text of values
// in the stream is printed under them.
const outputSettings = `SET DateStyle = 'ISO, YMD'; SET IntervalStyle = postgres; SET TimeZone = 'UTC';
SET extra_float_digits = 1; SET bytea_output = hex; SET lc_monetary = 'C';`

type serverValue struct {
	typ, literal string
	// reencoded is what the server prints after the value went through
	// JavaScript into a column of another name, where nothing is known of
	// the original bytes; "" means the same text as the original.
	reencoded string
}

var serverValues = []serverValue{
	{"int8", "9007199254740993", ""},
	{"int8", "-9223372036854775808", ""},
	{"int8", "9223372036854775807", ""},
	{"int2", "-32768", ""},
	{"int4", "2147483647", ""},
	{"oid", "4294967295", ""},
	{"posint8", "9007199254740993", ""},
	{"posint8[]", "{9007199254740993,1}", ""},
	{"tags", `{a,"b c"}`, ""},
	{"numeric", "NaN", ""},
	{"numeric", "Infinity", ""},
	{"numeric", "-Infinity", ""},
	{"numeric", "19.90", ""},
	{"numeric", "123456789012345678901234567890.123456789", ""},
	{"numeric(12,2)", "0.00", ""},
	{"float8", "-0", ""},
	{"float8", "NaN", ""},
	{"float8", "Infinity", ""},
	{"float8", "-Infinity", ""},
	{"float8", "1e-310", ""},
	{"float8", "5e-324", ""},
	{"float8", "0.1", ""},
	{"float8", "0.30000000000000004", ""},
	{"float8", "1e15", ""},
	{"float8", "123456789012345", ""},
	{"float8", "1.5e300", ""},
	{"float8", "1e-5", ""},
	{"float8", "0.0001", ""},
	{"float8", "1e22", ""},
	{"float8", "1.7976931348623157e308", ""},
	{"float4", "-0", ""},
	{"float4", "NaN", ""},
	{"float4", "-Infinity", ""},
	{"float4", "0.1", ""},
	{"float4", "1e-45", ""},
	{"float4", "3.4028235e38", ""},
	{"float4", "7.038531e-26", ""},
	{"float4", "1e6", ""},
	{"float4", "123456", ""},
	{"float4", "16777217", ""},
	{"float4", "1.1754944e-38", ""},
	{"bool", "true", ""},
	{"text", "héllo \"q\" \\ back\nnext", ""},
	{"text", "", ""},
	{"varchar(5)", "ab", ""},
	{"char(4)", "ab", ""},
	{"inet", "192.168.0.1", ""},
	{"name", "pg_class", ""},
	{"uuid", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", ""},
	{"inet", "192.168.0.1/24", ""},
	{"cidr", "10.0.0.0/8", ""},
	{"macaddr", "08:00:2b:01:02:03", ""},
	{"date", "4713-01-01 BC", ""},
	{"date", "infinity", ""},
	{"date", "-infinity", ""},
	{"timestamptz", "2024-02-29 12:34:56.123456+00", ""},
	{"timestamptz", "0044-03-15 12:00:00+00 BC", ""},
	{"timestamp", "2024-02-29 12:34:56.123456", ""},
	{"timestamp", "infinity", ""},
	{"time", "12:34:56.789", ""},
	{"timetz", "12:34:56+05:30", ""},
	{"interval", "1 year 2 mons 3 days 04:05:06.789", ""},
	{"interval", "-178000000 years", ""},
	{"json", `{"a":  1, "a": 2, "n": 12345678901234567890}`, `{"a":2,"n":12345678901234567000}`},
	{"json", `[1, "two", null, true, {"x": [1.5e3]}]`, `[1,"two",null,true,{"x":[1500]}]`},
	{"jsonb", `{"price": 19.90}`, `{"price": 19.9}`},
	{"jsonb", `{"b": [1, {"c": "\u00e9\n"}], "a": null}`, ""},
	{"bytea", `\x00ff10`, ""},
	{"bytea", `\x`, ""},
	{"text[]", `{NULL,"a\"b","c,d","",NULL,"NULL","x y","back\\slash","{}"}`, ""},
	{"int4[]", `{{1,2},{3,4}}`, ""},
	{"int4[]", `{{{1},{2}},{{3},{NULL}}}`, ""},
	{"int4[]", `{}`, ""},
	{"text[]", `[0:1]={a,b}`, `{a,b}`},
	{"int8[]", `{9007199254740993,-9223372036854775808}`, ""},
	{"numeric[]", `{19.90,NaN,NULL,-Infinity}`, ""},
	{"float8[]", `{-0,NaN,Infinity,1e-310,0.1}`, ""},
	{"float4[]", `{7.038531e-26,0.1}`, ""},
	{"bool[]", `{t,f,NULL}`, ""},
	{"bytea[]", `{"\\x00ff",NULL,"\\x"}`, ""},
	{"jsonb[]", `{"{\"a\": 1}","[1, 2]","\"s\""}`, ""},
	{"json[]", `{"{\"a\":  1}"}`, `{"{\"a\":1}"}`},
	{"date[]", `{"4713-01-01 BC",infinity}`, ""},
	{"timestamptz[]", `{"2024-02-29 12:34:56.123456+00"}`, ""},
	{"box[]", `{(1,1),(0,0);(3,3),(2,2)}`, ""},
	{"mood[]", `{happy,"very sad"}`, ""},
	{"pair[]", `{"(1,\"a b\")"}`, ""},
	{"mood", "very sad", ""},
	{"pair", `(1,"a b")`, ""},
	{"int4range", "[1,5)", ""},
	{"numrange", "(1.50,2.00]", ""},
	{"money", "$1.00", ""},
	{"bit(3)", "101", ""},
	{"varbit", "1101", ""},
	{"xml", `<a b="c"/>`, ""},
	{"point", "(1,2)", ""},
	{"tsvector", "'a' 'b'", ""},
}

// TestAgainstServer loads a real catalog and takes every value the server
// prints through the mapper three ways: identity, a script returning the
// row, and a script that moves every value to a column of another name, so
// that nothing is known of its original bytes and it must be encoded from
// its JavaScript form. The server must accept what comes out and print the
// original text again.
func TestAgainstServer(t *testing.T) {
	dsn := pgtest.Target(t).NewDB(t)
	conn := pgtest.Connect(t, dsn)
	ctx := context.Background()
	pgtest.MustExec(t, conn, `
		CREATE DOMAIN posint8 AS int8 CHECK (VALUE > 0);
		CREATE DOMAIN tags AS text[];
		CREATE TYPE mood AS ENUM ('happy', 'very sad');
		CREATE TYPE pair AS (a int, b text);`)
	var scols, dcols []string
	for i, v := range serverValues {
		scols = append(scols, fmt.Sprintf("c%d %s", i, v.typ))
		dcols = append(dcols, fmt.Sprintf("d%d %s", i, v.typ))
	}
	pgtest.MustExec(t, conn, fmt.Sprintf(`
		CREATE TABLE src (id int8 PRIMARY KEY, %s);
		CREATE TABLE same (id int8 PRIMARY KEY, %s);
		CREATE TABLE renamed (id int8 PRIMARY KEY, %s);`,
		strings.Join(scols, ", "), strings.Join(scols, ", "), strings.Join(dcols, ", ")))
	pgtest.MustExec(t, conn, outputSettings)

	// Row 1 holds the values, row 2 NULLs.
	var names, params []string
	var args []any
	for i, v := range serverValues {
		names = append(names, fmt.Sprintf("c%d", i))
		params = append(params, fmt.Sprintf("$%d::text::%s", i+1, v.typ))
		args = append(args, v.literal)
	}
	pgtest.MustExec(t, conn, fmt.Sprintf("INSERT INTO src (id, %s) VALUES (1, %s)", strings.Join(names, ", "), strings.Join(params, ", ")), args...)
	pgtest.MustExec(t, conn, "INSERT INTO src (id) VALUES (2)")

	tables := []change.Table{{Schema: "public", Name: "src"}, {Schema: "public", Name: "same"}, {Schema: "public", Name: "renamed"}}
	cat, err := catalog.Load(ctx, conn, tables)
	if err != nil {
		t.Fatal(err)
	}
	srcRows := readText(t, conn, "src")
	srcTable := cat.Table(tables[0])
	rel := &change.Relation{ID: srcTable.OID, Table: tables[0], ReplicaIdentity: 'd'}
	for _, c := range srcTable.Columns {
		rel.Columns = append(rel.Columns, change.Column{Name: c.Name, TypeOID: c.TypeOID, TypeMod: c.TypeMod, Key: c.Name == "id"})
	}

	pass := script(t, "pass.js", "function forward(r) { return r }\nfunction backward(r) { return r }\n")
	rename := script(t, "rename.js", `
function forward(r) {
  const o = {};
  for (const [k, v] of Object.entries(r)) o[k === "id" ? k : "d" + k.slice(1)] = v;
  return o;
}
function backward(r) { return r }
`)
	for _, tc := range []struct {
		name, script, into string
	}{
		{"identity", "", "same"},
		{"return r", pass, "same"},
		{"renamed", rename, "renamed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			into := change.Table{Schema: "public", Name: tc.into}
			m := newMapper(t, []Spec{{Entry: tc.name, Read: tables[0], Write: into, Script: tc.script}}, cat, cat)
			pgtest.MustExec(t, conn, "TRUNCATE "+into.String())
			var first change.Out
			for i, r := range srcRows {
				outs := mustMap(t, m, insert(rel, r))
				writeOut(t, conn, cat.Table(into), outs[0])
				if i == 0 {
					first = outs[0]
				}
			}
			// The text written is the text PostgreSQL prints, byte for
			// byte, also where it was encoded from JavaScript.
			for i, v := range serverValues {
				c := fmt.Sprintf("c%d", i)
				if tc.into == "renamed" {
					c = fmt.Sprintf("d%d", i)
				}
				got, _ := first.Lookup(c)
				// jsonb is printed with spaces we do not write, and a box[]
				// element is quoted because it holds a comma.
				exempt := v.reencoded != "" || strings.HasPrefix(v.typ, "json") || v.typ == "box[]"
				if want := srcRows[0][i+1]; !got.Equal(want) && !exempt {
					t.Errorf("%s %s: wrote %s, the server prints %s", v.typ, v.literal, got, want)
				}
			}
			got := readText(t, conn, tc.into)
			for i, v := range serverValues {
				want := srcRows[0][i+1].String()
				if tc.into == "renamed" && v.reencoded != "" {
					want = v.reencoded
				}
				if g := got[0][i+1].String(); g != want {
					t.Errorf("%s %s: the server printed %s, then %s after mapping", v.typ, v.literal, want, g)
				}
				if g := got[1][i+1]; g.Kind != change.Null {
					t.Errorf("%s NULL came back as %s", v.typ, g)
				}
			}
		})
	}
}

// readText reads a table as the stream would carry it: every column as the
// type's output function prints it (a cast to text is not always that:
// bool::text is "true", inet::text always shows the mask), ordered by id.
func readText(t *testing.T, conn *pgx.Conn, table string) []change.Row {
	t.Helper()
	rows, err := conn.Query(context.Background(), fmt.Sprintf("SELECT * FROM %s ORDER BY id", table),
		pgx.QueryResultFormats{pgx.TextFormatCode})
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []change.Row
	for rows.Next() {
		var r change.Row
		for _, v := range rows.RawValues() {
			if v == nil {
				r = append(r, change.Value{Kind: change.Null})
			} else {
				r = append(r, change.TextValue(string(v)))
			}
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// writeOut inserts an Out the way an applier would: each value as text,
// converted by the column type's input function.
func writeOut(t *testing.T, conn *pgx.Conn, tbl *catalog.Table, o change.Out) {
	t.Helper()
	var cols, params []string
	var args []any
	for i, c := range o.Cols {
		var typ string
		if err := conn.QueryRow(context.Background(), "SELECT format_type($1, $2)", tbl.Column(c).TypeOID, tbl.Column(c).TypeMod).Scan(&typ); err != nil {
			t.Fatal(err)
		}
		cols = append(cols, pgx.Identifier{c}.Sanitize())
		params = append(params, fmt.Sprintf("$%d::text::%s", i+1, typ))
		if o.Vals[i].Kind == change.Null {
			args = append(args, nil)
		} else {
			args = append(args, string(o.Vals[i].Data))
		}
	}
	sql := fmt.Sprintf("INSERT INTO %s (%s) VALUES (%s)", o.Table, strings.Join(cols, ", "), strings.Join(params, ", "))
	if _, err := conn.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("the server rejected a mapped row: %v\n%s\n%q", err, sql, args)
	}
}

// TestDatesAgainstServer writes JavaScript Dates into every date and time
// type and checks what the server makes of them.
func TestDatesAgainstServer(t *testing.T) {
	dsn := pgtest.Target(t).NewDB(t)
	conn := pgtest.Connect(t, dsn)
	pgtest.MustExec(t, conn, `
		CREATE TABLE s (id int PRIMARY KEY);
		CREATE TABLE d (id int PRIMARY KEY, tz timestamptz, ts timestamp, dt date, tm time, ttz timetz);`)
	pgtest.MustExec(t, conn, outputSettings)
	cat, err := catalog.Load(context.Background(), conn, []change.Table{{Schema: "public", Name: "s"}, {Schema: "public", Name: "d"}})
	if err != nil {
		t.Fatal(err)
	}
	path := script(t, "dates.js", `
function forward(r) {
  const d = r.id === 1 ? new Date(Date.UTC(2024, 1, 29, 12, 34, 56, 789)) : new Date(Date.UTC(-43, 2, 15, 1, 2, 3, 4));
  return {id: r.id, tz: d, ts: d, dt: d, tm: d, ttz: d};
}
function backward(r) { return r }`)
	s, d := cat.Table(change.Table{Schema: "public", Name: "s"}), cat.Table(change.Table{Schema: "public", Name: "d"})
	m := newMapper(t, []Spec{{Entry: "e", Read: s.Name, Write: d.Name, Script: path}}, cat, cat)
	rel := &change.Relation{ID: s.OID, Table: s.Name, Columns: []change.Column{{Name: "id", TypeOID: s.Columns[0].TypeOID, Key: true}}}
	for _, id := range []string{"1", "2"} {
		outs := mustMap(t, m, insert(rel, row(id)))
		writeOut(t, conn, d, outs[0])
	}
	rows, err := conn.Query(context.Background(), "SELECT concat_ws(' | ', tz, ts, dt, tm, ttz) FROM d ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"2024-02-29 12:34:56.789+00 | 2024-02-29 12:34:56.789 | 2024-02-29 | 12:34:56.789 | 12:34:56.789+00",
		"0044-03-15 01:02:03.004+00 BC | 0044-03-15 01:02:03.004 BC | 0044-03-15 BC | 01:02:03.004 | 01:02:03.004+00",
	}
	for i := range want {
		if i >= len(got) || got[i] != want[i] {
			t.Errorf("row %d: %q, want %q", i+1, got, want[i])
		}
	}
}

// TestTypesFromCatalog checks how a real catalog's types reach scripts:
// domains as their base type, arrays of domains and domains over arrays as
// arrays, enums, composites and ranges as strings.
func TestTypesFromCatalog(t *testing.T) {
	dsn := pgtest.Target(t).NewDB(t)
	conn := pgtest.Connect(t, dsn)
	pgtest.MustExec(t, conn, `
		CREATE DOMAIN posint8 AS int8 CHECK (VALUE > 0);
		CREATE DOMAIN tags AS text[];
		CREATE TYPE mood AS ENUM ('happy', 'sad');
		CREATE TYPE pair AS (a int, b text);
		CREATE TABLE s (id int PRIMARY KEY, a posint8, b posint8[], c tags, d mood, e pair, f int4range, g numeric(12,2), h jsonb, i mood[]);
		CREATE TABLE d (id int PRIMARY KEY, out text);`)
	cat, err := catalog.Load(context.Background(), conn, []change.Table{{Schema: "public", Name: "s"}, {Schema: "public", Name: "d"}})
	if err != nil {
		t.Fatal(err)
	}
	path := script(t, "types.js", `
function forward(r) {
  const t = v => Array.isArray(v) ? "[" + v.map(t).join(",") + "]" : typeof v;
  return {id: r.id, out: ["a", "b", "c", "d", "e", "f", "g", "h", "i"].map(k => k + ":" + t(r[k])).join(" ")};
}
function backward(r) { return r }`)
	s := cat.Table(change.Table{Schema: "public", Name: "s"})
	m := newMapper(t, []Spec{{Entry: "e", Read: s.Name, Write: change.Table{Schema: "public", Name: "d"}, Script: path}}, cat, cat)
	rel := &change.Relation{ID: s.OID, Table: s.Name}
	for _, c := range s.Columns {
		rel.Columns = append(rel.Columns, change.Column{Name: c.Name, TypeOID: c.TypeOID, Key: c.Name == "id"})
	}
	outs := mustMap(t, m, insert(rel, row("1", "9007199254740993", "{1,9007199254740993}", `{a,"b c"}`, "sad", `(1,x)`, "[1,2)", "1.50", `{"k": [1]}`, "{happy}")))
	want := "a:bigint b:[number,bigint] c:[string,string] d:string e:string f:string g:string h:object i:[string]"
	if got, _ := outs[0].Lookup("out"); got.String() != want {
		t.Errorf("script saw %s\nwant %s", got, want)
	}
}
