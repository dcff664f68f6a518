package bridge

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cdcbridge/cdcbridge/checkpoint"
	"github.com/cdcbridge/cdcbridge/config"
	"github.com/cdcbridge/cdcbridge/replication"
)

// Status is where everything of a mapping stands.
type Status struct {
	Mapping    string            `json:"mapping"`
	Live       string            `json:"live"`
	FlipLSN    string            `json:"flip_lsn,omitempty"`
	FlippedAt  *time.Time        `json:"flipped_at,omitempty"`
	Draining   string            `json:"draining,omitempty"`
	Pending    string            `json:"pending_flip,omitempty"`
	LastAnswer string            `json:"last_flip_answer,omitempty"`
	Foreign    *ForeignStatus    `json:"foreign_writes,omitempty"`
	Directions []DirectionStatus `json:"directions"`
}

// ForeignStatus reports writes that the side not live took.
type ForeignStatus struct {
	Side     string    `json:"side"`
	Txns     int64     `json:"transactions"`
	FirstLSN string    `json:"first_lsn"`
	FirstAt  time.Time `json:"first_at"`
}

// DirectionStatus is one direction's slot, checkpoint and lag.
type DirectionStatus struct {
	Direction          string `json:"direction"`
	Mode               string `json:"mode"`
	Reads              string `json:"reads"`
	Slot               string `json:"slot"`
	SlotExists         bool   `json:"slot_exists"`
	SlotActive         bool   `json:"slot_active"`
	SlotConfirmed      string `json:"slot_confirmed_lsn,omitempty"`
	SlotWALStatus      string `json:"slot_wal_status,omitempty"`
	RetainedWALBytes   int64  `json:"retained_wal_bytes"`
	Checkpoint         string `json:"checkpoint_lsn,omitempty"`
	CheckpointState    string `json:"checkpoint_state,omitempty"`
	CheckpointUpdated  string `json:"checkpoint_updated_at,omitempty"`
	LagBytes           int64  `json:"lag_bytes"`
	LagSinceCheckpoint string `json:"lag_since_checkpoint,omitempty"`
	// Entries are the mapping's entries in this direction, in file order,
	// then those recorded but no longer in the mapping.
	Entries []EntryStatus `json:"entries,omitempty"`
	Error   string        `json:"error,omitempty"`
}

// EntryStatus is where one mapping entry stands in a direction.
type EntryStatus struct {
	// Entry names it by the tables it reads and writes in the direction.
	Entry string `json:"entry"`
	// State is one of
	//   - new: in the mapping, not yet started (the next start of the live
	//     direction copies it; the other direction streams it);
	//   - copying: its rows are being copied under a snapshot taken at LSN;
	//   - synced: copied as of LSN; its changes from LSN on are applied,
	//     and it is streaming once the checkpoint passes LSN;
	//   - streaming: every change is applied as it arrives;
	//   - removed: no longer in the mapping; its changes are not applied,
	//     and the next start forgets it.
	State string `json:"state"`
	LSN   string `json:"lsn,omitempty"`
}

// GetStatus reads the state, slots and checkpoints of both directions.
func GetStatus(ctx context.Context, m *config.Mapping) (Status, error) {
	st := Status{Mapping: m.Name, Live: "forward (never run)"}
	state, err := Connect(ctx, m.Target.DSN, "target")
	if err != nil {
		return st, err
	}
	defer state.Close(context.Background())
	bs, err := checkpoint.LoadState(ctx, state, m.Name)
	switch {
	case errors.Is(err, checkpoint.ErrNoState):
	case err != nil:
		return st, err
	default:
		st.Live = bs.Live
		if bs.FlipLSN != 0 {
			st.FlipLSN = bs.FlipLSN.String()
			t := bs.FlippedAt
			st.FlippedAt = &t
		}
		st.Draining = bs.Draining
		if bs.RequestID > bs.AnsweredID {
			switch {
			case bs.ClaimedID >= bs.RequestID:
				st.Pending = fmt.Sprintf("to %s (%s), being carried out", bs.Request, policyName(bs.RequestPolicy))
			case !bs.RequestExpires.IsZero() && time.Now().After(bs.RequestExpires):
				st.Pending = fmt.Sprintf("to %s (%s), expired at %s: it will not be carried out", bs.Request, policyName(bs.RequestPolicy), bs.RequestExpires.UTC().Format(time.RFC3339))
			default:
				st.Pending = fmt.Sprintf("to %s (%s)", bs.Request, policyName(bs.RequestPolicy))
			}
		}
		st.LastAnswer = bs.Answer
		if bs.ForeignTxns > 0 {
			side, _ := sideNames(dirOf(bs.ForeignDir))
			st.Foreign = &ForeignStatus{Side: side, Txns: bs.ForeignTxns, FirstLSN: bs.FirstForeignLSN.String(), FirstAt: bs.FirstForeignAt}
		}
	}
	for _, dir := range []config.Direction{config.Forward, config.Reverse} {
		st.Directions = append(st.Directions, directionStatus(ctx, m, dir, strings.HasPrefix(st.Live, dir.String()), st.Draining == dir.String()))
	}
	return st, nil
}

