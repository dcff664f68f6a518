package apply

import (
	"fmt"
	"slices"

	"github.com/cdcbridge/cdcbridge/catalog"
	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"

	"github.com/cdcbridge/cdcbridge/change"
)

// builder holds the statements queued for the next round trip, and the
// run of rows being built that becomes the next of them.
//
// The runs open at once are one per table, op and column set: a change
// joins the run of its shape wherever it stands among the open runs, so
// that a target transaction of many small source transactions, each
// touching several tables, sends a few statements rather than one per
// change. Open runs are queued in the order they were opened. That moves a
// change ahead of changes to other rows, never ahead of an earlier change
// to the same row: a change whose key an open run holds either merges into
// that run's row (an update of a row inserted or updated there: one image,
// the later values over the earlier) or has every open run queued first.
// Rows of different keys do not see each other's order, the bridge
// writing as a replica (foreign keys are not checked, user triggers do not
// fire), with two exceptions: a table with triggers that fire for the
// bridge's writes keeps the exact order (inOrder), and a unique
// constraint on other columns may fail in the new order where the
// source's passed; see Conflict.Ordered.
type builder struct {
	items  []item // the statements queued, in order
	queued int    // rows added since the last round trip
	bytes  int64  // and the bytes of their values
	// open holds the runs being built, in the order they were opened.
	open []*run
	// reordered marks the tables of the target transaction whose changes
	// were merged or moved ahead of another change of theirs.
	reordered map[change.Table]bool
	sqlCache  map[string]string // statement text by run signature
}

// newBuilder returns an empty builder.
func newBuilder() builder {
	return builder{reordered: map[change.Table]bool{}, sqlCache: map[string]string{}}
}

// inOrder reports whether a table's changes keep the source's order
// among all rows of the target transaction: when triggers fire for the
// bridge's writes to it (they may look at other rows, or other tables),
// or when a Conflict taught it (ordered).
func (b *builder) inOrder(t change.Table, info *catalog.Table, ordered *TableSet) bool {
	return info.FiresTriggers || (ordered != nil && ordered.Has(t))
}

// holder returns the open run of table t that holds key k of keyCols, and
// the row.
func (b *builder) holder(t change.Table, keyCols []string, k string) (*run, int) {
	for _, r := range b.open {
		if r.table == t && slices.Equal(r.keyCols, keyCols) {
			if row, ok := r.keys[k]; ok {
				return r, row
			}
		}
	}
	return nil, -1
}

// find returns the open run that a change of op to table t writing cols by
// keyCols joins, nil when none is open. Few runs are open at once: the
// last opened, the likeliest, is asked first.
func (b *builder) find(op change.Op, t change.Table, cols, keyCols []string) *run {
	for i := len(b.open) - 1; i >= 0; i-- {
		if b.open[i].shaped(op, t, cols, keyCols) {
			return b.open[i]
		}
	}
	return nil
}

// untracked reports whether a change of op to table t by keyCols may
// touch a row that an open run holds without holder being able to tell:
// the run has rows without a key, or keys of other columns (an entry's
// key: beside the table's primary key). Such a change goes in the
// source's order.
func (b *builder) untracked(t change.Table, op change.Op, keyCols []string) bool {
	for _, r := range b.open {
		if r.table != t {
			continue
		}
		if (r.untracked && op != change.Insert) || (len(r.keyCols) > 0 && len(keyCols) > 0 && !slices.Equal(r.keyCols, keyCols)) {
			return true
		}
	}
	return false
}

// last is the run opened last, nil when none is open.
func (b *builder) last() *run {
	if len(b.open) == 0 {
		return nil
	}
	return b.open[len(b.open)-1]
}

// orderedOpen reports whether the last open run is of a table kept in
// order: nothing may then join a run opened before it.
func (b *builder) orderedOpen() bool {
	l := b.last()
	return l != nil && l.inOrder
}

// item is a queued statement, with what errors and row counts need.
type item struct {
	sql    string
	args   []any
	kind   itemKind
	run    *run
	trunc  []change.Table
	walEnd *pglogrepl.LSN
	// reordered: the run's table had changes grouped out of the source's
	// order in the target transaction when the run was queued.
	reordered bool
}

// itemKind says what a queued statement does.
type itemKind uint8

const (
	itemBegin      itemKind = iota + 1 // BEGIN of a target transaction
	itemRows                           // a run of rows (item.run)
	itemCopy                           // a run of plain inserts sent with COPY (item.run), outside any pipelined batch
	itemTruncate                       // a TRUNCATE of item.trunc
	itemOrigin                         // tagging the transaction with the origin and the source commit
	itemCheckpoint                     // the checkpoint row's update
	itemCommit                         // COMMIT
	itemWALEnd                         // reading into item.walEnd the WAL position after a checkpoint-only commit
)

// String names the kind as errors show it.
func (k itemKind) String() string {
	switch k {
	case itemBegin:
		return "begin"
	case itemRows:
		return "rows"
	case itemCopy:
		return "copy"
	case itemTruncate:
		return "truncate"
	case itemOrigin:
		return "origin"
	case itemCheckpoint:
		return "checkpoint"
	case itemCommit:
		return "commit"
	case itemWALEnd:
		return "walend"
	}
	return fmt.Sprintf("itemKind(%d)", uint8(k))
}

func (b *builder) queue(sql string, it item, args ...any) {
	it.sql, it.args = sql, args
	b.items = append(b.items, it)
}

// batchOf returns items as one pipelined batch.
func batchOf(items []item) *pgx.Batch {
	b := &pgx.Batch{}
	for _, it := range items {
		b.Queue(it.sql, it.args...)
	}
	return b
}
