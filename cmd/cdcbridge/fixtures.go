package main

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/cdcbridge/cdcbridge/check"
	"github.com/cdcbridge/cdcbridge/config"
	"github.com/cdcbridge/cdcbridge/fixture"
	"github.com/cdcbridge/cdcbridge/mappingtest"
	"github.com/cdcbridge/cdcbridge/transform"
)

func cmdRecord(args []string, stdout, stderr io.Writer) int {
	var c common
	var reverse bool
	var out string
	var duration time.Duration
	fs := newFlags("record", "record -c mapping.yaml --out FILE [--duration D] [--reverse]\n\nRecords every pgoutput message of the mapped tables, exactly as received, into a\nfixture file (JSON Lines) for `cdcbridge test`. It streams from a temporary slot of\nits own, so it never disturbs a running daemon's slot or checkpoint, and leaves no\nslot behind. It stops on SIGINT/SIGTERM or after --duration.", stderr, &c)
	fs.BoolVar(&reverse, "reverse", false, "record the target (the side the reverse direction reads)")
	fs.StringVar(&out, "out", "", "the fixture file to write (required)")
	fs.DurationVar(&duration, "duration", 0, "stop after this long (default: until SIGINT/SIGTERM)")
	if code, ok := parse(fs, args, &c, stdout); !ok {
		return code
	}
	if out == "" {
		code, _ := usageError(stderr, "record", "--out FILE is required")
		return code
	}
	if duration < 0 {
		code, _ := usageError(stderr, "record", "--duration must not be negative")
		return code
	}
	log, m, code, ok := open("record", &c, stderr)
	if !ok {
		return code
	}
	f, err := fixture.Create(out) // gzip when the name ends in .gz
	if err != nil {
		fmt.Fprintf(stderr, "cdcbridge record: %v\n", err)
		return exitUsage
	}
	ctx, stop := loggedSignalContext(log.With("component", "main"), "ending the recording; the fixture keeps what was recorded")
	defer stop()
	st, err := fixture.Record(ctx, fixture.RecordOptions{Mapping: m, Direction: direction(reverse), Out: f, Duration: duration, Logger: log})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	fmt.Fprintf(stdout, "recorded %d messages (%d transactions, %d changes) into %s\n", st.Messages, st.Transactions, st.Changes, out)
	if err != nil {
		fmt.Fprintf(stderr, "cdcbridge record: %v\n", m.Redact(err))
		return exitCode(err, exitFinding)
	}
	return exitOK
}

func cmdTest(args []string, stdout, stderr io.Writer) int {
	var c common
	var reverse, update bool
	fs := newFlags("test", "test -c mapping.yaml FIXTURE... [--update] [--reverse]\n\nRuns the mapping's transforms over every change of recorded fixtures, without a\ndatabase, and compares the result with the golden file next to each fixture\n(FIXTURE.<name>.golden: one line per transformed change with op, target table,\nkey and row, values as typed literals). --update writes the golden files. It also\nchecks that every insert and update comes back through the opposite transform\n(backward(forward(row)) == row) and names the table, key and columns that do not.\nExit 0 when all hold, 1 on any mismatch, 2 on usage or config errors.", stderr, &c)
	fs.BoolVar(&reverse, "reverse", false, "the fixtures were recorded from the target: apply backward() and check forward(backward(row))")
	fs.BoolVar(&update, "update", false, "write the golden files instead of comparing")
	if code, ok := parseArgs(fs, args, &c, true, stdout); !ok {
		return code
	}
	if fs.NArg() == 0 {
		code, _ := usageError(stderr, "test", "name at least one fixture file")
		return code
	}
	m, err := config.LoadOffline(c.config)
	if err != nil {
		fmt.Fprintf(stderr, "cdcbridge: %v\n", err)
		return exitUsage
	}
	if err := check.CheckScripts(m); err != nil {
		fmt.Fprintf(stderr, "cdcbridge test: %v\n", err)
		return exitUsage
	}
	var results []mappingtest.Result
	failedRuns := 0
	for _, path := range fs.Args() {
		r, err := mappingtest.Run(path, mappingtest.Options{Mapping: m, Direction: direction(reverse), Update: update})
		var terr *transform.Error
		if errors.As(err, &terr) {
			// A transform that throws or returns something unusable is a
			// finding about the mapping, like a mismatch.
			fmt.Fprintf(stdout, "FAIL %s\n  %v\n", path, err)
			failedRuns++
			continue
		}
		if err != nil {
			fmt.Fprintf(stderr, "cdcbridge test: %v\n", m.Redact(err))
			return exitUsage
		}
		results = append(results, r)
	}
	if failed := mappingtest.Report(stdout, results) + failedRuns; failed > 0 {
		fmt.Fprintf(stdout, "%d of %d fixtures failed\n", failed, len(fs.Args()))
		return exitFinding
	}
	return exitOK
}
