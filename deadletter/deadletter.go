package deadletter

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/cdcbridge/cdcbridge/change"
	"github.com/cdcbridge/cdcbridge/checkpoint"
	"github.com/cdcbridge/cdcbridge/config"
)

// Table receives changes whose transform failed, under the deadletter
// policy, in the same transaction as the checkpoint that passes them.
var Table = change.Table{Schema: "cdcbridge", Name: "deadletter"}

const ddl = checkpoint.SchemaDDL + `
CREATE TABLE IF NOT EXISTS cdcbridge.deadletter (
	id           bigserial PRIMARY KEY,
	name         text NOT NULL,
	direction    text NOT NULL,
	lsn          pg_lsn NOT NULL,
	source_table text NOT NULL,
	op           text NOT NULL,
	row          jsonb,
	error        text NOT NULL,
	created_at   timestamptz NOT NULL DEFAULT now()
);`

// Ensure creates the table when missing.
func Ensure(ctx context.Context, conn *pgx.Conn) error {
	if _, err := conn.Exec(ctx, ddl); err != nil {
		return fmt.Errorf("creating cdcbridge.deadletter: %w", err)
	}
	return nil
}

// Row turns a change of mapping m in direction dir whose transform failed
// with cause into a row of Table: the values in their text form, NULL as
// null, unchanged TOASTed values left out; the error without secrets.
func Row(m *config.Mapping, dir config.Direction, ch *change.Change, cause error) (change.Out, error) {
	row := map[string]any{}
	img := ch.New
	if ch.Op == change.Delete {
		img = ch.Old
	}
	if ch.Rel != nil {
		for i, c := range ch.Rel.Columns {
			if i >= len(img) {
				break
			}
			switch img[i].Kind {
			case change.Null:
				row[c.Name] = nil
			case change.Text:
				row[c.Name] = string(img[i].Data)
			}
		}
	}
	b, err := json.Marshal(row)
	if err != nil {
		return change.Out{}, err
	}
	table := ""
	if ch.Rel != nil {
		table = ch.Rel.Table.String()
	}
	return change.Out{
		Op:    change.Insert,
		Table: Table,
		Cols:  []string{"name", "direction", "lsn", "source_table", "op", "row", "error"},
		Vals: []change.Value{
			change.TextValue(m.Name), change.TextValue(dir.String()), change.TextValue(ch.LSN.String()),
			change.TextValue(table), change.TextValue(ch.Op.String()), {Kind: change.Text, Data: b},
			change.TextValue(m.Redact(cause).Error()),
		},
		Source: ch.Rel.Table,
		LSN:    ch.LSN,
	}, nil
}

// FromOut turns a change the side written rejected (mapping name, in
// direction dir) into a row of Table: the values written, by column of the
// target table (for a delete, its key), and the error cause, already
// redacted by the caller.
func FromOut(name string, dir config.Direction, o *change.Out, cause string) change.Out {
	cols, vals := o.Cols, o.Vals
	if o.Op == change.Delete {
		cols, vals = o.KeyCols, o.Key
	}
	row := map[string]any{}
	for i, c := range cols {
		switch vals[i].Kind {
		case change.Null:
			row[c] = nil
		case change.Text:
			row[c] = string(vals[i].Data)
		}
	}
	b, err := json.Marshal(row)
	if err != nil {
		// Values are text and names strings: only invalid UTF-8 could
		// fail, and json.Marshal replaces it instead.
		b = []byte("{}")
	}
	return change.Out{
		Op:    change.Insert,
		Table: Table,
		Cols:  []string{"name", "direction", "lsn", "source_table", "op", "row", "error"},
		Vals: []change.Value{
			change.TextValue(name), change.TextValue(dir.String()), change.TextValue(o.LSN.String()),
			change.TextValue(o.Source.String()), change.TextValue(o.Op.String()), {Kind: change.Text, Data: b},
			change.TextValue(cause),
		},
		Entry:  o.Entry,
		Source: o.Source,
		LSN:    o.LSN,
	}
}
