package pipeline_test

import (
	"strings"
	"testing"

	"github.com/cdcbridge/cdcbridge/config"
	"github.com/cdcbridge/cdcbridge/internal/bridgetest"
)

// typesDDL creates a table with every row of the value table and the other
// common types, under the given name.
func typesDDL(table string) string {
	return strings.ReplaceAll(`
CREATE TABLE IF NOT EXISTS "@T" (
	id int8 PRIMARY KEY,
	i2 int2, i4 int4, i8 int8, o oid,
	n numeric, n2 numeric(12,2),
	f4 float4, f8 float8,
	b bool,
	t text, vc varchar(10), c char(5), "Select" text, "ünï" text,
	u uuid, ip inet, ci cidr, mac macaddr,
	e mood, d posint,
	j json, jb jsonb,
	by bytea,
	dt date, tm time, ttz timetz, ts timestamp, tstz timestamptz, iv interval,
	ai int4[], at text[], a2 int4[][], an numeric[], ajb jsonb[], ats timestamptz[],
	r int4range, tr tstzrange, comp pair, m money, bt bit(5), vb varbit, x xml, pt point
);`, "@T", table)
}

const typesPrelude = `
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN posint AS int4 CHECK (VALUE > 0);
CREATE TYPE pair AS (a int, b text);
`

// valueRows are the edge values, one INSERT each.
var valueRows = []string{
	`(1, 1, 1, 1, 1, 1, 1, 1, 1, true, 'a', 'a', 'a', 'a', 'a', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '10.0.0.1/8', '10.0.0.0/8', '08:00:2b:01:02:03',
	  'ok', 1, '{"a":  1, "a": 2, "n": 12345678901234567890}', '{"price": 19.90, "big": 123456789012345678901234567890}', '\x00ff10',
	  '2024-02-29', '12:34:56.123456', '12:34:56.123456+05:30', '2024-02-29 12:34:56.123456', '2024-02-29 12:34:56.123456+00', '1 year 2 mons 3 days 04:05:06.789',
	  '{1,NULL,3}', '{NULL,"a\"b","c,d","",NULL,"NULL"}', '{{1,2},{3,4}}', '{1.10,NaN,-0.0}', ARRAY['{"x": 1.50}'::jsonb, NULL], '{"2024-01-01 00:00:00.000001+00"}',
	  '[1,5)', '["2024-01-01 00:00:00+00","2024-02-01 00:00:00+00")', '(1,"x y")', 12.34, B'10101', B'1', '<a>x</a>', '(1.5,2)')`,
	// int8 at and past 2^53 and at its limits; numeric NaN and Infinity; float -0 and NaN; BC and infinite times.
	`(2, -32768, -2147483648, 9007199254740993, 4294967295, 'NaN', -1.50, '-0', '-0', false, '', '', '', NULL, 'ünïcödé ✓', NULL, '::1', '::/0', NULL,
	  'sad', 2147483647, '12345678901234567890', '[1, 2.50, {"k": [true, null]}]', '',
	  '4713-01-01 BC', '24:00:00', '00:00:00-15:59', '294276-12-31 23:59:59.999999', '4713-01-01 00:00:00+00 BC', '-178000000 years',
	  '{}', '{}', '{{NULL,2},{3,NULL}}', '{Infinity,-Infinity}', '{}', '{infinity,-infinity}',
	  'empty', '(,)', '(,)', -92233720368547758.08, B'00000', B'', '<?xml version="1.0"?><a/>', '(0,-0)')`,
	`(3, 32767, 2147483647, 9223372036854775807, 0, 'Infinity', 9999999999.99, 'NaN', 'NaN', NULL, 'tab	and
newline', 'ten chars!', 'ab   ', 'x', 'y', '00000000-0000-0000-0000-000000000000', '192.168.0.1', '192.168.0.0/24', 'ff:ff:ff:ff:ff:ff',
	  'happy', 3, 'null', 'null', '\x', 'infinity', '00:00:00', '23:59:59.999999+15:59', 'infinity', '-infinity', '0',
	  '{-2147483648}', '{"back\\slash","{braces}"," spaced "}', '{{1},{2}}', '{123456789012345678901234567890.123456789}', '{"[]"}', NULL,
	  '[-2147483648,2147483647)', '[2024-01-01 00:00:00.123456+00,infinity)', '(,)', 0, B'11111', B'1010101010', 'text only', '(1e+300,-1e-300)')`,
	`(4, NULL, NULL, -9223372036854775808, NULL, '-Infinity', NULL, 'Infinity', '-Infinity', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
	  NULL, NULL, '{"a": 0.1, "b": 1e400, "c": -0, "d": 1E-7}', '{"a": 0.1, "c": -0, "d": 1E-7}', NULL, '-infinity', NULL, NULL, '-infinity', 'infinity', NULL,
	  NULL, '{NULL}', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)`,
	`(5, 0, 0, 9007199254740991, 1, '0.000000000000000000000000000001', 0.01, 1e-45, 4.9e-324, true, 'x', 'x', 'x', 'x', 'x', NULL, NULL, NULL, NULL,
	  NULL, NULL, '{"n": -98765432109876543210.123456789}', '{"n": -98765432109876543210.123456789}', '\xdeadbeef', '0001-01-01', '00:00:00.000001', NULL, '2000-01-01 00:00:00', '1999-12-31 23:59:59.999999+00', '-1 days +00:00:00.000001',
	  '{0}', '{"\u00e9"}', '{{0}}', '{0}', NULL, NULL, NULL, NULL, '(,"")', 0.01, B'00001', NULL, NULL, NULL)`,
}

func TestEveryValueByteForByte(t *testing.T) {
	src := typesPrelude + typesDDL("vals")
	tgt := typesPrelude + typesDDL("vals") + typesDDL("vals_js") + typesDDL("vals_spread")
	e := bridgetest.NewEnv(t, src, tgt)
	m := e.Mapping("values", `
  - source: public.vals
    target: public.vals
  - source: public.vals
    target: public.vals_js
    transform: same.js
  - source: public.vals
    target: public.vals_spread
    transform: spread.js
`, map[string]string{
		"same.js":   "function forward(row) { return row }\nfunction backward(row) { return row }\n",
		"spread.js": "function forward(row, change) { return {...row} }\nfunction backward(row) { return {...row} }\n",
	})
	d := e.Start(m, config.Forward)
	for _, r := range valueRows {
		e.ExecSource(t, "INSERT INTO vals VALUES "+r)
	}
	want := bridgetest.Query(t, e.Src, "SELECT v::text FROM vals v")
	if n := bridgetest.Query(t, e.Src, "SELECT count(*) FROM vals"); n != "("+itoa(len(valueRows))+")" {
		t.Fatalf("source holds %s rows", n)
	}
	for _, tbl := range []string{"vals", "vals_js", "vals_spread"} {
		bridgetest.Eventually(t, e.Tgt, "SELECT v::text FROM "+tbl+" v", want, d)
	}
	// Updates that touch one column keep every other byte; deletes follow.
	e.ExecSource(t, "UPDATE vals SET t = t || '!' WHERE id IN (1, 3); DELETE FROM vals WHERE id = 4; UPDATE vals SET i8 = i8 - 1 WHERE id = 2")
	want = bridgetest.Query(t, e.Src, "SELECT v::text FROM vals v")
	for _, tbl := range []string{"vals", "vals_js", "vals_spread"} {
		bridgetest.Eventually(t, e.Tgt, "SELECT v::text FROM "+tbl+" v", want, d)
	}
}
