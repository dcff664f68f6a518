package catalog

import (
	"bytes"
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/cdcbridge/cdcbridge/change"
	"github.com/cdcbridge/cdcbridge/internal/pgtest"
)

// TestJSONRoundTrip: a catalog loaded from a database with awkward names and
// types reads back from its JSON exactly as it was.
func TestJSONRoundTrip(t *testing.T) {
	dsn := pgtest.Target(t).NewDB(t)
	conn := pgtest.Connect(t, dsn)
	pgtest.MustExec(t, conn, `
		CREATE SCHEMA "Odd ""Schema"".x";
		CREATE TYPE "Odd ""Schema"".x".mood AS ENUM ('sad', 'ok');
		CREATE TYPE pair AS (a int, "B c" text);
		CREATE DOMAIN posint AS int8 CHECK (VALUE > 0);
		CREATE DOMAIN posints AS posint[];
		CREATE TYPE floatrange AS RANGE (subtype = float8);
		CREATE TABLE "Odd ""Schema"".x"."Sélect.Me" (
			"Id" int GENERATED ALWAYS AS IDENTITY,
			k2 text COLLATE "C",
			m "Odd ""Schema"".x".mood NOT NULL DEFAULT 'ok',
			p pair,
			qty posint,
			qs posints,
			r floatrange,
			b box[],
			c char(3),
			v varchar(7),
			bits bit(4),
			n numeric(12, 2),
			total numeric GENERATED ALWAYS AS (qty * 2) STORED,
			PRIMARY KEY ("Id", k2));
		CREATE TABLE nokey (a int, b int NOT NULL, c text);
		CREATE UNIQUE INDEX ON nokey (b);
		CREATE UNIQUE INDEX nokey_c ON nokey (c, b) ;
		ALTER TABLE nokey ALTER c SET NOT NULL;
		ALTER TABLE nokey REPLICA IDENTITY USING INDEX nokey_c;
		ALTER TABLE nokey DROP COLUMN a;
		CREATE TABLE nocols ();
		CREATE TABLE parted (id int, at date, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);`)
	tables := []change.Table{
		{Schema: `Odd "Schema".x`, Name: "Sélect.Me"},
		{Schema: "public", Name: "nokey"},
		{Schema: "public", Name: "nocols"},
		{Schema: "public", Name: "parted"},
		{Schema: "public", Name: "missing"},
	}
	cat, err := Load(context.Background(), conn, tables)
	if err != nil {
		t.Fatal(err)
	}
	if len(cat.Tables) != 4 {
		t.Fatalf("loaded %d tables, want 4", len(cat.Tables))
	}
	b, err := json.Marshal(cat)
	if err != nil {
		t.Fatal(err)
	}
	var back Catalog
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cat, &back) {
		for k, v := range cat.Tables {
			if !reflect.DeepEqual(v, back.Tables[k]) {
				t.Errorf("table %s:\n got %+v\nwant %+v", k, back.Tables[k], v)
			}
		}
		t.Fatalf("catalog does not read back equal")
	}
	again, err := json.Marshal(&back)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, again) {
		t.Fatal("encoding is not deterministic")
	}
	if !strings.Contains(string(b), `"name":"Sélect.Me"`) || !strings.Contains(string(b), `"typtype":"e"`) {
		t.Fatalf("unexpected encoding: %.400s", b)
	}
}

// TestJSONEdges: zero values, nil against empty, codes that are not printable
// ASCII and the errors.
func TestJSONEdges(t *testing.T) {
	odd := change.Table{Schema: "s", Name: "t"}
	cases := map[string]*Catalog{
		"zero":         {},
		"empty maps":   {Tables: map[change.Table]*Table{}, Types: map[uint32]*Type{}},
		"empty slices": {Tables: map[change.Table]*Table{odd: {Name: odd, Columns: []Column{}, Key: []string{}, UniqueKeys: [][]string{{}, nil}}}},
		"codes": {
			Tables: map[change.Table]*Table{odd: {Name: odd, Kind: 0xE9, ReplicaIdentity: '"',
				Columns: []Column{{Name: "", Identity: '\\', TypeMod: -1, Num: -3}}}},
			Types: map[uint32]*Type{0: {}, 7: {OID: 7, Delim: 0x01, Typtype: '<', Category: 0xff}},
		},
	}
	for name, cat := range cases {
		t.Run(name, func(t *testing.T) {
			b, err := json.Marshal(cat)
			if err != nil {
				t.Fatal(err)
			}
			var back Catalog
			if err := json.Unmarshal(b, &back); err != nil {
				t.Fatalf("%v\n%s", err, b)
			}
			if !reflect.DeepEqual(cat, &back) {
				t.Fatalf("%s\n got %#v\nwant %#v", b, back, *cat)
			}
		})
	}

	var nilCat *Catalog
	if b, err := json.Marshal(nilCat); err != nil || string(b) != "null" {
		t.Fatalf("nil catalog: %s, %v", b, err)
	}
	bad := map[string]*Catalog{
		"misfiled table": {Tables: map[change.Table]*Table{odd: {Name: change.Table{Schema: "s", Name: "u"}}}},
		"nil table":      {Tables: map[change.Table]*Table{odd: nil}},
		"misfiled type":  {Types: map[uint32]*Type{1: {OID: 2}}},
	}
	for name, cat := range bad {
		if _, err := json.Marshal(cat); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	for _, in := range []string{
		`{"tables":[{"schema":"s","name":"t","columns":null,"key":null,"identity_index_key":null,"unique_keys":null},{"schema":"s","name":"t","columns":null,"key":null,"identity_index_key":null,"unique_keys":null}],"types":null}`,
		`{"tables":null,"types":[{"oid":1},{"oid":1}]}`,
		`{"tables":null,"types":null,"extra":1}`,
		`{"tables":null,"types":[{"oid":1,"typtype":"ab"}]}`,
		`{"tables":null,"types":[{"oid":1,"typtype":256}]}`,
	} {
		var c Catalog
		if err := json.Unmarshal([]byte(in), &c); err == nil {
			t.Errorf("no error for %s", in)
		}
	}
}
