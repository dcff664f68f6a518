package mappingtest

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"

	"github.com/jackc/pglogrepl"

	"github.com/cdcbridge/cdcbridge/catalog"
	"github.com/cdcbridge/cdcbridge/change"
	"github.com/cdcbridge/cdcbridge/config"
	"github.com/cdcbridge/cdcbridge/fixture"
	"github.com/cdcbridge/cdcbridge/transform"
)

// Options configures Run.
type Options struct {
	Mapping   *config.Mapping
	Direction config.Direction
	// Update rewrites the golden file instead of comparing with it.
	Update bool
	// Write is the catalog of the side written, for fixtures recorded
	// without one; nil uses the fixture's.
	Write *catalog.Catalog
}

// Mismatch is a row image that did not come back through the opposite
// transform.
type Mismatch struct {
	Table   change.Table
	Key     string
	LSN     pglogrepl.LSN
	Columns []ColumnDiff
}

// ColumnDiff is one column of a Mismatch.
type ColumnDiff struct {
	Name      string
	Want, Got string
}

func (m Mismatch) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s at %s does not come back:", m.Table, m.Key, m.LSN)
	for _, c := range m.Columns {
		fmt.Fprintf(&b, "\n    %s: was %s, came back %s", c.Name, c.Want, c.Got)
	}
	return b.String()
}

// Result is what Run found for one fixture.
type Result struct {
	Fixture string
	Golden  string
	Changes int
	Lines   int
	// Diff is empty when the output equals the golden file.
	Diff string
	// Updated is set when the golden file was (re)written.
	Updated   bool
	RoundTrip []Mismatch
}

// OK reports whether the fixture passed.
func (r Result) OK() bool { return r.Diff == "" && len(r.RoundTrip) == 0 }

// GoldenPath is where the golden file of a fixture, mapping and direction lives.
func GoldenPath(fixturePath string, m *config.Mapping, dir config.Direction) string {
	base := strings.TrimSuffix(strings.TrimSuffix(fixturePath, ".gz"), ".jsonl")
	if dir == config.Reverse {
		return base + "." + m.Name + ".reverse.golden"
	}
	return base + "." + m.Name + ".golden"
}

// Run tests one fixture. An error means the run could not be made (a bad
// fixture, a script that fails); findings are in the Result.
func Run(path string, o Options) (Result, error) {
	res := Result{Fixture: path, Golden: GoldenPath(path, o.Mapping, o.Direction)}
	r, err := fixture.Open(path)
	if err != nil {
		return res, err
	}
	defer r.Close()
	h := r.Header()
	readCat, writeCat := h.Catalog.Read, h.Catalog.Write
	if o.Write != nil {
		writeCat = o.Write
	}
	if readCat == nil || writeCat == nil {
		return res, fmt.Errorf("%s: the fixture holds no catalog of the side written; record it again with the target reachable", path)
	}
	// A fixture covers some of the mapping's tables: test the entries
	// whose tables it knows.
	v := o.Mapping.View(o.Direction)
	back := v.Opposite()
	fwdSpecs := covered(transform.Specs(v), readCat, writeCat)
	bwdSpecs := covered(transform.Specs(back), writeCat, readCat)
	if len(fwdSpecs) == 0 {
		return res, fmt.Errorf("%s: none of the mapping's tables is in the fixture (it was recorded for other tables)", path)
	}
	scripts, err := transform.Compile(append(slices.Clone(fwdSpecs), bwdSpecs...))
	if err != nil {
		return res, err
	}
	fwd, err := transform.New(fwdSpecs, transform.Options{
		Func: v.Func, Timeout: o.Mapping.TransformTimeout, Read: readCat, Write: writeCat, Scripts: scripts})
	if err != nil {
		return res, err
	}
	bwd, err := transform.New(bwdSpecs, transform.Options{
		Func: back.Func, Timeout: o.Mapping.TransformTimeout, Read: writeCat, Write: readCat, Scripts: scripts})
	if err != nil {
		return res, err
	}
	var out strings.Builder
	rels := map[change.Table]*change.Relation{}
	mapped := map[change.Table]bool{}
	for _, sp := range fwdSpecs {
		mapped[sp.Read] = true
	}
	err = fixture.Replay(r, o.Mapping.OwnsOrigin, func(ev change.Event) error {
		if ev.Kind != change.EvChange {
			return nil
		}
		ch := ev.Change
		if ch.Rel != nil && !mapped[ch.Rel.Table] {
			return nil // a table of the fixture that this mapping does not map
		}
		res.Changes++
		outs, err := fwd.Map(ch)
		if err != nil {
			return err
		}
		if len(outs) == 0 && ch.Rel != nil {
			fmt.Fprintf(&out, "%s drop %s %s\n", ch.LSN, ch.Op, ch.Rel.Table)
			res.Lines++
		}
		for i := range outs {
			out.WriteString(render(&outs[i], writeCat))
			out.WriteByte('\n')
			res.Lines++
		}
		if ch.Op == change.Insert || ch.Op == change.Update {
			mm, err := roundTrip(ch, outs, bwd, writeCat, rels)
			if err != nil {
				return err
			}
			res.RoundTrip = append(res.RoundTrip, mm...)
		}
		return nil
	})
	if err != nil {
		return res, err
	}
	got := out.String()
	if o.Update {
		if err := os.WriteFile(res.Golden, []byte(got), 0o644); err != nil {
			return res, err
		}
		res.Updated = true
		return res, nil
	}
	want, err := os.ReadFile(res.Golden)
	if errors.Is(err, os.ErrNotExist) {
		return res, fmt.Errorf("%s: no golden file %s yet; run with --update to write it, review it, and commit it", path, res.Golden)
	}
	if err != nil {
		return res, err
	}
	res.Diff = diff(string(want), got)
	return res, nil
}

