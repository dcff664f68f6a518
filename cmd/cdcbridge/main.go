package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/cdcbridge/cdcbridge/check"
	"github.com/cdcbridge/cdcbridge/config"
	"github.com/cdcbridge/cdcbridge/daemon"
	"github.com/cdcbridge/cdcbridge/finding"
	"github.com/cdcbridge/cdcbridge/flip"
	"github.com/cdcbridge/cdcbridge/metrics"
	"github.com/cdcbridge/cdcbridge/pipeline"
)

// Exit codes.
const (
	exitOK      = 0
	exitFinding = 1 // a finding or a runtime failure
	exitUsage   = 2 // usage or configuration error
)

const usage = `cdcbridge keeps two PostgreSQL databases with different schemas in step
during a blue-green release: it tails one side's WAL through logical
replication, runs each change through the mapping's JavaScript transforms,
and applies it to the other side, exactly once.

Usage:
  cdcbridge run    -c mapping.yaml [--reverse]   run the daemon
  cdcbridge check  -c mapping.yaml [--reverse]   check config, connectivity, wal_level,
                                                 privileges, keys and columns; stream nothing
  cdcbridge flip   -c mapping.yaml [--include-target-writes|--discard-target-writes]
                                                 hand traffic over: the other direction becomes live
  cdcbridge status -c mapping.yaml [--json]      live direction, flip point, slots, checkpoints, lag
  cdcbridge cleanup -c mapping.yaml              drop the slots, publications, origins and state it made
  cdcbridge verify -c mapping.yaml [--reverse] [--roundtrip]
                                                 compare the sides key by key; --roundtrip proves
                                                 the mapping lossless
  cdcbridge record -c mapping.yaml --out FILE [--duration D] [--reverse]
                                                 record a WAL fixture from a temporary slot
  cdcbridge test   -c mapping.yaml FIXTURE... [--update] [--reverse]
                                                 run the transforms over fixtures: golden files
                                                 and backward(forward(row)) == row
  cdcbridge help [command]

Run "cdcbridge <command> --help" for the flags of a command.
Exit codes: 0 ok, 1 a finding or a runtime failure, 2 usage or configuration error.
`

func main() {
	os.Exit(Main(os.Args[1:], os.Stdout, os.Stderr))
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
		if len(rest) > 0 {
			return Main([]string{rest[0], "--help"}, stdout, stderr)
		}
		fmt.Fprint(stdout, usage)
		return exitOK
	case "run":
		return cmdRun(rest, stdout, stderr)
	case "check":
		return cmdCheck(rest, stdout, stderr)
	case "record":
		return cmdRecord(rest, stdout, stderr)
	case "test":
		return cmdTest(rest, stdout, stderr)
	case "flip":
		return cmdFlip(rest, stdout, stderr)
	case "verify":
		return cmdVerify(rest, stdout, stderr)
	case "status":
		return cmdStatus(rest, stdout, stderr)
	case "cleanup":
		return cmdCleanup(rest, stdout, stderr)
	}
	fmt.Fprintf(stderr, "cdcbridge: unknown command %q\n\n%s", cmd, usage)
	return exitUsage
}

// common holds the flags every command shares.
type common struct {
	config    string
	logFormat string
	logLevel  string
}

