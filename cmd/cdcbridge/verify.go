package main

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/cdcbridge/cdcbridge/check"
	"github.com/cdcbridge/cdcbridge/transform"
	"github.com/cdcbridge/cdcbridge/verify"
)

const verifySynopsis = `verify -c mapping.yaml [--reverse] [--roundtrip] [--catch-up D]

Compares the two sides of a mapping row by row. The side read (the source;
the target with --reverse) is read in PostgreSQL's text form, each row is
put through the transform (forward(); backward() with --reverse) and
looked up by key on the other side, whose values are compared after
PostgreSQL's own normalisation of each column. Every row of the other side
is mapped back to find the rows nothing maps to. It prints, per table, the
counts of missing, extra and different rows and the first keys of each,
with the columns that differ. Memory does not grow with the tables.

While a daemon runs, rows in flight differ for a moment: the differences
are checked again once the daemon's checkpoint has reached the side read's
WAL position (waiting at most --catch-up), and a difference counts only if
its source row did not change meanwhile. Rows that keep changing are named
in a note, not counted.

--roundtrip instead proves that the mapping is lossless before a flip
relies on it: for every row of the source backward(forward(row)) == row,
and for every row of the target forward(backward(row)) == row. It names
the table, key and columns that do not come back.

It reads both sides in read-only snapshots and changes nothing.
Exit 0 when the sides are equal (every row comes back), 1 when they are
not (or a transform fails on a row), 2 on usage, configuration or
connection errors.`

func cmdVerify(args []string, stdout, stderr io.Writer) int {
	var c common
	var reverse, roundtrip bool
	var catchUp time.Duration
	var batch int
	fs := newFlags("verify", verifySynopsis, stderr, &c)
	fs.BoolVar(&reverse, "reverse", false, "compare the target, through backward(), with the source")
	fs.BoolVar(&roundtrip, "roundtrip", false, "check backward(forward(row)) == row on the source and forward(backward(row)) == row on the target")
	fs.DurationVar(&catchUp, "catch-up", verify.DefaultCatchUp, "how long to wait for a running daemon to catch up before differences are checked again (0: check again without waiting)")
	fs.IntVar(&batch, "batch", verify.DefaultBatchSize, "rows transformed and looked up per query")
	if code, ok := parse(fs, args, &c, stdout); !ok {
		return code
	}
	if batch <= 0 || catchUp < 0 {
		fmt.Fprintln(stderr, "cdcbridge verify: --batch must be positive and --catch-up not negative")
		return exitUsage
	}
	log, m, code, ok := open("verify", &c, stderr)
	if !ok {
		return code
	}
	if err := check.CheckScripts(m); err != nil {
		fmt.Fprintf(stderr, "cdcbridge verify: %v\n", err)
		return exitUsage
	}
	if catchUp == 0 {
		catchUp = -1 // verify.Options: negative means no wait
	}
	ctx, stop := signalContext()
	defer stop()
	o := verify.Options{Mapping: m, Direction: direction(reverse), BatchSize: batch, CatchUp: catchUp, Logger: log}

	fail := func(err error) int {
		var te *transform.Error
		if errors.As(err, &te) {
			// A transform that throws on a row, or returns something
			// unusable, is a finding about the mapping.
			fmt.Fprintf(stdout, "FAIL a transform fails on a row:\n  %v\n", m.Redact(err))
			return exitFinding
		}
		fmt.Fprintf(stderr, "cdcbridge verify: %v\n", m.Redact(err))
		return exitUsage
	}
	if roundtrip {
		rep, err := verify.RoundTrip(ctx, o)
		if err != nil {
			return fail(err)
		}
		if err := rep.Write(stdout); err != nil {
			fmt.Fprintf(stderr, "cdcbridge verify: %v\n", err)
			return exitUsage
		}
		if !rep.OK() {
			return exitFinding
		}
		return exitOK
	}
	rep, err := verify.Run(ctx, o)
	if err != nil {
		return fail(err)
	}
	if err := rep.Write(stdout); err != nil {
		fmt.Fprintf(stderr, "cdcbridge verify: %v\n", err)
		return exitUsage
	}
	if !rep.Equal() {
		return exitFinding
	}
	return exitOK
}