func policyName(p string) string {
	switch Policy(p) {
	case IncludeWrites:
		return "include target writes"
	case DiscardWrites:
		return "discard target writes"
	}
	return "no target writes expected"
}

func directionStatus(ctx context.Context, m *config.Mapping, dir config.Direction, live, draining bool) DirectionStatus {
	readDSN, writeDSN := sides(m, dir)
	readSide, writeSide := sideNames(dir)
	ds := DirectionStatus{Direction: dir.String(), Mode: "armed", Reads: readSide, Slot: m.SlotName(dir)}
	if live {
		ds.Mode = "live"
	} else if draining {
		ds.Mode = "draining"
	}
	read, err := Connect(ctx, readDSN, readSide)
	if err != nil {
		ds.Error = m.Redact(err).Error()
		return ds
	}
	defer read.Close(context.Background())
	info, err := replication.InspectSlot(ctx, read, ds.Slot)
	if err != nil {
		ds.Error = m.Redact(err).Error()
		return ds
	}
	ds.SlotExists, ds.SlotActive, ds.SlotWALStatus, ds.RetainedWALBytes = info.Exists, info.Active, info.WALStatus, info.RetainedBytes
	if info.Exists {
		ds.SlotConfirmed = info.ConfirmedFlushLSN.String()
	}
	cur, err := replication.CurrentLSN(ctx, read)
	if err != nil {
		ds.Error = m.Redact(err).Error()
		return ds
	}
	write, err := Connect(ctx, writeDSN, writeSide)
	if err != nil {
		ds.Error = m.Redact(err).Error()
		return ds
	}
	defer write.Close(context.Background())
	ck, err := checkpoint.Load(ctx, write, m.Name, dir.String())
	if errors.Is(err, checkpoint.ErrNone) {
		return ds
	}
	if err != nil {
		ds.Error = m.Redact(err).Error()
		return ds
	}
	ds.Checkpoint = ck.LSN.String()
	ds.CheckpointState = "streaming"
	if ck.Copying {
		ds.CheckpointState = "copying"
	}
	ds.CheckpointUpdated = ck.UpdatedAt.UTC().Format(time.RFC3339)
	if cur > ck.LSN {
		ds.LagBytes = int64(cur - ck.LSN)
		ds.LagSinceCheckpoint = time.Since(ck.UpdatedAt).Round(time.Second).String()
	}
	rows, err := checkpoint.LoadEntries(ctx, write, m.Name, dir.String())
	if err != nil {
		ds.Error = m.Redact(err).Error()
		return ds
	}
	ds.Entries = entryStatuses(m, dir, ck, rows)
	return ds
}

