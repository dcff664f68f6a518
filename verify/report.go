package verify

import (
	"fmt"
	"io"
	"strings"

	"github.com/cdcbridge/cdcbridge/change"
	"github.com/cdcbridge/cdcbridge/config"
	"github.com/cdcbridge/cdcbridge/mappingtest"
)

// Kind is how a row differs.
type Kind uint8

const (
	// Missing: a row of the side read maps to a key that the side written
	// does not have.
	Missing Kind = iota + 1
	// Extra: a row of the side written that no row of the side read maps
	// to.
	Extra
	// Different: the row is on both sides, with other values in some of
	// the columns the transform writes.
	Different
)

func (k Kind) String() string {
	switch k {
	case Missing:
		return "missing"
	case Extra:
		return "extra"
	case Different:
		return "different"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// MaxExamples is how many keys of each kind a table's report names.
const MaxExamples = 5

// Report is what Run found.
type Report struct {
	Mapping   string
	Direction config.Direction
	// ReadSide and WriteSide name the sides: "source" and "target" going
	// forward.
	ReadSide, WriteSide string
	// Tables has one entry per table of the side written, in mapping order.
	Tables []TableReport
	// Rechecks is how many times the differences were checked again after
	// the side written had caught up; 0 when the first pass found none.
	Rechecks int
	// Transient counts the differences of the first pass that were gone
	// when checked again: rows in flight between the two sides.
	Transient int64
	// Daemon says a daemon of the mapping and direction was running when
	// the differences were checked again.
	Daemon bool
	// Lagging is set when a daemon was running but its checkpoint had not
	// reached the side read's position within Options.CatchUp before the
	// last re-check, so rows still in flight may be reported.
	Lagging bool
}

// TableReport is the comparison of one table of the side written.
type TableReport struct {
	Table change.Table
	// Compared counts the transformed rows of the side read looked up in
	// Table; Rows counts Table's own rows, each checked for a source.
	Compared, Rows int64
	// Missing, Extra and Different count the rows that differ.
	Missing, Extra, Different int64
	// Examples names up to MaxExamples rows of each kind, in the order found.
	Examples []Difference
	// Unsettled counts the rows that differed but changed on the side read
	// every time they were checked again, so that they could be shown
	// neither equal nor different: rows written faster than the daemon
	// applies them. They are not differences. UnsettledKeys names up to
	// MaxExamples of them.
	Unsettled     int64
	UnsettledKeys []string
	// Notes say what could not be checked, and why.
	Notes []string
}

// Equal reports whether no row of the table differs.
func (t TableReport) Equal() bool { return t.Missing == 0 && t.Extra == 0 && t.Different == 0 }

// Difference is one row that differs.
type Difference struct {
	Kind Kind
	// Key is the row's key in the table of the side written:
	// (order_id='2').
	Key string
	// From is the row of the side read it comes from: public.orders
	// (id='2'). For an extra row, the row the opposite transform names,
	// which does not exist.
	From string
	// Columns are the differing columns of a Different row: Want is what
	// the side read gives through the transform, Got what the side written
	// holds, both as PostgreSQL prints them.
	Columns []mappingtest.ColumnDiff
	// Note explains a row that could not be compared column by column.
	Note string
}

// Equal reports whether the two sides hold the same rows.
func (r Report) Equal() bool {
	for _, t := range r.Tables {
		if !t.Equal() {
			return false
		}
	}
	return true
}

// Write renders the report as text, one block per table.
func (r Report) Write(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "verify %s (%s: %s -> %s)\n", r.Mapping, r.Direction, r.ReadSide, r.WriteSide)
	differ := 0
	for _, t := range r.Tables {
		if t.Equal() {
			fmt.Fprintf(&b, "ok   %s %s: equal (%d rows compared, %d rows on the %s)\n", r.WriteSide, t.Table, t.Compared, t.Rows, r.WriteSide)
		} else {
			differ++
			fmt.Fprintf(&b, "FAIL %s %s: %d missing, %d extra, %d different (%d rows compared, %d rows on the %s)\n",
				r.WriteSide, t.Table, t.Missing, t.Extra, t.Different, t.Compared, t.Rows, r.WriteSide)
		}
		for _, d := range t.Examples {
			switch d.Kind {
			case Missing:
				fmt.Fprintf(&b, "       missing   %s, from %s %s\n", d.Key, r.ReadSide, d.From)
			case Extra:
				fmt.Fprintf(&b, "       extra     %s", d.Key)
				if d.From != "" {
					fmt.Fprintf(&b, ", maps back to %s %s, which does not exist", r.ReadSide, d.From)
				}
				b.WriteByte('\n')
			case Different:
				fmt.Fprintf(&b, "       different %s, from %s %s\n", d.Key, r.ReadSide, d.From)
				for _, c := range d.Columns {
					fmt.Fprintf(&b, "           %s: the %s gives %s, the %s has %s\n", c.Name, r.ReadSide, c.Want, r.WriteSide, c.Got)
				}
			}
			if d.Note != "" {
				fmt.Fprintf(&b, "           %s\n", d.Note)
			}
		}
		if shown := len(t.Examples); int64(shown) < t.Missing+t.Extra+t.Different {
			fmt.Fprintf(&b, "       (%d of %d rows shown)\n", shown, t.Missing+t.Extra+t.Different)
		}
		if t.Unsettled > 0 {
			fmt.Fprintf(&b, "       note: %d row(s) kept changing on the %s while they were checked again, so they could not be compared: %s",
				t.Unsettled, r.ReadSide, strings.Join(t.UnsettledKeys, ", "))
			if int64(len(t.UnsettledKeys)) < t.Unsettled {
				b.WriteString(", ...")
			}
			b.WriteByte('\n')
		}
		for _, n := range t.Notes {
			fmt.Fprintf(&b, "       note: %s\n", n)
		}
	}
	switch {
	case differ == 0:
		fmt.Fprintf(&b, "the %s and the %s are equal", r.ReadSide, r.WriteSide)
	default:
		fmt.Fprintf(&b, "%d of %d tables differ", differ, len(r.Tables))
	}
	switch {
	case r.Rechecks > 0 && r.Daemon:
		fmt.Fprintf(&b, " (checked again %d time(s) after the daemon caught up", r.Rechecks)
		if r.Transient > 0 {
			fmt.Fprintf(&b, "; %d difference(s) were rows in flight", r.Transient)
		}
		b.WriteByte(')')
	case r.Rechecks > 0:
		b.WriteString(" (checked again; no daemon was running)")
	}
	b.WriteByte('\n')
	if r.Lagging {
		fmt.Fprintf(&b, "warning: the daemon did not catch up with the %s in time; some of these rows may still be in flight\n", r.ReadSide)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// literal quotes a value as SQL would, with E-string escapes for control
// characters so that every value stays on its line; nil is NULL.
func literal(v *string) string {
	if v == nil {
		return "NULL"
	}
	return change.QuoteLiteral(*v)
}

// maxShown caps a value in a report: a 100 kB document helps nobody.
const maxShown = 200

func shown(v *string) string {
	s := literal(v)
	if len(s) > maxShown {
		cut := maxShown
		for cut > 0 && !utf8Start(s[cut]) {
			cut--
		}
		s = s[:cut] + fmt.Sprintf("... (%d bytes)", len(*v))
	}
	return s
}

func utf8Start(b byte) bool { return b&0xC0 != 0x80 }

// keyString names a row by its key: (order_id='2', line='3').
func keyString(cols []string, vals []*string) string {
	parts := make([]string, len(cols))
	for i, c := range cols {
		var v *string
		if i < len(vals) {
			v = vals[i]
		}
		parts[i] = c + "=" + shown(v)
	}
	return "(" + strings.Join(parts, ", ") + ")"
}
