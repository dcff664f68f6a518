package finding

import (
	"fmt"
	"strings"

	"github.com/cdcbridge/cdcbridge/change"
)

// Finding is one result of the up-front checks.
type Finding struct {
	// Where names the side, table or file the finding is about.
	Where string
	OK    bool
	// Warn marks an OK finding the operator should know of (a trigger that
	// will not fire for replicated rows): it does not stop a start.
	Warn    bool
	Message string
	Fix     string
	// Table is the table the finding is about, if any; the zero Table for
	// a finding about a server, a role, a database or a file.
	Table change.Table
	// Err is the error behind a finding that did not pass, when there is
	// one (a server that could not be reached), for callers to classify
	// with errors.As; Message says it already.
	Err error
}

func (f Finding) String() string {
	mark := "ok  "
	switch {
	case !f.OK:
		mark = "FAIL"
	case f.Warn:
		mark = "WARN"
	}
	s := fmt.Sprintf("%s %s: %s", mark, f.Where, f.Message)
	if f.Fix != "" {
		s += "\n       fix: " + f.Fix
	}
	return s
}

// Problems returns the findings that did not pass.
func Problems(fs []Finding) []Finding {
	var out []Finding
	for _, f := range fs {
		if !f.OK {
			out = append(out, f)
		}
	}
	return out
}

// ConfigError lists the problems that keep a mapping from running: a
// missing table, key or privilege, a misconfigured server. Fixing them
// needs the operator, not a retry.
type ConfigError struct {
	Findings []Finding
}

func (e *ConfigError) Error() string {
	lines := make([]string, len(e.Findings))
	for i, f := range e.Findings {
		lines[i] = f.Where + ": " + f.Message
		if f.Fix != "" {
			lines[i] += "; fix: " + f.Fix
		}
	}
	return "the mapping cannot run (`cdcbridge check` lists every finding):\n" + strings.Join(lines, "\n")
}