// entryStatuses says where each entry stands, from its row and the
// checkpoint: a synced entry that the checkpoint has passed is streaming,
// though its row says so only from the next start.
func entryStatuses(m *config.Mapping, dir config.Direction, ck checkpoint.State, rows map[string]checkpoint.Entry) []EntryStatus {
	ids := entryIDs(m, dir)
	var out []EntryStatus
	for _, id := range ids {
		r, ok := rows[id]
		es := EntryStatus{Entry: id}
		switch {
		case ck.Copying:
			es.State = "copying" // the initial copy, of every entry
		case len(rows) == 0:
			// Set up before entry states were kept: the next start records
			// every entry as streaming, as it has been.
			es.State = string(checkpoint.Streaming)
		case !ok:
			es.State = "new"
		case r.Phase == checkpoint.Synced && ck.LSN >= r.LSN:
			es.State = string(checkpoint.Streaming)
		default:
			es.State, es.LSN = string(r.Phase), r.LSN.String()
		}
		if es.State == string(checkpoint.Streaming) {
			es.LSN = ""
		}
		out = append(out, es)
	}
	var removed []string
	for id := range rows {
		if !slices.Contains(ids, id) {
			removed = append(removed, id)
		}
	}
	slices.Sort(removed)
	for _, id := range removed {
		out = append(out, EntryStatus{Entry: id, State: "removed"})
	}
	return out
}

// WriteStatus renders a Status for people.
func WriteStatus(w io.Writer, st Status) {
	fmt.Fprintf(w, "mapping %s: live direction %s", st.Mapping, st.Live)
	if st.FlipLSN != "" {
		fmt.Fprintf(w, " since flip point %s (%s)", st.FlipLSN, st.FlippedAt.UTC().Format(time.RFC3339))
	}
	fmt.Fprintln(w)
	if st.Draining != "" {
		fmt.Fprintf(w, "  %s is draining what still arrives on the side that was live\n", st.Draining)
	}
	if st.Pending != "" {
		fmt.Fprintf(w, "  flip requested %s, not yet carried out (is the daemon running?)\n", st.Pending)
	}
	if st.Foreign != nil {
		fmt.Fprintf(w, "  WARNING: the %s took %d foreign transaction(s) on mapped tables since %s (first at LSN %s); `cdcbridge flip` will ask what to do with them\n",
			st.Foreign.Side, st.Foreign.Txns, st.Foreign.FirstAt.UTC().Format(time.RFC3339), st.Foreign.FirstLSN)
	}
	for _, d := range st.Directions {
		fmt.Fprintf(w, "  %-7s %-8s reads the %s; slot %s", d.Direction, d.Mode, d.Reads, d.Slot)
		switch {
		case d.Error != "":
			fmt.Fprintf(w, ": %s\n", d.Error)
			continue
		case !d.SlotExists:
			fmt.Fprint(w, " (none)")
		default:
			active := "inactive"
			if d.SlotActive {
				active = "active"
			}
			fmt.Fprintf(w, " %s, confirmed %s, retains %d bytes of WAL (%s)", active, d.SlotConfirmed, d.RetainedWALBytes, d.SlotWALStatus)
		}
		if d.Checkpoint != "" {
			fmt.Fprintf(w, "; checkpoint %s (%s), lag %d bytes", d.Checkpoint, d.CheckpointState, d.LagBytes)
		}
		fmt.Fprintln(w)
		for _, e := range d.Entries {
			fmt.Fprintf(w, "    %s: %s\n", e.Entry, describeEntry(e))
		}
	}
}

func describeEntry(e EntryStatus) string {
	switch e.State {
	case "new":
		return "new (copied at the next start of the live direction)"
	case "copying":
		if e.LSN == "" {
			return "copying"
		}
		return "copying (snapshot at " + e.LSN + ")"
	case "synced":
		return "synced at " + e.LSN + " (streaming once the checkpoint passes it)"
	case "removed":
		return "removed from the mapping (no longer applied; forgotten at the next start)"
	}
	return e.State
}

