package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/cdcbridge/cdcbridge/change"
	"github.com/cdcbridge/cdcbridge/check"
	"github.com/cdcbridge/cdcbridge/config"
	"github.com/cdcbridge/cdcbridge/daemon"
	"github.com/cdcbridge/cdcbridge/finding"
	"github.com/cdcbridge/cdcbridge/flip"
	"github.com/cdcbridge/cdcbridge/internal/version"
	"github.com/cdcbridge/cdcbridge/metrics"
	"github.com/cdcbridge/cdcbridge/pipeline"
)

// Exit codes, the same on every command (see exitCode).
const (
	exitOK      = 0
	exitFinding = 1 // a finding, a runtime failure, or a database that cannot be reached
	exitUsage   = 2 // usage or configuration error
)

// exitStatus is the end of every command's help.
const exitStatus = `Exit status (the same on every command):
  0  ok
  1  a finding (differences, a mismatch, a refusal) or a runtime failure;
     also a database that cannot be reached, whichever command it is
  2  usage or configuration error: flags, the mapping file, the transform
     scripts, a mapping that does not fit the databases`

const usage = `cdcbridge keeps two PostgreSQL databases with different schemas in step
during a blue-green release: it tails one side's WAL through logical
replication, runs each change through the mapping's JavaScript transforms,
and applies it to the other side, exactly once.

Usage:
  cdcbridge run    -c mapping.yaml [--reverse]   run the daemon
  cdcbridge check  -c mapping.yaml [--reverse] [--json]
                                                 check config, connectivity, wal_level,
                                                 privileges, keys and columns; stream nothing
  cdcbridge flip   -c mapping.yaml [--include-target-writes|--discard-target-writes]
                                                 hand traffic over: the other direction becomes live
  cdcbridge status -c mapping.yaml [--json]      live direction, flip point, slots, checkpoints, lag
  cdcbridge cleanup -c mapping.yaml              drop the slots, publications, origins and state it made
  cdcbridge verify -c mapping.yaml [--reverse] [--roundtrip] [--json]
                                                 compare the sides key by key; --roundtrip proves
                                                 the mapping lossless
  cdcbridge record -c mapping.yaml --out FILE [--duration D] [--reverse]
                                                 record a WAL fixture from a temporary slot
  cdcbridge test   -c mapping.yaml FIXTURE... [--update] [--reverse]
                                                 run the transforms over fixtures: golden files
                                                 and backward(forward(row)) == row
  cdcbridge version                              print the version (also: cdcbridge --version)
  cdcbridge help [command]

Run "cdcbridge <command> --help" for the flags of a command.

` + exitStatus + "\n"

func main() {
	os.Exit(Main(os.Args[1:], os.Stdout, os.Stderr))
}

// commands are the subcommands by name.
var commands = map[string]func(args []string, stdout, stderr io.Writer) int{
	"run":     cmdRun,
	"check":   cmdCheck,
	"record":  cmdRecord,
	"test":    cmdTest,
	"flip":    cmdFlip,
	"verify":  cmdVerify,
	"status":  cmdStatus,
	"cleanup": cmdCleanup,
	"version": cmdVersion,
}

// Main runs the command line and returns the exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "-h", "--help", "-help", "help":
		switch {
		case len(rest) == 0:
			fmt.Fprint(stdout, usage)
			return exitOK
		case len(rest) > 1:
			fmt.Fprintf(stderr, "cdcbridge help: one command at most, got %q; see \"cdcbridge help\"\n", rest)
			return exitUsage
		case commands[rest[0]] == nil:
			fmt.Fprintf(stderr, "cdcbridge help: unknown command %q; see \"cdcbridge help\"\n", rest[0])
			return exitUsage
		}
		return commands[rest[0]]([]string{"--help"}, stdout, stderr)
	case "--version", "-version":
		return cmdVersion(rest, stdout, stderr)
	}
	if run := commands[cmd]; run != nil {
		return run(rest, stdout, stderr)
	}
	fmt.Fprintf(stderr, "cdcbridge: unknown command %q; see \"cdcbridge help\"\n", cmd)
	return exitUsage
}

// common holds the flags every command shares.
type common struct {
	config    string
	logFormat string
	logLevel  string
}

