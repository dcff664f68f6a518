package admin

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"

	"github.com/cdcbridge/cdcbridge/checkpoint"
	"github.com/cdcbridge/cdcbridge/config"
	"github.com/cdcbridge/cdcbridge/control"
	"github.com/cdcbridge/cdcbridge/dbconn"
	"github.com/cdcbridge/cdcbridge/replication"
)

// Status is where everything of a mapping stands, as far as it could be
// read. Errors says what could not be read, each naming the side; a part
// that could not be read is "unknown" or left at its zero value, never
// guessed.
type Status struct {
	Mapping    string         `json:"mapping"`
	Live       string         `json:"live"` // "unknown" when the state could not be read
	FlipLSN    string         `json:"flip_lsn,omitempty"`
	FlippedAt  *time.Time     `json:"flipped_at,omitempty"`
	Draining   string         `json:"draining,omitempty"`
	Pending    string         `json:"pending_flip,omitempty"`
	LastAnswer string         `json:"last_flip_answer,omitempty"`
	Foreign    *ForeignStatus `json:"foreign_writes,omitempty"`
	// Halts are the directions stopped before a bad change, waiting for a
	// fix and a reload.
	Halts []HaltStatus `json:"halts,omitempty"`
	// Daemons are the daemons of the mapping seen on the target: the
	// active one (it holds the daemon lock) and any standby waiting for it.
	Daemons    []DaemonStatus    `json:"daemons"`
	Directions []DirectionStatus `json:"directions"`
	Errors     []string          `json:"errors,omitempty"`
}

// ForeignStatus reports writes that the side not live took.
type ForeignStatus struct {
	Side     string    `json:"side"`
	Txns     int64     `json:"transactions"`
	FirstLSN string    `json:"first_lsn"`
	FirstAt  time.Time `json:"first_at"`
}

// HaltStatus is a direction halted before a bad change.
type HaltStatus struct {
	Direction string    `json:"direction"`
	Reason    string    `json:"reason"`
	Table     string    `json:"table,omitempty"`
	Key       string    `json:"key,omitempty"`
	LSN       string    `json:"lsn,omitempty"`
	Since     time.Time `json:"since"`
}

// DaemonStatus is one daemon of the mapping, by its session on the target.
type DaemonStatus struct {
	Role   string    `json:"role"` // active or standby
	PID    int       `json:"backend_pid"`
	Client string    `json:"client"`
	Since  time.Time `json:"since"`
}

