package bridgetest

import (
	"maps"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cdcbridge/cdcbridge/config"
	"github.com/cdcbridge/cdcbridge/internal/pgtest"
)

// An idle pair is judged by events, not by a wall-clock window: a status
// round is observed when the walsender of every slot of the mapping has
// received one more standby status update from the bridge
// (pg_stat_replication.reply_time moved). The bridge sends one each
// StatusInterval whether or not anything happens, and its idle checkpoint
// machinery runs on the same beat, so a round is a moment in which an
// idle checkpoint, and so an echo, had its chance to happen.

// slotSide is one direction of the mapping: its slot, the database that
// holds the slot and the one that holds its checkpoint.
type slotSide struct {
	dir        config.Direction
	name       string
	read, ckpt *pgx.Conn
}

func (e *Env) slotSides(m *config.Mapping) []slotSide {
	return []slotSide{
		{config.Forward, m.SlotName(config.Forward), e.Src, e.Tgt},
		{config.Reverse, m.SlotName(config.Reverse), e.Tgt, e.Src},
	}
}

// Positions is what an idle pair holds still, per direction of m: its
// checkpoint row and the confirmed position of its slot.
func (e *Env) Positions(t testing.TB, m *config.Mapping) map[config.Direction]string {
	t.Helper()
	p := map[config.Direction]string{}
	for _, s := range e.slotSides(m) {
		p[s.dir] = "checkpoint " + Query(t, s.ckpt, `SELECT lsn FROM cdcbridge.checkpoint WHERE direction = '`+s.dir.String()+`'`) +
			", slot " + Query(t, s.read, `SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = '`+s.name+`'`)
	}
	return p
}

// replies returns the reply time of the walsender of each slot of m (""
// for a slot not being read).
func (e *Env) replies(t testing.TB, m *config.Mapping) []string {
	t.Helper()
	var r []string
	for _, s := range e.slotSides(m) {
		r = append(r, Query(t, s.read, `SELECT w.reply_time FROM pg_stat_replication w JOIN pg_replication_slots s ON s.active_pid = w.pid WHERE s.slot_name = '`+s.name+`'`))
	}
	return r
}

// StatusRound waits until the walsender of every slot of m has received a
// status update from the bridge that it had not received when called. p,
// if not nil, is the daemon: the test fails at once if it stops.
func (e *Env) StatusRound(t testing.TB, m *config.Mapping, p *Proc) {
	t.Helper()
	before := e.replies(t, m)
	var now []string
	if !pgtest.Until(30*time.Second, func() bool {
		now = e.replies(t, m)
		done := true
		for i := range now {
			done = done && now[i] != "" && now[i] != before[i]
		}
		if !done {
			failIfStopped(t, p)
		}
		return done
	}) {
		t.Fatalf("the bridge sent no status update to every slot of %s within 30s (reply times %v, then %v)%s", m.Name, before, now, logsOf(p))
	}
}

// Settle waits until the positions of m (see Positions) have stayed put
// across rounds consecutive status rounds. The test fails if they are
// still moving after limit rounds: an echo between the directions never
// lets them rest.
func (e *Env) Settle(t testing.TB, m *config.Mapping, p *Proc, rounds, limit int) {
	t.Helper()
	last, still := e.Positions(t, m), 0
	for n := 0; still < rounds; n++ {
		if n == limit {
			t.Fatalf("the positions of an idle pair were still moving after %d status rounds: %v%s", limit, last, logsOf(p))
		}
		e.StatusRound(t, m, p)
		if now := e.Positions(t, m); !maps.Equal(now, last) {
			last, still = now, 0
		} else {
			still++
		}
	}
}

// HoldsStill fails the test if, during the next rounds status rounds, a
// direction of m moves its positions twice. The servers write WAL of their
// own now and then (a standby snapshot, autovacuum), which a direction
// rightly checkpoints once; that checkpoint is the bridge's own write on
// the other side and must not be answered. An echo answers it, and is
// answered back, so a direction moves again within a round or two.
func (e *Env) HoldsStill(t testing.TB, m *config.Mapping, p *Proc, rounds int) {
	t.Helper()
	first := e.Positions(t, m)
	last, moves := first, map[config.Direction]int{}
	for i := 1; i <= rounds; i++ {
		e.StatusRound(t, m, p)
		now := e.Positions(t, m)
		for dir := range now {
			if now[dir] != last[dir] {
				moves[dir]++
				t.Logf("status round %d: %s moved from %s to %s", i, dir, last[dir], now[dir])
				if moves[dir] > 1 {
					t.Fatalf("an idle pair keeps moving: %s moved %d times in %d status rounds, the directions echo each other\nbefore: %v\nnow:    %v%s", dir, moves[dir], i, first, now, logsOf(p))
				}
			}
		}
		last = now
	}
}

func failIfStopped(t testing.TB, p *Proc) {
	t.Helper()
	if p == nil {
		return
	}
	if err, stopped := p.Stopped(); stopped {
		t.Fatalf("the daemon stopped: %v\nlogs:\n%s", err, p.Logs.String())
	}
}

func logsOf(p *Proc) string {
	if p == nil {
		return ""
	}
	return "\nlogs:\n" + p.Logs.String()
}
