package catalog

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/cdcbridge/cdcbridge/change"
)

// Column is one live (not dropped) column of a table.
type Column struct {
	Name    string
	Num     int16
	TypeOID uint32
	// TypeName is format_type(oid, NULL): the type without its modifier,
	// schema-qualified where the search path needs it, usable in a cast.
	TypeName string
	// CastName is the quoted, schema-qualified pg_type name, a cast target
	// that carries no modifier: text::CastName keeps every character of a
	// char(n) or bit(n) value, where a cast to TypeName ("character",
	// "bit") would apply a length of one.
	CastName string
	// FullTypeName is format_type(oid, typmod): the column's declared type,
	// numeric(12,2) or char(5), for casting a value to exactly what the
	// column would store.
	FullTypeName string
	TypeMod      int32
	NotNull      bool
	HasDefault   bool
	// Generated is true for GENERATED ALWAYS AS (...) STORED columns: they
	// are computed by the database and never written.
	Generated bool
	// Identity is 'a' (GENERATED ALWAYS), 'd' (BY DEFAULT) or 0.
	Identity byte
	// Default is the column default expression (pg_get_expr), "" if none.
	Default string
}

// Table describes one table.
type Table struct {
	Name    change.Table
	OID     uint32
	Columns []Column
	// Key holds the primary key columns in index order, nil without one.
	Key []string
	// ReplicaIdentity is relreplident: 'd' default, 'f' full, 'i' index, 'n' nothing.
	ReplicaIdentity byte
	// IdentityIndexKey holds the columns of the REPLICA IDENTITY USING INDEX index.
	IdentityIndexKey []string
	// UniqueKeys lists the column sets of valid, non-partial, immediate
	// unique indexes on plain columns (the primary key included), the
	// primary key first and the others in index OID order: what an ON
	// CONFLICT clause can name.
	UniqueKeys [][]string
	// IsPartition and HasSubclass matter for publications.
	Kind byte // relkind
	// FiresTriggers: the table, or a partition of it, has user triggers
	// that fire for the bridge's writes (ENABLE REPLICA or ENABLE ALWAYS
	// TRIGGER), which may observe the order of the rows written.
	// FiresRules: likewise for rules (ENABLE REPLICA or ALWAYS RULE), which
	// an INSERT obeys and a COPY does not.
	FiresTriggers, FiresRules bool
}

// Column returns the named column, or nil.
func (t *Table) Column(name string) *Column {
	for i := range t.Columns {
		if t.Columns[i].Name == name {
			return &t.Columns[i]
		}
	}
	return nil
}

// HasIdentityAlways reports whether any column is GENERATED ALWAYS AS IDENTITY.
func (t *Table) HasIdentityAlways() bool {
	for _, c := range t.Columns {
		if c.Identity == 'a' {
			return true
		}
	}
	return false
}

// IsUniqueKey reports whether cols (in any order) are exactly the columns of
// a unique index.
func (t *Table) IsUniqueKey(cols []string) bool {
	for _, k := range t.UniqueKeys {
		if sameSet(k, cols) {
			return true
		}
	}
	return false
}

// RowKey returns the columns that identify a row of the table when it is
// written, nil when none do: the primary key; else the columns of a unique
// index whose columns are all NOT NULL (the REPLICA IDENTITY USING INDEX
// index when it is one, else the first by index OID). A unique index on a
// nullable column is no key: it lets several rows hold NULL there.
func (t *Table) RowKey() []string {
	if len(t.Key) > 0 {
		return t.Key
	}
	if len(t.IdentityIndexKey) > 0 && t.IsUniqueKey(t.IdentityIndexKey) && t.notNull(t.IdentityIndexKey) {
		return t.IdentityIndexKey
	}
	for _, k := range t.UniqueKeys {
		if len(k) > 0 && t.notNull(k) {
			return k
		}
	}
	return nil
}

func (t *Table) notNull(cols []string) bool {
	for _, name := range cols {
		if c := t.Column(name); c == nil || !c.NotNull {
			return false
		}
	}
	return true
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	seen := make(map[string]bool, len(a))
	for _, x := range a {
		seen[x] = true
	}
	for _, y := range b {
		if !seen[y] {
			return false
		}
	}
	return true
}

