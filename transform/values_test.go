package transform

import (
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/cdcbridge/cdcbridge/change"
)

// Made-up OIDs stand for types only a database knows (a composite); the
// rest are PostgreSQL's own.
const (
	compositeOID = 99001
	int4rangeOID = 3904
	moneyOID     = 790
	bitOID       = 1560
	xmlOID       = 142
	boxArrayOID  = 1020
	bpcharOID    = 1042
)

type valueCase struct {
	name string
	oid  uint32
	text any // string, or nil for NULL
}

// roundTripCases is one row per line of the value table, with the values
// that break naive mappings.
var roundTripCases = []valueCase{
	{"int8 2^53-1", pgtype.Int8OID, "9007199254740991"},
	{"int8 2^53", pgtype.Int8OID, "9007199254740992"},
	{"int8 2^53+1", pgtype.Int8OID, "9007199254740993"},
	{"int8 min", pgtype.Int8OID, "-9223372036854775808"},
	{"int8 max", pgtype.Int8OID, "9223372036854775807"},
	{"int8 small", pgtype.Int8OID, "-42"},
	{"int2 min", pgtype.Int2OID, "-32768"},
	{"int4 max", pgtype.Int4OID, "2147483647"},
	{"oid max", pgtype.OIDOID, "4294967295"},
	{"numeric NaN", pgtype.NumericOID, "NaN"},
	{"numeric Infinity", pgtype.NumericOID, "Infinity"},
	{"numeric -Infinity", pgtype.NumericOID, "-Infinity"},
	{"numeric 19.90", pgtype.NumericOID, "19.90"},
	{"numeric long", pgtype.NumericOID, "123456789012345678901234567890.123456789"},
	{"numeric 0.00", pgtype.NumericOID, "0.00"},
	{"float8 -0", pgtype.Float8OID, "-0"},
	{"float8 0", pgtype.Float8OID, "0"},
	{"float8 NaN", pgtype.Float8OID, "NaN"},
	{"float8 Infinity", pgtype.Float8OID, "Infinity"},
	{"float8 -Infinity", pgtype.Float8OID, "-Infinity"},
	{"float8 1e-310", pgtype.Float8OID, "1e-310"},
	{"float8 0.1", pgtype.Float8OID, "0.1"},
	{"float8 max", pgtype.Float8OID, "1.7976931348623157e+308"},
	{"float8 min subnormal", pgtype.Float8OID, "5e-324"},
	{"float4 -0", pgtype.Float4OID, "-0"},
	{"float4 NaN", pgtype.Float4OID, "NaN"},
	{"float4 Infinity", pgtype.Float4OID, "Infinity"},
	{"float4 -Infinity", pgtype.Float4OID, "-Infinity"},
	{"float4 0.1", pgtype.Float4OID, "0.1"},
	{"float4 1e-45", pgtype.Float4OID, "1e-45"},
	{"float4 max", pgtype.Float4OID, "3.4028235e+38"},
	{"float4 double rounding", pgtype.Float4OID, "7.038531e-26"},
	{"bool true", pgtype.BoolOID, "t"},
	{"bool false", pgtype.BoolOID, "f"},
	{"text", pgtype.TextOID, `héllo "q" \ back` + "\n"},
	{"text empty", pgtype.TextOID, ""},
	{"varchar", pgtype.VarcharOID, "v"},
	{"char padded", bpcharOID, "ab  "},
	{"uuid", pgtype.UUIDOID, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"},
	{"inet", pgtype.InetOID, "192.168.0.1/24"},
	{"date BC", pgtype.DateOID, "4713-01-01 BC"},
	{"date infinity", pgtype.DateOID, "infinity"},
	{"date -infinity", pgtype.DateOID, "-infinity"},
	{"timestamptz", pgtype.TimestamptzOID, "2024-02-29 12:34:56.123456+00"},
	{"timestamp", pgtype.TimestampOID, "2024-02-29 12:34:56.123456"},
	{"time", pgtype.TimeOID, "12:34:56.789"},
	{"timetz", pgtype.TimetzOID, "12:34:56+05:30"},
	{"interval", pgtype.IntervalOID, "1 year 2 mons 3 days 04:05:06.789"},
	{"json spacing and duplicates", pgtype.JSONOID, `{"a":  1, "a": 2, "n": 12345678901234567890}`},
	{"jsonb 19.90", pgtype.JSONBOID, `{"price": 19.90}`},
	{"jsonb big and nested", pgtype.JSONBOID, `{"n": 123456789012345678901234, "l": [1.0, "x", null, true, {"e": 1e400}]}`},
	{"json scalar", pgtype.JSONOID, `"just a string"`},
	{"json null", pgtype.JSONOID, `null`},
	{"jsonb null", pgtype.JSONBOID, `null`},
	{"text[] quoting", pgtype.TextArrayOID, `{NULL,"a\"b","c,d","",NULL}`},
	{"text[] NULL string", pgtype.TextArrayOID, `{"NULL",null_not,"a b"}`},
	{"int4[] 2-D", pgtype.Int4ArrayOID, `{{1,2},{3,4}}`},
	{"int4[] empty", pgtype.Int4ArrayOID, `{}`},
	{"text[] lower bound", pgtype.TextArrayOID, `[0:1]={a,b}`},
	{"numeric[]", pgtype.NumericArrayOID, `{19.90,NaN,NULL}`},
	{"int8[]", pgtype.Int8ArrayOID, `{9007199254740993,-9223372036854775808}`},
	{"float8[]", pgtype.Float8ArrayOID, `{-0,NaN,Infinity,1e-310}`},
	{"jsonb[]", pgtype.JSONBArrayOID, `{"{\"a\": 1.50}","[1, 2]"}`},
	{"bytea", pgtype.ByteaOID, `\x00ff10`},
	{"bytea empty", pgtype.ByteaOID, `\x`},
	{"bytea[]", pgtype.ByteaArrayOID, `{"\\x00ff",NULL}`},
	{"composite", compositeOID, `(1,"a b")`},
	{"range", int4rangeOID, `[1,5)`},
	{"money", moneyOID, `$1.00`},
	{"bit", bitOID, `101`},
	{"xml", xmlOID, `<a b="c"/>`},
	{"NULL int8", pgtype.Int8OID, nil},
	{"NULL json", pgtype.JSONOID, nil},
	{"NULL array", pgtype.TextArrayOID, nil},
}

// TestRoundTrip sends every value through an identity mapping and through
// scripts that return the row (or a copy of it) and checks that the bytes
// written are the bytes read, for inserts, updates and deletes.
func TestRoundTrip(t *testing.T) {
	modes := []struct {
		name, src string
	}{
		{"identity", ""},
		{"return r", "function forward(r) { return r }\nfunction backward(r) { return r }\n"},
		{"return {...r}", "function forward(r) { return {...r} }\nfunction backward(r) { return {...r} }\n"},
		{"full control", "function forward(r, c) { return [{op: c.op, row: Object.assign({}, r)}] }\nfunction backward(r) { return r }\n"},
		{"structuredClone by hand", "function forward(r) { const o = {}; for (const k of Object.keys(r)) o[k] = r[k]; return o }\nfunction backward(r) { return r }\n"},
	}
	for _, mode := range modes {
		var path string
		if mode.src != "" {
			path = script(t, "t.js", mode.src)
		}
		for _, tc := range roundTripCases {
			t.Run(mode.name+"/"+tc.name, func(t *testing.T) {
				tbl := table("public", "t", []string{"id"}, col("id", pgtype.Int8OID), col("v", tc.oid))
				cat := newCatalog(tbl)
				m := newMapper(t, []Spec{{Entry: "e", Read: tbl.Name, Write: tbl.Name, Script: path}}, cat, cat)
				rel := relation(tbl, 1, "id")
				r := row("1", tc.text)
				want := r[1]

				outs := mustMap(t, m, insert(rel, r))
				if len(outs) != 1 {
					t.Fatalf("insert gave %d outs", len(outs))
				}
				got, ok := outs[0].Lookup("v")
				if !ok || !got.Equal(want) {
					t.Fatalf("insert of %q wrote %q (present %v)", want, got, ok)
				}

				// An update under REPLICA IDENTITY FULL: old image present.
				outs = mustMap(t, m, update(rel, r, r, false))
				got, ok = outs[0].Lookup("v")
				if !ok || !got.Equal(want) || keys(outs[0]) != "id=1" {
					t.Fatalf("update of %q wrote %q (present %v), key %s", want, got, ok, keys(outs[0]))
				}

				outs = mustMap(t, m, del(rel, r, false))
				if len(outs) != 1 || outs[0].Op != change.Delete || keys(outs[0]) != "id=1" || len(outs[0].Cols) != 0 {
					t.Fatalf("delete = %+v", outs)
				}
			})
		}
	}
}

// TestRoundTripInKey puts the exact values in the key: the key an update or
// delete finds its row by must be the same bytes too.
func TestRoundTripInKey(t *testing.T) {
	path := script(t, "t.js", "function forward(r) { return {...r} }\nfunction backward(r) { return r }\n")
	for _, text := range []string{"9007199254740993", "-9223372036854775808", "12"} {
		tbl := table("public", "t", []string{"id"}, col("id", pgtype.Int8OID), col("v", pgtype.TextOID))
		cat := newCatalog(tbl)
		m := newMapper(t, []Spec{{Entry: "e", Read: tbl.Name, Write: tbl.Name, Script: path}}, cat, cat)
		rel := relation(tbl, 1, "id")
		outs := mustMap(t, m, update(rel, nil, row(text, "x"), false))
		if keys(outs[0]) != "id="+text {
			t.Errorf("update key = %s, want id=%s", keys(outs[0]), text)
		}
		outs = mustMap(t, m, del(rel, row(text, nil), true))
		if keys(outs[0]) != "id="+text {
			t.Errorf("delete key = %s, want id=%s", keys(outs[0]), text)
		}
	}
}

// jsValue runs expr with the value handed to the script as v and returns
// what the script saw, as a string it computed.
func TestValuesInJS(t *testing.T) {
	cases := []struct {
		name string
		oid  uint32
		text string
		expr string // evaluated with v bound; must return a string
		want string
	}{
		{"int8 safe is a number", pgtype.Int8OID, "9007199254740991", "typeof v + ' ' + v", "number 9007199254740991"},
		{"int8 2^53 is a BigInt", pgtype.Int8OID, "9007199254740992", "typeof v + ' ' + v", "bigint 9007199254740992"},
		{"int8 min is a BigInt", pgtype.Int8OID, "-9223372036854775808", "typeof v + ' ' + v", "bigint -9223372036854775808"},
		{"int4", pgtype.Int4OID, "-7", "typeof v + ' ' + v", "number -7"},
		{"numeric is a string", pgtype.NumericOID, "19.90", "typeof v + ' ' + v", "string 19.90"},
		{"float8 -0", pgtype.Float8OID, "-0", "String(Object.is(v, -0))", "true"},
		{"float8 NaN", pgtype.Float8OID, "NaN", "String(Number.isNaN(v))", "true"},
		{"float8 -Infinity", pgtype.Float8OID, "-Infinity", "String(v)", "-Infinity"},
		{"float4 0.1 reads as 0.1", pgtype.Float4OID, "0.1", "String(v)", "0.1"},
		{"bool", pgtype.BoolOID, "f", "typeof v + ' ' + v", "boolean false"},
		{"json parsed", pgtype.JSONOID, `{"a": 1, "a": [2, {"b": null}]}`, "JSON.stringify(v)", `{"a":[2,{"b":null}]}`},
		{"json __proto__ is data", pgtype.JSONOID, `{"__proto__": 1}`, "Object.keys(v).join()", "__proto__"},
		{"bytea", pgtype.ByteaOID, `\x00ff10`, "v.constructor.name + ' ' + Array.from(v).join()", "Uint8Array 0,255,16"},
		{"bytea escape format", pgtype.ByteaOID, `a\000\\b`, "Array.from(v).join()", "97,0,92,98"},
		{"array 2-D", pgtype.Int4ArrayOID, `{{1,2},{3,NULL}}`, "JSON.stringify(v)", "[[1,2],[3,null]]"},
		{"array empty", pgtype.Int4ArrayOID, `{}`, "JSON.stringify(v)", "[]"},
		{"text[]", pgtype.TextArrayOID, `{NULL,"a\"b","c,d","",NULL}`, "JSON.stringify(v)", `[null,"a\"b","c,d","",null]`},
		{"int8[] mixes", pgtype.Int8ArrayOID, `{1,9007199254740993}`, "v.map(x => typeof x).join()", "number,bigint"},
		{"date string", pgtype.DateOID, "4713-01-01 BC", "v", "4713-01-01 BC"},
		{"interval string", pgtype.IntervalOID, "1 year 2 mons", "v", "1 year 2 mons"},
		{"range string", int4rangeOID, "[1,5)", "v", "[1,5)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src := "function forward(r) { const v = r.v; return {id: r.id, out: " + tc.expr + "} }\nfunction backward(r) { return r }\n"
			path := script(t, "t.js", src)
			in := table("public", "t", []string{"id"}, col("id", pgtype.Int4OID), col("v", tc.oid))
			out := table("public", "o", []string{"id"}, col("id", pgtype.Int4OID), col("out", pgtype.TextOID))
			m := newMapper(t, []Spec{{Entry: "e", Read: in.Name, Write: out.Name, Script: path}}, newCatalog(in), newCatalog(out))
			outs := mustMap(t, m, insert(relation(in, 1, "id"), row("1", tc.text)))
			got, _ := outs[0].Lookup("out")
			if got.String() != tc.want {
				t.Errorf("script saw %s, want %s", got, tc.want)
			}
		})
	}
}

