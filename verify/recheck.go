package verify

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pglogrepl"

	"github.com/cdcbridge/cdcbridge/change"
	"github.com/cdcbridge/cdcbridge/checkpoint"
)

// recheck checks the rows that differed in prev again, so that only
// persistent differences are reported, in a series of snapshots:
//
//  1. A, of the side read: the rows the differences come from are
//     fetched and transformed, and the WAL position is noted.
//  2. The side written is given time to apply everything up to that
//     position; then in snapshot T the transformed rows are compared, and
//     the rows of the side written with the keys that differed are
//     fetched and mapped back.
//  3. B, of the side read: a difference counts only if its source row is
//     the same as in A. T holds every change up to A, and any later change
//     to the row would show in B, so an unchanged row that differs in T
//     differs for good; a row that changed is unsettled and is checked
//     again in the next round. The rows mapped back are looked for in B.
//  4. When some are not there and a daemon runs, the side written is
//     given time to apply everything up to B; a row still there then (T2)
//     is extra. Without a daemon nothing changes there, and the rows whose
//     source is not in B are extra.
func (c *checker) recheck(ctx context.Context, prev *tally) (next *tally, lsn pglogrepl.LSN, daemon, caughtUp bool, err error) {
	next = c.newTally()
	src, dst := newKeySets(), newKeySets()
	for _, f := range prev.pending {
		if f.kind != Extra {
			src.add(f.src, c.readKeys[f.src], f.srcKey)
		}
		dst.add(f.table, f.keyCols, f.key)
	}

	// A
	if err := c.read.begin(ctx); err != nil {
		return nil, 0, false, false, err
	}
	if lsn, err = c.readLSN(ctx); err != nil {
		return nil, 0, false, false, err
	}
	since := time.Now() // after the snapshot was taken
	var batches []*fwdBatch
	inA, err := c.readSigned(ctx, src, func(t change.Table, rows []change.Row) error {
		b, err := c.transformRows(t, rows)
		if err != nil {
			return err
		}
		batches = append(batches, b)
		return nil
	})
	if err != nil {
		return nil, 0, false, false, err
	}
	if err := c.read.end(ctx); err != nil {
		return nil, 0, false, false, err
	}

	if daemon, caughtUp, err = c.catchUp(ctx, lsn, since); err != nil {
		return nil, 0, false, false, err
	}

	// T
	if err := c.write.begin(ctx); err != nil {
		return nil, 0, false, false, err
	}
	var candidates []diff
	different := map[string]bool{}
	for _, b := range batches {
		diffs, err := c.compareBatch(ctx, b)
		if err != nil {
			return nil, 0, false, false, err
		}
		for _, d := range diffs {
			if d.f.kind == Different {
				different[d.f.table.String()+" "+d.d.Key] = true
			}
		}
		candidates = append(candidates, diffs...)
	}
	var backs []*backBatch
	for _, ks := range dst.sets {
		for chunk := range slices.Chunk(ks.keys, c.o.BatchSize) {
			rows, err := c.write.fetch(ctx, ks.table, ks.cols, chunk)
			if err != nil {
				return nil, 0, false, false, err
			}
			bb, err := c.mapBack(ks.table, rows, different, next.table(ks.table))
			if err != nil {
				return nil, 0, false, false, err
			}
			backs = append(backs, bb)
		}
	}
	if err := c.write.end(ctx); err != nil {
		return nil, 0, false, false, err
	}

	// B
	if err := c.read.begin(ctx); err != nil {
		return nil, 0, false, false, err
	}
	again := newKeySets()
	for _, d := range candidates {
		again.add(d.f.src, c.readKeys[d.f.src], d.f.srcKey)
	}
	inB, err := c.readSigned(ctx, again, nil)
	if err != nil {
		return nil, 0, false, false, err
	}
	for _, d := range candidates {
		id := d.f.src.String() + " " + keyString(c.readKeys[d.f.src], d.f.srcKey)
		a, okA := inA[id]
		b, okB := inB[id]
		if okA && okB && a == b {
			next.record(d)
		} else {
			next.unsettle(d)
		}
	}
	var extras []diff
	for _, bb := range backs {
		diffs, err := c.resolveExtras(ctx, bb)
		if err != nil {
			return nil, 0, false, false, err
		}
		extras = append(extras, diffs...)
	}
	if len(extras) == 0 || !daemon {
		// Without a daemon the side written does not change: what is not on
		// the side read in B is extra.
		for _, d := range extras {
			next.record(d)
		}
		return next, lsn, daemon, caughtUp, c.read.end(ctx)
	}

	// T2: a row of the side written whose source is not in B may have
	// lost it after T, the delete not yet applied. It is extra only if it
	// is still there once the daemon has applied everything up to B.
	lsnB, err := c.readLSN(ctx)
	if err != nil {
		return nil, 0, false, false, err
	}
	sinceB := time.Now()
	if err := c.read.end(ctx); err != nil {
		return nil, 0, false, false, err
	}
	_, caughtUpB, err := c.catchUp(ctx, lsnB, sinceB)
	if err != nil {
		return nil, 0, false, false, err
	}
	caughtUp = caughtUp && caughtUpB
	if err := c.write.begin(ctx); err != nil {
		return nil, 0, false, false, err
	}
	still := newKeySets()
	for _, d := range extras {
		still.add(d.f.table, d.f.keyCols, d.f.key)
	}
	present := map[string]bool{}
	for _, ks := range still.sets {
		rel := c.write.relation(ks.table)
		_, pos := rowKey(rel, ks.cols)
		for chunk := range slices.Chunk(ks.keys, c.o.BatchSize) {
			rows, err := c.write.fetch(ctx, ks.table, ks.cols, chunk)
			if err != nil {
				return nil, 0, false, false, err
			}
			for _, row := range rows {
				present[ks.table.String()+" "+keyString(ks.cols, pick(row, pos))] = true
			}
		}
	}
	for _, d := range extras {
		if present[d.f.table.String()+" "+d.d.Key] {
			next.record(d)
		}
	}
	return next, lsn, daemon, caughtUp, c.write.end(ctx)
}