// Type describes one pg_type row.
type Type struct {
	OID      uint32
	Name     string // format_type(oid, NULL)
	Typtype  byte   // b base, c composite, d domain, e enum, p pseudo, r range, m multirange
	Category byte   // typcategory: A array, N numeric, S string, ...
	Elem     uint32 // element type of an array type (typcategory 'A'), else 0
	Base     uint32 // base type of a domain, else 0
	Delim    byte   // array delimiter of the element type
	// NoEquality: the type itself has no default btree or hash operator
	// class (json, xml, point, ...; also arrays, enums, ranges and
	// composites, whose classes are generic). See HasEquality.
	NoEquality bool
}

// Catalog is a snapshot of tables and types.
type Catalog struct {
	Tables map[change.Table]*Table
	Types  map[uint32]*Type
}

// Table returns the named table, or nil when it does not exist.
func (c *Catalog) Table(t change.Table) *Table {
	if c == nil {
		return nil
	}
	return c.Tables[t]
}

// Type returns the type with the given OID, or nil when unknown.
func (c *Catalog) Type(oid uint32) *Type {
	if c == nil {
		return nil
	}
	return c.Types[oid]
}

// Resolve follows domains down to their base type. It returns the OID
// itself when the type is unknown or not a domain.
func (c *Catalog) Resolve(oid uint32) uint32 {
	for i := 0; i < 16; i++ {
		t := c.Type(oid)
		if t == nil || t.Typtype != 'd' || t.Base == 0 {
			return oid
		}
		oid = t.Base
	}
	return oid
}

// HasEquality reports whether values of the type can be compared with its
// own equality operator, as PostgreSQL's apply worker compares the columns
// of a row found by all its columns: domains through their base type,
// arrays through their element type. Without one (json, xml, point, an
// unknown type) values are compared by their text form.
func (c *Catalog) HasEquality(oid uint32) bool {
	for i := 0; i < 16; i++ {
		t := c.Type(oid)
		switch {
		case t == nil:
			return false
		case t.Typtype == 'd' && t.Base != 0:
			oid = t.Base
		case t.Category == 'A' && t.Elem != 0:
			oid = t.Elem
		case t.Typtype == 'e' || t.Typtype == 'r' || t.Typtype == 'm':
			// Enums order by their labels; a range's subtype has a btree class.
			return true
		default:
			return !t.NoEquality
		}
	}
	return false
}

// Querier is what Load needs of a connection.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// Load reads the named tables (those that exist; a missing one is simply
// absent from the result) and every type in the database.
func Load(ctx context.Context, q Querier, tables []change.Table) (*Catalog, error) {
	c := &Catalog{Tables: map[change.Table]*Table{}, Types: map[uint32]*Type{}}
	if err := c.loadTypes(ctx, q); err != nil {
		return nil, fmt.Errorf("reading pg_type: %w", err)
	}
	for _, t := range tables {
		if _, ok := c.Tables[t]; ok {
			continue
		}
		info, err := loadTable(ctx, q, t)
		if err != nil {
			return nil, fmt.Errorf("reading the catalog of %s: %w", t, err)
		}
		if info != nil {
			c.Tables[t] = info
		}
	}
	return c, nil
}

func (c *Catalog) loadTypes(ctx context.Context, q Querier) error {
	rows, err := q.Query(ctx, `
		SELECT t.oid, format_type(t.oid, NULL), t.typtype, t.typcategory,
		       CASE WHEN t.typcategory = 'A' OR t.typsubscript = 'array_subscript_handler'::regproc THEN t.typelem ELSE 0 END,
		       t.typbasetype, coalesce(e.typdelim, t.typdelim),
		       NOT EXISTS (SELECT 1 FROM pg_opclass oc JOIN pg_am am ON am.oid = oc.opcmethod
		                   WHERE oc.opcdefault AND am.amname IN ('btree', 'hash')
		                     AND (oc.opcintype = t.oid OR EXISTS (SELECT 1 FROM pg_cast k
		                          WHERE k.castsource = t.oid AND k.casttarget = oc.opcintype AND k.castmethod = 'b' AND k.castcontext = 'i')))
		FROM pg_type t LEFT JOIN pg_type e ON e.oid = t.typelem`)
	if err != nil {
		return err
	}
	var (
		ty                  Type
		typtype, cat, delim string
		oid, elem, base     uint32
	)
	_, err = pgx.ForEachRow(rows, []any{&oid, &ty.Name, &typtype, &cat, &elem, &base, &delim, &ty.NoEquality}, func() error {
		t := ty
		t.OID, t.Elem, t.Base = oid, elem, base
		t.Typtype, t.Category, t.Delim = firstByte(typtype), firstByte(cat), firstByte(delim)
		c.Types[oid] = &t
		return nil
	})
	return err
}

