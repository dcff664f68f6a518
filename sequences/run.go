package sequences

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// ErrClosed is returned by Run when one of its connections is closed: no
// later round could succeed, so its owner has to reconnect.
var ErrClosed = errors.New("sequence sync connection closed")

// Run calls Sync at once and then every interval until ctx ends, and returns
// ctx.Err() then. It is meant to run beside a direction, on connections of
// its own; the owner calls Sync once more at the flip.
//
// Moves are logged at debug. A failed round is logged at warn, once for as
// long as the same error repeats, and Run goes on: the next round retries
// everything, and per-pair problems (see Sync) do not stop the other pairs.
// The exception is a connection that reports itself closed (an IsClosed
// method, as *pgx.Conn has): Run then returns an error wrapping ErrClosed.
// log may be nil.
func Run(ctx context.Context, from, to Execer, pairs []Pair, every time.Duration, log *slog.Logger) error {
	if every <= 0 {
		return fmt.Errorf("sequence sync interval %v: must be greater than zero", every)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "sequences")
	tick := time.NewTicker(every)
	defer tick.Stop()
	var failing string
	for {
		moves, err := sync(ctx, from, to, pairs)
		for _, m := range moves {
			log.Debug("sequence moved up", "entry", m.Entry, "from", m.From.Sequence, "to", m.To.Sequence, "next", m.Next)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		switch {
		case err != nil && (closed(from) || closed(to)):
			return fmt.Errorf("keeping sequences in step: %w: %w", ErrClosed, err)
		case err != nil && err.Error() != failing:
			failing = err.Error()
			log.Warn("keeping sequences in step", "error", failing)
		case err == nil && failing != "":
			failing = ""
			log.Info("sequences in step again")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

func closed(db Execer) bool {
	c, ok := db.(interface{ IsClosed() bool })
	return ok && c.IsClosed()
}
