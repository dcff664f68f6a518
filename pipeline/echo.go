package pipeline

import (
	"sync/atomic"

	"github.com/jackc/pglogrepl"

	"github.com/cdcbridge/cdcbridge/config"
)

// EchoTracker remembers, for the two directions of one mapping, how far in
// the WAL of the side each direction writes its checkpoint-only
// transactions go, so that the direction reading that side can tell its
// echo from real activity (see apply.Config.OwnIdleWrites). Those
// transactions touch no published table, so the stream cannot tell them by
// their origin.
//
// The daemon owns one and hands it to both directions (Options.Echoes); a
// pipeline run without one makes its own, which it keeps across its
// restarts. The zero value is ready; it is safe for concurrent use.
type EchoTracker struct {
	// written holds, by the direction that wrote them, the WAL position
	// just after its latest checkpoint-only transaction on its side written.
	written [2]atomic.Uint64
}

// Wrote records that direction dir committed a checkpoint-only transaction
// that ends at lsn in the WAL of its side written. The position only moves
// forward.
func (t *EchoTracker) Wrote(dir config.Direction, lsn pglogrepl.LSN) {
	w := &t.written[dir]
	for {
		cur := w.Load()
		if uint64(lsn) <= cur || w.CompareAndSwap(cur, uint64(lsn)) {
			return
		}
	}
}

// Echo returns how far the checkpoint-only transactions in the WAL of the
// side direction dir reads go: those of the opposite direction, which
// writes that side.
func (t *EchoTracker) Echo(dir config.Direction) pglogrepl.LSN {
	return pglogrepl.LSN(t.written[dir.Opposite()].Load())
}
