package main

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/cdcbridge/cdcbridge/internal/version"
)

func cmdVersion(args []string, stdout, stderr io.Writer) int {
	var asJSON bool
	fs := newFlags("version", "version [--json]\n\nPrints the version of this build, its VCS revision and its Go version\n(also: cdcbridge --version). A release build stamps the version with\n-ldflags \"-X github.com/cdcbridge/cdcbridge/internal/version.Version=v1.2.3\";\nelse it is what the Go toolchain recorded.", stderr, nil)
	fs.BoolVar(&asJSON, "json", false, "print JSON: version, revision and go_version")
	if code, ok := parse(fs, args, nil, stdout); !ok {
		return code
	}
	v := version.Get()
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(map[string]string{"version": v.Version, "revision": v.Revision, "go_version": v.GoVersion})
		return exitOK
	}
	fmt.Fprintln(stdout, v.String())
	return exitOK
}