// newFlags makes the flag set of a command, with the flags every command
// that reads a mapping shares. Its output is stderr; help goes to stdout
// (see parseArgs).
func newFlags(name, synopsis string, stderr io.Writer, c *common) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	if c != nil {
		fs.StringVar(&c.config, "c", "", "the mapping file (YAML)")
		fs.StringVar(&c.config, "config", "", "the mapping file (same as -c)")
		fs.StringVar(&c.logFormat, "log-format", "text", "log format: text or json")
		fs.StringVar(&c.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	}
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: cdcbridge %s\n\nFlags:\n", synopsis)
		fs.PrintDefaults()
		fmt.Fprintf(fs.Output(), "\n%s\n", exitStatus)
	}
	return fs
}

// parse parses the flags of a command that takes no positional argument;
// it returns an exit code when the command must stop.
func parse(fs *flag.FlagSet, args []string, c *common, stdout io.Writer) (int, bool) {
	return parseArgs(fs, args, c, false, stdout)
}

// parseArgs parses flags placed before, between or after positional
// arguments (when the command takes them), the same way for every command:
// -h or --help prints the command's help on stdout (exit 0); an unknown
// flag, a bad value, an argument the command does not take, a missing -c
// (c not nil) or a bad --log-format or --log-level is one line on stderr
// (exit 2).
func parseArgs(fs *flag.FlagSet, args []string, c *common, positional bool, stdout io.Writer) (int, bool) {
	stderr := fs.Output()
	// The flag package prints its error and the whole help on its output:
	// one line of ours says it better.
	fs.SetOutput(io.Discard)
	defer fs.SetOutput(stderr)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fs.SetOutput(stdout)
				fs.Usage()
				return exitOK, false
			}
			return usageError(stderr, fs.Name(), "%v", err)
		}
		if fs.NArg() == 0 || !positional {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if positional {
		fs.Parse(append([]string{"--"}, pos...))
	}
	if !positional && fs.NArg() > 0 {
		return usageError(stderr, fs.Name(), "unexpected argument %q", fs.Arg(0))
	}
	if c == nil {
		return 0, true
	}
	if c.config == "" {
		return usageError(stderr, fs.Name(), "the mapping file is required: -c mapping.yaml")
	}
	if _, err := newLogger(c, io.Discard); err != nil {
		return usageError(stderr, fs.Name(), "%v", err)
	}
	return 0, true
}

// usageError prints a usage error of cmd on one line and returns the usage
// exit code.
func usageError(stderr io.Writer, cmd, format string, args ...any) (int, bool) {
	fmt.Fprintf(stderr, "cdcbridge %s: %s; see \"cdcbridge %s --help\"\n", cmd, fmt.Sprintf(format, args...), cmd)
	return exitUsage, false
}

// exclusive reports a usage error when more than one of the named flags
// was given.
func exclusive(fs *flag.FlagSet, names ...string) (int, bool) {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var set []string
	for _, n := range names {
		if given[n] {
			set = append(set, "--"+n)
		}
	}
	if len(set) > 1 {
		return usageError(fs.Output(), fs.Name(), "%s exclude each other", strings.Join(set, " and "))
	}
	return 0, true
}

func newLogger(c *common, w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.logLevel)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", c.logLevel)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch c.logFormat {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", c.logFormat)
}

// open makes the logger and loads the mapping of a command that needs
// both; it prints why it could not and returns the exit code.
func open(cmd string, c *common, stderr io.Writer) (*slog.Logger, *config.Mapping, int, bool) {
	log, err := newLogger(c, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "cdcbridge %s: %v\n", cmd, err)
		return nil, nil, exitUsage, false
	}
	m, code, ok := load(c, stderr)
	return log, m, code, ok
}

// parseLoad parses the flags of a command that needs nothing but the
// mapping, and loads it; it returns the exit code when the command must
// stop.
func parseLoad(fs *flag.FlagSet, args []string, c *common, stdout, stderr io.Writer) (*config.Mapping, int, bool) {
	if code, ok := parse(fs, args, c, stdout); !ok {
		return nil, code, false
	}
	return load(c, stderr)
}

func load(c *common, stderr io.Writer) (*config.Mapping, int, bool) {
	m, err := config.Load(c.config)
	if err != nil {
		fmt.Fprintf(stderr, "cdcbridge: %v\n", err)
		return nil, exitUsage, false
	}
	return m, 0, true
}

func direction(reverse bool) config.Direction {
	if reverse {
		return config.Reverse
	}
	return config.Forward
}