// covered keeps the specs whose read table is in read and whose written
// table is in write.
func covered(specs []transform.Spec, read, write *catalog.Catalog) []transform.Spec {
	var out []transform.Spec
	for _, s := range specs {
		if read.Table(s.Read) != nil && write.Table(s.Write) != nil {
			out = append(out, s)
		}
	}
	return out
}

// RoundTripper checks that row images come back unchanged through the
// opposite transform. Not safe for concurrent use (the Mapper is not).
type RoundTripper struct {
	bwd  *transform.Mapper
	cat  *catalog.Catalog
	rels map[change.Table]*change.Relation
}

// NewRoundTripper returns a checker that sends outs written to tables of
// writeCat back through bwd.
func NewRoundTripper(bwd *transform.Mapper, writeCat *catalog.Catalog) *RoundTripper {
	return &RoundTripper{bwd: bwd, cat: writeCat, rels: map[change.Table]*change.Relation{}}
}

// Check sends the insert and update outs of ch (what the forward transform
// made of it) back and compares what comes back for ch's table with ch.New.
func (r *RoundTripper) Check(ch *change.Change, outs []change.Out) ([]Mismatch, error) {
	return roundTrip(ch, outs, r.bwd, r.cat, r.rels)
}

// Relation describes a table of cat as the stream would, for changes made
// from rows read with SQL: generated columns left out, primary key marked.
func Relation(cat *catalog.Catalog, t change.Table) *change.Relation {
	return relationOf(t, cat, map[change.Table]*change.Relation{})
}

// roundTrip sends the outs of a change back through the opposite transform
// and compares what comes back for the original table with the original row.
func roundTrip(ch *change.Change, outs []change.Out, bwd *transform.Mapper, writeCat *catalog.Catalog, rels map[change.Table]*change.Relation) ([]Mismatch, error) {
	if ch.Rel == nil {
		return nil, nil
	}
	back := map[string]change.Value{}
	for i := range outs {
		o := &outs[i]
		if o.Op != change.Insert && o.Op != change.Update {
			continue
		}
		rel := relationOf(o.Table, writeCat, rels)
		if rel == nil {
			continue
		}
		row := make(change.Row, len(rel.Columns))
		for j, c := range rel.Columns {
			if v, ok := o.Lookup(c.Name); ok {
				row[j] = v
			}
		}
		// The image goes back as an insert: the question is whether the
		// values come back, and an insert needs no key to find a row by.
		syn := &change.Change{Op: change.Insert, Rel: rel, New: row, LSN: ch.LSN, Txn: ch.Txn}
		got, err := bwd.Map(syn)
		if err != nil {
			return nil, fmt.Errorf("round trip of %s at %s: %w", ch.Rel.Table, ch.LSN, err)
		}
		for k := range got {
			if got[k].Table != ch.Rel.Table {
				continue
			}
			for n, c := range got[k].Cols {
				back[c] = got[k].Vals[n]
			}
		}
	}
	var diffs []ColumnDiff
	for i, c := range ch.Rel.Columns {
		orig := ch.New[i]
		if orig.Kind == change.Absent {
			continue
		}
		v, ok := back[c.Name]
		if !ok {
			diffs = append(diffs, ColumnDiff{Name: c.Name, Want: literal(orig), Got: "nothing (the column is not returned)"})
			continue
		}
		if !v.Equal(orig) {
			diffs = append(diffs, ColumnDiff{Name: c.Name, Want: literal(orig), Got: literal(v)})
		}
	}
	if len(diffs) == 0 {
		return nil, nil
	}
	return []Mismatch{{Table: ch.Rel.Table, Key: keyOf(ch), LSN: ch.LSN, Columns: diffs}}, nil
}

func relationOf(t change.Table, cat *catalog.Catalog, rels map[change.Table]*change.Relation) *change.Relation {
	if r, ok := rels[t]; ok {
		return r
	}
	info := cat.Table(t)
	if info == nil {
		return nil
	}
	rel := info.Relation()
	rels[t] = rel
	return rel
}

