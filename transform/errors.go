package transform

import (
	"strings"

	"github.com/jackc/pglogrepl"

	"github.com/cdcbridge/cdcbridge/change"
)

// Error is a change that could not be mapped: the script threw, returned
// something unusable, or ran past its time limit, or the change itself
// cannot be mapped without a script (a target key the source does not send).
// Nothing of the change should be applied.
type Error struct {
	Entry  string        // the mapping entry
	Table  change.Table  // the table the change came from
	Key    string        // the source row's identity, e.g. "id=42"
	LSN    pglogrepl.LSN // where the change is in the source's WAL
	Column string        // the column at fault, if one is
	Msg    string
	Stack  string // the JavaScript stack, one frame a line, if the script was running
	Err    error  // the underlying error, if any

	colType string // the column's type, for the message
}

// Error reads on one line, followed by the JavaScript stack when there is one.
func (e *Error) Error() string {
	var b strings.Builder
	if e.Entry != "" {
		b.WriteString(e.Entry)
		b.WriteString(": ")
	}
	if e.Table != (change.Table{}) {
		b.WriteString(e.Table.String())
		if e.Key != "" {
			b.WriteByte(' ')
			b.WriteString(e.Key)
		}
	}
	if e.LSN != 0 {
		b.WriteString(" at ")
		b.WriteString(e.LSN.String())
	}
	if b.Len() > 0 {
		b.WriteString(": ")
	}
	if e.Column != "" {
		b.WriteString("column ")
		b.WriteString(e.Column)
		if e.colType != "" {
			b.WriteString(" (")
			b.WriteString(e.colType)
			b.WriteByte(')')
		}
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	if e.Stack != "" {
		b.WriteByte('\n')
		b.WriteString(e.Stack)
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }
