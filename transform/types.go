package transform

import (
	"fmt"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/cdcbridge/cdcbridge/catalog"
)

// kind is how a PostgreSQL type travels into JavaScript and back; each kind
// has one codec (see codecs).
type kind uint8

const (
	kString kind = iota // text form both ways: text, uuid, inet, enums, ranges, composites, ...
	kBool
	kInt2
	kInt4
	kOID
	kInt8
	kNumeric
	kFloat4
	kFloat8
	kJSON
	kJSONB
	kBytea
	kDate
	kTime
	kTimeTZ
	kTimestamp
	kTimestampTZ
	kInterval
	kArray
)

// pgType is a column type resolved for value mapping: domains followed to
// their base type, arrays to their element type.
type pgType struct {
	kind  kind
	oid   uint32 // after resolving domains
	name  string // the type's own name, for messages
	elem  *pgType
	delim byte // element delimiter of an array type
}

func (t *pgType) isJSON() bool { return t.kind == kJSON || t.kind == kJSONB }

// sameKind reports whether a value of type a can be written to a column of
// type b with its original bytes: both map to and from JavaScript the same way.
func sameKind(a, b *pgType) bool {
	if a.kind != b.kind {
		return false
	}
	if a.kind == kArray {
		return a.delim == b.delim && sameKind(a.elem, b.elem)
	}
	return true
}

var scalarKinds = map[uint32]kind{
	pgtype.BoolOID:        kBool,
	pgtype.Int2OID:        kInt2,
	pgtype.Int4OID:        kInt4,
	pgtype.OIDOID:         kOID,
	pgtype.Int8OID:        kInt8,
	pgtype.NumericOID:     kNumeric,
	pgtype.Float4OID:      kFloat4,
	pgtype.Float8OID:      kFloat8,
	pgtype.JSONOID:        kJSON,
	pgtype.JSONBOID:       kJSONB,
	pgtype.ByteaOID:       kBytea,
	pgtype.DateOID:        kDate,
	pgtype.TimeOID:        kTime,
	pgtype.TimetzOID:      kTimeTZ,
	pgtype.TimestampOID:   kTimestamp,
	pgtype.TimestamptzOID: kTimestampTZ,
	pgtype.IntervalOID:    kInterval,
}

const (
	int2vectorOID = 22 // typcategory 'A' but printed as "1 2 3": a string
	oidvectorOID  = 30
)

// types resolves type OIDs against one catalog, caching the results.
type types struct {
	cat   *catalog.Catalog
	known *pgtype.Map // fallback for OIDs a hand-built catalog does not list
	cache map[uint32]*pgType
}

func newTypes(cat *catalog.Catalog, known *pgtype.Map) *types {
	return &types{cat: cat, known: known, cache: map[uint32]*pgType{}}
}

func (ts *types) get(oid uint32) *pgType {
	if t, ok := ts.cache[oid]; ok {
		return t
	}
	t := ts.build(oid, 0)
	ts.cache[oid] = t
	return t
}

func (ts *types) build(oid uint32, depth int) *pgType {
	base := ts.cat.Resolve(oid)
	t := &pgType{oid: base, name: ts.name(oid)}
	if k, ok := scalarKinds[base]; ok {
		t.kind = k
		return t
	}
	if base == int2vectorOID || base == oidvectorOID || depth > 2 {
		return t
	}
	var elem uint32
	var delim byte
	if ct := ts.cat.Type(base); ct != nil {
		if ct.Category == 'A' && ct.Elem != 0 {
			elem, delim = ct.Elem, ct.Delim
		}
	} else if pt, ok := ts.known.TypeForOID(base); ok {
		if ac, ok := pt.Codec.(*pgtype.ArrayCodec); ok && ac.ElementType != nil {
			elem, delim = ac.ElementType.OID, ac.Delimiter
		}
	}
	if elem != 0 {
		if delim == 0 {
			delim = ','
		}
		t.kind, t.elem, t.delim = kArray, ts.build(elem, depth+1), delim
	}
	return t
}

func (ts *types) name(oid uint32) string {
	if ct := ts.cat.Type(oid); ct != nil {
		return ct.Name
	}
	if pt, ok := ts.known.TypeForOID(oid); ok {
		return pt.Name
	}
	return fmt.Sprintf("type %d", oid)
}