func keyOf(ch *change.Change) string {
	var parts []string
	for i, c := range ch.Rel.Columns {
		if c.Key && i < len(ch.New) {
			parts = append(parts, c.Name+"="+literal(ch.New[i]))
		}
	}
	return "(" + strings.Join(parts, ", ") + ")"
}

// render writes an Out as one exact line: LSN, op, table, key and row, each
// value a quoted literal with the written column's type.
func render(o *change.Out, cat *catalog.Catalog) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s ", o.LSN, o.Op)
	if o.Op == change.Truncate {
		names := make([]string, len(o.Truncate))
		for i, t := range o.Truncate {
			names[i] = t.String()
		}
		sort.Strings(names)
		b.WriteString(strings.Join(names, ", "))
		if o.RestartIdentity {
			b.WriteString(" restart identity")
		}
		return b.String()
	}
	b.WriteString(o.Table.String())
	info := cat.Table(o.Table)
	typed := func(col string, v change.Value) string {
		s := literal(v)
		if info != nil && v.Kind == change.Text {
			if c := info.Column(col); c != nil {
				s += "::" + c.TypeName
			}
		}
		return s
	}
	if len(o.Key) > 0 {
		parts := make([]string, len(o.KeyCols))
		for i, k := range o.KeyCols {
			parts[i] = k + "=" + typed(k, o.Key[i])
		}
		b.WriteString(" key(" + strings.Join(parts, ", ") + ")")
	}
	if len(o.Cols) > 0 {
		parts := make([]string, len(o.Cols))
		for i, c := range o.Cols {
			parts[i] = c + "=" + typed(c, o.Vals[i])
		}
		b.WriteString(" row(" + strings.Join(parts, ", ") + ")")
	}
	return b.String()
}

// literal quotes a value as SQL would, with E” escapes for control
// characters so that every value stays on its line.
func literal(v change.Value) string {
	switch v.Kind {
	case change.Null:
		return "NULL"
	case change.Absent:
		return "UNCHANGED"
	}
	return change.QuoteLiteral(string(v.Data))
}

// diff shows the lines that differ, aligned by position, at most 40.
func diff(want, got string) string {
	if want == got {
		return ""
	}
	w := strings.Split(strings.TrimSuffix(want, "\n"), "\n")
	g := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
	var b strings.Builder
	shown := 0
	i, j := 0, 0
	for (i < len(w) || j < len(g)) && shown < 40 {
		switch {
		case i < len(w) && j < len(g) && w[i] == g[j]:
			i++
			j++
			continue
		case i < len(w) && j < len(g) && lsnOf(w[i]) == lsnOf(g[j]):
			fmt.Fprintf(&b, "- %s\n+ %s\n", w[i], g[j])
			i++
			j++
		case j >= len(g) || (i < len(w) && lsnLess(w[i], g[j])):
			fmt.Fprintf(&b, "- %s\n", w[i])
			i++
		default:
			fmt.Fprintf(&b, "+ %s\n", g[j])
			j++
		}
		shown++
	}
	if shown == 40 {
		b.WriteString("… (more differences)\n")
	}
	return b.String()
}

func lsnOf(line string) pglogrepl.LSN {
	f, _, _ := strings.Cut(line, " ")
	l, _ := pglogrepl.ParseLSN(f)
	return l
}

func lsnLess(a, b string) bool { return lsnOf(a) < lsnOf(b) }

// Report writes a human-readable account of results to w and returns the
// number of failed fixtures.
func Report(w io.Writer, results []Result) int {
	failed := 0
	for _, r := range results {
		// An updated golden file records what the transforms do now; a
		// round trip that fails is still a finding about the mapping.
		switch {
		case r.Updated && len(r.RoundTrip) == 0:
			fmt.Fprintf(w, "updated %s (%d changes, %d lines)\n", r.Golden, r.Changes, r.Lines)
		case r.OK():
			fmt.Fprintf(w, "ok   %s (%d changes)\n", r.Fixture, r.Changes)
		default:
			failed++
			if r.Updated {
				fmt.Fprintf(w, "updated %s (%d changes, %d lines), but %d round trip(s) failed\n", r.Golden, r.Changes, r.Lines, len(r.RoundTrip))
			}
			fmt.Fprintf(w, "FAIL %s (%d changes)\n", r.Fixture, r.Changes)
			if r.Diff != "" {
				fmt.Fprintf(w, "  output differs from %s (- golden, + now):\n", r.Golden)
				for _, l := range strings.Split(strings.TrimSuffix(r.Diff, "\n"), "\n") {
					fmt.Fprintf(w, "  %s\n", l)
				}
			}
			for i, m := range r.RoundTrip {
				if i == 20 {
					fmt.Fprintf(w, "  … %d more round-trip failures\n", len(r.RoundTrip)-20)
					break
				}
				fmt.Fprintf(w, "  round trip: %s\n", m)
			}
		}
	}
	return failed
}
