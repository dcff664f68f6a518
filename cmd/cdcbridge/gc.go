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

// tuneGC sets gcPercent, unless the operator chose with GOGC.
func tuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
}