func newFlags(name, synopsis string, stderr io.Writer, c *common) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.config, "c", "", "the mapping file (YAML)")
	fs.StringVar(&c.config, "config", "", "the mapping file (same as -c)")
	fs.StringVar(&c.logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&c.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: cdcbridge %s\n\nFlags:\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses flags; it returns an exit code when the command must stop.
func parse(fs *flag.FlagSet, args []string, c *common, stdout io.Writer) (int, bool) {
	return parseArgs(fs, args, c, false)
}

// parseArgs parses flags placed before, between or after positional
// arguments.
func parseArgs(fs *flag.FlagSet, args []string, c *common, positional bool) (int, bool) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return exitOK, false
			}
			return exitUsage, false
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
		fmt.Fprintf(fs.Output(), "cdcbridge %s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		fs.Usage()
		return exitUsage, false
	}
	if c.config == "" {
		fmt.Fprintf(fs.Output(), "cdcbridge %s: the mapping file is required: -c mapping.yaml\n", fs.Name())
		return exitUsage, false
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

// signalContext is the context of a command's work: it ends on SIGINT or
// SIGTERM, so that an operator's interrupt stops the command cleanly.
func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
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
	fs := newFlags("run", "run -c mapping.yaml [--reverse]\n\nRuns the daemon: streams every committed change of the live side to the other\nside through the mapping's transforms, with an exactly-once checkpoint. Forward\nreads the mapping's source and calls forward(); --reverse reads the target and\ncalls backward(). On the first start of a direction it copies every mapped table,\nas of the new slot's snapshot and through the transform, into the (empty) tables\nof the side written, then streams from the snapshot's point: nothing is missed or\napplied twice across the hand-off. SIGINT or SIGTERM stops it cleanly.", stderr, &c)
	fs.BoolVar(&reverse, "reverse", false, "run target -> source with backward()")
	var quiet time.Duration
	fs.DurationVar(&quiet, "quiet-period", 10*time.Second, "after a flip, how long the old live side must take no writes before its direction stops draining and is armed")
	var gap int64
	fs.Int64Var(&gap, "sequence-gap", flip.DefaultSequenceGap, "at a flip, how far past the old live side's sequences to set the new live side's, clearing the ids the old side may still hand out while traffic moves (0: none)")
	var skipCopy bool
	fs.BoolVar(&skipCopy, "skip-copy", false, "on a first start, do not copy the existing rows (the side written already holds them); stream from now")
	var pprofAddr string
	fs.StringVar(&pprofAddr, "pprof", "", "serve Go's profiler (/debug/pprof/) on this address, e.g. localhost:6060; off when empty")
	if code, ok := parse(fs, args, &c, stdout); !ok {
		return code
	}
	log, m, code, ok := open("run", &c, stderr)
	if !ok {
		return code
	}
	if err := check.CheckScripts(m); err != nil {
		fmt.Fprintf(stderr, "cdcbridge run: %v\n", err)
		return exitUsage
	}
	tuneGC()
	ctx, stop := signalContext()
	defer stop()
	health := &metrics.Health{MaxLag: m.Metrics.ReadyMaxLag}
	reg, met := metrics.NewDefault(m.Name, health)
	if m.Metrics.Listen != "" {
		addr, err := metrics.Serve(ctx, m.Metrics.Listen, reg, health)
		if err != nil {
			fmt.Fprintf(stderr, "cdcbridge run: metrics.listen %s: %v\n", m.Metrics.Listen, err)
			return exitUsage
		}
		log.Info("serving /metrics, /healthz and /readyz", "addr", addr.String())
	}
	if pprofAddr != "" {
		addr, err := servePprof(ctx, pprofAddr)
		if err != nil {
			fmt.Fprintf(stderr, "cdcbridge run: --pprof %s: %v\n", pprofAddr, err)
			return exitUsage
		}
		log.Info("serving Go's profiler on /debug/pprof/", "addr", addr.String())
	}
	seqGap := gap
	if gap <= 0 {
		seqGap = -1 // none; 0 in daemon.Options means the default
	}
	err := daemon.Run(ctx, daemon.Options{
		Options: pipeline.Options{Mapping: m, Logger: log, Metrics: met, Health: health, SkipCopy: skipCopy},
		Reverse: reverse, Quiet: quiet, SequenceGap: seqGap,
	})
	if err != nil {
		// Printed once, plainly: a list of findings stays readable, which a
		// quoted log attribute would not be.
		fmt.Fprintf(stderr, "cdcbridge run: %v\n", m.Redact(err))
		var ce *finding.ConfigError
		if errors.As(err, &ce) {
			return exitUsage
		}
		return exitFinding
	}
	return exitOK
}

func cmdCheck(args []string, stdout, stderr io.Writer) int {
	var c common
	var reverse bool
	fs := newFlags("check", "check -c mapping.yaml [--reverse]\n\nRuns every up-front check of both directions without streaming: the mapping file,\nthe transform scripts, connectivity to both sides, wal_level, privileges,\nreplica identity, tables, keys and columns, and the checkpoint and slot. It\nprints each finding and exits 0 when all pass, 2 otherwise.", stderr, &c)
	fs.BoolVar(&reverse, "reverse", false, "check only the reverse direction (target -> source); by default both are checked")
	m, code, ok := parseLoad(fs, args, &c, stdout, stderr)
	if !ok {
		return code
	}
	fmt.Fprintf(stdout, "ok   mapping %s: %d table entries\n", m.Path, len(m.Tables))
	ctx, stop := signalContext()
	defer stop()
	// The daemon runs both directions (one live, one armed), so both are
	// checked unless --reverse asks for the reverse one alone.
	dirs := []config.Direction{config.Forward, config.Reverse}
	if reverse {
		dirs = dirs[1:]
	}
	failed := 0
	for _, dir := range dirs {
		fmt.Fprintf(stdout, "-- %s\n", dir)
		for _, f := range check.Check(ctx, m.View(dir)) {
			if !f.OK {
				failed++
			}
			fmt.Fprintln(stdout, m.RedactString(f.String()))
		}
	}
	if failed > 0 {
		fmt.Fprintf(stdout, "%d problem(s) found\n", failed)
		return exitUsage
	}
	fmt.Fprintln(stdout, "all checks passed")
	return exitOK
}
