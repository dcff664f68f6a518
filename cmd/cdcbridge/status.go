package main

import (
	"fmt"
	"io"
	"time"

	"github.com/cdcbridge/cdcbridge/admin"
)

// writeStatus renders a Status for people.
func writeStatus(w io.Writer, st admin.Status) {
	fmt.Fprintf(w, "mapping %s: live direction %s", st.Mapping, st.Live)
	if st.FlipLSN != "" {
		fmt.Fprintf(w, " since flip point %s (%s)", st.FlipLSN, st.FlippedAt.UTC().Format(time.RFC3339))
	}
	fmt.Fprintln(w)
	// What could not be read, once; below it is "unknown".
	for _, e := range st.Errors {
		fmt.Fprintf(w, "  ERROR: %s\n", e)
	}
	for _, h := range st.Halts {
		fmt.Fprintf(w, "  HALTED: %s stopped before a bad change", h.Direction)
		if h.Table != "" {
			fmt.Fprintf(w, " to %s", h.Table)
		}
		if h.Key != "" {
			fmt.Fprintf(w, " key %s", h.Key)
		}
		if h.LSN != "" {
			fmt.Fprintf(w, " at LSN %s", h.LSN)
		}
		fmt.Fprintf(w, " (since %s); fix it, then reload the daemon (SIGHUP): %s\n", h.Since.UTC().Format(time.RFC3339), h.Reason)
	}
	if st.Daemons != nil && len(st.Daemons) == 0 {
		fmt.Fprintln(w, "  no daemon runs this mapping")
	}
	for _, d := range st.Daemons {
		fmt.Fprintf(w, "  daemon %s: from %s since %s (backend pid %d on the target)\n", d.Role, d.Client, d.Since.UTC().Format(time.RFC3339), d.PID)
	}
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
		case d.SlotError != "":
			fmt.Fprint(w, " unknown")
		case !d.SlotExists:
			fmt.Fprint(w, " (none)")
		default:
			active := "inactive"
			if d.SlotActive {
				active = "active"
			}
			fmt.Fprintf(w, " %s, confirmed %s, retains %d bytes of WAL (%s)", active, d.SlotConfirmed, d.RetainedWALBytes, d.SlotWALStatus)
		}
		switch {
		case d.CheckpointError != "":
			fmt.Fprint(w, "; checkpoint unknown")
		case d.Checkpoint != "" && d.SlotError != "":
			fmt.Fprintf(w, "; checkpoint %s (%s), lag unknown", d.Checkpoint, d.CheckpointState)
		case d.Checkpoint != "":
			fmt.Fprintf(w, "; checkpoint %s (%s), lag %d bytes", d.Checkpoint, d.CheckpointState, d.LagBytes)
		}
		fmt.Fprintln(w)
		for _, e := range d.Entries {
			fmt.Fprintf(w, "    %s: %s\n", e.Entry, describeEntry(e))
		}
	}
}

func describeEntry(e admin.EntryStatus) string {
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