// fullRecheck compares everything again, the side written after it has
// caught up with the side read.
func (c *checker) fullRecheck(ctx context.Context) (next *tally, lsn pglogrepl.LSN, daemon, caughtUp bool, err error) {
	if err := c.read.begin(ctx); err != nil {
		return nil, 0, false, false, err
	}
	if lsn, err = c.readLSN(ctx); err != nil {
		return nil, 0, false, false, err
	}
	since := time.Now() // after the snapshot was taken
	if daemon, caughtUp, err = c.catchUp(ctx, lsn, since); err != nil {
		return nil, 0, false, false, err
	}
	if err := c.write.begin(ctx); err != nil {
		return nil, 0, false, false, err
	}
	if next, err = c.compareAll(ctx); err != nil {
		return nil, 0, false, false, err
	}
	return next, lsn, daemon, caughtUp, c.endPass(ctx)
}

// readLSN returns the WAL insert position of the side read, inside its
// snapshot: every transaction the snapshot sees ends at or before it.
func (c *checker) readLSN(ctx context.Context) (pglogrepl.LSN, error) {
	var lsn pglogrepl.LSN
	if err := c.read.tx.QueryRow(ctx, `SELECT pg_catalog.pg_current_wal_insert_lsn()`).Scan(&lsn); err != nil {
		return 0, fmt.Errorf("reading the WAL position of the %s: %w", c.read.name, err)
	}
	return lsn, nil
}

