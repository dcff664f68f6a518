package config

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/cdcbridge/cdcbridge/change"
)

// Mapping is a validated mapping file. Load and Parse return one only when
// the file has no problems at all; the zero value is not useful.
type Mapping struct {
	// Name names the bridge's slots, publications, origins and checkpoint
	// rows. It matches ^[a-z][a-z0-9_]{0,39}$, so every derived name is a
	// valid PostgreSQL identifier without quoting.
	Name string
	// Path is the absolute path of the mapping file.
	Path string
	// Dir is the directory of the mapping file; relative paths in the file
	// resolve against it.
	Dir string
	// Source is the slice that is live before the release (old schema).
	Source Side
	// Target is the new slice (new schema).
	Target Side
	// Tables lists the entries in file order; Entry.Index is the position.
	Tables []Entry
	// OnError says what a stage does with a change it cannot transform or
	// apply. Default PolicyHalt.
	OnError Policy
	// TransformTimeout bounds each call of forward() or backward(). Default 5s.
	TransformTimeout time.Duration
	// Batch tunes how the applier groups source transactions.
	Batch Batch
	// Metrics configures the HTTP endpoint for /metrics, /healthz and /readyz.
	Metrics Metrics
}

// Side is one database of the bridge.
type Side struct {
	DSN DSN
}

// Entry maps one source table to one target table.
type Entry struct {
	// Index is the entry's position in the tables list, from 0.
	Index int
	// Source is the table on the source slice.
	Source change.Table
	// Target is the table on the target slice.
	Target change.Table
	// Transform is the absolute path of the JavaScript file that defines
	// forward() and backward(), or "" for an identity mapping (same column
	// names, values passed through untouched).
	Transform string
	// Key names the key columns of the target table and SourceKey those of
	// the source table, exactly as the catalog spells them: the columns the
	// rows of that table are found by when it is written (the target going
	// forward, the source in reverse). Empty means the table's own key: its
	// primary key, or a unique index on NOT NULL columns. The file's
	// key: [a, b] sets both (the columns have these names on both tables);
	// key: {source: [...], target: [...]} sets each, or one of them.
	Key       []string
	SourceKey []string
	// Line is the line of the entry in the mapping file, for messages.
	Line int
}

// Name describes the entry for messages: tables[1] (public.orders -> public.orders_v2).
func (e Entry) Name() string {
	return fmt.Sprintf("tables[%d] (%s -> %s)", e.Index, displayTable(e.Source), displayTable(e.Target))
}

// Reads returns the table the entry reads in direction dir: Source going
// forward, Target in reverse.
func (e Entry) Reads(dir Direction) change.Table {
	if dir == Reverse {
		return e.Target
	}
	return e.Source
}

// Writes returns the table the entry writes in direction dir: Target going
// forward, Source in reverse.
func (e Entry) Writes(dir Direction) change.Table {
	if dir == Reverse {
		return e.Source
	}
	return e.Target
}

// WriteKey returns the key columns the entry names for the table it writes
// in direction dir (Key going forward, SourceKey in reverse); nil means the
// table's own key.
func (e Entry) WriteKey(dir Direction) []string {
	if dir == Reverse {
		return e.SourceKey
	}
	return e.Key
}

// Policy says what to do with a change that fails to transform or apply.
type Policy string

const (
	// PolicyHalt stops the direction before the bad change: nothing is
	// skipped, applied or checkpointed past it.
	PolicyHalt Policy = "halt"
	// PolicySkip logs the change and the error, counts it, and goes on.
	PolicySkip Policy = "skip"
	// PolicyDeadletter writes the change and the error to a table on the
	// target, in the same transaction as the changes around it, and goes on.
	PolicyDeadletter Policy = "deadletter"
)

// Batch tunes the applier.
type Batch struct {
	// MaxRows caps the rows of one target transaction. A source transaction
	// is never split, so a larger one is applied alone. Default 5000.
	MaxRows int
	// MaxDelay is how long small source transactions may be held to share
	// one target commit. 0 commits each source transaction on its own.
	// Default 100ms.
	MaxDelay time.Duration
}

// Metrics configures the HTTP endpoint.
type Metrics struct {
	// Listen is host:port for /metrics, /healthz and /readyz; "" disables it.
	Listen string
}

// Defaults for the optional settings.
const (
	DefaultTransformTimeout = 5 * time.Second
	DefaultBatchMaxRows     = 5000
	DefaultBatchMaxDelay    = 100 * time.Millisecond
)

// Direction is which way a stream runs.
type Direction uint8

const (
	// Forward reads the source slice and writes the target with forward().
	Forward Direction = iota
	// Reverse reads the target slice and writes the source with backward().
	Reverse
)

func (d Direction) String() string {
	switch d {
	case Forward:
		return "forward"
	case Reverse:
		return "reverse"
	}
	return fmt.Sprintf("direction(%d)", uint8(d))
}

