package replication

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/cdcbridge/cdcbridge/change"
)

// StreamConfig configures a Stream.
type StreamConfig struct {
	// ConnString names the database to read, as a libpq URL or keyword/value
	// string. Any replication parameter in it is replaced by
	// replication=database. It never appears in errors or logs.
	ConnString string
	// Slot is the logical slot (plugin pgoutput) to stream from.
	Slot string
	// Publication names the publication whose tables are streamed.
	Publication string
	// SkipOrigin reports whether a transaction made under the named replication origin
	// is to be skipped whole (the bridge's own writes). nil skips nothing.
	SkipOrigin func(origin string) bool
	// KeepTable, when set, reports whether the changes of a table are
	// streamed: the publication may hold tables the caller does not read
	// (one made by the tables' owner), and a transaction that changes none
	// of the tables kept is streamed as a position only (see
	// Decoder.OnlyTables).
	KeepTable func(change.Table) bool
	// StatusInterval is how often the server is told the flushed position
	// (default 1s), and the least time between two EvPositions made from
	// keepalives.
	StatusInterval time.Duration
	// OnMessage, when set, sees every pgoutput message before it is decoded,
	// with the XLogData start position and the server's send time (for a
	// recorder). data is only valid during the call: copy it to keep it. It is
	// called from Run's goroutine and must not block for long.
	OnMessage func(walStart pglogrepl.LSN, serverTime time.Time, data []byte)
	// OnKeepalive, when set, sees the server's WAL end and send time of
	// every primary keepalive message, in order with OnMessage and before
	// Run acts on it (for a recorder). Same rules as OnMessage.
	OnKeepalive func(walEnd pglogrepl.LSN, serverTime time.Time)
	// TemporarySlot makes Run create Slot itself, as a TEMPORARY pgoutput
	// slot on its own replication connection, and stream from it; a start
	// of 0 then means the new slot's consistent point. The server drops a
	// temporary slot when that connection ends, so it never outlives Run,
	// even after a crash, and never holds WAL for anyone else: it is for a
	// reader, such as a recorder, that must not touch the bridge's slots or
	// checkpoints. Changes committed before Run has created the slot are not
	// streamed. A slot of that name must not exist (IsSlotExists).
	TemporarySlot bool
	// OnStart, when set, is called once the server has accepted
	// START_REPLICATION, from Run's goroutine, with the position streamed
	// from: the moment the stream is up again after a fault.
	OnStart func(start pglogrepl.LSN)
	// Logger receives the stream's logs (with component=replication); nil
	// discards them.
	Logger *slog.Logger
	// Budget, if set, bounds the bytes of the events sent and not yet
	// released downstream: each event holds its Size of it (Event.Held)
	// from before it is sent, and Run waits for room as it waits for room
	// in events, answering the server meanwhile.
	Budget *change.Budget
}

// Stream reads a slot's changes. A Stream holds no connection between runs;
// Run may be called again after it returns (with a new position), but not
// concurrently.
type Stream struct {
	cfg StreamConfig
	log *slog.Logger
}