// TestEncode covers values a script computed, written to each type.
func TestEncode(t *testing.T) {
	cases := []struct {
		name string
		oid  uint32
		expr string
		want string // "" with err set
		err  string
	}{
		{"int8 from number", pgtype.Int8OID, "42", "42", ""},
		{"int8 from -0", pgtype.Int8OID, "-0", "0", ""},
		{"int8 from BigInt", pgtype.Int8OID, "2n**63n - 1n", "9223372036854775807", ""},
		{"int8 from string", pgtype.Int8OID, "'-9223372036854775808'", "-9223372036854775808", ""},
		{"int8 from 2^60 number", pgtype.Int8OID, "2**60", "1152921504606846976", ""},
		{"int8 BigInt out of range", pgtype.Int8OID, "2n**63n", "", "out of range"},
		{"int8 from fraction", pgtype.Int8OID, "1.5", "", "want an integer"},
		{"int8 from bad string", pgtype.Int8OID, "'12x'", "", "not an integer"},
		{"int4 from fraction", pgtype.Int4OID, "2.5", "", "got number 2.5, want an integer"},
		{"int4 from string", pgtype.Int4OID, "'5'", "", `got string "5", want an integer number`},
		{"int4 from NaN", pgtype.Int4OID, "NaN", "", "want an integer"},
		{"int4 out of range", pgtype.Int4OID, "2**31", "", "out of range"},
		{"int2 out of range", pgtype.Int2OID, "40000", "", "out of range"},
		{"int2 from BigInt", pgtype.Int2OID, "1n", "", "got bigint 1n"},
		{"numeric from number", pgtype.NumericOID, "1995/100", "19.95", ""},
		{"numeric from big number", pgtype.NumericOID, "1e21", "1000000000000000000000", ""},
		{"numeric from tiny number", pgtype.NumericOID, "1e-7", "0.0000001", ""},
		{"numeric from NaN", pgtype.NumericOID, "NaN", "NaN", ""},
		{"numeric from -Infinity", pgtype.NumericOID, "-Infinity", "-Infinity", ""},
		{"numeric from BigInt", pgtype.NumericOID, "10n**30n", "1000000000000000000000000000000", ""},
		{"numeric from string", pgtype.NumericOID, "'1.5e3'", "1.5e3", ""},
		{"numeric from bad string", pgtype.NumericOID, "'abc'", "", "not a number"},
		{"numeric from boolean", pgtype.NumericOID, "true", "", "got boolean true, want a string, a number or a BigInt"},
		{"float8 0.1+0.2", pgtype.Float8OID, "0.1+0.2", "0.30000000000000004", ""},
		{"float8 1e15", pgtype.Float8OID, "1e15", "1e+15", ""},
		{"float8 below 1e15", pgtype.Float8OID, "123456789012345", "123456789012345", ""},
		{"float8 1e-5", pgtype.Float8OID, "0.00001", "1e-05", ""},
		{"float8 1e-4", pgtype.Float8OID, "0.0001", "0.0001", ""},
		{"float8 -0", pgtype.Float8OID, "-0", "-0", ""},
		{"float8 NaN", pgtype.Float8OID, "0/0", "NaN", ""},
		{"float8 -Infinity", pgtype.Float8OID, "-1/0", "-Infinity", ""},
		{"float8 from string", pgtype.Float8OID, "'1'", "", "want a number"},
		{"float4 0.1", pgtype.Float4OID, "0.1", "0.1", ""},
		{"float4 1e6", pgtype.Float4OID, "1e6", "1e+06", ""},
		{"float4 123456", pgtype.Float4OID, "123456", "123456", ""},
		{"float4 rounds", pgtype.Float4OID, "0.1+0.2", "0.3", ""},
		{"float4 out of range", pgtype.Float4OID, "1e39", "", "out of range"},
		{"bool", pgtype.BoolOID, "1 > 0", "t", ""},
		{"bool from number", pgtype.BoolOID, "1", "", "want a boolean"},
		{"text from number", pgtype.TextOID, "1", "", "got number 1, want a string"},
		{"text with NUL", pgtype.TextOID, "'a\\u0000b'", "", "NUL"},
		{"json object", pgtype.JSONOID, `({b: [1, "x", null], a: {c: true}, u: undefined, f() {}})`, `{"b":[1,"x",null],"a":{"c":true}}`, ""},
		{"json array holes", pgtype.JSONOID, `[undefined, () => 1, 2]`, `[null,null,2]`, ""},
		{"json string escapes", pgtype.JSONOID, `"q\"\\\n\u0001é<>"`, `"q\"\\\n\u0001é<>"`, ""},
		{"json BigInt", pgtype.JSONBOID, `({n: 123456789012345678901234n})`, `{"n":123456789012345678901234}`, ""},
		{"json Date", pgtype.JSONOID, `({d: new Date(Date.UTC(2024, 1, 29, 1, 2, 3, 4))})`, `{"d":"2024-02-29T01:02:03.004Z"}`, ""},
		{"json numbers as JS prints them", pgtype.JSONOID, `[1e21, 1e-7, 0.1, -0]`, `[1e+21,1e-7,0.1,0]`, ""},
		{"json NaN", pgtype.JSONOID, `({x: NaN})`, "", "not a JSON number"},
		{"json cycle", pgtype.JSONOID, `(() => { const a = {}; a.a = a; return a })()`, "", "nested too deeply"},
		{"json function", pgtype.JSONOID, `(() => 1)`, "", "got function"},
		{"bytea Uint8Array", pgtype.ByteaOID, "new Uint8Array([0, 255, 16])", `\x00ff10`, ""},
		{"bytea subarray", pgtype.ByteaOID, "new Uint8Array([0, 255, 16]).subarray(1)", `\xff10`, ""},
		{"bytea ArrayBuffer", pgtype.ByteaOID, "new Uint8Array([1, 2]).buffer", `\x0102`, ""},
		{"bytea from string", pgtype.ByteaOID, "'\\\\x00'", "", "want a Uint8Array or an ArrayBuffer"},
		{"timestamptz Date", pgtype.TimestamptzOID, "new Date(Date.UTC(2024, 1, 29, 12, 34, 56, 789))", "2024-02-29T12:34:56.789Z", ""},
		{"timestamptz Date BC", pgtype.TimestamptzOID, "new Date(Date.UTC(-43, 2, 15))", "0044-03-15T00:00:00.000Z BC", ""},
		{"timestamp Date", pgtype.TimestampOID, "new Date(Date.UTC(2024, 1, 29, 12, 34, 56, 789))", "2024-02-29T12:34:56.789", ""},
		{"date Date", pgtype.DateOID, "new Date(Date.UTC(2024, 1, 29, 23))", "2024-02-29", ""},
		{"time Date", pgtype.TimeOID, "new Date(Date.UTC(2024, 1, 29, 23, 1, 2, 3))", "23:01:02.003", ""},
		{"timetz Date", pgtype.TimetzOID, "new Date(Date.UTC(2024, 1, 29, 23, 1, 2, 3))", "23:01:02.003+00", ""},
		{"timestamptz invalid Date", pgtype.TimestamptzOID, "new Date(NaN)", "", "invalid Date"},
		{"interval Date", pgtype.IntervalOID, "new Date(0)", "", "got Date, want a string"},
		{"date string", pgtype.DateOID, "'infinity'", "infinity", ""},
		{"text[] quoting", pgtype.TextArrayOID, `[null, 'a"b', 'c,d', '', null, 'NULL', 'x y', 'back\\slash', '{}']`, `{NULL,"a\"b","c,d","",NULL,"NULL","x y","back\\slash","{}"}`, ""},
		{"int4[] 2-D", pgtype.Int4ArrayOID, "[[1, 2], [3, null]]", "{{1,2},{3,NULL}}", ""},
		{"int4[] 3-D", pgtype.Int4ArrayOID, "[[[1], [2]], [[3], [4]]]", "{{{1},{2}},{{3},{4}}}", ""},
		{"int4[] empty", pgtype.Int4ArrayOID, "[]", "{}", ""},
		{"int4[] ragged", pgtype.Int4ArrayOID, "[[1, 2], [3]]", "", "rectangular"},
		{"int4[] mixed depth", pgtype.Int4ArrayOID, "[[1, 2], 3]", "", "rectangular"},
		{"int4[] bad element", pgtype.Int4ArrayOID, "[1, 2.5]", "", "array[1]: got number 2.5"},
		{"int4[] undefined element", pgtype.Int4ArrayOID, "[1, undefined]", "", "use null"},
		{"float8[]", pgtype.Float8ArrayOID, "[-0, NaN, 1/0, 1e-310]", "{-0,NaN,Infinity,1e-310}", ""},
		{"bytea[]", pgtype.ByteaArrayOID, "[new Uint8Array([0, 255]), null]", `{"\\x00ff",NULL}`, ""},
		{"jsonb[]", pgtype.JSONBArrayOID, `[{a: 1}, [1, 2], "s"]`, `{"{\"a\":1}","[1,2]","\"s\""}`, ""},
		{"int8[] from BigInt", pgtype.Int8ArrayOID, "[2n**62n, 1]", "{4611686018427387904,1}", ""},
		{"array from string", pgtype.TextArrayOID, "'{a}'", "", "want an array"},
		{"range from string", int4rangeOID, "'[1,2)'", "[1,2)", ""},
		{"composite from object", compositeOID, "({a: 1})", "", "got object, want a string"},
		{"null", pgtype.Int4OID, "null", "NULL", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src := "function forward(r) { return {id: r.id, v: " + tc.expr + "} }\nfunction backward(r) { return r }\n"
			path := script(t, "t.js", src)
			in := table("public", "t", []string{"id"}, col("id", pgtype.Int4OID))
			out := table("public", "o", []string{"id"}, col("id", pgtype.Int4OID), col("v", tc.oid))
			m := newMapper(t, []Spec{{Entry: "e", Read: in.Name, Write: out.Name, Script: path}}, newCatalog(in), newCatalog(out))
			outs, err := m.Map(insert(relation(in, 1, "id"), row("1")))
			if tc.err != "" {
				if err == nil {
					t.Fatalf("wrote %s, want an error with %q", vals(outs[0]), tc.err)
				}
				var e *Error
				if !errAs(err, &e) {
					t.Fatalf("error %T is not *Error: %v", err, err)
				}
				if e.Column != "v" || !contains(err.Error(), tc.err) {
					t.Fatalf("error %q (column %q), want column v and %q", err, e.Column, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, _ := outs[0].Lookup("v")
			if got.String() != tc.want {
				t.Errorf("%s wrote %s, want %s", tc.expr, got, tc.want)
			}
		})
	}
}

// TestLoneSurrogates: a JavaScript string may hold half of a UTF-16 pair,
// which no UTF-8 text can; writing it must be an error that names the
// column, not a silent U+FFFD. Whole pairs and a real U+FFFD are text.
func TestLoneSurrogates(t *testing.T) {
	cases := []struct {
		name string
		oid  uint32
		expr string // the value returned for column note; r.note is "\uFFFD"
		want string // what is written, "" with err set
		err  string
		in   string // the jsonb document given as r.note instead, if set
	}{
		{"text high", pgtype.TextOID, `'\uD800'`, "", `column note (text): got string "\uD800", which holds a lone surrogate (\uD800 at index 0)`, ""},
		{"text low inside", pgtype.TextOID, `'a\uDC00b'`, "", `got string "a\uDC00b", which holds a lone surrogate (\uDC00 at index 1)`, ""},
		{"text emoji cut in two", pgtype.TextOID, `'😀 ok'.slice(1)`, "", `got string "\uDE00 ok", which holds a lone surrogate (\uDE00 at index 0)`, ""},
		{"text reversed pair", pgtype.TextOID, `'\uDE00\uD83D'`, "", `(\uDE00 at index 0)`, ""},
		{"text equal to a given U+FFFD", pgtype.TextOID, `r.note.replace('\uFFFD', '\uD800')`, "", "lone surrogate", ""},
		{"varchar", pgtype.VarcharOID, `'x\uD800'`, "", "column note (varchar): got string", ""},
		{"date", pgtype.DateOID, `'2024-01-01\uD800'`, "", "lone surrogate", ""},
		{"jsonb string", pgtype.JSONBOID, `({a: ['x', 'y\uD800']})`, "", `column note (jsonb): got string "y\uD800", which holds a lone surrogate`, ""},
		{"json scalar", pgtype.JSONOID, `'\uDBFF'`, "", "lone surrogate", ""},
		{"jsonb member name", pgtype.JSONBOID, `({ok: 1, ['k\uDC00']: 2})`, "", `member name: got string "k\uDC00", which holds a lone surrogate`, ""},
		{"text[] element", pgtype.TextArrayOID, `['ok', 'a\uD800']`, "", `array[1]: got string "a\uD800", which holds a lone surrogate`, ""},
		{"jsonb[] element", pgtype.JSONBArrayOID, `[{k: '\uD800'}]`, "", "array[0]: got string", ""},
		{"text pair", pgtype.TextOID, `'\uD83D\uDE00'`, "😀", "", ""},
		{"text U+FFFD", pgtype.TextOID, `'a\uFFFD'`, "a\uFFFD", "", ""},
		{"text given U+FFFD back", pgtype.TextOID, `r.note`, "\uFFFD", "", ""},
		{"jsonb U+FFFD member name", pgtype.JSONBOID, `({'\uFFFD': '😀'})`, `{"` + "\uFFFD" + `":"😀"}`, "", ""},
		{"text[] pairs", pgtype.TextArrayOID, `['😀', '\uFFFD']`, "{😀,\uFFFD}", "", ""},
		{"jsonb equal to a given U+FFFD", pgtype.JSONBOID, `({s: r.note.s.replace('\uFFFD', '\uDC00')})`, "", "lone surrogate", `{"s": "\uFFFD"}`},
		{"jsonb given U+FFFD back", pgtype.JSONBOID, `({s: r.note.s})`, `{"s": "\uFFFD"}`, "", `{"s": "\uFFFD"}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src := "function forward(r) { return {id: r.id, note: " + tc.expr + "} }\nfunction backward(r) { return r }\n"
			path := script(t, "t.js", src)
			given, givenOID := "\uFFFD", uint32(pgtype.TextOID)
			if tc.in != "" {
				given, givenOID = tc.in, pgtype.JSONBOID
			}
			in := table("public", "t", []string{"id"}, col("id", pgtype.Int4OID), col("note", givenOID))
			out := table("public", "o", []string{"id"}, col("id", pgtype.Int4OID), col("note", tc.oid))
			m := newMapper(t, []Spec{{Entry: "e", Read: in.Name, Write: out.Name, Script: path}}, newCatalog(in), newCatalog(out))
			ch := insert(relation(in, 1, "id"), row("1", given))
			if tc.err == "" {
				outs := mustMap(t, m, ch)
				if got, _ := outs[0].Lookup("note"); got.String() != tc.want {
					t.Errorf("%s wrote %s, want %s", tc.expr, got, tc.want)
				}
				return
			}
			e := mapErrOf(t, m, ch)
			msg := e.Error()
			if e.Column != "note" || !strings.HasPrefix(msg, `e: "public"."t" id=1 at 0/16B3748: column note (`) || !strings.Contains(msg, tc.err) {
				t.Fatalf("%s: error (column %q)\n%s\nwant column note and\n%s", tc.expr, e.Column, msg, tc.err)
			}
			if !strings.Contains(msg, "remove it, or cut strings on whole characters") {
				t.Errorf("error does not say what to do: %s", msg)
			}
		})
	}
}