// Cleanup drops what the bridge made for a mapping: both slots and
// publications, the replication origins on both sides, and the checkpoint
// and state rows. It refuses while a daemon runs the mapping.
func Cleanup(ctx context.Context, m *config.Mapping, w io.Writer) error {
	release, err := lockAll(ctx, m)
	if errors.Is(err, checkpoint.ErrLocked) {
		return &FatalError{Err: fmt.Errorf("a daemon is running mapping %s: stop it first (%w)", m.Name, err)}
	}
	if err != nil {
		return err
	}
	defer release()
	for _, dir := range []config.Direction{config.Forward, config.Reverse} {
		readDSN, writeDSN := sides(m, dir)
		readSide, writeSide := sideNames(dir)
		read, err := Connect(ctx, readDSN, readSide)
		if err != nil {
			return err
		}
		info, err := replication.InspectSlot(ctx, read, m.SlotName(dir))
		if err == nil && info.Active {
			read.Close(ctx)
			return &FatalError{Err: fmt.Errorf("the slot %s is in use by process %d on the %s: stop what streams from it first", m.SlotName(dir), info.ActivePID, readSide)}
		}
		if err == nil && info.Exists {
			if err := replication.DropSlot(ctx, read, m.SlotName(dir)); err != nil {
				read.Close(ctx)
				return err
			}
			fmt.Fprintf(w, "dropped slot %s on the %s\n", m.SlotName(dir), readSide)
		}
		if err := replication.DropPublication(ctx, read, m.PublicationName(dir)); err != nil {
			read.Close(ctx)
			return err
		}
		fmt.Fprintf(w, "dropped publication %s on the %s (if it existed)\n", m.PublicationName(dir), readSide)
		read.Close(ctx)

		write, err := Connect(ctx, writeDSN, writeSide)
		if err != nil {
			return err
		}
		if _, err := write.Exec(ctx, `SELECT pg_replication_origin_drop(roname) FROM pg_replication_origin WHERE roname = $1 OR roname ~ ('^' || $1 || '_copy[0-9]+$')`, m.OriginName(dir)); err != nil {
			write.Close(ctx)
			return fmt.Errorf("dropping the replication origin %s on the %s: %w", m.OriginName(dir), writeSide, err)
		}
		fmt.Fprintf(w, "dropped replication origin %s on the %s (if it existed)\n", m.OriginName(dir), writeSide)
		if err := checkpoint.Delete(ctx, write, m.Name, dir.String()); err != nil {
			write.Close(ctx)
			return err
		}
		fmt.Fprintf(w, "deleted the %s checkpoint on the %s\n", dir, writeSide)
		write.Close(ctx)
	}
	state, err := Connect(ctx, m.Target.DSN, "target")
	if err != nil {
		return err
	}
	defer state.Close(context.Background())
	if err := checkpoint.DeleteState(ctx, state, m.Name); err != nil {
		return err
	}
	fmt.Fprintln(w, "deleted the bridge state on the target")
	for _, side := range []struct {
		name string
		dsn  config.DSN
	}{{"source", m.Source.DSN}, {"target", m.Target.DSN}} {
		conn, err := Connect(ctx, side.dsn, side.name)
		if err != nil {
			return err
		}
		err = dropSchemaIfUnused(ctx, conn, side.name, w)
		conn.Close(context.Background())
		if err != nil {
			return err
		}
	}
	return nil
}

// dropSchemaIfUnused drops the bridge's schema once none of its tables
// holds a row: no other mapping keeps state there, and no dead letter waits
// to be read.
func dropSchemaIfUnused(ctx context.Context, conn *pgx.Conn, side string, w io.Writer) error {
	rows, err := conn.Query(ctx, `SELECT c.oid::regclass::text FROM pg_class c WHERE c.relnamespace = to_regnamespace($1) AND c.relkind IN ('r', 'p') ORDER BY 1`, checkpoint.Schema)
	if err != nil {
		return fmt.Errorf("listing the tables of schema %s on the %s: %w", checkpoint.Schema, side, err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("listing the tables of schema %s on the %s: %w", checkpoint.Schema, side, err)
	}
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT to_regnamespace($1) IS NOT NULL`, checkpoint.Schema).Scan(&exists); err != nil || !exists {
		return err
	}
	var used []string
	for _, t := range tables {
		var any bool
		if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM "+t+")").Scan(&any); err != nil {
			return fmt.Errorf("reading %s on the %s: %w", t, side, err)
		}
		if any {
			used = append(used, t)
		}
	}
	if len(used) > 0 {
		fmt.Fprintf(w, "kept the schema %s on the %s: %s still hold rows (other mappings, or dead letters to read)\n", checkpoint.Schema, side, strings.Join(used, ", "))
		return nil
	}
	if _, err := conn.Exec(ctx, "DROP SCHEMA "+checkpoint.Schema+" CASCADE"); err != nil {
		return fmt.Errorf("dropping the schema %s on the %s: %w", checkpoint.Schema, side, err)
	}
	fmt.Fprintf(w, "dropped the schema %s on the %s, which held nothing more\n", checkpoint.Schema, side)
	return nil
}