// NewStream returns a Stream for cfg. It starts nothing and does no I/O.
func NewStream(cfg StreamConfig) *Stream {
	if cfg.StatusInterval <= 0 {
		cfg.StatusInterval = time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Stream{cfg: cfg, log: log.With("component", "replication", "slot", cfg.Slot)}
}

// Run connects, calls START_REPLICATION at start and sends decoded events to
// events until ctx ends or an error occurs. It never closes events.
//
// start is where the caller's downstream state ends (its checkpoint, or the
// slot's consistent point on a first run); 0 lets the server use the slot's
// confirmed position. The server does not send again a transaction whose
// EndLSN is at or before the position it starts from.
//
// flushed returns the position durably applied downstream; it is called
// from Run's goroutine while the caller's applier advances it, so it must be
// safe for that (an atomic load). Standby status updates carry write = flush
// = apply = flushed(), or start while flushed() returns 0, so the slot never
// confirms what the caller has not applied. They go every StatusInterval,
// also while Run waits for room in events, whenever the server asks, and a
// last time when ctx ends.
//
// Events are those of Decoder, plus EvPosition at a keepalive's WAL end while
// no transaction is open, at most once per StatusInterval and only when it
// moved: this is what lets an idle or filtered stream advance.
//
// Run returns ctx.Err() when ctx ends. Any other error ends the run; errors
// from the server wrap a *pgconn.PgError (see IsSlotInUse, IsSlotMissing,
// IsPublicationMissing). Decoding errors name the LSN. A retry starts again
// from the caller's flushed position, since anything sent after it may be
// lost downstream.
func (s *Stream) Run(ctx context.Context, start pglogrepl.LSN, events chan<- change.Event, flushed func() pglogrepl.LSN) error {
	if err := ValidName("slot", s.cfg.Slot); err != nil {
		return err
	}
	if err := ValidName("publication", s.cfg.Publication); err != nil {
		return err
	}
	if events == nil || flushed == nil {
		return errors.New("replication stream: events and flushed are required")
	}
	conn, err := connectReplication(ctx, s.cfg.ConnString)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		conn.Close(cctx)
	}()

	if s.cfg.TemporarySlot {
		// The slot name passed the allow-list: it needs no quoting.
		res, err := pglogrepl.CreateReplicationSlot(ctx, conn, s.cfg.Slot, "pgoutput", pglogrepl.CreateReplicationSlotOptions{
			Temporary: true, Mode: pglogrepl.LogicalReplication, SnapshotAction: "NOEXPORT_SNAPSHOT"})
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("creating temporary slot %s: %w", s.cfg.Slot, err)
		}
		cp, err := pglogrepl.ParseLSN(res.ConsistentPoint)
		if err != nil {
			return fmt.Errorf("creating temporary slot %s: consistent point: %w", s.cfg.Slot, err)
		}
		if start == 0 {
			start = cp
		}
	}

	// The publication name passed the allow-list: it needs no escaping
	// inside the quotes.
	// A slot in use is, most of the time, the walsender of this process's
	// previous stream, which the server has not finished tearing down: it
	// is given a few seconds before the error stands.
	for busy := time.Now().Add(slotBusyWait); ; {
		err = pglogrepl.StartReplication(ctx, conn, s.cfg.Slot, start, pglogrepl.StartReplicationOptions{
			Mode:       pglogrepl.LogicalReplication,
			PluginArgs: []string{"proto_version '1'", "publication_names '" + s.cfg.Publication + "'"},
		})
		if err == nil || !IsSlotInUse(err) || time.Now().After(busy) {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("starting replication from slot %s at %s: %w", s.cfg.Slot, start, err)
	}
	s.log.Debug("streaming", "lsn", start.String(), "publication", s.cfg.Publication)
	if s.cfg.OnStart != nil {
		s.cfg.OnStart(start)
	}

	dec := NewDecoder(s.cfg.SkipOrigin)
	dec.OnlyTables(s.cfg.KeepTable)
	dec.pos = start
	r := &run{
		Stream:  s,
		conn:    conn,
		dec:     dec,
		events:  events,
		flushed: flushed,
		start:   start,
	}
	err = r.loop(ctx)
	if ctx.Err() != nil {
		// Leave the slot as far along as the caller got.
		r.sendStatus()
		return ctx.Err()
	}
	return err
}

// run is the state of one Run.
type run struct {
	*Stream
	conn    *pgconn.PgConn
	dec     *Decoder
	events  chan<- change.Event
	flushed func() pglogrepl.LSN
	start   pglogrepl.LSN

	nextStatus   time.Time
	lastPosition time.Time     // when the last keepalive EvPosition was sent
	walEnd       pglogrepl.LSN // the last keepalive's WAL end not yet sent as a position
}

func (r *run) loop(ctx context.Context) error {
	r.nextStatus = time.Now().Add(r.cfg.StatusInterval)
	// Reads wake up for status updates through the connection's read
	// deadline, and for ctx through a deadline in the past, rather than
	// through a context per message: pgconn watches a cancellable context
	// on every call, which costs more than decoding a row.
	netConn := r.conn.Conn()
	var mu sync.Mutex
	cancelled := false
	stopWatch := context.AfterFunc(ctx, func() {
		mu.Lock()
		defer mu.Unlock()
		cancelled = true
		netConn.SetReadDeadline(time.Now())
	})
	defer func() {
		if stopWatch() {
			netConn.SetReadDeadline(time.Time{})
		}
	}()
	var deadline time.Time
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		if !time.Now().Before(r.nextStatus) {
			if err := r.sendStatus(); err != nil {
				return err
			}
			if err := r.position(ctx); err != nil {
				return err
			}
		}
		if !deadline.Equal(r.nextStatus) {
			mu.Lock()
			if !cancelled {
				netConn.SetReadDeadline(r.nextStatus)
			}
			mu.Unlock()
			deadline = r.nextStatus
		}
		msg, err := r.conn.ReceiveMessage(context.Background())
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if pgconn.Timeout(err) {
				continue
			}
			return fmt.Errorf("receiving from slot %s: %w", r.cfg.Slot, err)
		}
		switch m := msg.(type) {
		case *pgproto3.CopyData:
			if err := r.copyData(ctx, m.Data); err != nil {
				return err
			}
		case *pgproto3.ErrorResponse:
			return fmt.Errorf("streaming from slot %s: %w", r.cfg.Slot, pgconn.ErrorResponseToPgError(m))
		case *pgproto3.CopyDone:
			return fmt.Errorf("streaming from slot %s: the server ended the stream", r.cfg.Slot)
		}
	}
}