func cmdRun(args []string, stdout, stderr io.Writer) int {
	var c common
	var reverse bool
	fs := newFlags("run", "run -c mapping.yaml [--reverse]\n\nRuns the daemon: streams every committed change of the live side to the other\nside through the mapping's transforms, with an exactly-once checkpoint. Forward\nreads the mapping's source and calls forward(); --reverse reads the target and\ncalls backward(). On the first start of a direction it copies every mapped table,\nas of the new slot's snapshot and through the transform, into the (empty) tables\nof the side written, then streams from the snapshot's point: nothing is missed or\napplied twice across the hand-off. SIGINT or SIGTERM stops it cleanly.\n\nIt logs on stderr, as text or JSON (--log-format), from a start-up record\n(version, mapping, directions, metrics address) to the record of its stop:\none for each signal received, and the error that stops it, with the exit\ncode.", stderr, &c)
	fs.BoolVar(&reverse, "reverse", false, "run target -> source with backward()")
	var quiet time.Duration
	fs.DurationVar(&quiet, "quiet-period", 10*time.Second, "after a flip, how long the old live side must take no writes before its direction stops draining and is armed")
	var gap int64
	fs.Int64Var(&gap, "sequence-gap", flip.DefaultSequenceGap, "at a flip, how far past the old live side's sequences to set the new live side's, clearing the ids the old side may still hand out while traffic moves (0: none)")
	var skipCopy bool
	fs.BoolVar(&skipCopy, "skip-copy", false, "on a first start, do not copy the existing rows (the side written already holds them); stream from now")
	var exitOnHalt bool
	fs.BoolVar(&exitOnHalt, "exit-on-halt", false, "exit (status 1) when a direction halts before a bad change, instead of staying up halted until a reload (SIGHUP) with the fix")
	var noStandby bool
	fs.BoolVar(&noStandby, "no-standby", false, "when another daemon runs the mapping, exit (after 15s) instead of standing by to take over when it stops")
	var pprofAddr string
	fs.StringVar(&pprofAddr, "pprof", "", "serve Go's profiler (/debug/pprof/) on this address, e.g. localhost:6060; off when empty")
	if code, ok := parse(fs, args, &c, stdout); !ok {
		return code
	}
	// From here on every line is a log record in the chosen format, the
	// error that stops the daemon included.
	log, _ := newLogger(&c, stderr) // checked by parse
	m, err := config.Load(c.config)
	if err == nil {
		err = check.CheckScripts(m)
	}
	if err != nil {
		return logStop(log, nil, err, exitUsage)
	}
	v := version.Get()
	metricsAddr := m.Metrics.Listen
	if metricsAddr == "" {
		metricsAddr = "off"
	}
	log.Info("starting cdcbridge", "component", "main", "version", v.Version, "revision", v.Revision, "go_version", v.GoVersion,
		"mapping", m.Name, "mapping_file", m.Path, "tables", len(m.Tables), "source", m.Source.DSN.String(), "target", m.Target.DSN.String(),
		"directions", "forward,reverse", "reverse", reverse, "metrics", metricsAddr)
	tuneGC()
	ctx, stop := loggedSignalContext(log.With("component", "main"),
		"stopping: the transaction in flight is finished or rolled back, the checkpoint kept and the source answered, then the daemon exits")
	defer stop()
	health := &metrics.Health{MaxLag: m.Metrics.ReadyMaxLag}
	reg, met := metrics.NewDefault(m.Name, health)
	if m.Metrics.Listen != "" {
		addr, err := metrics.Serve(ctx, m.Metrics.Listen, reg, health)
		if err != nil {
			return logStop(log, m, fmt.Errorf("metrics.listen %s: %w", m.Metrics.Listen, err), exitUsage)
		}
		log.Info("serving /metrics, /healthz and /readyz", "addr", addr.String())
	}
	if pprofAddr != "" {
		addr, err := servePprof(ctx, pprofAddr)
		if err != nil {
			return logStop(log, m, fmt.Errorf("--pprof %s: %w", pprofAddr, err), exitUsage)
		}
		log.Info("serving Go's profiler on /debug/pprof/", "addr", addr.String())
	}
	seqGap := gap
	if gap <= 0 {
		seqGap = -1 // none; 0 in daemon.Options means the default
	}
	err = daemon.Run(ctx, daemon.Options{
		Options: pipeline.Options{Mapping: m, Logger: log, Metrics: met, Health: health, SkipCopy: skipCopy},
		Reverse: reverse, Quiet: quiet, SequenceGap: seqGap, NoStandby: noStandby,
		Reloads: reloads(ctx, log), ExitOnHalt: exitOnHalt,
		Load: func() (*config.Mapping, error) {
			m, err := config.Load(c.config)
			if err != nil {
				return nil, err
			}
			return m, check.CheckScripts(m)
		},
	})
	if err != nil {
		return logStop(log, m, err, exitCode(err, exitFinding))
	}
	log.Info("cdcbridge stopped", "component", "main", "exit_code", exitOK)
	return exitOK
}

