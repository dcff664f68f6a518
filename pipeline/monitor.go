package pipeline

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cdcbridge/cdcbridge/apply"
	"github.com/cdcbridge/cdcbridge/replication"
)

// monitor refreshes the lag and slot metrics every few seconds until ctx ends.
func monitor(ctx context.Context, o Options, read *pgx.Conn, slot string, a *apply.Applier) {
	if o.Metrics == nil {
		return
	}
	dir := o.Direction.String()
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		qctx, cancel := context.WithTimeout(ctx, 4*time.Second)
		if cur, err := replication.CurrentLSN(qctx, read); err == nil {
			lag := float64(0)
			if f := a.Flushed(); cur > f {
				lag = float64(cur - f)
			}
			o.Metrics.LagBytes.WithLabelValues(dir).Set(lag)
		}
		if info, err := replication.InspectSlot(qctx, read, slot); err == nil && info.Exists {
			o.Metrics.SlotRetained.WithLabelValues(slot).Set(float64(info.RetainedBytes))
		}
		cancel()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
