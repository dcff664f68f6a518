package catalog

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/cdcbridge/cdcbridge/change"
)

// The JSON form of a Catalog stores a snapshot next to recorded WAL, so that a
// replay resolves types and keys exactly as the live path did, without a
// database:
//
//	{"tables": [{"schema": "public", "name": "orders", "oid": 16390, ...}, ...],
//	 "types":  [{"oid": 16, "name": "boolean", "typtype": "b", ...}, ...]}
//
// Tables are a list (the map is keyed by a struct), sorted by schema and name;
// types are sorted by OID, so the same catalog always encodes to the same
// bytes. Single-byte codes (relkind, typtype, ...) are one-character strings
// when printable ASCII and numbers otherwise; a zero code is left out. nil and
// empty slices and maps stay distinct (null and []), so a decoded catalog is
// reflect.DeepEqual to the one encoded.

type jsonCatalog struct {
	Tables []jsonTable `json:"tables"`
	Types  []jsonType  `json:"types"`
}

type jsonTable struct {
	Schema           string       `json:"schema"`
	Name             string       `json:"name"`
	OID              uint32       `json:"oid,omitempty"`
	Kind             code         `json:"kind,omitempty"`
	ReplicaIdentity  code         `json:"replica_identity,omitempty"`
	Columns          []jsonColumn `json:"columns"`
	Key              []string     `json:"key"`
	IdentityIndexKey []string     `json:"identity_index_key"`
	UniqueKeys       [][]string   `json:"unique_keys"`
}

type jsonColumn struct {
	Name       string `json:"name"`
	Num        int16  `json:"num,omitempty"`
	TypeOID    uint32 `json:"type_oid,omitempty"`
	TypeName   string `json:"type_name,omitempty"`
	CastName   string `json:"cast_name,omitempty"`
	FullType   string `json:"full_type_name,omitempty"`
	TypeMod    int32  `json:"type_mod,omitempty"`
	NotNull    bool   `json:"not_null,omitempty"`
	HasDefault bool   `json:"has_default,omitempty"`
	Generated  bool   `json:"generated,omitempty"`
	Identity   code   `json:"identity,omitempty"`
	Default    string `json:"default,omitempty"`
}

type jsonType struct {
	OID      uint32 `json:"oid"`
	Name     string `json:"name,omitempty"`
	Typtype  code   `json:"typtype,omitempty"`
	Category code   `json:"category,omitempty"`
	Elem     uint32 `json:"elem,omitempty"`
	Base     uint32 `json:"base,omitempty"`
	Delim    code   `json:"delim,omitempty"`
	// NoEquality is left out when false, so catalogs recorded before it
	// existed read as types with an equality operator.
	NoEquality bool `json:"no_equality,omitempty"`
}

// code is a single-byte catalog code ("char" columns such as relkind).
type code byte

func (c code) MarshalJSON() ([]byte, error) {
	if c >= 0x20 && c < 0x7f {
		return json.Marshal(string(rune(c)))
	}
	// A byte that is not printable ASCII would not survive a JSON string
	// (which must be valid UTF-8): write its value.
	return strconv.AppendUint(nil, uint64(c), 10), nil
}

func (c *code) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		if len(s) != 1 {
			return fmt.Errorf("catalog code %s: want one character or a number from 0 to 255", b)
		}
		*c = code(s[0])
		return nil
	}
	n, err := strconv.ParseUint(string(b), 10, 8)
	if err != nil {
		return fmt.Errorf("catalog code %s: want one character or a number from 0 to 255", b)
	}
	*c = code(n)
	return nil
}

