package main

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/cdcbridge/cdcbridge/admin"
)

func cmdStatus(args []string, stdout, stderr io.Writer) int {
	var c common
	var asJSON bool
	fs := newFlags("status", "status -c mapping.yaml [--json]\n\nShows where the mapping stands: the live direction and the last flip point, a flip\nwaiting for the daemon, foreign writes held by the armed direction, and for each\ndirection its slot (confirmed position, retained WAL), its checkpoint and its lag.\nWhat cannot be read (a side down) is shown as unknown, and the exit code is 1.", stderr, &c)
	fs.BoolVar(&asJSON, "json", false, "print JSON")
	m, code, ok := parseLoad(fs, args, &c, stdout, stderr)
	if !ok {
		return code
	}
	ctx, stop := signalContext()
	defer stop()
	// What could be read is shown even when a part could not be: a
	// side down is when status is needed most. But the answer is then
	// incomplete, which the exit code says.
	st, err := admin.GetStatus(ctx, m)
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(st)
	} else {
		writeStatus(stdout, st)
	}
	if err != nil {
		fmt.Fprintf(stderr, "cdcbridge status: could not read all of it:\n%v\n", m.Redact(err))
		return exitCode(err, exitFinding)
	}
	return exitOK
}

func cmdCleanup(args []string, stdout, stderr io.Writer) int {
	var c common
	fs := newFlags("cleanup", "cleanup -c mapping.yaml\n\nDrops what the bridge made for the mapping: the slots and publications on both\nsides, the replication origins, the checkpoints and the bridge state. It refuses\nwhile a daemon runs the mapping. Table data is not touched.", stderr, &c)
	m, code, ok := parseLoad(fs, args, &c, stdout, stderr)
	if !ok {
		return code
	}
	ctx, stop := signalContext()
	defer stop()
	if err := admin.Cleanup(ctx, m, stdout); err != nil {
		fmt.Fprintf(stderr, "cdcbridge cleanup: %v\n", m.Redact(err))
		return exitCode(err, exitFinding)
	}
	return exitOK
}
