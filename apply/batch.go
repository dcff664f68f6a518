package apply

import (
	"fmt"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"

	"github.com/cdcbridge/cdcbridge/change"
)

// builder holds the statements queued for the next round trip, and the
// run of rows being built that becomes the next of them.
type builder struct {
	items    []item // the statements queued, in order
	queued   int    // rows queued in batch
	cur      *run
	sqlCache map[string]string // statement text by run signature
}

// item is a queued statement, with what errors and row counts need.
type item struct {
	sql    string
	args   []any
	kind   itemKind
	run    *run
	trunc  []change.Table
	walEnd *pglogrepl.LSN
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
