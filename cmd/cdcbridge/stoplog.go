package main

import (
	"errors"
	"log/slog"

	"github.com/cdcbridge/cdcbridge/config"
	"github.com/cdcbridge/cdcbridge/finding"
)

// logStop logs the error that stops the daemon, in the daemon's log format
// (a JSON log stays JSON to its last line), with its exit code code, and
// returns code. A list of problems (the
// findings that keep a mapping from running, the problems of a mapping
// file) is one record per problem, so that each stays readable, then the
// record of the stop. m, when not nil, redacts the passwords of its DSNs.
func logStop(log *slog.Logger, m *config.Mapping, err error, code int) int {
	log = log.With("component", "main")
	redact := func(s string) string { return s }
	if m != nil {
		redact = m.RedactString
	}
	var ce *finding.ConfigError
	// Only a list at the top (the problems of a mapping file): the errors
	// a cause joins (pgx's attempts at each address) belong to one message.
	joined, _ := err.(interface{ Unwrap() []error })
	switch {
	case errors.As(err, &ce):
		for _, f := range ce.Findings {
			log.Error("the mapping cannot run", "where", f.Where, "problem", redact(f.Message), "fix", redact(f.Fix))
		}
		log.Error("cdcbridge stopped: the mapping cannot run; `cdcbridge check` lists every finding", "problems", len(ce.Findings), "exit_code", code)
	case joined != nil && len(joined.Unwrap()) > 1:
		errs := joined.Unwrap()
		for _, e := range errs {
			log.Error("the mapping is not valid", "error", redact(e.Error()))
		}
		log.Error("cdcbridge stopped: the mapping is not valid", "problems", len(errs), "exit_code", code)
	default:
		log.Error("cdcbridge stopped", "error", redact(err.Error()), "exit_code", code)
	}
	return code
}
