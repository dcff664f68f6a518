package main

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/cdcbridge/cdcbridge/check"
	"github.com/cdcbridge/cdcbridge/config"
	"github.com/cdcbridge/cdcbridge/transform"
	"github.com/cdcbridge/cdcbridge/verify"
)

const verifySynopsis = `verify -c mapping.yaml [--reverse] [--roundtrip] [--catch-up D] [--progress D] [--json]

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

It reads both sides in read-only snapshots and changes nothing. While it
reads a table it logs its progress every --progress (10s) on stderr: rows,
percent of the table's estimated size (pg_class.reltuples, as of the last
VACUUM or ANALYZE), rate and time left.

--json prints one JSON document on stdout instead of the text report, with
the same exit codes: {"mode": "compare", "mapping", "direction",
"read_side", "write_side", "equal", "tables": [{"table", "equal",
"compared", "rows", "missing", "extra", "different", "examples": [{"kind",
"key", "from", "columns": [{"column", "want", "got"}], "note"}],
"unsettled", "unsettled_keys", "notes"}], "rechecks", "transient",
"daemon", "lagging"}; with --roundtrip {"mode": "roundtrip", "mapping",
"direction", "ok", "tables": [{"side", "table", "via", "rows", "failed",
"examples": [{"key", "columns": [...]}]}]}. When the comparison cannot be
made it is {"mode", "mapping", "ok": false, "error"}.

Exit 0 when the sides are equal (every row comes back), 1 when they are
not (or a transform fails on a row, or a database cannot be reached), 2 on
usage or configuration errors (a mapped table that does not exist).`

// verifyError is what verify --json prints when the comparison could not
// be made.
type verifyError struct {
	Mode    string `json:"mode"`
	Mapping string `json:"mapping,omitempty"`
	OK      bool   `json:"ok"`
	Error   string `json:"error"`
}

func cmdVerify(args []string, stdout, stderr io.Writer) int {
	var c common
	var reverse, roundtrip, asJSON bool
	var catchUp time.Duration
	var batch int
	fs := newFlags("verify", verifySynopsis, stderr, &c)
	fs.BoolVar(&reverse, "reverse", false, "compare the target, through backward(), with the source")
	fs.BoolVar(&roundtrip, "roundtrip", false, "check backward(forward(row)) == row on the source and forward(backward(row)) == row on the target")
	fs.DurationVar(&catchUp, "catch-up", verify.DefaultCatchUp, "how long to wait for a running daemon to catch up before differences are checked again (0: check again without waiting)")
	fs.IntVar(&batch, "batch", verify.DefaultBatchSize, "rows transformed and looked up per query")
	fs.BoolVar(&asJSON, "json", false, "print the result as one JSON document")
	var progressEvery time.Duration
	fs.DurationVar(&progressEvery, "progress", verify.DefaultProgressEvery, "how often to log the progress of a table being read, on stderr (0: never)")
	if code, ok := parse(fs, args, &c, stdout); !ok {
		return code
	}
	if code, ok := exclusive(fs, "roundtrip", "catch-up"); !ok {
		return code
	}
	if batch <= 0 {
		code, _ := usageError(stderr, "verify", "--batch must be positive")
		return code
	}
	if catchUp < 0 || progressEvery < 0 {
		code, _ := usageError(stderr, "verify", "--catch-up and --progress must not be negative")
		return code
	}
	if progressEvery == 0 {
		progressEvery = -1 // verify.Options: negative means never
	}
	mode := "compare"
	if roundtrip {
		mode = "roundtrip"
	}
	log, _ := newLogger(&c, stderr) // checked by parse
	m, err := config.Load(c.config)
	if err == nil {
		err = check.CheckScripts(m)
	}
	if err != nil {
		fmt.Fprintf(stderr, "cdcbridge verify: %v\n", err)
		if asJSON {
			writeJSON(stdout, verifyError{Mode: mode, Error: err.Error()})
		}
		return exitUsage
	}
	// fail reports an error that ended the comparison, and returns the
	// exit code.
	fail := func(err error) int {
		err = m.Redact(err)
		if asJSON {
			writeJSON(stdout, verifyError{Mode: mode, Mapping: m.Name, Error: err.Error()})
		}
		var te *transform.Error
		if errors.As(err, &te) {
			// A transform that throws on a row, or returns something
			// unusable, is a finding about the mapping.
			if !asJSON {
				fmt.Fprintf(stdout, "FAIL a transform fails on a row:\n  %v\n", err)
			}
			return exitFinding
		}
		fmt.Fprintf(stderr, "cdcbridge verify: %v\n", err)
		return exitCode(err, exitUsage)
	}
	if catchUp == 0 {
		catchUp = -1 // verify.Options: negative means no wait
	}
	ctx, stop := loggedSignalContext(log.With("component", "main"), "stopping the comparison; nothing was changed")
	defer stop()
	o := verify.Options{Mapping: m, Direction: direction(reverse), BatchSize: batch, CatchUp: catchUp, Logger: log, ProgressEvery: progressEvery}

	// report writes the report, as JSON or as text, and returns the exit
	// code.
	report := func(rep interface{ Write(io.Writer) error }, ok bool) int {
		if asJSON {
			writeJSON(stdout, rep)
		} else if err := rep.Write(stdout); err != nil {
			fmt.Fprintf(stderr, "cdcbridge verify: %v\n", err)
			return exitFinding
		}
		if !ok {
			return exitFinding
		}
		return exitOK
	}
	if roundtrip {
		rep, err := verify.RoundTrip(ctx, o)
		if err != nil {
			return fail(err)
		}
		return report(rep, rep.OK())
	}
	rep, err := verify.Run(ctx, o)
	if err != nil {
		return fail(err)
	}
	return report(rep, rep.Equal())
}
