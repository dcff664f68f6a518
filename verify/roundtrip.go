package verify

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/cdcbridge/cdcbridge/change"
	"github.com/cdcbridge/cdcbridge/config"
	"github.com/cdcbridge/cdcbridge/mappingtest"
	"github.com/cdcbridge/cdcbridge/transform"
)

// RoundTripReport is what RoundTrip found.
type RoundTripReport struct {
	Mapping   string
	Direction config.Direction
	// Tables has one entry per table read, then one per table written.
	Tables []RoundTripTable
}

// RoundTripTable is the round trip of the rows of one table.
type RoundTripTable struct {
	// Side is where the rows were read: "source" or "target".
	Side  string
	Table change.Table
	// Via is the round trip: "backward(forward(row))".
	Via string
	// Rows counts the rows sent through; Failed those that did not come
	// back unchanged.
	Rows, Failed int64
	// Examples names up to MaxExamples of the rows that failed, with their
	// columns.
	Examples []mappingtest.Mismatch
}

// OK reports whether every row came back.
func (r RoundTripReport) OK() bool {
	for _, t := range r.Tables {
		if t.Failed > 0 {
			return false
		}
	}
	return true
}

// Write renders the report as text, one block per table.
func (r RoundTripReport) Write(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "round trips of %s\n", r.Mapping)
	failed := 0
	for _, t := range r.Tables {
		if t.Failed == 0 {
			if t.Rows == 0 {
				fmt.Fprintf(&b, "ok   %s %s: no rows\n", t.Side, t.Table)
			} else {
				fmt.Fprintf(&b, "ok   %s %s: %s == row for all %d rows\n", t.Side, t.Table, t.Via, t.Rows)
			}
			continue
		}
		failed++
		fmt.Fprintf(&b, "FAIL %s %s: %d of %d rows do not come back through %s\n", t.Side, t.Table, t.Failed, t.Rows, t.Via)
		for _, mm := range t.Examples {
			fmt.Fprintf(&b, "       %s\n", mm.Key)
			for _, c := range mm.Columns {
				fmt.Fprintf(&b, "           %s: was %s, came back %s\n", c.Name, c.Want, c.Got)
			}
		}
		if int64(len(t.Examples)) < t.Failed {
			fmt.Fprintf(&b, "       (%d of %d rows shown)\n", len(t.Examples), t.Failed)
		}
	}
	if failed == 0 {
		b.WriteString("the mapping is lossless on every row of both sides\n")
	} else {
		fmt.Fprintf(&b, "%d of %d tables have rows that do not come back: a flip over this mapping would change them\n", failed, len(r.Tables))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// RoundTrip sends every row of the side read through the transform and
// back, and every row of the side written back and through the transform,
// and reports the rows that do not come back unchanged. Options.CatchUp is
// not used. An error means the check could not be made (a
// *transform.Error when a transform failed on a row).
func RoundTrip(ctx context.Context, o Options) (RoundTripReport, error) {
	if err := o.defaults(); err != nil {
		return RoundTripReport{}, err
	}
	rep := RoundTripReport{Mapping: o.Mapping.Name, Direction: o.Direction}
	c, err := newChecker(ctx, o)
	if err != nil {
		return rep, o.Mapping.Redact(err)
	}
	defer c.close()
	err = c.roundTrip(ctx, &rep)
	return rep, o.Mapping.Redact(err)
}

func (c *checker) roundTrip(ctx context.Context, rep *RoundTripReport) error {
	fwd, back := c.v.Func, c.v.Opposite().Func
	legs := []struct {
		s      *side
		tables []change.Table
		keys   map[change.Table][]string
		there  *transform.Mapper
		rt     *mappingtest.RoundTripper
		via    string
	}{
		{c.read, c.v.ReadTables(), c.readKeys, c.fwd, mappingtest.NewRoundTripper(c.bwd, c.write.cat), back + "(" + fwd + "(row))"},
		{c.write, c.v.WriteTables(), c.writeKeys, c.bwd, mappingtest.NewRoundTripper(c.fwd, c.read.cat), fwd + "(" + back + "(row))"},
	}
	for _, leg := range legs {
		if err := leg.s.begin(ctx); err != nil {
			return err
		}
		for _, t := range leg.tables {
			rel := leg.s.relation(t)
			// A row that no key names is named by its key of a unique index,
			// or by all its values.
			nameCols, namePos := rowKey(rel, leg.keys[t])
			res := RoundTripTable{Side: leg.s.name, Table: t, Via: leg.via}
			pr := c.startProgress(ctx, leg.s, t, "checking round trips")
			err := leg.s.scan(ctx, t, leg.keys[t], c.o.BatchSize, func(rows []change.Row) error {
				pr.add(len(rows))
				for _, row := range rows {
					ch := &change.Change{Op: change.Insert, Rel: rel, New: row}
					outs, err := leg.there.Map(ch)
					if err != nil {
						return err
					}
					mm, err := leg.rt.Check(ch, outs)
					if err != nil {
						return err
					}
					res.Rows++
					for i := range mm {
						if mm[i].Key == "()" {
							mm[i].Key = keyString(nameCols, pick(row, namePos))
						}
					}
					if len(mm) > 0 {
						res.Failed++
						if len(res.Examples) < MaxExamples {
							res.Examples = append(res.Examples, mm...)
						}
					}
				}
				return nil
			})
			if err != nil {
				return err
			}
			c.log.Info("round trip", "side", leg.s.name, "table", t.String(), "via", leg.via, "rows", res.Rows, "failed", res.Failed)
			rep.Tables = append(rep.Tables, res)
		}
		if err := leg.s.end(ctx); err != nil {
			return err
		}
	}
	return nil
}
