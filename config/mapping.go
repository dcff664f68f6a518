package config

import (
	"fmt"
	"strings"
	"time"
	"unicode"

	"github.com/cdcbridge/cdcbridge/change"
)

// Mapping is a validated mapping file. Load and Parse return one only when
// the file has no problems at all; the zero value is not useful.
type Mapping struct {
	// Name names the bridge's slots, publications, origins and checkpoint
	// rows. It matches ^[a-z][a-z0-9_]{0,39}$, so every derived name is a
	// valid PostgreSQL identifier without quoting.
	Name string
	// Path is the absolute path of the mapping file.
	Path string
	// Dir is the directory of the mapping file; relative paths in the file
	// resolve against it.
	Dir string
	// Source is the slice that is live before the release (old schema).
	Source Side
	// Target is the new slice (new schema).
	Target Side
	// Tables lists the entries in file order; Entry.Index is the position.
	Tables []Entry
	// OnError says what a stage does with a change it cannot transform or
	// apply. Default PolicyHalt.
	OnError Policy
	// MaxConsecutiveErrors bounds skip and deadletter: once more changes
	// than this fail in a row (no change between them transformed and
	// applied), the direction halts as under halt, so a broken script or
	// target cannot skip a whole table unnoticed. Default 10.
	MaxConsecutiveErrors int
	// TransformTimeout bounds each call of forward() or backward(). Default 5s.
	TransformTimeout time.Duration
	// Batch tunes how the applier groups source transactions.
	Batch Batch
	// Metrics configures the HTTP endpoint for /metrics, /healthz and /readyz.
	Metrics Metrics
	// Fence makes the slice that is not live refuse client writes to the
	// mapped tables (package fence). Default false.
	Fence bool
}

// Side is one database of the bridge.
type Side struct {
	DSN DSN
	// Publication names a publication made beforehand on this side, which
	// the direction reading it uses as it is: the bridge never creates,
	// alters or drops it, and checks that it publishes the tables read.
	// Empty: the bridge uses its own, cdcbridge_<name>_<direction>.
	Publication string
}

// Entry maps one source table to one target table.
type Entry struct {
	// Index is the entry's position in the tables list, from 0.
	Index int
	// Source is the table on the source slice.
	Source change.Table
	// Target is the table on the target slice.
	Target change.Table
	// Transform is the absolute path of the JavaScript file that defines
	// forward() and backward(), or "" for an identity mapping (same column
	// names, values passed through untouched).
	Transform string
	// Key names the key columns of the target table and SourceKey those of
	// the source table, exactly as the catalog spells them: the columns the
	// rows of that table are found by when it is written (the target going
	// forward, the source in reverse). Empty means the table's own key: its
	// primary key, or a unique index on NOT NULL columns. The file's
	// key: [a, b] sets both (the columns have these names on both tables);
	// key: {source: [...], target: [...]} sets each, or one of them.
	Key       []string
	SourceKey []string
	// Line is the line of the entry in the mapping file, for messages.
	Line int
}

// Name describes the entry for messages: tables[1] (public.orders -> public.orders_v2).
func (e Entry) Name() string {
	return fmt.Sprintf("tables[%d] (%s -> %s)", e.Index, displayTable(e.Source), displayTable(e.Target))
}

// Policy says what to do with a change that fails to transform or apply.
type Policy string

const (
	// PolicyHalt stops the direction before the bad change: nothing is
	// skipped, applied or checkpointed past it.
	PolicyHalt Policy = "halt"
	// PolicySkip logs the change and the error, counts it, and goes on.
	PolicySkip Policy = "skip"
	// PolicyDeadletter writes the change and the error to a table on the
	// target, in the same transaction as the changes around it, and goes on.
	PolicyDeadletter Policy = "deadletter"
)

// Batch tunes the applier.
type Batch struct {
	// MaxRows caps the rows of one target transaction. A source transaction
	// is never split, so a larger one is applied alone. Default 5000.
	MaxRows int
	// MaxDelay is how long small source transactions may be held to share
	// one target commit. 0 commits each source transaction on its own.
	// Default 100ms.
	MaxDelay time.Duration
}

// Metrics configures the HTTP endpoint.
type Metrics struct {
	// Listen is host:port for /metrics, /healthz and /readyz; "" disables it.
	Listen string
	// ReadyMaxLag is the lag (cdcbridge_lag_seconds of the live direction)
	// at or past which /readyz answers 503 (default 30s).
	ReadyMaxLag time.Duration
}

// Defaults for the optional settings.
const (
	DefaultTransformTimeout = 5 * time.Second
	// DefaultMaxConsecutiveErrors is MaxConsecutiveErrors when unset.
	DefaultMaxConsecutiveErrors = 10
	DefaultBatchMaxRows         = 5000
	DefaultBatchMaxDelay        = 100 * time.Millisecond
	DefaultReadyMaxLag          = 30 * time.Second
)

// Redact returns err with the passwords and connection strings of both sides
// replaced by xxxxx in its message. The result still unwraps to err.
func (m *Mapping) Redact(err error) error {
	return redactErr(err, m.secrets())
}

// RedactString replaces the passwords and connection strings of both sides
// in s by xxxxx.
func (m *Mapping) RedactString(s string) string {
	return redact(s, m.secrets())
}

func (m *Mapping) secrets() []string {
	return sortSecrets(append(m.Source.DSN.secrets(), m.Target.DSN.secrets()...))
}

// DisplayTable writes a table name the way a user would type it in the
// mapping file: parts are quoted only when they need to be.
func DisplayTable(t change.Table) string { return displayTable(t) }

func displayTable(t change.Table) string {
	return displayIdent(t.Schema) + "." + displayIdent(t.Name)
}

func displayIdent(s string) string {
	plain := s != ""
	for i, r := range s {
		switch {
		case r == '_' || (r >= 'a' && r <= 'z'):
		case (r >= '0' && r <= '9') || r == '$':
			plain = plain && i > 0
		case r > unicode.MaxASCII && !unicode.IsUpper(r) && unicode.IsLetter(r):
		default:
			plain = false
		}
	}
	if plain {
		return s
	}
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}
