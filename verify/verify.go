package verify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pglogrepl"

	"github.com/cdcbridge/cdcbridge/change"
	"github.com/cdcbridge/cdcbridge/config"
	"github.com/cdcbridge/cdcbridge/transform"
)

// Options configure Run and RoundTrip.
type Options struct {
	Mapping *config.Mapping
	// Direction says which side is read: Forward compares the source,
	// through forward(), with the target; Reverse the target, through
	// backward(), with the source.
	Direction config.Direction
	// BatchSize is how many rows are transformed and looked up per query.
	// 0 means DefaultBatchSize.
	BatchSize int
	// CatchUp bounds the wait for a running daemon to apply what the side
	// read holds before differences are checked again. 0 means
	// DefaultCatchUp; a negative value checks again without waiting.
	CatchUp time.Duration
	// Logger receives progress (component=verify) and the transforms'
	// console output; nil discards them.
	Logger *slog.Logger
	// ProgressEvery is how often the reading of a table logs its progress
	// (rows, percent of the estimate, rate): 0 means DefaultProgressEvery;
	// negative, never.
	ProgressEvery time.Duration
}

// Defaults of Options.
const (
	DefaultBatchSize = 1000
	DefaultCatchUp   = 10 * time.Second
)

const (
	// maxTracked bounds the keys kept for checking again; beyond it the
	// whole comparison runs again instead.
	maxTracked = 100_000
	// maxRounds bounds the re-checks while a daemon runs: a row rewritten
	// faster than they take stays unsettled every time.
	maxRounds = 3
	// noDaemonWait is how long a re-check waits when no daemon holds the
	// mapping's lock: one may be restarting.
	noDaemonWait = time.Second
)

// checker holds what a comparison needs: both sides, both transforms and
// the keys rows are matched by.
type checker struct {
	o   Options
	m   *config.Mapping
	dir config.Direction
	// v is the mapping seen from dir.
	v           config.View
	log         *slog.Logger
	read, write *side
	fwd, bwd    *transform.Mapper
	// readKeys holds the key of each table read (nil without one).
	readKeys map[change.Table][]string
	// writeKeys holds the key of each table written: the entry's key: or
	// the table's own key.
	writeKeys map[change.Table][]string
	// keyless holds the tables written without a key: they are compared
	// as multisets.
	keyless map[change.Table]bool
}