func firstByte(s string) byte {
	if s == "" {
		return 0
	}
	return s[0]
}

func loadTable(ctx context.Context, q Querier, t change.Table) (*Table, error) {
	rows, err := q.Query(ctx, `
		SELECT c.oid, c.relreplident, c.relkind,
		       EXISTS (SELECT 1 FROM pg_trigger tg
		               WHERE (tg.tgrelid = c.oid OR tg.tgrelid IN (SELECT relid FROM pg_partition_tree(c.oid)))
		                 AND NOT tg.tgisinternal AND tg.tgenabled IN ('R', 'A')),
		       EXISTS (SELECT 1 FROM pg_rewrite rw
		               WHERE (rw.ev_class = c.oid OR rw.ev_class IN (SELECT relid FROM pg_partition_tree(c.oid)))
		                 AND rw.rulename <> '_RETURN' AND rw.ev_enabled IN ('R', 'A'))
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')`, t.Schema, t.Name)
	if err != nil {
		return nil, err
	}
	var (
		info        = &Table{Name: t}
		ident, kind string
	)
	tag, err := pgx.ForEachRow(rows, []any{&info.OID, &ident, &kind, &info.FiresTriggers, &info.FiresRules}, func() error {
		info.ReplicaIdentity, info.Kind = firstByte(ident), firstByte(kind)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if tag.RowsAffected() == 0 {
		return nil, nil
	}

	rows, err = q.Query(ctx, `
		SELECT a.attname, a.attnum, a.atttypid, format_type(a.atttypid, NULL),
		       quote_ident(tn.nspname) || '.' || quote_ident(ty.typname),
		       format_type(a.atttypid, a.atttypmod), a.atttypmod,
		       a.attnotnull, a.atthasdef, a.attgenerated = 's', a.attidentity::text,
		       coalesce(pg_get_expr(d.adbin, d.adrelid), '')
		FROM pg_attribute a
		JOIN pg_type ty ON ty.oid = a.atttypid
		JOIN pg_namespace tn ON tn.oid = ty.typnamespace
		LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
		WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
		ORDER BY a.attnum`, info.OID)
	if err != nil {
		return nil, err
	}
	var col Column
	_, err = pgx.ForEachRow(rows, []any{&col.Name, &col.Num, &col.TypeOID, &col.TypeName, &col.CastName, &col.FullTypeName, &col.TypeMod,
		&col.NotNull, &col.HasDefault, &col.Generated, &ident, &col.Default}, func() error {
		col.Identity = firstByte(ident)
		info.Columns = append(info.Columns, col)
		return nil
	})
	if err != nil {
		return nil, err
	}
	rows, err = q.Query(ctx, `
		SELECT i.indisprimary, i.indisreplident, i.indimmediate,
		       array(SELECT a.attname FROM unnest(i.indkey) WITH ORDINALITY k(attnum, ord)
		             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
		             ORDER BY k.ord)
		FROM pg_index i
		WHERE i.indrelid = $1 AND i.indisunique AND i.indisvalid AND i.indpred IS NULL
		  AND NOT (0 = ANY(i.indkey::int2[]))
		ORDER BY i.indisprimary DESC, i.indexrelid`, info.OID)
	if err != nil {
		return nil, err
	}
	var (
		primary, replident, immediate bool
		cols                          []string
	)
	_, err = pgx.ForEachRow(rows, []any{&primary, &replident, &immediate, &cols}, func() error {
		if primary {
			info.Key = cols
		}
		if replident {
			info.IdentityIndexKey = cols
		}
		// A deferrable unique index can be neither an ON CONFLICT arbiter
		// nor a replica identity.
		if immediate {
			info.UniqueKeys = append(info.UniqueKeys, cols)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return info, nil
}

// Relation describes the table as a replication stream would announce it:
// generated columns left out (PostgreSQL 15 does not publish them), the
// primary key marked as the key.
func (t *Table) Relation() *change.Relation {
	rel := &change.Relation{ID: t.OID, Table: t.Name, ReplicaIdentity: t.ReplicaIdentity}
	for _, c := range t.Columns {
		if c.Generated {
			continue
		}
		key := false
		for _, k := range t.Key {
			key = key || k == c.Name
		}
		rel.Columns = append(rel.Columns, change.Column{Name: c.Name, TypeOID: c.TypeOID, TypeMod: c.TypeMod, Key: key})
	}
	return rel
}
