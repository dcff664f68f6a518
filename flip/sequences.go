package flip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cdcbridge/cdcbridge/config"
	"github.com/cdcbridge/cdcbridge/dbconn"
	"github.com/cdcbridge/cdcbridge/sequences"
)

// DefaultSequenceGap is how far past the old live side's sequences a flip
// sets the new live side's.
const DefaultSequenceGap = 1000

// SequenceSync, if set on a flip, brings the sequences of the side becoming
// live up to those of the side that was live.
type SequenceSync func(ctx context.Context, from config.Direction) error

// sequencePairs connects to both sides and finds the sequences a direction
// keeps in step. The caller closes the connections.
func sequencePairs(ctx context.Context, m *config.Mapping, dir config.Direction) (from, to *pgx.Conn, pairs []sequences.Pair, err error) {
	src, err := dbconn.Connect(ctx, m.Source.DSN, "source")
	if err != nil {
		return nil, nil, nil, err
	}
	tgt, err := dbconn.Connect(ctx, m.Target.DSN, "target")
	if err != nil {
		src.Close(context.Background())
		return nil, nil, nil, err
	}
	pairs, err = sequences.Discover(ctx, src, tgt, m, dir)
	if err != nil {
		src.Close(context.Background())
		tgt.Close(context.Background())
		return nil, nil, nil, m.Redact(err)
	}
	v, byName := m.View(dir), map[string]*pgx.Conn{"source": src, "target": tgt}
	return byName[v.ReadName], byName[v.WriteName], pairs, nil
}

// SyncSequences brings the sequences behind the mapped columns of the
// side that direction dir writes up to those of the side it reads, plus gap.
func SyncSequences(ctx context.Context, m *config.Mapping, dir config.Direction, gap int64) error {
	from, to, pairs, err := sequencePairs(ctx, m, dir)
	if err != nil {
		return err
	}
	defer from.Close(context.Background())
	defer to.Close(context.Background())
	_, err = sequences.SyncAhead(ctx, from, to, pairs, gap)
	return m.Redact(err)
}

// KeepSequences keeps the sequences of a live direction in step every
// interval until ctx ends, reconnecting after lost connections.
func KeepSequences(ctx context.Context, m *config.Mapping, dir config.Direction, every time.Duration, log *slog.Logger) {
	log = log.With("direction", dir.String())
	for ctx.Err() == nil {
		from, to, pairs, err := sequencePairs(ctx, m, dir)
		if err == nil {
			err = sequences.Run(ctx, from, to, pairs, every, log)
			from.Close(context.Background())
			to.Close(context.Background())
		}
		if ctx.Err() != nil {
			return
		}
		if err != nil && !errors.Is(err, context.Canceled) {
			log.Warn("keeping sequences in step; retrying", "error", fmt.Sprint(m.Redact(err)))
		}
		select {
		case <-ctx.Done():
		case <-time.After(every):
		}
	}
}