func (o *Options) defaults() error {
	if o.Mapping == nil {
		return errors.New("verify: no mapping")
	}
	if o.BatchSize <= 0 {
		o.BatchSize = DefaultBatchSize
	}
	if o.CatchUp == 0 {
		o.CatchUp = DefaultCatchUp
	}
	if o.ProgressEvery == 0 {
		o.ProgressEvery = DefaultProgressEvery
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// newChecker connects to both sides, loads their catalogs and builds both
// transforms.
func newChecker(ctx context.Context, o Options) (*checker, error) {
	m, dir := o.Mapping, o.Direction
	v := m.View(dir)
	c := &checker{o: o, m: m, dir: dir, v: v, log: o.Logger.With("component", "verify", "direction", dir.String()),
		readKeys: map[change.Table][]string{}, writeKeys: map[change.Table][]string{}, keyless: map[change.Table]bool{}}
	readName, writeName := v.ReadName, v.WriteName
	var err error
	if c.read, err = open(ctx, readName, v.ReadSide.DSN, v.ReadTables()); err != nil {
		return nil, err
	}
	if c.write, err = open(ctx, writeName, v.WriteSide.DSN, v.WriteTables()); err != nil {
		c.close()
		return nil, err
	}
	back := v.Opposite()
	// Both directions run the same script files: compiled once.
	scripts, err := transform.Compile(transform.Specs(v))
	if err != nil {
		c.close()
		return nil, fmt.Errorf("preparing %s(): %w", v.Func, err)
	}
	if c.fwd, err = transform.New(transform.Specs(v), transform.Options{Func: v.Func,
		Timeout: m.TransformTimeout, Read: c.read.cat, Write: c.write.cat, Logger: o.Logger, Scripts: scripts}); err != nil {
		c.close()
		return nil, fmt.Errorf("preparing %s(): %w", v.Func, err)
	}
	if c.bwd, err = transform.New(transform.Specs(back), transform.Options{Func: back.Func,
		Timeout: m.TransformTimeout, Read: c.write.cat, Write: c.read.cat, Logger: o.Logger, Scripts: scripts}); err != nil {
		c.close()
		return nil, fmt.Errorf("preparing %s(), which maps rows of the %s back to find extra ones: %w", back.Func, writeName, err)
	}
	for _, t := range v.ReadTables() {
		c.readKeys[t] = c.read.cat.Table(t).RowKey()
	}
	for _, e := range m.Tables {
		wt := e.Writes(dir)
		if _, ok := c.writeKeys[wt]; ok {
			continue
		}
		key := e.WriteKey(dir)
		if len(key) == 0 {
			key = c.write.cat.Table(wt).RowKey()
		}
		c.writeKeys[wt] = key
		c.keyless[wt] = len(key) == 0
	}
	return c, nil
}

func (c *checker) close() {
	c.read.close()
	c.write.close()
}

// Run compares the side read, through the transform, with the side
// written; see the package documentation. Differences are in the Report;
// an error means the comparison could not be made (a *transform.Error when
// a transform failed on a row).
func Run(ctx context.Context, o Options) (Report, error) {
	if err := o.defaults(); err != nil {
		return Report{}, err
	}
	v := o.Mapping.View(o.Direction)
	readName, writeName := v.ReadName, v.WriteName
	rep := Report{Mapping: o.Mapping.Name, Direction: o.Direction, ReadSide: readName, WriteSide: writeName}
	c, err := newChecker(ctx, o)
	if err != nil {
		return rep, o.Mapping.Redact(err)
	}
	defer c.close()
	rep, err = c.run(ctx, rep)
	return rep, o.Mapping.Redact(err)
}

func (c *checker) run(ctx context.Context, rep Report) (Report, error) {
	first, err := c.pass(ctx)
	if err != nil {
		return rep, err
	}
	c.log.Info("compared", "differences", first.total())
	final, full := first, false
	rounds := 1
	for r := 0; r < rounds && final.total()+final.unsettled() > 0; r++ {
		var (
			next             *tally
			lsn              pglogrepl.LSN
			daemon, caughtUp bool
		)
		if final.overflow || final.unkeyed {
			// The keys are not all known, or not all fetchable: compare
			// everything again, once, after the side written caught up.
			full = true
			next, lsn, daemon, caughtUp, err = c.fullRecheck(ctx)
		} else {
			next, lsn, daemon, caughtUp, err = c.recheck(ctx, final)
		}
		if err != nil {
			return rep, err
		}
		if daemon {
			rounds = maxRounds
		}
		rep.Rechecks++
		rep.Daemon, rep.Lagging = daemon, daemon && !caughtUp
		c.log.Info("checked the differences again", "round", rep.Rechecks, "lsn", lsn.String(), "daemon", daemon,
			"caught_up", caughtUp, "before", final.total(), "after", next.total(), "unsettled", next.unsettled(), "full", full)
		final = next
		if full || next.unsettled() == 0 {
			break
		}
	}
	rep.Transient = max(first.total()-final.total()-final.unsettled(), 0)
	for _, t := range first.order {
		tr := *first.tables[t]
		f := final.tables[t]
		if f == nil {
			f = &TableReport{}
		}
		if full {
			tr.Compared, tr.Rows = f.Compared, f.Rows
		}
		tr.Missing, tr.Extra, tr.Different, tr.Examples = f.Missing, f.Extra, f.Different, f.Examples
		tr.Unsettled, tr.UnsettledKeys = f.Unsettled, f.UnsettledKeys
		for _, n := range f.Notes {
			tr.note(n)
		}
		rep.Tables = append(rep.Tables, tr)
	}
	for _, t := range final.order {
		if first.tables[t] == nil {
			rep.Tables = append(rep.Tables, *final.tables[t])
		}
	}
	return rep, nil
}

// pass compares everything, in a fresh snapshot of each side (the side
// read first, so the side written has had every chance to catch up).
func (c *checker) pass(ctx context.Context) (*tally, error) {
	if err := c.read.begin(ctx); err != nil {
		return nil, err
	}
	if err := c.write.begin(ctx); err != nil {
		return nil, err
	}
	t, err := c.compareAll(ctx)
	if err != nil {
		return nil, err
	}
	return t, c.endPass(ctx)
}

func (c *checker) endPass(ctx context.Context) error {
	return errors.Join(c.read.end(ctx), c.write.end(ctx))
}
