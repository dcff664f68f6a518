package snapshot

import (
	"context"
	"log/slog"
	"math"
	"sync"
	"time"
)

// report reports the progress of the tables being copied until the
// returned stop is called (which waits for it; it may be called twice):
// every second to Options.Progress, every Options.ProgressEvery to the
// log, for each table whose copy has begun and is not done.
func report(ctx context.Context, o Options, tabs []*tableCopy, log *slog.Logger) (stop func()) {
	every := o.ProgressEvery
	if every <= 0 {
		every = 10 * time.Second
	}
	tick := min(time.Second, every)
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(tick)
		defer t.Stop()
		logged := make(map[*tableCopy]time.Time, len(tabs))
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			now := time.Now()
			for _, tc := range tabs {
				began := tc.began.Load()
				if began == 0 {
					continue
				}
				tc.reporting.Lock()
				if tc.done {
					tc.reporting.Unlock()
					continue
				}
				p := Progress{Table: tc.t, Rows: tc.rows.Load(), Bytes: tc.bytes.Load()}
				p.Estimated = max(tc.estimate, p.Rows)
				if o.Progress != nil {
					o.Progress(p)
				}
				tc.reporting.Unlock()
				// The first record comes one period after the table began.
				last, ok := logged[tc]
				if !ok {
					last = time.Unix(0, began)
				}
				if now.Sub(last) < every-tick/2 {
					continue
				}
				logged[tc] = now
				log.Info("copy progress", progressAttrs(p, tc.estimate > 0, now.Sub(time.Unix(0, began)))...)
			}
		}
	}()
	return func() {
		cancel()
		wg.Wait()
	}
}

// progressAttrs are the attributes of a progress record: the rows so far,
// the estimate and the percent of it done, the rate since the table's copy
// began, and the time to go at that rate. Without an estimate (a table
// never analyzed) there is no percent and the time to go is unknown.
func progressAttrs(p Progress, estimated bool, took time.Duration) []any {
	rate := float64(p.Rows) / max(took.Seconds(), 1e-3)
	attrs := []any{"table", p.Table.String(), "rows", p.Rows}
	if estimated {
		attrs = append(attrs, "estimated", p.Estimated, "percent", math.Round(float64(p.Rows)*1000/float64(p.Estimated))/10)
	} else {
		attrs = append(attrs, "estimated", "unknown")
	}
	attrs = append(attrs, "rows_per_second", int64(rate), "bytes", p.Bytes)
	eta := "unknown"
	if left := p.Estimated - p.Rows; estimated && rate > 0 && left >= 0 {
		eta = (time.Duration(float64(left) / rate * float64(time.Second))).Round(time.Second).String()
	}
	return append(attrs, "eta", eta, "elapsed", took.Round(100*time.Millisecond).String())
}