// DirectionStatus is one direction's slot, checkpoint and lag. The slot and
// the current position are read on the side read, the checkpoint and the
// entries on the side written. When SlotError is set the slot fields and
// the lag are zero because they are unknown; when CheckpointError is set,
// so are the checkpoint fields and the entries.
type DirectionStatus struct {
	Direction          string `json:"direction"`
	Mode               string `json:"mode"` // live, armed, draining, or unknown when the state could not be read
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
	// SlotError says why the side read could not be read,
	// CheckpointError why the side written could not; Error joins them.
	SlotError       string `json:"slot_error,omitempty"`
	CheckpointError string `json:"checkpoint_error,omitempty"`
	Error           string `json:"error,omitempty"`
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

// GetStatus reads the state, slots and checkpoints of both directions. It
// reads all it can: a side that cannot be reached or a part that cannot be
// read is left unknown in the Status, which says so in its Errors. The
// error returned joins those errors; it is nil only when the Status is
// complete.
func GetStatus(ctx context.Context, m *config.Mapping) (Status, error) {
	st := Status{Mapping: m.Name, Live: "unknown"}
	var errs []error
	conns := map[string]*pgx.Conn{}
	for _, side := range []struct {
		name string
		dsn  config.DSN
	}{{"source", m.Source.DSN}, {"target", m.Target.DSN}} {
		conn, err := dbconn.Connect(ctx, side.dsn, side.name)
		if err != nil {
			errs = append(errs, m.Redact(err))
			continue
		}
		defer conn.Close(context.Background())
		conns[side.name] = conn
	}
	var bs *control.State
	if state := conns["target"]; state != nil {
		if s, err := readState(ctx, state, m, &st); err != nil {
			errs = append(errs, fmt.Errorf("reading the bridge state on the target: %w", m.Redact(err)))
		} else {
			bs = &s
		}
		if hs, err := control.Halts(ctx, state, m.Name); err != nil {
			errs = append(errs, fmt.Errorf("reading the halts on the target: %w", m.Redact(err)))
		} else {
			for _, h := range hs {
				hst := HaltStatus{Direction: h.Direction.String(), Reason: h.Reason, Table: h.Table, Key: h.Key, Since: h.At}
				if h.LSN != 0 {
					hst.LSN = h.LSN.String()
				}
				st.Halts = append(st.Halts, hst)
			}
		}
		if ds, err := control.DaemonSessions(ctx, state, m.Name); err != nil {
			errs = append(errs, m.Redact(err))
		} else {
			st.Daemons = []DaemonStatus{}
			for _, d := range ds {
				role := "standby"
				if d.Active {
					role = "active"
				}
				st.Daemons = append(st.Daemons, DaemonStatus{Role: role, PID: d.PID, Client: d.Client, Since: d.Since})
			}
		}
	}
	for _, dir := range []config.Direction{config.Forward, config.Reverse} {
		mode := "unknown"
		if bs != nil {
			mode = bs.Mode(dir).String()
		}
		v := m.View(dir)
		ds, derrs := directionStatus(ctx, v, mode, conns[v.ReadName], conns[v.WriteName])
		st.Directions = append(st.Directions, ds)
		errs = append(errs, derrs...)
	}
	for _, err := range errs {
		st.Errors = append(st.Errors, err.Error())
	}
	return st, errors.Join(errs...)
}

// readState fills in what the bridge state on the target says, and returns
// it: a mapping that has never run is forward.
func readState(ctx context.Context, state *pgx.Conn, m *config.Mapping, st *Status) (control.State, error) {
	name := m.Name
	bs, err := control.Load(ctx, state, name)
	if errors.Is(err, control.ErrNoState) {
		st.Live = "forward (never run)"
		return control.State{Name: name, Live: config.Forward}, nil
	}
	if err != nil {
		return bs, err
	}
	st.Live = bs.Live.String()
	if bs.FlipLSN != 0 {
		st.FlipLSN = bs.FlipLSN.String()
		t := bs.FlippedAt
		st.FlippedAt = &t
	}
	if bs.Drains {
		st.Draining = bs.Draining.String()
	}
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
	if bs.Foreign.Txns > 0 {
		side := m.View(bs.ForeignDir).ReadName
		st.Foreign = &ForeignStatus{Side: side, Txns: bs.Foreign.Txns, FirstLSN: bs.Foreign.First.String(), FirstAt: bs.Foreign.FirstAt}
	}
	return bs, nil
}

func policyName(p control.ForeignPolicy) string {
	switch p {
	case control.IncludeWrites:
		return "include target writes"
	case control.DiscardWrites:
		return "discard target writes"
	}
	return "no target writes expected"
}

// directionStatus reads a direction's slot and position on read and its
// checkpoint and entries on write; a nil connection is a side that could
// not be reached, which GetStatus has reported already. The errors it
// returns name the direction and the side.
func directionStatus(ctx context.Context, v config.View, mode string, read, write *pgx.Conn) (DirectionStatus, []error) {
	m, dir := v.Mapping(), v.Direction
	readSide, writeSide := v.ReadName, v.WriteName
	ds := DirectionStatus{Direction: dir.String(), Mode: mode, Reads: readSide, Slot: v.Slot}
	var errs []error
	fail := func(side string, err error) string {
		err = m.Redact(err)
		errs = append(errs, fmt.Errorf("%s direction: on the %s: %w", dir, side, err))
		return err.Error()
	}
	var cur pglogrepl.LSN
	if read == nil {
		ds.SlotError = "the " + readSide + " could not be reached"
	} else if info, err := replication.InspectSlot(ctx, read, ds.Slot); err != nil {
		ds.SlotError = fail(readSide, err)
	} else if cur, err = replication.CurrentLSN(ctx, read); err != nil {
		ds.SlotError = fail(readSide, err)
	} else {
		ds.SlotExists, ds.SlotActive, ds.SlotWALStatus, ds.RetainedWALBytes = info.Exists, info.Active, info.WALStatus, info.RetainedBytes
		if info.Exists {
			ds.SlotConfirmed = info.ConfirmedFlushLSN.String()
		}
	}
	if write == nil {
		ds.CheckpointError = "the " + writeSide + " could not be reached"
	} else if ck, err := checkpoint.Load(ctx, write, m.Name, dir.String()); errors.Is(err, checkpoint.ErrNone) {
		// Never run in this direction: no checkpoint, no entries.
	} else if err != nil {
		ds.CheckpointError = fail(writeSide, err)
	} else if rows, err := checkpoint.LoadEntries(ctx, write, m.Name, dir.String()); err != nil {
		ds.CheckpointError = fail(writeSide, err)
	} else {
		ds.Checkpoint = ck.LSN.String()
		ds.CheckpointState = "streaming"
		if ck.Copying {
			ds.CheckpointState = "copying"
		}
		ds.CheckpointUpdated = ck.UpdatedAt.UTC().Format(time.RFC3339)
		// The lag needs the position on the side read.
		if ds.SlotError == "" && cur > ck.LSN {
			ds.LagBytes = int64(cur - ck.LSN)
			ds.LagSinceCheckpoint = time.Since(ck.UpdatedAt).Round(time.Second).String()
		}
		ds.Entries = entryStatuses(v, ck, rows)
	}
	var parts []string
	for _, e := range []string{ds.SlotError, ds.CheckpointError} {
		if e != "" {
			parts = append(parts, e)
		}
	}
	ds.Error = strings.Join(parts, "; ")
	return ds, errs
}

// entryStatuses says where each entry stands, from its row and the
// checkpoint: a synced entry that the checkpoint has passed is streaming,
// though its row says so only from the next start.
func entryStatuses(v config.View, ck checkpoint.State, rows map[string]checkpoint.Entry) []EntryStatus {
	ids := v.EntryIDs()
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
