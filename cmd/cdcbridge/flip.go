package main

import (
	"fmt"
	"io"
	"time"

	"github.com/cdcbridge/cdcbridge/control"
	"github.com/cdcbridge/cdcbridge/flip"
)

func cmdFlip(args []string, stdout, stderr io.Writer) int {
	var c common
	var include, discard bool
	var timeout time.Duration
	fs := newFlags("flip", "flip -c mapping.yaml [--include-target-writes|--discard-target-writes]\n\n"+
		"Hands traffic over: run it when traffic moves to the other slice (run flip, then move\n"+
		"traffic). The direction that was armed becomes live from the flip point (its side's\n"+
		"current LSN), recorded in the bridge state; the running daemon starts it at once and\n"+
		"keeps the old direction draining what still arrives on the old live side, until that\n"+
		"side is quiet. Sequences are brought up to date first. Flipping again is the rollback.\n\n"+
		"If the side becoming live already took writes on mapped tables (traffic moved before\n"+
		"the flip), flip refuses with exit 1 and says how many and since when: then\n"+
		"--include-target-writes carries them over (they were live traffic) and\n"+
		"--discard-target-writes starts at the flip point (they were test writes). On a flip\n"+
		"back the same flags speak of the writes on the side becoming live again.\n\n"+
		"With no daemon running, flip does the same by itself, and `run` picks it up.", stderr, &c)
	fs.BoolVar(&include, "include-target-writes", false, "carry writes the side becoming live already took over to the other side")
	fs.BoolVar(&discard, "discard-target-writes", false, "start at the flip point, leaving writes the side becoming live already took behind")
	fs.DurationVar(&timeout, "timeout", time.Minute, "how long to wait for the running daemon to carry the flip out")
	var gap int64
	fs.Int64Var(&gap, "sequence-gap", flip.DefaultSequenceGap, "with no daemon running: how far past the old live side's sequences to set the new live side's (the daemon uses its own --sequence-gap)")
	if code, ok := parse(fs, args, &c, stdout); !ok {
		return code
	}
	if code, ok := exclusive(fs, "include-target-writes", "discard-target-writes"); !ok {
		return code
	}
	policy := control.Refuse
	if include {
		policy = control.IncludeWrites
	} else if discard {
		policy = control.DiscardWrites
	}
	log, m, code, ok := open("flip", &c, stderr)
	if !ok {
		return code
	}
	ctx, stop := signalContext()
	defer stop()
	res, err := flip.Request(ctx, m, policy, timeout, gap, log)
	if err != nil {
		fmt.Fprintf(stderr, "cdcbridge flip: %v\n", m.Redact(err))
		return exitCode(err, exitFinding)
	}
	fmt.Fprintln(stdout, res.Message)
	if !res.OK {
		return exitFinding
	}
	return exitOK
}
