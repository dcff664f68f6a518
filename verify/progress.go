package verify

import (
	"context"
	"log/slog"
	"math"
	"time"

	"github.com/cdcbridge/cdcbridge/change"
)

// DefaultProgressEvery is how often a table being read logs its progress
// (Options.ProgressEvery).
const DefaultProgressEvery = 10 * time.Second

// progress logs, every Options.ProgressEvery, how far the reading of one
// table has come: rows, percent of the table's estimated size, rate and
// time left. The estimate is pg_class.reltuples (summed over the leaf
// partitions of a partitioned table), as of the last VACUUM or ANALYZE; a
// table never analyzed has none, and its records say rows and rate only.
// It is checked as batches arrive, so a table read within the interval
// logs nothing here (its "compared" record says it all).
type progress struct {
	log         *slog.Logger
	every       time.Duration
	msg         string
	estimate    int64 // 0: unknown
	rows        int64
	start, last time.Time
}

// startProgress begins the progress of reading table t on side s, in the
// snapshot the side has open, before the table's rows are queried (the
// estimate is read on the same connection). msg says what is done with
// the rows. A failure to read the estimate only leaves it unknown.
func (c *checker) startProgress(ctx context.Context, s *side, t change.Table, msg string) *progress {
	p := &progress{log: c.log.With("side", s.name, "table", t.String()), every: c.o.ProgressEvery, msg: msg, start: time.Now()}
	p.last = p.start
	if p.every < 0 {
		return p
	}
	// Queries that cannot fail (to_regclass), so that the snapshot's
	// transaction never aborts for an estimate.
	sql := `SELECT coalesce(reltuples, -1)::bigint FROM pg_class WHERE oid = to_regclass($1)`
	if info := s.cat.Table(t); info != nil && info.Kind == 'p' {
		sql = `SELECT coalesce(sum(c.reltuples) FILTER (WHERE c.reltuples >= 0), -1)::bigint
			FROM pg_partition_tree(to_regclass($1)) p JOIN pg_class c ON c.oid = p.relid WHERE p.isleaf`
	}
	q := s.conn.QueryRow
	if s.tx != nil {
		q = s.tx.QueryRow
	}
	var n int64
	if err := q(ctx, sql, t.String()).Scan(&n); err == nil && n > 0 {
		p.estimate = n
	}
	return p
}

// add counts n more rows read, and logs when the interval has passed.
func (p *progress) add(n int) {
	p.rows += int64(n)
	now := time.Now()
	if p.every < 0 || now.Sub(p.last) < p.every {
		return
	}
	p.last = now
	elapsed := now.Sub(p.start)
	rate := float64(p.rows) / max(elapsed.Seconds(), 1e-9)
	attrs := []any{"rows", p.rows, "rows_per_second", int64(math.Round(rate)), "elapsed", elapsed.Round(time.Second).String()}
	if p.estimate > 0 {
		pct := min(100*float64(p.rows)/float64(p.estimate), 100)
		attrs = append(attrs, "estimated_rows", p.estimate, "percent", math.Round(pct*10)/10)
		if left := p.estimate - p.rows; left > 0 && rate > 0 {
			attrs = append(attrs, "eta", (time.Duration(float64(left) / rate * float64(time.Second))).Round(time.Second).String())
		}
	}
	p.log.Info(p.msg, attrs...)
}