// catchUp waits until the daemon of this mapping and direction has applied
// every transaction of the side read that a snapshot taken before since
// saw,
// or Options.CatchUp has passed. lsn is the side read's WAL insert position
// read in that snapshot: those transactions end at or before it. daemon
// says whether one holds the mapping's lock on the side written; without
// one, catchUp only pauses briefly, in case one is restarting.
//
// The checkpoint cannot always reach lsn: WAL written after the last
// commit without a transaction (a read pruning a page) may stay unflushed
// on a partial page, and a walsender reads only flushed WAL. So once every
// commit the snapshot saw must have been flushed (at once for a synchronous
// commit, within three times wal_writer_delay for an asynchronous one), a
// checkpoint at the side read's flush position is enough.
func (c *checker) catchUp(ctx context.Context, lsn pglogrepl.LSN, since time.Time) (daemon, caughtUp bool, err error) {
	if c.o.CatchUp < 0 {
		return false, false, nil
	}
	name, dir := c.m.Name, c.dir.String()
	err = c.write.conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_locks WHERE locktype = 'advisory' AND granted
		AND ((classid::bigint << 32) | objid::bigint) = $1)`, checkpoint.LockKey(name, dir)).Scan(&daemon)
	if err != nil {
		return false, false, fmt.Errorf("looking for a daemon on the %s: %w", c.write.name, err)
	}
	wait := func(d time.Duration) error {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			return nil
		}
	}
	if !daemon {
		return false, false, wait(min(noDaemonWait, c.o.CatchUp))
	}
	var delayMS int64
	if err := c.read.conn.QueryRow(ctx, `SELECT setting::bigint FROM pg_catalog.pg_settings WHERE name = 'wal_writer_delay'`).Scan(&delayMS); err != nil {
		return true, false, fmt.Errorf("reading wal_writer_delay on the %s: %w", c.read.name, err)
	}
	flushed := since.Add(3*time.Duration(delayMS)*time.Millisecond + 50*time.Millisecond)
	deadline := time.Now().Add(c.o.CatchUp)
	for {
		target := lsn
		if time.Now().After(flushed) {
			var f pglogrepl.LSN
			if err := c.read.conn.QueryRow(ctx, `SELECT pg_catalog.pg_current_wal_flush_lsn()`).Scan(&f); err != nil {
				return true, false, fmt.Errorf("reading the WAL position of the %s: %w", c.read.name, err)
			}
			target = min(target, f)
		}
		st, err := checkpoint.Load(ctx, c.write.conn, name, dir)
		if err != nil && !errors.Is(err, checkpoint.ErrNone) {
			return true, false, err
		}
		if err == nil && !st.Copying && st.LSN >= target {
			return true, true, nil
		}
		if time.Now().After(deadline) {
			c.log.Warn("the daemon did not catch up in time; checking again anyway", "lsn", lsn.String(), "checkpoint", st.LSN.String(), "waited", c.o.CatchUp.String())
			return true, false, nil
		}
		if err := wait(20 * time.Millisecond); err != nil {
			return true, false, err
		}
	}
}

// finding is one row that differs, with what it takes to check it again.
type finding struct {
	kind Kind
	// table and key name the row on the side written.
	table   change.Table
	keyCols []string
	key     []*string
	// src and srcKey name the row of the side read it comes from (missing
	// and different rows); srcKey is nil when src has no primary key.
	src    change.Table
	srcKey []*string
	// bag: the row is of a table without a key, compared as a multiset,
	// which only a full comparison checks again.
	bag bool
}

// tally collects the findings of one comparison.
type tally struct {
	tables map[change.Table]*TableReport
	order  []change.Table
	// pending holds every finding (unsettled ones included), up to
	// maxTracked; overflow says there were more.
	pending  []finding
	overflow bool
	// unkeyed says a finding's source row has no key to be fetched by.
	unkeyed bool
	// different holds "table key" of the rows found different, so that
	// they are not counted as extra too.
	different map[string]bool
}

func (c *checker) newTally() *tally {
	t := &tally{tables: map[change.Table]*TableReport{}, different: map[string]bool{}}
	for _, wt := range c.v.WriteTables() {
		t.table(wt)
	}
	return t
}

func (t *tally) table(name change.Table) *TableReport {
	tr := t.tables[name]
	if tr == nil {
		tr = &TableReport{Table: name}
		t.tables[name] = tr
		t.order = append(t.order, name)
	}
	return tr
}

// total counts the differences.
func (t *tally) total() int64 {
	var n int64
	for _, tr := range t.tables {
		n += tr.Missing + tr.Extra + tr.Different
	}
	return n
}

// unsettled counts the rows that changed while they were checked again.
func (t *tally) unsettled() int64 {
	var n int64
	for _, tr := range t.tables {
		n += tr.Unsettled
	}
	return n
}

// record counts a difference.
func (t *tally) record(d diff) {
	tr := t.table(d.f.table)
	var n *int64
	switch d.f.kind {
	case Missing:
		n = &tr.Missing
	case Extra:
		n = &tr.Extra
	default:
		n = &tr.Different
	}
	*n++
	if *n <= MaxExamples {
		tr.Examples = append(tr.Examples, d.d)
	}
	t.keep(d)
}

// unsettle counts a row that changed on the side read while it was
// checked: neither equal nor shown to differ.
func (t *tally) unsettle(d diff) {
	tr := t.table(d.f.table)
	tr.Unsettled++
	if len(tr.UnsettledKeys) < MaxExamples && !slices.Contains(tr.UnsettledKeys, d.d.Key) {
		tr.UnsettledKeys = append(tr.UnsettledKeys, d.d.Key)
	}
	t.keep(d)
}

func (t *tally) keep(d diff) {
	if len(t.pending) >= maxTracked {
		t.overflow = true
		return
	}
	t.pending = append(t.pending, d.f)
	if d.f.kind == Different {
		t.different[d.f.table.String()+" "+d.d.Key] = true
	}
	if d.f.bag || d.f.kind != Extra && d.f.srcKey == nil {
		t.unkeyed = true
	}
}

func (tr *TableReport) note(s string) {
	if !slices.Contains(tr.Notes, s) {
		tr.Notes = append(tr.Notes, s)
	}
}

// readSigned fetches the rows of the side read with the keys in ks, in
// batches, in the snapshot open there. It returns the signature of each
// row found (rowSignature) by "table key", the way recheck compares a
// row's two snapshots, and hands each batch to each, unless nil.
func (c *checker) readSigned(ctx context.Context, ks *keySets, each func(change.Table, []change.Row) error) (map[string]string, error) {
	sigs := map[string]string{}
	for _, set := range ks.sets {
		_, pos := rowKey(c.read.relation(set.table), set.cols)
		for chunk := range slices.Chunk(set.keys, c.o.BatchSize) {
			rows, err := c.read.fetch(ctx, set.table, set.cols, chunk)
			if err != nil {
				return nil, err
			}
			for _, row := range rows {
				sigs[set.table.String()+" "+keyString(set.cols, pick(row, pos))] = rowSignature(row)
			}
			if each != nil {
				if err := each(set.table, rows); err != nil {
					return nil, err
				}
			}
		}
	}
	return sigs, nil
}

// keySets collects distinct keys per table and key columns, in the order
// first seen.
type keySets struct {
	byID map[string]*keySet
	sets []*keySet
}

type keySet struct {
	table change.Table
	cols  []string
	seen  map[string]bool
	keys  [][]*string
}

func newKeySets() *keySets { return &keySets{byID: map[string]*keySet{}} }

func (k *keySets) add(t change.Table, cols []string, key []*string) {
	id := t.String() + "\x00" + strings.Join(cols, "\x00")
	ks := k.byID[id]
	if ks == nil {
		ks = &keySet{table: t, cols: cols, seen: map[string]bool{}}
		k.byID[id] = ks
		k.sets = append(k.sets, ks)
	}
	s := keyString(cols, key)
	if !ks.seen[s] {
		ks.seen[s] = true
		ks.keys = append(ks.keys, key)
	}
}
