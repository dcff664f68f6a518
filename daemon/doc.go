// Package daemon is the supervisor of a mapping: it runs both directions,
// the live one applying and the other armed, and carries out what the
// control state asks, without a restart.
//
// Run compiles the mapping's transforms once, for the pipelines of both
// directions (pipeline.Options.Scripts), and hands both one echo tracker
// (pipeline.Options.Echoes), so that neither takes the other's idle
// checkpoints for activity. It holds the mapping's daemon lock on the target for its life (a second
// daemon stops with a fault.FatalError), follows the live direction recorded
// in the state (or makes it reverse on a mapping that has never flipped,
// with --reverse), and polls the state: a flip request is claimed and
// carried out (flip.CarryOut) with the armed pipeline stopped; after a flip
// the old live direction drains until its side has been quiet for Quiet,
// then it is armed; with `fence: true` the side that is not live is fenced
// at the start and the side that was live once it has drained (package
// fence); foreign writes an armed direction holds are recorded
// for `cdcbridge status` (and in cdcbridge_foreign_write_transactions,
// back to 0 once the direction that held them applies). It tells the
// pipelines' shared metrics.Health which direction is live, the one
// readiness is about. Everything it decides is in the state row, so a
// daemon killed at any moment picks up where it was; a flip request it had
// claimed when it died is answered as interrupted, never carried out later.
//
// The connection to the state comes back, with backoff, after the target
// restarts. Run returns nil when ctx ends and every pipeline has stopped
// cleanly; a pipeline that stops by itself (a fatal error) stops the daemon
// with that error.
package daemon
