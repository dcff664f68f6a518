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
	batch    *pgx.Batch
	items    []item // one per statement queued in batch
	queued   int    // rows queued in batch
	cur      *run
	sqlCache map[string]string // statement text by run signature
}

// item describes a queued statement, for errors and row counts.
type item struct {
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
	b.batch.Queue(sql, args...)
	b.items = append(b.items, it)
}
