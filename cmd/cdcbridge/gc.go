package main

import (
	"os"
	"runtime/debug"
)

// gcPercent is the garbage collector's target the daemon runs with unless
// GOGC is set. Every change passes through a few short-lived allocations
// (decoded tuple, row, statement arrays) while the live heap stays small,
// so the default of 100 spends a fifth to a third of the daemon's CPU on
// collection; 400 trades a few tens of megabytes for that time.
const gcPercent = 400

// memoryLimit is the soft limit of the Go heap the daemon runs with
// unless GOMEMLIMIT is set. What the daemon holds is bounded by bytes (the
// events between stream and applier, and the batches; see change.Budget):
// some 40 MiB at most. gcPercent alone would let the heap grow to five times
// that before collecting; the limit makes the collector work harder only
// when the heap nears it, so the daemon fits a container of 150 MiB.
const memoryLimit = 96 << 20

// tuneGC sets gcPercent and memoryLimit, unless the operator chose with
// GOGC or GOMEMLIMIT.
func tuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(memoryLimit)
	}
}
