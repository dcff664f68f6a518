package verify

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/cdcbridge/cdcbridge/change"
)

// A table written without a key has no row to look a transformed row up
// by: it is compared as a multiset instead. The rows of the side read that
// map to it are transformed, printed as the side written prints its
// columns, and sorted; the rows of the side written stream in the same
// order; a merge of the two finds the rows that one side holds more often
// than the other. Duplicates count: a row held three times on one side and
// twice on the other is one difference. The transformed rows of such a
// table are held in memory while it is compared; the rows of the side
// written are not.

// bag collects the transformed rows of one table written without a key.
type bag struct {
	table change.Table
	cols  []string // the columns of the table, as its relation lists them
	rows  []bagRow
	// given counts, per column, the rows that give it a value.
	given []int
}

type bagRow struct {
	vals []*string // by column of bag.cols, printed by the side written
	from string    // the row of the side read it comes from
}

func (c *checker) bagOf(bags map[change.Table]*bag, t change.Table) *bag {
	b := bags[t]
	if b == nil {
		rel := c.write.relation(t)
		b = &bag{table: t, given: make([]int, len(rel.Columns))}
		for _, col := range rel.Columns {
			b.cols = append(b.cols, col.Name)
		}
		bags[t] = b
	}
	return b
}

// addBag adds the outs of a batch that write tables without a key to their
// bags, each value cast to its column's declared type and printed on the
// side written. A row whose values do not fit the columns is missing, with
// a note.
func (c *checker) addBag(ctx context.Context, bags map[change.Table]*bag, outs []bagOut) ([]diff, error) {
	var diffs []diff
	byTable := map[change.Table][]bagOut{}
	var order []change.Table
	for _, o := range outs {
		if _, ok := byTable[o.table]; !ok {
			order = append(order, o.table)
		}
		byTable[o.table] = append(byTable[o.table], o)
	}
	for _, t := range order {
		b := c.bagOf(bags, t)
		list := byTable[t]
		probes := make([]probe, len(list))
		has := make([][]bool, len(list))
		for i, o := range list {
			probes[i].vals = make([]*string, len(b.cols))
			has[i] = make([]bool, len(b.cols))
			for j, col := range b.cols {
				if v, ok := o.out.Lookup(col); ok && v.Kind != change.Absent {
					probes[i].vals[j], has[i][j] = textOf(v), true
				}
			}
		}
		printed, notes, err := c.write.print(ctx, t, b.cols, probes)
		if err != nil {
			return nil, err
		}
		for i, o := range list {
			if notes[i] != "" {
				d := Difference{Kind: Missing, Key: keyString(b.cols, probes[i].vals), From: o.from,
					Note: fmt.Sprintf("what the transform gives does not fit the columns of %s: %s", t, notes[i])}
				diffs = append(diffs, diff{f: finding{kind: Missing, table: t, bag: true}, d: d})
				continue
			}
			for j := range b.cols {
				if has[i][j] {
					b.given[j]++
				}
			}
			b.rows = append(b.rows, bagRow{vals: printed[i], from: o.from})
		}
	}
	return diffs, nil
}

// bagOut is a transformed row written to a table without a key.
type bagOut struct {
	table change.Table
	out   *change.Out
	from  string
}

// compareBag merges a bag with the rows of its table on the side written.
// The columns compared are those the transform gives in every row.
func (c *checker) compareBag(ctx context.Context, b *bag, tr *TableReport, record func(diff)) error {
	var cols []string
	var pos []int
	for j, col := range b.cols {
		if b.given[j] == len(b.rows) {
			cols = append(cols, col)
			pos = append(pos, j)
		}
	}
	if len(cols) < len(b.cols) && len(b.rows) > 0 {
		tr.note(fmt.Sprintf("%s has no key, so its rows are compared as a multiset, on the columns the transform gives in every row: %s",
			b.table, strings.Join(cols, ", ")))
	}
	read := make([][]*string, len(b.rows))
	from := make([]string, len(b.rows))
	for i, r := range b.rows {
		read[i] = make([]*string, len(pos))
		for k, j := range pos {
			read[i][k] = r.vals[j]
		}
		from[i] = r.from
	}
	idx := make([]int, len(read))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int { return compareTuples(read[a], read[b]) })
	tr.Compared += int64(len(read))

	next := 0
	emit := func(k Kind, vals []*string, src string) {
		d := Difference{Kind: k, Key: keyString(cols, vals), From: src}
		if k == Extra {
			d.From = ""
		}
		record(diff{f: finding{kind: k, table: b.table, bag: true}, d: d})
	}
	err := c.write.scanSorted(ctx, b.table, cols, c.o.BatchSize, func(rows [][]*string) error {
		tr.Rows += int64(len(rows))
		for _, w := range rows {
			for next < len(idx) && compareTuples(read[idx[next]], w) < 0 {
				emit(Missing, read[idx[next]], from[idx[next]])
				next++
			}
			if next < len(idx) && compareTuples(read[idx[next]], w) == 0 {
				next++
				continue
			}
			emit(Extra, w, "")
		}
		return nil
	})
	if err != nil {
		return err
	}
	for ; next < len(idx); next++ {
		emit(Missing, read[idx[next]], from[idx[next]])
	}
	return nil
}

