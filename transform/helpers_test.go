package transform

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/cdcbridge/cdcbridge/catalog"
	"github.com/cdcbridge/cdcbridge/change"
)

// col builds a catalog column; the OIDs are PostgreSQL's own (pgtype's
// constants), so a catalog built from them describes real types.
func col(name string, oid uint32) catalog.Column {
	return catalog.Column{Name: name, TypeOID: oid}
}

func table(schema, name string, key []string, cols ...catalog.Column) *catalog.Table {
	for i := range cols {
		cols[i].Num = int16(i + 1)
	}
	return &catalog.Table{Name: change.Table{Schema: schema, Name: name}, Columns: cols, Key: key, ReplicaIdentity: 'd'}
}

func newCatalog(tables ...*catalog.Table) *catalog.Catalog {
	c := &catalog.Catalog{Tables: map[change.Table]*catalog.Table{}, Types: map[uint32]*catalog.Type{}}
	for _, t := range tables {
		c.Tables[t.Name] = t
	}
	return c
}

// relation is what the replication stream would announce for t, with the
// ident columns marked as the replica identity.
func relation(t *catalog.Table, id uint32, ident ...string) *change.Relation {
	r := &change.Relation{ID: id, Table: t.Name, ReplicaIdentity: 'd'}
	for _, c := range t.Columns {
		if c.Generated {
			continue // pgoutput does not send generated columns
		}
		isKey := false
		for _, k := range ident {
			isKey = isKey || k == c.Name
		}
		r.Columns = append(r.Columns, change.Column{Name: c.Name, TypeOID: c.TypeOID, Key: isKey})
	}
	return r
}

// absent marks an unchanged TOASTed value in row.
type absentT struct{}

var absent absentT

// row builds a row: a string is a text value, nil is NULL, absent is
// Absent.
func row(vals ...any) change.Row {
	r := make(change.Row, len(vals))
	for i, v := range vals {
		switch v := v.(type) {
		case nil:
			r[i] = change.Value{Kind: change.Null}
		case absentT:
			r[i] = change.Value{Kind: change.Absent}
		case string:
			r[i] = change.TextValue(v)
		default:
			panic("row: unsupported value")
		}
	}
	return r
}

const testLSN = pglogrepl.LSN(0x16B3748)

var testTxn = &change.Txn{Xid: 77, CommitTime: time.Date(2024, 2, 29, 12, 34, 56, 123456000, time.UTC)}

func insert(rel *change.Relation, newRow change.Row) *change.Change {
	return &change.Change{Op: change.Insert, Rel: rel, New: newRow, LSN: testLSN, Txn: testTxn}
}

func update(rel *change.Relation, old, newRow change.Row, oldIsKey bool) *change.Change {
	return &change.Change{Op: change.Update, Rel: rel, Old: old, OldIsKey: oldIsKey, New: newRow, LSN: testLSN, Txn: testTxn}
}

func del(rel *change.Relation, old change.Row, oldIsKey bool) *change.Change {
	return &change.Change{Op: change.Delete, Rel: rel, Old: old, OldIsKey: oldIsKey, LSN: testLSN, Txn: testTxn}
}

// script writes a transform file and returns its path.
func script(tb testing.TB, name, src string) string {
	tb.Helper()
	p := filepath.Join(tb.TempDir(), name)
	if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
		tb.Fatal(err)
	}
	return p
}

func newMapper(tb testing.TB, specs []Spec, read, write *catalog.Catalog) *Mapper {
	tb.Helper()
	m, err := New(specs, Options{Func: "forward", Read: read, Write: write, Timeout: 2 * time.Second})
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	return m
}

func mustMap(tb testing.TB, m *Mapper, ch *change.Change) []change.Out {
	tb.Helper()
	outs, err := m.Map(ch)
	if err != nil {
		tb.Fatalf("Map(%s): %v", ch.Op, err)
	}
	return outs
}

func mapErrOf(tb testing.TB, m *Mapper, ch *change.Change) *Error {
	tb.Helper()
	outs, err := m.Map(ch)
	if err == nil {
		tb.Fatalf("Map(%s) = %+v, want an error", ch.Op, outs)
	}
	var e *Error
	if !errors.As(err, &e) {
		tb.Fatalf("Map error %T is not *Error: %v", err, err)
	}
	return e
}

// vals renders an Out's columns as "col=value" lines for comparison.
func vals(o change.Out) string {
	var b strings.Builder
	for i, c := range o.Cols {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(c + "=" + o.Vals[i].String())
	}
	return b.String()
}

func keys(o change.Out) string {
	var b strings.Builder
	for i, c := range o.KeyCols {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(c + "=")
		if i < len(o.Key) {
			b.WriteString(o.Key[i].String())
		} else {
			b.WriteString("?")
		}
	}
	return b.String()
}

var _ = pgtype.Int8OID

func errAs(err error, target any) bool { return errors.As(err, target) }

func contains(s, sub string) bool { return strings.Contains(s, sub) }
