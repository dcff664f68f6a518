package replication

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// SlotInfo describes a replication slot as pg_replication_slots shows it.
type SlotInfo struct {
	Name     string
	Plugin   string // "" for a physical slot
	Database string // "" for a physical slot
	// Active is true while a walsender streams from the slot; ActivePID is
	// that walsender's process id, 0 when inactive.
	Active    bool
	ActivePID int
	// RestartLSN is the oldest WAL the slot holds; ConfirmedFlushLSN is the
	// position the consumer confirmed (a logical slot streams from there).
	// Both are 0 when the server shows NULL (an invalidated slot).
	RestartLSN        pglogrepl.LSN
	ConfirmedFlushLSN pglogrepl.LSN
	// WALStatus is reserved, extended, unreserved or lost. A lost slot was
	// invalidated (by max_slot_wal_keep_size) and can no longer stream: drop
	// it and start over with an initial copy.
	WALStatus string
	// RetainedBytes is how much WAL the slot keeps from being removed: the
	// distance from RestartLSN to the current WAL position.
	RetainedBytes int64
	// Exists is false when there is no slot of that name; the other fields
	// are then zero.
	Exists bool
}

// Lost reports whether the slot was invalidated and cannot stream again.
func (s SlotInfo) Lost() bool { return s.Exists && s.WALStatus == "lost" }

// InspectSlot reads the slot name from pg_replication_slots. A missing slot is
// not an error: it returns SlotInfo{Name: name, Exists: false}.
func InspectSlot(ctx context.Context, conn *pgx.Conn, name string) (SlotInfo, error) {
	info := SlotInfo{Name: name}
	var pid *int32
	var restart, confirmed *pglogrepl.LSN
	err := conn.QueryRow(ctx, `SELECT coalesce(plugin, ''), coalesce(database, ''), active, active_pid,
			restart_lsn, confirmed_flush_lsn, coalesce(wal_status, ''),
			coalesce(pg_catalog.pg_wal_lsn_diff(
				CASE WHEN pg_catalog.pg_is_in_recovery() THEN pg_catalog.pg_last_wal_receive_lsn()
				     ELSE pg_catalog.pg_current_wal_lsn() END, restart_lsn), 0)::int8
		FROM pg_catalog.pg_replication_slots WHERE slot_name = $1`, name).
		Scan(&info.Plugin, &info.Database, &info.Active, &pid, &restart, &confirmed, &info.WALStatus, &info.RetainedBytes)
	if errors.Is(err, pgx.ErrNoRows) {
		return info, nil
	}
	if err != nil {
		return SlotInfo{}, fmt.Errorf("inspecting slot %s: %w", name, err)
	}
	info.Exists = true
	if pid != nil {
		info.ActivePID = int(*pid)
	}
	if restart != nil {
		info.RestartLSN = *restart
	}
	if confirmed != nil {
		info.ConfirmedFlushLSN = *confirmed
	}
	if info.RetainedBytes < 0 {
		info.RetainedBytes = 0
	}
	return info, nil
}

// CreatedSlot is a logical slot just created by CreateSlot.
type CreatedSlot struct {
	Name string
	// ConsistentPoint is where the slot's stream starts: a transaction
	// committed before it is in the snapshot, one committed after it is in the
	// stream, never both.
	ConsistentPoint pglogrepl.LSN
	// SnapshotName names the exported snapshot ("" when none was asked for).
	// Other sessions use it with SET TRANSACTION SNAPSHOT, in a REPEATABLE
	// READ transaction, until Close.
	SnapshotName string

	// conn is the replication connection that created the slot. The exported
	// snapshot lives as long as it stays open and runs no other command.
	conn *pgconn.PgConn
}

// Close closes the replication connection that created the slot, ending the
// exported snapshot (as soon as the server notices). The slot itself stays. Close is a no-op when no
// snapshot was exported, and safe to call more than once.
func (s *CreatedSlot) Close(ctx context.Context) error {
	if s == nil || s.conn == nil {
		return nil
	}
	conn := s.conn
	s.conn = nil
	return conn.Close(ctx)
}

// CreateSlot creates a permanent logical replication slot for pgoutput over a
// replication connection to the database replConnString names (any
// replication parameter in it is replaced by replication=database).
//
// With exportSnapshot the slot's snapshot is exported and stays valid until
// the returned slot is Closed: copy the tables under it, then stream from
// ConsistentPoint, and nothing is missed or seen twice. Without it
// (NOEXPORT_SNAPSHOT) the connection is closed before CreateSlot returns.
// Creating a slot waits for the transactions running at that moment to end.
// A slot that already exists is an error for which IsSlotExists is true. The
// role needs the REPLICATION attribute (or superuser).
func CreateSlot(ctx context.Context, replConnString string, name string, exportSnapshot bool) (CreatedSlot, error) {
	return createSlot(ctx, replConnString, name, exportSnapshot, false)
}

