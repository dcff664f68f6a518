// Package admin reads and removes, for the operator, what the bridge keeps
// for a mapping on both sides, without running it.
//
// GetStatus reads the control state, the slots, the checkpoints and the
// entries of both directions. It never writes and never waits for a running
// daemon; a side that cannot be reached or a part that cannot be read is
// left unknown in the Status, which says why in its Errors, and the error
// returned joins them (nil only when the Status is complete). Cleanup drops
// the slots, publications, origins, write fences, checkpoints and the
// state row, and the schema once nothing of the bridge's is left in it; it
// refuses while a daemon runs the mapping (it takes both direction locks)
// or anything streams from a slot. Neither touches the application's rows;
// the only thing of the bridge's on the application's tables is the
// fence's trigger, which Cleanup drops.
package admin
