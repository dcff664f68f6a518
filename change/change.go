package change

import (
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
)

// Op is the kind of a row change.
type Op uint8

const (
	Insert Op = iota + 1
	Update
	Delete
	Truncate
)

func (o Op) String() string {
	switch o {
	case Insert:
		return "insert"
	case Update:
		return "update"
	case Delete:
		return "delete"
	case Truncate:
		return "truncate"
	}
	return fmt.Sprintf("op(%d)", uint8(o))
}

// ParseOp is the inverse of Op.String.
func ParseOp(s string) (Op, error) {
	switch s {
	case "insert":
		return Insert, nil
	case "update":
		return Update, nil
	case "delete":
		return Delete, nil
	case "truncate":
		return Truncate, nil
	}
	return 0, fmt.Errorf("unknown op %q (want insert, update, delete or truncate)", s)
}

// Table names a table by schema and name, both unquoted.
type Table struct {
	Schema string
	Name   string
}

// String returns the quoted, schema-qualified name, ready for SQL and readable in logs.
func (t Table) String() string {
	return pgx.Identifier{t.Schema, t.Name}.Sanitize()
}

// ParseTable parses "schema.table" or "table" (schema public). Double quotes
// keep dots, case and spaces: `"My Schema"."Order.Items"`.
func ParseTable(s string) (Table, error) {
	parts, err := splitIdent(s)
	if err != nil {
		return Table{}, err
	}
	switch len(parts) {
	case 1:
		return Table{Schema: "public", Name: parts[0]}, nil
	case 2:
		return Table{Schema: parts[0], Name: parts[1]}, nil
	}
	return Table{}, fmt.Errorf("table name %q: want schema.table or table", s)
}

// splitIdent splits a possibly quoted dotted identifier. Unquoted parts are
// folded to lower case as PostgreSQL does.
func splitIdent(s string) ([]string, error) {
	var parts []string
	var cur strings.Builder
	i := 0
	for {
		if i < len(s) && s[i] == '"' {
			i++
			closed := false
			for i < len(s) {
				if s[i] == '"' {
					if i+1 < len(s) && s[i+1] == '"' {
						cur.WriteByte('"')
						i += 2
						continue
					}
					i++
					closed = true
					break
				}
				cur.WriteByte(s[i])
				i++
			}
			if !closed {
				return nil, fmt.Errorf("table name %q: unterminated quote", s)
			}
		} else {
			start := i
			for i < len(s) && s[i] != '.' {
				if s[i] == '"' {
					return nil, fmt.Errorf("table name %q: quote in the middle of a name", s)
				}
				i++
			}
			cur.WriteString(foldASCII(strings.TrimSpace(s[start:i])))
		}
		if cur.Len() == 0 {
			return nil, fmt.Errorf("table name %q: empty part", s)
		}
		parts = append(parts, cur.String())
		cur.Reset()
		if i >= len(s) {
			return parts, nil
		}
		if s[i] != '.' {
			return nil, fmt.Errorf("table name %q: unexpected %q after quoted name", s, s[i])
		}
		i++
	}
}

// foldASCII lower-cases ASCII letters only, as PostgreSQL folds unquoted
// identifiers in a UTF-8 database.
func foldASCII(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + ('a' - 'A')
		}
	}
	return string(b)
}

// Kind says how a column value travelled.
type Kind uint8

const (
	// Absent: nothing to write (an unchanged TOASTed value, or a column the
	// transform did not return). The target keeps what it has.
	Absent Kind = iota
	// Null is SQL NULL.
	Null
	// Text holds the value in PostgreSQL's text form.
	Text
)

// Value is one column value in PostgreSQL's text form.
type Value struct {
	Kind Kind
	Data []byte
}

func (v Value) String() string {
	switch v.Kind {
	case Absent:
		return "<unchanged>"
	case Null:
		return "NULL"
	}
	return string(v.Data)
}

// Equal reports whether two values are the same bytes of the same kind.
func (v Value) Equal(w Value) bool {
	return v.Kind == w.Kind && string(v.Data) == string(w.Data)
}

// TextValue is a convenience constructor.
func TextValue(s string) Value { return Value{Kind: Text, Data: []byte(s)} }

// Column is one column of a relation as the source announced it.
type Column struct {
	Name    string
	TypeOID uint32
	TypeMod int32
	// Key marks the columns of the replica identity.
	Key bool
}