const checkSynopsis = `check -c mapping.yaml [--reverse] [--json]

Runs every up-front check of both directions without streaming: the mapping file,
the transform scripts, connectivity to both sides, wal_level, privileges,
replica identity, tables, keys and columns, and the checkpoint and slot. It
prints each finding. Exit 0 when all pass, 2 when a check fails (the mapping or
a database must be fixed), 1 when the only failures are databases that cannot
be reached.

--json prints one JSON document on stdout instead, with the same exit codes:
{"mapping", "file", "ok", "problems", "error" (a mapping that cannot be
loaded), "directions": [{"direction", "findings": [{"where", "status" (ok,
warn or fail), "message", "fix", "table"}]}]}.`

// checkJSON is what check --json prints.
type checkJSON struct {
	Mapping    string               `json:"mapping,omitempty"`
	File       string               `json:"file"`
	OK         bool                 `json:"ok"`
	Problems   int                  `json:"problems"`
	Error      string               `json:"error,omitempty"`
	Directions []checkDirectionJSON `json:"directions"`
}

type checkDirectionJSON struct {
	Direction string             `json:"direction"`
	Findings  []checkFindingJSON `json:"findings"`
}

type checkFindingJSON struct {
	Where   string `json:"where"`
	Status  string `json:"status"` // ok, warn or fail
	Message string `json:"message"`
	Fix     string `json:"fix,omitempty"`
	Table   string `json:"table,omitempty"`
}

func findingJSON(m *config.Mapping, f finding.Finding) checkFindingJSON {
	j := checkFindingJSON{Where: f.Where, Status: "ok", Message: m.RedactString(f.Message), Fix: m.RedactString(f.Fix)}
	switch {
	case !f.OK:
		j.Status = "fail"
	case f.Warn:
		j.Status = "warn"
	}
	if f.Table != (change.Table{}) {
		j.Table = config.DisplayTable(f.Table)
	}
	return j
}

func writeJSON(w io.Writer, v any) {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func cmdCheck(args []string, stdout, stderr io.Writer) int {
	var c common
	var reverse, asJSON bool
	fs := newFlags("check", checkSynopsis, stderr, &c)
	fs.BoolVar(&reverse, "reverse", false, "check only the reverse direction (target -> source); by default both are checked")
	fs.BoolVar(&asJSON, "json", false, "print the findings as one JSON document")
	if code, ok := parse(fs, args, &c, stdout); !ok {
		return code
	}
	m, err := config.Load(c.config)
	if err != nil {
		fmt.Fprintf(stderr, "cdcbridge: %v\n", err)
		if asJSON {
			writeJSON(stdout, checkJSON{File: c.config, Error: err.Error(), Problems: 1, Directions: []checkDirectionJSON{}})
		}
		return exitUsage
	}
	if !asJSON {
		fmt.Fprintf(stdout, "ok   mapping %s: %d table entries\n", m.Path, len(m.Tables))
	}
	ctx, stop := signalContext()
	defer stop()
	// The daemon runs both directions (one live, one armed), so both are
	// checked unless --reverse asks for the reverse one alone.
	dirs := []config.Direction{config.Forward, config.Reverse}
	if reverse {
		dirs = dirs[1:]
	}
	rep := checkJSON{Mapping: m.Name, File: m.Path}
	var all []finding.Finding
	for _, dir := range dirs {
		if !asJSON {
			fmt.Fprintf(stdout, "-- %s\n", dir)
		}
		d := checkDirectionJSON{Direction: dir.String(), Findings: []checkFindingJSON{}}
		for _, f := range check.Check(ctx, m.View(dir)) {
			all = append(all, f)
			d.Findings = append(d.Findings, findingJSON(m, f))
			if !asJSON {
				fmt.Fprintln(stdout, m.RedactString(f.String()))
			}
		}
		rep.Directions = append(rep.Directions, d)
	}
	rep.Problems = len(finding.Problems(all))
	rep.OK = rep.Problems == 0
	switch {
	case asJSON:
		writeJSON(stdout, rep)
	case rep.OK:
		fmt.Fprintln(stdout, "all checks passed")
	default:
		fmt.Fprintf(stdout, "%d problem(s) found\n", rep.Problems)
	}
	return findingsExit(all)
}
