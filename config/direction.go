package config

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/cdcbridge/cdcbridge/change"
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

// SlotName is the replication slot the bridge reads in direction dir:
// cdcbridge_<name>_forward on the source, cdcbridge_<name>_reverse on the target.
func (m *Mapping) SlotName(dir Direction) string { return m.OriginPrefix() + dir.String() }

// PublicationName is the publication of the mapped tables read in direction
// dir: the one the mapping names on the side read (Side.Publication), or
// else the bridge's own, which equals SlotName(dir) (publications and slots
// are separate namespaces).
func (m *Mapping) PublicationName(dir Direction) string { return m.View(dir).Publication }

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

// ReadSide returns the database a stream in direction dir reads; it is
// View(dir).ReadSide.
func (m *Mapping) ReadSide(dir Direction) Side { return m.View(dir).ReadSide }

// WriteSide returns the database a stream in direction dir writes; it is
// View(dir).WriteSide.
func (m *Mapping) WriteSide(dir Direction) Side { return m.View(dir).WriteSide }

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

// The names the mapping file gives its two sides.
const (
	sourceName = "source"
	targetName = "target"
)

// View is the mapping seen from one direction: which database the direction
// reads and which it writes, what the mapping file calls each, which script
// function it calls, and the names of the slot, publication and origin the
// bridge makes for it. Mapping.View is the one place that turns a Direction
// into these answers; code that needs one asks a View rather than testing
// the direction itself.
//
// A View is a small value, cheap to make and to copy. It refers to its
// Mapping, which must not change while the View is used.
type View struct {
	// Direction is the direction seen.
	Direction Direction
	// ReadSide is the database the direction reads: its slot and
	// publication live there. WriteSide is the database it writes: its
	// checkpoint lives there, and its origin tags what it applies.
	ReadSide, WriteSide Side
	// ReadName and WriteName name those databases as the mapping file
	// does: "source" or "target".
	ReadName, WriteName string
	// Func is the script function that transforms what the direction
	// reads: "forward" or "backward".
	Func string
	// Slot is the replication slot the direction reads, on ReadSide.
	Slot string
	// Publication is the publication of the tables read, on ReadSide.
	Publication string
	// PublicationGiven says that the mapping names Publication: it was
	// made beforehand, and the bridge uses it as it is, never creating,
	// altering or dropping it.
	PublicationGiven bool
	// Origin is the replication origin that tags the transactions the
	// direction applies on WriteSide.
	Origin string

	m *Mapping
}

// View returns the mapping seen from direction dir.
func (m *Mapping) View(dir Direction) View {
	v := View{
		Direction:   dir,
		ReadSide:    m.Source,
		WriteSide:   m.Target,
		ReadName:    sourceName,
		WriteName:   targetName,
		Func:        "forward",
		Slot:        m.SlotName(dir),
		Publication: m.OriginPrefix() + dir.String(),
		Origin:      m.OriginName(dir),
		m:           m,
	}
	if dir == Reverse {
		v.ReadSide, v.WriteSide = m.Target, m.Source
		v.ReadName, v.WriteName = targetName, sourceName
		v.Func = "backward"
	}
	if p := v.ReadSide.Publication; p != "" {
		v.Publication, v.PublicationGiven = p, true
	}
	return v
}

// Opposite returns the mapping seen from the other direction: the one that
// reads what v writes.
func (v View) Opposite() View { return v.m.View(v.Direction.Opposite()) }

// Mapping returns the mapping seen.
func (v View) Mapping() *Mapping { return v.m }

// ReadTables returns the distinct tables read, in the order they first
// appear in the file.
func (v View) ReadTables() []change.Table { return v.m.SourceTables(v.Direction) }

// WriteTables returns the distinct tables written, in the order they first
// appear in the file.
func (v View) WriteTables() []change.Table { return v.m.WriteTables(v.Direction) }

// EntriesFor returns the entries that read table t, in file order: several
// for a split, none for an unmapped table.
func (v View) EntriesFor(t change.Table) []Entry { return v.m.EntriesFor(v.Direction, t) }

// CopyOrigin is the origin of the n-th worker of an initial copy.
func (v View) CopyOrigin(n int) string { return v.m.CopyOriginName(v.Direction, n) }

// EntryIDs names each entry of the mapping, in file order, the way its row
// in cdcbridge.tables does: "read -> written", so that an entry keeps its
// name when others are added or removed around it. Entries with the same
// two tables (the file allows it) are told apart by their order among
// themselves: " #2", " #3".
func (v View) EntryIDs() []string {
	ids := make([]string, len(v.m.Tables))
	seen := map[string]int{}
	for i, e := range v.m.Tables {
		id := e.Reads(v.Direction).String() + " -> " + e.Writes(v.Direction).String()
		seen[id]++
		if n := seen[id]; n > 1 {
			id += " #" + strconv.Itoa(n)
		}
		ids[i] = id
	}
	return ids
}