// Opposite returns the other direction.
func (d Direction) Opposite() Direction {
	if d == Reverse {
		return Forward
	}
	return Reverse
}

// ParseDirection is the inverse of Direction.String.
func ParseDirection(s string) (Direction, error) {
	switch s {
	case "forward":
		return Forward, nil
	case "reverse":
		return Reverse, nil
	}
	return 0, fmt.Errorf("unknown direction %q (want forward or reverse)", s)
}

// SlotName is the replication slot the bridge reads in direction dir:
// cdcbridge_<name>_forward on the source, cdcbridge_<name>_reverse on the target.
func (m *Mapping) SlotName(dir Direction) string { return m.OriginPrefix() + dir.String() }

// PublicationName is the publication of the mapped tables read in direction
// dir. It equals SlotName(dir); publications and slots are separate namespaces.
func (m *Mapping) PublicationName(dir Direction) string { return m.OriginPrefix() + dir.String() }

// OriginName is the replication origin that tags the transactions the bridge
// applies in direction dir.
func (m *Mapping) OriginName(dir Direction) string { return m.OriginPrefix() + dir.String() }

// OriginPrefix is what every name the bridge derives from this mapping starts
// with: cdcbridge_<name>_. Use it for listing, not for recognising the
// bridge's own origins: the prefix of mapping "shop" also matches the names of
// a mapping "shop_v2". OwnsOrigin makes the exact comparison.
func (m *Mapping) OriginPrefix() string { return "cdcbridge_" + m.Name + "_" }

// CopyOriginName is the origin of the n-th worker of an initial copy in
// direction dir (PostgreSQL 15 lets one session at a time use an origin).
func (m *Mapping) CopyOriginName(dir Direction, n int) string {
	return m.OriginName(dir) + "_copy" + strconv.Itoa(n)
}

// OwnsOrigin reports whether origin is one of this bridge's origins (either
// direction, or an initial copy's). Streams skip transactions made under
// them to avoid echoes.
func (m *Mapping) OwnsOrigin(origin string) bool {
	for _, dir := range []Direction{Forward, Reverse} {
		base := m.OriginName(dir)
		if origin == base {
			return true
		}
		if n, ok := strings.CutPrefix(origin, base+"_copy"); ok && n != "" && strings.Trim(n, "0123456789") == "" {
			return true
		}
	}
	return false
}

// ReadSide returns the database a stream in direction dir reads.
func (m *Mapping) ReadSide(dir Direction) Side {
	if dir == Reverse {
		return m.Target
	}
	return m.Source
}

// WriteSide returns the database a stream in direction dir writes.
func (m *Mapping) WriteSide(dir Direction) Side {
	if dir == Reverse {
		return m.Source
	}
	return m.Target
}

// SourceTables returns the distinct tables read in direction dir, in the
// order they first appear in the file.
func (m *Mapping) SourceTables(dir Direction) []change.Table {
	return m.distinct(func(e Entry) change.Table { return e.Reads(dir) })
}

// WriteTables returns the distinct tables written in direction dir, in the
// order they first appear in the file.
func (m *Mapping) WriteTables(dir Direction) []change.Table {
	return m.distinct(func(e Entry) change.Table { return e.Writes(dir) })
}

func (m *Mapping) distinct(pick func(Entry) change.Table) []change.Table {
	var out []change.Table
	for _, e := range m.Tables {
		if t := pick(e); !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out
}

// EntriesFor returns the entries that read table t in direction dir, in file
// order: several for a split, none for an unmapped table.
func (m *Mapping) EntriesFor(dir Direction, t change.Table) []Entry {
	var out []Entry
	for _, e := range m.Tables {
		if e.Reads(dir) == t {
			out = append(out, e)
		}
	}
	return out
}

// Redact returns err with the passwords and connection strings of both sides
// replaced by xxxxx in its message. The result still unwraps to err.
func (m *Mapping) Redact(err error) error {
	return redactErr(err, m.secrets())
}

// RedactString replaces the passwords and connection strings of both sides
// in s by xxxxx.
func (m *Mapping) RedactString(s string) string {
	return redact(s, m.secrets())
}

func (m *Mapping) secrets() []string {
	return sortSecrets(append(m.Source.DSN.secrets(), m.Target.DSN.secrets()...))
}

// DisplayTable writes a table name the way a user would type it in the
// mapping file: parts are quoted only when they need to be.
func DisplayTable(t change.Table) string { return displayTable(t) }

func displayTable(t change.Table) string {
	return displayIdent(t.Schema) + "." + displayIdent(t.Name)
}

func displayIdent(s string) string {
	plain := s != ""
	for i, r := range s {
		switch {
		case r == '_' || (r >= 'a' && r <= 'z'):
		case (r >= '0' && r <= '9') || r == '$':
			plain = plain && i > 0
		case r > unicode.MaxASCII && !unicode.IsUpper(r) && unicode.IsLetter(r):
		default:
			plain = false
		}
	}
	if plain {
		return s
	}
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}