func (r *run) copyData(ctx context.Context, data []byte) error {
	if len(data) == 0 {
		return fmt.Errorf("streaming from slot %s: empty CopyData message", r.cfg.Slot)
	}
	switch data[0] {
	case pglogrepl.PrimaryKeepaliveMessageByteID:
		ka, err := pglogrepl.ParsePrimaryKeepaliveMessage(data[1:])
		if err != nil {
			return fmt.Errorf("streaming from slot %s: keepalive: %w", r.cfg.Slot, err)
		}
		if r.cfg.OnKeepalive != nil {
			r.cfg.OnKeepalive(ka.ServerWALEnd, ka.ServerTime)
		}
		if ka.ServerWALEnd > r.walEnd {
			r.walEnd = ka.ServerWALEnd
		}
		if ka.ReplyRequested {
			if err := r.sendStatus(); err != nil {
				return err
			}
			return r.urgent(ctx)
		}
		return r.position(ctx)

	case pglogrepl.XLogDataByteID:
		x, err := pglogrepl.ParseXLogData(data[1:])
		if err != nil {
			return fmt.Errorf("streaming from slot %s: %w", r.cfg.Slot, err)
		}
		// A keepalive's WAL end is only worth sending while nothing came
		// after it; what comes now ends with a commit that says more.
		r.walEnd = 0
		if r.cfg.OnMessage != nil {
			r.cfg.OnMessage(x.WALStart, x.ServerTime, x.WALData)
		}
		evs, err := r.dec.Decode(x.WALStart, x.WALData)
		if err != nil {
			return fmt.Errorf("streaming from slot %s: %w", r.cfg.Slot, err)
		}
		for _, ev := range evs {
			if err := r.send(ctx, ev); err != nil {
				return err
			}
		}
	}
	return nil
}

// position sends the last keepalive's WAL end as an EvPosition, if the
// Decoder vouches for it and the last one is at least StatusInterval old.
func (r *run) position(ctx context.Context) error {
	if r.walEnd == 0 || time.Since(r.lastPosition) < r.cfg.StatusInterval {
		return nil
	}
	ev, ok := r.dec.Keepalive(r.walEnd)
	if !ok {
		return nil
	}
	r.walEnd = 0
	r.lastPosition = time.Now()
	return r.send(ctx, ev)
}

// urgent answers a keepalive that asked for a reply: the server waits for
// the slot to confirm everything it sent (a walsender shutting down does,
// and holds up the server's shutdown until then), so the position goes
// downstream at once, marked Urgent, even when it did not move: a consumer
// that writes idle positions lazily writes it now, and the next status
// update confirms it.
func (r *run) urgent(ctx context.Context) error {
	ev, ok := r.dec.Keepalive(r.walEnd)
	if !ok {
		if r.dec.InTxn() || r.dec.pos == 0 {
			return nil
		}
		ev = change.Event{Kind: change.EvPosition, LSN: r.dec.pos}
	}
	ev.Urgent = true
	r.walEnd = 0
	r.lastPosition = time.Now()
	return r.send(ctx, ev)
}

// send delivers ev, answering the server every StatusInterval while the
// channel is full so that a slow consumer does not trip wal_sender_timeout.
func (r *run) send(ctx context.Context, ev change.Event) error {
	if err := r.hold(ctx, &ev); err != nil {
		return err
	}
	select {
	case r.events <- ev:
		return nil
	default:
	}
	t := time.NewTimer(time.Until(r.nextStatus))
	defer t.Stop()
	for {
		select {
		case r.events <- ev:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			if err := r.sendStatus(); err != nil {
				return err
			}
			t.Reset(r.cfg.StatusInterval)
		}
	}
}

// hold takes the event's share of the budget, answering the server every
// StatusInterval while it waits.
func (r *run) hold(ctx context.Context, ev *change.Event) error {
	b := r.cfg.Budget
	if b == nil {
		return nil
	}
	size := ev.Size()
	if n, ok := b.TryHold(size); ok {
		ev.Held = n
		return nil
	}
	for {
		wctx, cancel := context.WithDeadline(ctx, r.nextStatus)
		n, err := b.Hold(wctx, size)
		cancel()
		if err == nil {
			ev.Held = n
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err := r.sendStatus(); err != nil {
			return err
		}
	}
}

// sendStatus reports the flushed position as written, flushed and applied.
func (r *run) sendStatus() error {
	pos := r.flushed()
	if pos == 0 {
		// pglogrepl would report the write position as flushed in a zero
		// field; never report more than the caller vouched for.
		pos = r.start
	}
	r.nextStatus = time.Now().Add(r.cfg.StatusInterval)
	err := pglogrepl.SendStandbyStatusUpdate(context.Background(), r.conn, pglogrepl.StandbyStatusUpdate{
		WALWritePosition: pos,
		WALFlushPosition: pos,
		WALApplyPosition: pos,
	})
	if err != nil {
		return fmt.Errorf("sending standby status to slot %s: %w", r.cfg.Slot, err)
	}
	return nil
}
