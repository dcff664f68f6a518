// Package flip carries out the flip protocol: making the armed direction
// live, with nothing lost, when traffic moves to the other slice, and
// keeping the sequences of the receiving side ahead.
//
// Request is the command side (`cdcbridge flip`): it records a request in
// the control state and, when a daemon runs, waits for the daemon's answer,
// withdrawing a request the daemon has not begun by the deadline so that a
// flip the operator gave up on never happens later; with no daemon it takes
// both direction locks and carries the flip out itself. CarryOut is the
// flip itself, run by the daemon (with the direction's armed pipeline
// stopped) or by Request: it takes the flip point, counts the foreign
// writes the slot holds and applies the ForeignPolicy to them (refusing by
// default), moves the checkpoint, syncs the sequences, lifts the write fence of
// the side becoming live when the mapping has one (package fence), and
// records the flip, which answers the request. Every step is idempotent, so a flip cut short
// by a crash is finished by running it again.
//
// Sequences follow the live direction: SyncSequences brings the receiving
// side's sequences up to the sending side's once (at a flip, past a gap),
// KeepSequences keeps them in step while a direction runs.
package flip