// compareTuples orders rows as ORDER BY each column COLLATE "C" NULLS LAST
// does: byte by byte, NULL after every value.
func compareTuples(a, b []*string) int {
	for i := range a {
		switch {
		case a[i] == nil && b[i] == nil:
		case a[i] == nil:
			return 1
		case b[i] == nil:
			return -1
		default:
			if c := strings.Compare(*a[i], *b[i]); c != 0 {
				return c
			}
		}
	}
	return 0
}

// scanSorted streams the given columns of every row of t, printed, in the
// order compareTuples gives, to fn in batches of n.
func (s *side) scanSorted(ctx context.Context, t change.Table, cols []string, n int, fn func([][]*string) error) error {
	sel := make([]string, len(cols))
	ord := make([]string, len(cols))
	for j, c := range cols {
		sel[j] = pgx.Identifier{c}.Sanitize() + "::text"
		ord[j] = sel[j] + ` COLLATE "C" NULLS LAST`
	}
	sql := "SELECT " + strings.Join(sel, ", ") + s.from(t)
	if len(cols) == 0 {
		sql = "SELECT" + s.from(t)
	} else {
		sql += " ORDER BY " + strings.Join(ord, ", ")
	}
	rows, err := s.tx.Query(ctx, sql, pgx.QueryResultFormats{pgx.TextFormatCode})
	if err != nil {
		return fmt.Errorf("reading %s on the %s: %w", t, s.name, err)
	}
	defer rows.Close()
	batch := make([][]*string, 0, n)
	for rows.Next() {
		raw := rows.RawValues()
		row := make([]*string, len(cols))
		for j := range cols {
			row[j] = text(raw[j])
		}
		batch = append(batch, row)
		if len(batch) == n {
			if err := fn(batch); err != nil {
				return err
			}
			batch = make([][]*string, 0, n)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("reading %s on the %s: %w", t, s.name, err)
	}
	rows.Close()
	if len(batch) > 0 {
		return fn(batch)
	}
	return nil
}

// print casts the values of probes to the declared types of cols of t and
// prints them, as the side written would print them stored. A probe with a
// value its column does not take gets a note instead.
func (s *side) print(ctx context.Context, t change.Table, cols []string, probes []probe) ([][]*string, []string, error) {
	info := s.cat.Table(t)
	out := make([][]*string, len(probes))
	notes := make([]string, len(probes))
	if len(probes) == 0 {
		return out, notes, nil
	}
	names := make([]string, len(cols))
	sel := []string{"u.o"}
	for j, c := range cols {
		names[j] = "v" + strconv.Itoa(j)
		sel = append(sel, fmt.Sprintf("(u.v%d::%s)::text", j, fullTypeName(info, c)))
	}
	sql := "SELECT " + strings.Join(sel, ", ") + " FROM " + unnestNamed(names, true)
	args := make([]any, len(cols))
	for j := range cols {
		a := make([]*string, len(probes))
		for i, p := range probes {
			a[i] = p.vals[j]
		}
		args[j] = a
	}
	err := s.guarded(ctx, sql, args, len(probes), func(raw [][]byte) error {
		o, err := strconv.Atoi(string(raw[0]))
		if err != nil || o < 1 || o > len(probes) {
			return fmt.Errorf("unexpected row number %q", raw[0])
		}
		row := make([]*string, len(cols))
		for j := range cols {
			row[j] = text(raw[1+j])
		}
		out[o-1] = row
		return nil
	}, func() error {
		for i := range probes {
			one, note, err := s.print(ctx, t, cols, probes[i:i+1])
			if err != nil {
				return err
			}
			out[i], notes[i] = one[0], note[0]
		}
		return nil
	})
	var ve *valueError
	if errors.As(err, &ve) {
		return out, []string{ve.Error()}, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("printing the transformed rows of %s on the %s: %w", t, s.name, err)
	}
	return out, notes, nil
}