// Relation is the source's description of a table, valid from the point the
// stream announced it until it announces it again.
type Relation struct {
	ID              uint32
	Table           Table
	Columns         []Column
	ReplicaIdentity byte // 'd' default, 'f' full, 'i' index, 'n' nothing
}

// ColumnIndex returns the position of the named column, or -1.
func (r *Relation) ColumnIndex(name string) int {
	for i, c := range r.Columns {
		if c.Name == name {
			return i
		}
	}
	return -1
}

// Row holds one value per column of its relation, in the relation's order.
type Row []Value

// Change is one decoded row change (or truncate) inside a source transaction.
type Change struct {
	Op  Op
	Rel *Relation // nil for Truncate
	// New is the new row for insert and update.
	New Row
	// Old is the old row image: the key columns (others Null) or, with
	// REPLICA IDENTITY FULL, the full row. Deletes always have one; updates
	// only when the key changed or the identity is FULL.
	Old Row
	// OldIsKey is true when Old holds only the replica identity columns.
	OldIsKey bool
	// Truncated lists the relations of a truncate.
	Truncated       []*Relation
	Cascade         bool
	RestartIdentity bool
	// LSN is the WAL position of the message that carried the change.
	LSN pglogrepl.LSN
	// Txn is the transaction the change belongs to.
	Txn *Txn
}

// Txn describes a source transaction.
type Txn struct {
	Xid        uint32
	FinalLSN   pglogrepl.LSN // the commit record's LSN, announced at Begin
	CommitTime time.Time
	// Origin is the replication origin the transaction was made under, "" if none.
	Origin string
	// EndLSN is set at Commit: the position after the commit record. A
	// stream restarted from EndLSN does not send this transaction again.
	EndLSN pglogrepl.LSN
}

// EventKind tells which field of an Event is set.
type EventKind uint8

const (
	// EvBegin opens a transaction (Txn set).
	EvBegin EventKind = iota + 1
	// EvChange carries one change of the open transaction.
	EvChange
	// EvCommit closes the open transaction (Txn.EndLSN set).
	EvCommit
	// EvPosition says every transaction that ends at or before LSN has been
	// sent: nothing is open and nothing more will come before LSN. It lets an
	// idle or filtered stream advance its checkpoint.
	EvPosition
)

// Event is one item of an ordered change stream. Between the transform and
// apply stages an EvChange carries Outs (what to write) instead of Change.
type Event struct {
	Kind   EventKind
	Txn    *Txn
	Change *Change
	Outs   []Out
	LSN    pglogrepl.LSN
	// Own marks an EvPosition that stands for a skipped transaction made
	// under one of the bridge's own origins.
	Own bool
	// Urgent marks an EvPosition the server is waiting to see confirmed
	// (it asked for a reply): it is to be made durable at once.
	Urgent bool
	// Held is how many bytes of its pipeline's Budget the event holds.
	Held int64
}

// Out is a change ready to be written to a target table.
type Out struct {
	Op    Op
	Table Table
	// Cols and Vals are the columns to write and their values. Absent
	// values are never written. For deletes they are empty.
	Cols []string
	Vals []Value
	// Key identifies the existing target row for update and delete: one value
	// per column in KeyCols. For an update that changes the key it holds the
	// old key; the new one is in Vals.
	KeyCols []string
	Key     []Value
	// FullRow says the table written has no key: KeyCols and Key then hold
	// every column of the old row image that has a value (NULLs included),
	// and the row to change is one row whose columns all match them.
	FullRow bool
	// Truncate lists the target tables of a truncate.
	Truncate []Table
	// RestartIdentity: the source's truncate restarted the identity
	// sequences of its tables, and so does the target's.
	RestartIdentity bool
	// Provenance, for errors and metrics.
	Entry  string
	Source Table
	LSN    pglogrepl.LSN
}

// Lookup returns the value of a column in Vals, and whether it is there.
func (o *Out) Lookup(col string) (Value, bool) {
	for i, c := range o.Cols {
		if c == col {
			return o.Vals[i], true
		}
	}
	return Value{}, false
}

// QuoteLiteral quotes s as an SQL string literal that stays on one line:
// an E-string literal with backslash escapes when s holds a backslash or a
// control character. Reports and golden files use it to show values
// exactly.
func QuoteLiteral(s string) string {
	if !strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f || r == '\\' }) {
		return "'" + strings.ReplaceAll(s, "'", "''") + "'"
	}
	var b strings.Builder
	b.WriteString("E'")
	for _, r := range s {
		switch {
		case r == '\'':
			b.WriteString("''")
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('\'')
	return b.String()
}
