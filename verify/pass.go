package verify

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/cdcbridge/cdcbridge/change"
	"github.com/cdcbridge/cdcbridge/mappingtest"
)

// compareAll runs both passes in the open snapshots: every row read,
// transformed and looked up; then every row written, mapped back and
// looked for.
func (c *checker) compareAll(ctx context.Context) (*tally, error) {
	tal := c.newTally()
	bags := map[change.Table]*bag{}
	for _, rt := range c.v.ReadTables() {
		pr := c.startProgress(ctx, c.read, rt, "comparing")
		err := c.read.scan(ctx, rt, c.readKeys[rt], c.o.BatchSize, func(rows []change.Row) error {
			pr.add(len(rows))
			b, err := c.transformRows(rt, rows)
			if err != nil {
				return err
			}
			for _, g := range b.groups {
				tal.table(g.table).Compared += int64(len(g.probes))
			}
			diffs, err := c.compareBatch(ctx, b)
			if err != nil {
				return err
			}
			more, err := c.addBag(ctx, bags, b.bags)
			if err != nil {
				return err
			}
			for _, d := range append(diffs, more...) {
				tal.record(d)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	for _, wt := range c.v.WriteTables() {
		started := time.Now()
		tr := tal.table(wt)
		if c.keyless[wt] {
			if err := c.compareBag(ctx, c.bagOf(bags, wt), tr, tal.record); err != nil {
				return nil, err
			}
			c.log.Info("compared as a multiset", "table", wt.String(), "compared", tr.Compared, "rows", tr.Rows,
				"missing", tr.Missing, "extra", tr.Extra, "elapsed", time.Since(started).String())
			continue
		}
		pr := c.startProgress(ctx, c.write, wt, "looking for extra rows")
		err := c.write.scan(ctx, wt, c.writeKeys[wt], c.o.BatchSize, func(rows []change.Row) error {
			pr.add(len(rows))
			tr.Rows += int64(len(rows))
			bb, err := c.mapBack(wt, rows, tal.different, tr)
			if err != nil {
				return err
			}
			diffs, err := c.resolveExtras(ctx, bb)
			if err != nil {
				return err
			}
			for _, d := range diffs {
				tal.record(d)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		c.log.Info("compared", "table", wt.String(), "compared", tr.Compared, "rows", tr.Rows,
			"missing", tr.Missing, "extra", tr.Extra, "different", tr.Different, "elapsed", time.Since(started).String())
	}
	return tal, nil
}

// diff is a row found to differ: what to report, and what it takes to
// check it again.
type diff struct {
	f finding
	d Difference
}

// fwdBatch is rows of a table read, transformed: the lookups to make,
// grouped by the table, key and columns written.
type fwdBatch struct {
	rt      change.Table
	srcCols []string // the columns that name a row of rt in reports
	groups  []*group
	// bags are the rows written to tables without a key.
	bags []bagOut
}

type group struct {
	table         change.Table
	keyCols, cols []string
	probes        []probe
	// srcKeys names the row of rt each probe comes from: its key, or all
	// its values when rt has no key.
	srcKeys [][]*string
}

// transformRows maps rows of the table read rt as inserts, with the
// forward transform.
func (c *checker) transformRows(rt change.Table, rows []change.Row) (*fwdBatch, error) {
	rel := c.read.relation(rt)
	b := &fwdBatch{rt: rt}
	srcCols, srcPos := rowKey(rel, c.readKeys[rt])
	b.srcCols = srcCols
	byID := map[string]*group{}
	for _, row := range rows {
		outs, err := c.fwd.Map(&change.Change{Op: change.Insert, Rel: rel, New: row})
		if err != nil {
			return nil, err
		}
		srcKey := pick(row, srcPos)
		for i := range outs {
			o := &outs[i]
			if o.Op != change.Insert && o.Op != change.Update {
				continue
			}
			if c.keyless[o.Table] {
				b.bags = append(b.bags, bagOut{table: o.Table, out: o, from: rt.String() + " " + keyString(srcCols, srcKey)})
				continue
			}
			keyCols, key, err := outKey(o)
			if err != nil {
				return nil, fmt.Errorf("%s: %s %s: %w", o.Entry, rt, keyString(srcCols, srcKey), err)
			}
			id := o.Table.String() + "\x00" + strings.Join(keyCols, "\x00") + "\x01" + strings.Join(o.Cols, "\x00")
			g := byID[id]
			if g == nil {
				g = &group{table: o.Table, keyCols: keyCols, cols: o.Cols}
				byID[id] = g
				b.groups = append(b.groups, g)
			}
			vals := make([]*string, len(o.Vals))
			for j, v := range o.Vals {
				vals[j] = textOf(v)
			}
			g.probes = append(g.probes, probe{key: key, vals: vals})
			g.srcKeys = append(g.srcKeys, srcKey)
		}
	}
	return b, nil
}

// compareBatch looks the transformed rows up on the side written, in its
// open snapshot, and returns those that are missing or different.
func (c *checker) compareBatch(ctx context.Context, b *fwdBatch) ([]diff, error) {
	var out []diff
	keyed := len(c.readKeys[b.rt]) > 0
	for _, g := range b.groups {
		res, err := c.write.compare(ctx, g.table, g.keyCols, g.cols, g.probes)
		if err != nil {
			return nil, err
		}
		for i, r := range res {
			f := finding{table: g.table, keyCols: g.keyCols, key: g.probes[i].key, src: b.rt}
			if keyed {
				f.srcKey = g.srcKeys[i]
			}
			d := Difference{Key: keyString(g.keyCols, g.probes[i].key), From: b.rt.String() + " " + keyString(b.srcCols, g.srcKeys[i])}
			switch {
			case !r.found:
				f.kind, d.Kind = Missing, Missing
			case r.note != "":
				f.kind, d.Kind = Different, Different
				d.Note = fmt.Sprintf("what the transform gives does not fit the columns of %s: %s", g.table, r.note)
			case len(r.diffs) > 0:
				f.kind, d.Kind = Different, Different
				d.Key = keyString(g.keyCols, r.key)
				for _, cd := range r.diffs {
					d.Columns = append(d.Columns, mappingtest.ColumnDiff{Name: g.cols[cd.col], Want: shown(cd.want), Got: shown(cd.got)})
				}
			default:
				continue
			}
			out = append(out, diff{f: f, d: d})
		}
	}
	return out, nil
}

// backBatch is rows of a table written, mapped back: the rows of the side
// read they name, to be looked for.
type backBatch struct {
	wt      change.Table
	keyCols []string
	keys    [][]*string
	states  []backState
	groups  []*srcGroup
}

type backState struct {
	skip, found bool
	// none: the opposite transform maps the row to nothing.
	none bool
	// from names the first row of the side read it maps to.
	from string
}

type srcGroup struct {
	table   change.Table
	keyCols []string
	keys    [][]*string
	rows    []int
}

// mapBack maps rows of the table written wt with the opposite transform.
// A row whose key is in different was found different already and is
// skipped: it is counted once. Rows that cannot be looked for (the
// opposite transform gives no key) are skipped with a note in tr.
func (c *checker) mapBack(wt change.Table, rows []change.Row, different map[string]bool, tr *TableReport) (*backBatch, error) {
	rel := c.write.relation(wt)
	keyCols, keyPos := rowKey(rel, c.writeKeys[wt])
	bb := &backBatch{wt: wt, keyCols: keyCols, keys: make([][]*string, len(rows)), states: make([]backState, len(rows))}
	byID := map[string]*srcGroup{}
	for i, row := range rows {
		key := pick(row, keyPos)
		bb.keys[i] = key
		if different[wt.String()+" "+keyString(keyCols, key)] {
			bb.states[i].skip = true
			continue
		}
		outs, err := c.bwd.Map(&change.Change{Op: change.Insert, Rel: rel, New: row})
		if err != nil {
			return nil, err
		}
		n := 0
		for j := range outs {
			o := &outs[j]
			if o.Op != change.Insert && o.Op != change.Update {
				continue
			}
			skc, sk, err := outKey(o)
			if err != nil {
				tr.note(fmt.Sprintf("rows that no row of the %s maps to are not looked for: mapping them back through %s(): %v",
					c.read.name, c.v.Opposite().Func, err))
				bb.states[i].skip = true
				break
			}
			id := o.Table.String() + "\x00" + strings.Join(skc, "\x00")
			g := byID[id]
			if g == nil {
				g = &srcGroup{table: o.Table, keyCols: skc}
				byID[id] = g
				bb.groups = append(bb.groups, g)
			}
			g.keys = append(g.keys, sk)
			g.rows = append(g.rows, i)
			if n == 0 {
				bb.states[i].from = o.Table.String() + " " + keyString(skc, sk)
			}
			n++
		}
		bb.states[i].none = n == 0 && !bb.states[i].skip
	}
	return bb, nil
}

// resolveExtras looks for the rows a backBatch names on the side read, in
// its open snapshot, and returns the rows of the side written that name
// none that exists.
func (c *checker) resolveExtras(ctx context.Context, bb *backBatch) ([]diff, error) {
	for _, g := range bb.groups {
		found, err := c.read.exists(ctx, g.table, g.keyCols, g.keys)
		if err != nil {
			return nil, err
		}
		for j, ok := range found {
			if ok {
				bb.states[g.rows[j]].found = true
			}
		}
	}
	var out []diff
	for i, st := range bb.states {
		if st.skip || st.found {
			continue
		}
		d := Difference{Kind: Extra, Key: keyString(bb.keyCols, bb.keys[i]), From: st.from}
		if st.none {
			d.Note = fmt.Sprintf("%s() maps it to no row of the %s", c.v.Opposite().Func, c.read.name)
		}
		out = append(out, diff{f: finding{kind: Extra, table: bb.wt, keyCols: bb.keyCols, key: bb.keys[i]}, d: d})
	}
	return out, nil
}

// outKey returns the key of the row an out writes: its Key when it has
// one, else the values of its key columns.
func outKey(o *change.Out) ([]string, []*string, error) {
	if len(o.KeyCols) == 0 {
		return nil, nil, fmt.Errorf("%s has no primary key to match rows by", o.Table)
	}
	key := make([]*string, len(o.KeyCols))
	if len(o.Key) == len(o.KeyCols) {
		for j, v := range o.Key {
			key[j] = textOf(v)
		}
		return o.KeyCols, key, nil
	}
	for j, k := range o.KeyCols {
		v, ok := o.Lookup(k)
		if !ok || v.Kind == change.Absent {
			return nil, nil, fmt.Errorf("the transform gives no value for %s, a key column of %s, and rows are matched by key", k, o.Table)
		}
		key[j] = textOf(v)
	}
	return o.KeyCols, key, nil
}

// rowKey returns the key columns of a relation and their positions; a
// relation without key is named by all its columns.
func rowKey(rel *change.Relation, key []string) ([]string, []int) {
	var pos []int
	for _, k := range key {
		i := rel.ColumnIndex(k)
		if i < 0 {
			pos = nil
			break
		}
		pos = append(pos, i)
	}
	if len(pos) > 0 {
		return key, pos
	}
	cols := make([]string, len(rel.Columns))
	pos = make([]int, len(rel.Columns))
	for i, c := range rel.Columns {
		cols[i], pos[i] = c.Name, i
	}
	return cols, pos
}

func pick(row change.Row, pos []int) []*string {
	out := make([]*string, len(pos))
	for j, p := range pos {
		out[j] = textOf(row[p])
	}
	return out
}

// rowSignature is a row's values as one string, to tell whether a row
// changed between two snapshots.
func rowSignature(row change.Row) string {
	var b strings.Builder
	for _, v := range row {
		b.WriteByte(byte('0' + v.Kind))
		fmt.Fprintf(&b, "%d:", len(v.Data))
		b.Write(v.Data)
	}
	return b.String()
}