// MarshalJSON encodes the catalog as described above. Every table must be
// stored under its own Name and every type under its own OID, as Load does;
// anything else is an error rather than a snapshot that reads back different.
func (c *Catalog) MarshalJSON() ([]byte, error) {
	if c == nil {
		return []byte("null"), nil
	}
	var out jsonCatalog
	if c.Tables != nil {
		out.Tables = make([]jsonTable, 0, len(c.Tables))
		for key, t := range c.Tables {
			if t == nil {
				return nil, fmt.Errorf("encoding the catalog: table %s is nil", key)
			}
			if t.Name != key {
				return nil, fmt.Errorf("encoding the catalog: table %s is stored under %s", t.Name, key)
			}
			out.Tables = append(out.Tables, tableJSON(t))
		}
		slices.SortFunc(out.Tables, func(a, b jsonTable) int {
			return cmp.Or(cmp.Compare(a.Schema, b.Schema), cmp.Compare(a.Name, b.Name))
		})
	}
	if c.Types != nil {
		out.Types = make([]jsonType, 0, len(c.Types))
		for oid, t := range c.Types {
			if t == nil {
				return nil, fmt.Errorf("encoding the catalog: type %d is nil", oid)
			}
			if t.OID != oid {
				return nil, fmt.Errorf("encoding the catalog: type %d is stored under %d", t.OID, oid)
			}
			out.Types = append(out.Types, jsonType{OID: t.OID, Name: t.Name, Typtype: code(t.Typtype),
				Category: code(t.Category), Elem: t.Elem, Base: t.Base, Delim: code(t.Delim), NoEquality: t.NoEquality})
		}
		slices.SortFunc(out.Types, func(a, b jsonType) int { return cmp.Compare(a.OID, b.OID) })
	}
	return json.Marshal(out)
}

func tableJSON(t *Table) jsonTable {
	jt := jsonTable{
		Schema:           t.Name.Schema,
		Name:             t.Name.Name,
		OID:              t.OID,
		Kind:             code(t.Kind),
		ReplicaIdentity:  code(t.ReplicaIdentity),
		Key:              t.Key,
		IdentityIndexKey: t.IdentityIndexKey,
		UniqueKeys:       t.UniqueKeys,
	}
	if t.Columns != nil {
		jt.Columns = make([]jsonColumn, len(t.Columns))
		for i, c := range t.Columns {
			jt.Columns[i] = jsonColumn{Name: c.Name, Num: c.Num, TypeOID: c.TypeOID, TypeName: c.TypeName,
				CastName: c.CastName, FullType: c.FullTypeName, TypeMod: c.TypeMod, NotNull: c.NotNull, HasDefault: c.HasDefault,
				Generated: c.Generated, Identity: code(c.Identity), Default: c.Default}
		}
	}
	return jt
}

// UnmarshalJSON decodes what MarshalJSON encodes. Unknown fields, a table
// listed twice and a type listed twice are errors.
func (c *Catalog) UnmarshalJSON(b []byte) error {
	if bytes.Equal(bytes.TrimSpace(b), []byte("null")) {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var in jsonCatalog
	if err := dec.Decode(&in); err != nil {
		return fmt.Errorf("decoding a catalog: %w", err)
	}
	if dec.More() {
		return errors.New("decoding a catalog: data after the catalog object")
	}
	out := Catalog{}
	if in.Tables != nil {
		out.Tables = make(map[change.Table]*Table, len(in.Tables))
		for _, jt := range in.Tables {
			t := &Table{
				Name:             change.Table{Schema: jt.Schema, Name: jt.Name},
				OID:              jt.OID,
				Kind:             byte(jt.Kind),
				ReplicaIdentity:  byte(jt.ReplicaIdentity),
				Key:              jt.Key,
				IdentityIndexKey: jt.IdentityIndexKey,
				UniqueKeys:       jt.UniqueKeys,
			}
			if jt.Columns != nil {
				t.Columns = make([]Column, len(jt.Columns))
				for i, c := range jt.Columns {
					t.Columns[i] = Column{Name: c.Name, Num: c.Num, TypeOID: c.TypeOID, TypeName: c.TypeName,
						CastName: c.CastName, FullTypeName: c.FullType, TypeMod: c.TypeMod, NotNull: c.NotNull, HasDefault: c.HasDefault,
						Generated: c.Generated, Identity: byte(c.Identity), Default: c.Default}
				}
			}
			if _, dup := out.Tables[t.Name]; dup {
				return fmt.Errorf("decoding a catalog: table %s is listed twice", t.Name)
			}
			out.Tables[t.Name] = t
		}
	}
	if in.Types != nil {
		out.Types = make(map[uint32]*Type, len(in.Types))
		for _, jt := range in.Types {
			if _, dup := out.Types[jt.OID]; dup {
				return fmt.Errorf("decoding a catalog: type %d is listed twice", jt.OID)
			}
			out.Types[jt.OID] = &Type{OID: jt.OID, Name: jt.Name, Typtype: byte(jt.Typtype), Category: byte(jt.Category),
				Elem: jt.Elem, Base: jt.Base, Delim: byte(jt.Delim), NoEquality: jt.NoEquality}
		}
	}
	*c = out
	return nil
}
