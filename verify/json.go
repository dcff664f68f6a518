package verify

import (
	"encoding/json"

	"github.com/cdcbridge/cdcbridge/config"
	"github.com/cdcbridge/cdcbridge/mappingtest"
)

// The JSON forms of the reports, for scripts (cdcbridge verify --json):
// snake_case keys, tables as a user writes them in the mapping
// (schema.table), keys and values as the text report shows them (SQL
// literals), and every list present, empty rather than null.

type reportJSON struct {
	Mode      string      `json:"mode"` // "compare"
	Mapping   string      `json:"mapping"`
	Direction string      `json:"direction"`
	ReadSide  string      `json:"read_side"`
	WriteSide string      `json:"write_side"`
	Equal     bool        `json:"equal"`
	Tables    []tableJSON `json:"tables"`
	Rechecks  int         `json:"rechecks"`
	Transient int64       `json:"transient"`
	Daemon    bool        `json:"daemon"`
	Lagging   bool        `json:"lagging"`
}

type tableJSON struct {
	Table         string           `json:"table"`
	Equal         bool             `json:"equal"`
	Compared      int64            `json:"compared"`
	Rows          int64            `json:"rows"`
	Missing       int64            `json:"missing"`
	Extra         int64            `json:"extra"`
	Different     int64            `json:"different"`
	Examples      []differenceJSON `json:"examples"`
	Unsettled     int64            `json:"unsettled"`
	UnsettledKeys []string         `json:"unsettled_keys"`
	Notes         []string         `json:"notes"`
}

type differenceJSON struct {
	Kind    string       `json:"kind"` // missing, extra or different
	Key     string       `json:"key"`
	From    string       `json:"from,omitempty"`
	Columns []columnJSON `json:"columns,omitempty"`
	Note    string       `json:"note,omitempty"`
}

type columnJSON struct {
	Column string `json:"column"`
	Want   string `json:"want"`
	Got    string `json:"got"`
}

// MarshalJSON is the report for scripts: {"mode": "compare", "mapping",
// "direction", "read_side", "write_side", "equal", "tables": [{"table",
// "equal", "compared", "rows", "missing", "extra", "different",
// "examples": [{"kind", "key", "from", "columns": [{"column", "want",
// "got"}], "note"}], "unsettled", "unsettled_keys", "notes"}], "rechecks",
// "transient", "daemon", "lagging"}.
func (r Report) MarshalJSON() ([]byte, error) {
	j := reportJSON{Mode: "compare", Mapping: r.Mapping, Direction: r.Direction.String(), ReadSide: r.ReadSide, WriteSide: r.WriteSide,
		Equal: r.Equal(), Tables: []tableJSON{}, Rechecks: r.Rechecks, Transient: r.Transient, Daemon: r.Daemon, Lagging: r.Lagging}
	for _, t := range r.Tables {
		tj := tableJSON{Table: config.DisplayTable(t.Table), Equal: t.Equal(), Compared: t.Compared, Rows: t.Rows,
			Missing: t.Missing, Extra: t.Extra, Different: t.Different, Examples: []differenceJSON{},
			Unsettled: t.Unsettled, UnsettledKeys: nonNil(t.UnsettledKeys), Notes: nonNil(t.Notes)}
		for _, d := range t.Examples {
			tj.Examples = append(tj.Examples, differenceJSON{Kind: d.Kind.String(), Key: d.Key, From: d.From, Columns: columnsJSON(d.Columns), Note: d.Note})
		}
		j.Tables = append(j.Tables, tj)
	}
	return json.Marshal(j)
}

type roundTripJSON struct {
	Mode      string               `json:"mode"` // "roundtrip"
	Mapping   string               `json:"mapping"`
	Direction string               `json:"direction"`
	OK        bool                 `json:"ok"`
	Tables    []roundTripTableJSON `json:"tables"`
}

type roundTripTableJSON struct {
	Side     string         `json:"side"`
	Table    string         `json:"table"`
	Via      string         `json:"via"`
	Rows     int64          `json:"rows"`
	Failed   int64          `json:"failed"`
	Examples []mismatchJSON `json:"examples"`
}

type mismatchJSON struct {
	Key     string       `json:"key"`
	Columns []columnJSON `json:"columns"`
}

// MarshalJSON is the report for scripts: {"mode": "roundtrip", "mapping",
// "direction", "ok", "tables": [{"side", "table", "via", "rows",
// "failed", "examples": [{"key", "columns": [{"column", "want" (the
// row's value), "got" (what came back)}]}]}]}.
func (r RoundTripReport) MarshalJSON() ([]byte, error) {
	j := roundTripJSON{Mode: "roundtrip", Mapping: r.Mapping, Direction: r.Direction.String(), OK: r.OK(), Tables: []roundTripTableJSON{}}
	for _, t := range r.Tables {
		tj := roundTripTableJSON{Side: t.Side, Table: config.DisplayTable(t.Table), Via: t.Via, Rows: t.Rows, Failed: t.Failed, Examples: []mismatchJSON{}}
		for _, mm := range t.Examples {
			tj.Examples = append(tj.Examples, mismatchJSON{Key: mm.Key, Columns: columnsJSON(mm.Columns)})
		}
		j.Tables = append(j.Tables, tj)
	}
	return json.Marshal(j)
}

func columnsJSON(cs []mappingtest.ColumnDiff) []columnJSON {
	out := make([]columnJSON, len(cs))
	for i, c := range cs {
		out[i] = columnJSON{Column: c.Name, Want: c.Want, Got: c.Got}
	}
	return out
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