// CreateTemporarySlot creates a TEMPORARY logical slot for pgoutput that
// exports a snapshot, for a copy that must meet a stream read from another
// slot: the rows of a transaction committed before ConsistentPoint are in
// the snapshot, those of one committed at or after it are not.
//
// The slot is never streamed from; it lives only as long as the snapshot,
// and the server drops it when the connection ends (Close, or a crash of
// this process), so it needs no cleanup and holds no WAL for long. A slot
// of that name left by a connection that is going away is waited for.
func CreateTemporarySlot(ctx context.Context, replConnString string, name string) (CreatedSlot, error) {
	deadline := time.Now().Add(slotBusyWait)
	for {
		s, err := createSlot(ctx, replConnString, name, true, true)
		if err == nil || !IsSlotExists(err) || time.Now().After(deadline) {
			return s, err
		}
		select {
		case <-ctx.Done():
			return CreatedSlot{}, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func createSlot(ctx context.Context, replConnString string, name string, exportSnapshot, temporary bool) (CreatedSlot, error) {
	if err := ValidName("slot", name); err != nil {
		return CreatedSlot{}, err
	}
	conn, err := connectReplication(ctx, replConnString)
	if err != nil {
		return CreatedSlot{}, fmt.Errorf("creating slot %s: %w", name, err)
	}
	action := "NOEXPORT_SNAPSHOT"
	if exportSnapshot {
		action = "EXPORT_SNAPSHOT"
	}
	res, err := pglogrepl.CreateReplicationSlot(ctx, conn, name, "pgoutput",
		pglogrepl.CreateReplicationSlotOptions{Temporary: temporary, Mode: pglogrepl.LogicalReplication, SnapshotAction: action})
	if err != nil {
		conn.Close(context.Background())
		return CreatedSlot{}, fmt.Errorf("creating slot %s: %w", name, err)
	}
	lsn, err := pglogrepl.ParseLSN(res.ConsistentPoint)
	if err != nil {
		conn.Close(context.Background())
		return CreatedSlot{}, fmt.Errorf("creating slot %s: consistent point: %w", name, err)
	}
	s := CreatedSlot{Name: res.SlotName, ConsistentPoint: lsn, SnapshotName: res.SnapshotName}
	if exportSnapshot {
		s.conn = conn
	} else {
		if err := conn.Close(ctx); err != nil {
			return CreatedSlot{}, fmt.Errorf("creating slot %s: closing the connection: %w", name, err)
		}
	}
	return s, nil
}

// DropSlot drops the replication slot. A missing slot is not an error; an
// active one is (IsSlotInUse).
func DropSlot(ctx context.Context, conn *pgx.Conn, name string) error {
	_, err := conn.Exec(ctx, `SELECT pg_catalog.pg_drop_replication_slot(slot_name)
		FROM pg_catalog.pg_replication_slots WHERE slot_name = $1`, name)
	if err != nil && !IsSlotMissing(err) {
		return fmt.Errorf("dropping slot %s: %w", name, err)
	}
	return nil
}

// SystemID returns the cluster's system identifier (pg_control_system()),
// which tells one cluster from another, and a restored copy from neither.
func SystemID(ctx context.Context, conn *pgx.Conn) (string, error) {
	var id string
	if err := conn.QueryRow(ctx, `SELECT system_identifier::text FROM pg_catalog.pg_control_system()`).Scan(&id); err != nil {
		return "", fmt.Errorf("reading the system identifier: %w", err)
	}
	return id, nil
}

// CurrentLSN returns the server's current WAL write position
// (pg_current_wal_lsn()).
func CurrentLSN(ctx context.Context, conn *pgx.Conn) (pglogrepl.LSN, error) {
	var lsn pglogrepl.LSN
	if err := conn.QueryRow(ctx, `SELECT pg_catalog.pg_current_wal_lsn()`).Scan(&lsn); err != nil {
		return 0, fmt.Errorf("reading the current WAL position: %w", err)
	}
	return lsn, nil
}

// FlushedPoint returns the server's current WAL insert position once WAL is
// flushed up to it, so that every transaction that committed before the call
// is readable by logical decoding (which reads only flushed WAL). Without the
// wait, a transaction committed with synchronous_commit = off can still be in
// the WAL buffers: invisible to a peek at the slot, yet behind the position.
// The WAL writer flushes such commits within a few wal_writer_delay; the
// wait gives up, with the reason, after timeout.
func FlushedPoint(ctx context.Context, conn *pgx.Conn, timeout time.Duration) (pglogrepl.LSN, error) {
	read := func(sql string) (pglogrepl.LSN, error) {
		var lsn pglogrepl.LSN
		if err := conn.QueryRow(ctx, sql).Scan(&lsn); err != nil {
			return 0, fmt.Errorf("reading the current WAL position: %w", err)
		}
		return lsn, nil
	}
	point, err := read(`SELECT pg_catalog.pg_current_wal_insert_lsn()`)
	if err != nil {
		return 0, err
	}
	deadline := time.Now().Add(timeout)
	for {
		flushed, err := read(`SELECT pg_catalog.pg_current_wal_flush_lsn()`)
		if err != nil {
			return 0, err
		}
		if flushed >= point {
			return point, nil
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("WAL is flushed only to %s, not yet to %s, after %s; is the server's WAL writer stuck (disk full)?", flushed, point, timeout)
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// slotBusyWait is how long a slot held by another process is waited for
// before that is an error: a walsender outlives its client's disconnect by a
// moment.
const slotBusyWait = 5 * time.Second

// WaitSlotFree waits until no walsender holds the slot, as after a stream of
// this process stopped: its walsender outlives the disconnect by a moment,
// and a peek or drop fails meanwhile. A slot still held after timeout is an
// error naming the process.
func WaitSlotFree(ctx context.Context, conn *pgx.Conn, slot string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		info, err := InspectSlot(ctx, conn, slot)
		if err != nil {
			return err
		}
		if !info.Active {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the replication slot %s is still in use by process %d after %s: stop what streams from it first", slot, info.ActivePID, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}
