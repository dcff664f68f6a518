package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/cdcbridge/cdcbridge/change"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

const canary = "Canary-pw-7f3a9c"

// testEnv is the environment the table tests see.
var testEnv = map[string]string{
	"GREEN_DSN":      "postgres://alice:" + canary + "@green.internal:5432/shop",
	"BLUE_DSN":       "host=blue.internal port=6432 user=bob password='" + canary + "' dbname=shop",
	"GREEN_PASSWORD": canary,
	"BLUE_PASSWORD":  canary,
	"EMPTY":          "",
	"DOLLARS":        "a${B}$$c",
	"TRANSFORM":      "transforms/orders.js",
}

func lookupIn(env map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	}
}

// writeFiles creates files (path relative to dir -> contents) and returns dir.
func writeFiles(t testing.TB, dir string, files map[string]string) string {
	t.Helper()
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// problems splits a joined error into its messages.
func problems(err error) []string {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []string
		for _, e := range j.Unwrap() {
			out = append(out, e.Error())
		}
		return out
	}
	return []string{err.Error()}
}

const head = `name: shop
source:
  dsn: ${GREEN_DSN}
target:
  dsn: ${BLUE_DSN}
`

func TestParseValid(t *testing.T) {
	pub := func(n string) change.Table { return change.Table{Schema: "public", Name: n} }
	cases := []struct {
		name  string
		yaml  string
		files map[string]string
		check func(t *testing.T, dir string, m *Mapping)
	}{
		{
			name: "minimal with defaults",
			yaml: head + "tables:\n  - source: orders\n    target: public.orders_v2\n",
			check: func(t *testing.T, dir string, m *Mapping) {
				want := Mapping{
					Name: "shop", Path: filepath.Join(dir, "mapping.yaml"), Dir: dir,
					OnError: PolicyHalt, MaxConsecutiveErrors: 10, TransformTimeout: 5 * time.Second,
					Batch:   Batch{MaxRows: 5000, MaxDelay: 100 * time.Millisecond},
					Metrics: Metrics{ReadyMaxLag: 30 * time.Second},
				}
				got := *m
				got.Source, got.Target, got.Tables = Side{}, Side{}, nil
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("got  %+v\nwant %+v", got, want)
				}
				if len(m.Tables) != 1 {
					t.Fatalf("tables: %+v", m.Tables)
				}
				e := m.Tables[0]
				if e.Source != pub("orders") || e.Target != pub("orders_v2") || e.Transform != "" || e.Key != nil || e.Line != 7 || e.Index != 0 {
					t.Errorf("entry: %+v", e)
				}
				if m.Metrics.Listen != "" {
					t.Errorf("metrics on by default: %q", m.Metrics.Listen)
				}
				if m.Fence {
					t.Error("fence on by default")
				}
			},
		},
		{
			name: "every setting",
			yaml: head + `tables:
  - {source: a, target: b, key: [tenant_id, id]}
  - {source: a, target: c, key: {source: [id], target: [order_id]}}
  - source: a
    target: d
    key:
      source: [code]
on_error: skip
max_consecutive_errors: 3
transform_timeout: 1m30s
batch: {max_rows: 10, max_delay: 0}
metrics: {listen: "[::1]:9632", ready_max_lag: 2m}
fence: true
`,
			check: func(t *testing.T, _ string, m *Mapping) {
				if m.OnError != PolicySkip || m.MaxConsecutiveErrors != 3 || m.TransformTimeout != 90*time.Second ||
					m.Batch != (Batch{MaxRows: 10}) || m.Metrics != (Metrics{Listen: "[::1]:9632", ReadyMaxLag: 2 * time.Minute}) || !m.Fence {
					t.Errorf("settings: %+v", m)
				}
				if e := m.Tables[0]; !slices.Equal(e.Key, []string{"tenant_id", "id"}) || !slices.Equal(e.SourceKey, e.Key) ||
					!slices.Equal(e.WriteKey(Forward), e.Key) || !slices.Equal(e.WriteKey(Reverse), e.SourceKey) {
					t.Errorf("key: target %q source %q", e.Key, e.SourceKey)
				}
				if e := m.Tables[1]; !slices.Equal(e.Key, []string{"order_id"}) || !slices.Equal(e.SourceKey, []string{"id"}) {
					t.Errorf("key by table: target %q source %q", e.Key, e.SourceKey)
				}
				if e := m.Tables[2]; e.Key != nil || !slices.Equal(e.SourceKey, []string{"code"}) || e.WriteKey(Forward) != nil {
					t.Errorf("source key only: target %q source %q", e.Key, e.SourceKey)
				}
			},
		},
		{
			name: "quoted, mixed-case and unicode table names",
			yaml: head + `tables:
  - source: '"Sales"."Order Items"'
    target: Sales.OrderItems
  - source: '"My Schema"."Order.Items"'
    target: café.menü
  - source: '"Ünïcode"."Ta""ble"'
    target: '"日本"."表"'
`,
			check: func(t *testing.T, _ string, m *Mapping) {
				want := [][2]change.Table{
					{{Schema: "Sales", Name: "Order Items"}, {Schema: "sales", Name: "orderitems"}},
					{{Schema: "My Schema", Name: "Order.Items"}, {Schema: "café", Name: "menü"}},
					{{Schema: "Ünïcode", Name: `Ta"ble`}, {Schema: "日本", Name: "表"}},
				}
				for i, w := range want {
					if got := [2]change.Table{m.Tables[i].Source, m.Tables[i].Target}; got != w {
						t.Errorf("tables[%d] = %q, want %q", i, got, w)
					}
				}
				if got, want := m.Tables[0].Name(), `tables[0] ("Sales"."Order Items" -> sales.orderitems)`; got != want {
					t.Errorf("Name() = %s, want %s", got, want)
				}
				if got, want := m.Tables[2].Name(), `tables[2] ("Ünïcode"."Ta""ble" -> 日本.表)`; got != want {
					t.Errorf("Name() = %s, want %s", got, want)
				}
			},
		},
		{
			name: "environment expansion, $$ and values not expanded twice",
			yaml: `name: ${NAME_PART}_x
source: {dsn: "${GREEN_DSN}"}
target:
  dsn: host=blue user=bob password=pa$$word$x${EMPTY} dbname=${DOLLARS}
tables:
  - source: ${SCHEMA}.t
    target: t
transform_timeout: ${TIMEOUT}
batch: {max_rows: "${ROWS}"}
`,
			check: func(t *testing.T, _ string, m *Mapping) {
				if m.Name != "shop_x" {
					t.Errorf("name %q", m.Name)
				}
				if got := m.Target.DSN.ConnString(); got != "host=blue user=bob password=pa$word$x dbname=a${B}$$c" {
					t.Errorf("target dsn %q", got)
				}
				if m.Target.DSN.Password() != "pa$word$x" {
					t.Errorf("password %q", m.Target.DSN.Password())
				}
				if m.Source.DSN.ConnString() != testEnv["GREEN_DSN"] {
					t.Errorf("source dsn %q", m.Source.DSN.ConnString())
				}
				if m.Tables[0].Source != (change.Table{Schema: "sales", Name: "t"}) {
					t.Errorf("source %v", m.Tables[0].Source)
				}
				if m.TransformTimeout != 2*time.Second || m.Batch.MaxRows != 7 {
					t.Errorf("timeout %v rows %d", m.TransformTimeout, m.Batch.MaxRows)
				}
			},
		},
		{
			name:  "transform paths resolve against the mapping file's directory",
			files: map[string]string{"transforms/orders.js": "function forward(r){return r}", "abs.js": ""},
			yaml: head + `tables:
  - {source: a, target: b, transform: transforms/orders.js}
  - {source: a, target: c, transform: ./transforms/../transforms/orders.js}
  - {source: a, target: d, transform: "${TRANSFORM}"}
  - {source: a, target: e, transform: ABS}
`,
			check: func(t *testing.T, dir string, m *Mapping) {
				want := filepath.Join(dir, "transforms", "orders.js")
				for _, e := range m.Tables[:3] {
					if e.Transform != want {
						t.Errorf("%s: transform %q, want %q", e.Name(), e.Transform, want)
					}
				}
				if got := m.Tables[3].Transform; got != filepath.Join(dir, "abs.js") {
					t.Errorf("absolute transform %q", got)
				}
			},
		},
		{
			name: "split and merge",
			yaml: head + `tables:
  - {source: people, target: contacts}
  - {source: people, target: accounts}
  - {source: addresses, target: contacts}
`,
			check: func(t *testing.T, _ string, m *Mapping) {
				if len(m.Tables) != 3 {
					t.Errorf("tables %+v", m.Tables)
				}
			},
		},
		{
			name: "anchors and aliases",
			yaml: `name: shop
source: &db
  dsn: ${GREEN_DSN}
target: *db
tables:
  - &t {source: a, target: b}
`,
			check: func(t *testing.T, _ string, m *Mapping) {
				if m.Target.DSN != m.Source.DSN || len(m.Tables) != 1 {
					t.Errorf("%+v", m)
				}
			},
		},
		{
			name: "null optional settings keep their defaults",
			yaml: head + "tables: [{source: a, target: b, transform: ~}]\non_error:\nbatch:\nmetrics: {listen: \"\"}\n",
			check: func(t *testing.T, _ string, m *Mapping) {
				if m.OnError != PolicyHalt || m.Batch.MaxRows != DefaultBatchMaxRows || m.Tables[0].Transform != "" {
					t.Errorf("%+v", m)
				}
			},
		},
	}
	env := map[string]string{"NAME_PART": "shop", "SCHEMA": "Sales", "TIMEOUT": "2s", "ROWS": "7"}
	for k, v := range testEnv {
		env[k] = v
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := writeFiles(t, t.TempDir(), tc.files)
			src := strings.ReplaceAll(tc.yaml, "ABS", filepath.Join(dir, "abs.js"))
			m, err := parse(filepath.Join(dir, "mapping.yaml"), []byte(src), lookupIn(env))
			if err != nil {
				t.Fatalf("unexpected error:\n%v\ninput:\n%s", err, src)
			}
			tc.check(t, dir, m)
		})
	}
}

func TestParseErrors(t *testing.T) {
	cases := []struct {
		name  string
		yaml  string
		files map[string]string
		// want holds, for each problem in order, the start of its message
		// after "FILE:": position, field path, text.
		want []string
	}{
		{
			name: "unset environment variable",
			yaml: "name: shop\nsource:\n  dsn: ${BLUE_DSN}\ntarget:\n  dsn: ${GREEN_DSN_TYPO}\ntables: [{source: a, target: b}]\n",
			want: []string{"5:8: target.dsn: environment variable GREEN_DSN_TYPO is not set; export it or write the DSN here"},
		},
		{
			name: "malformed references",
			yaml: head + "tables: [{source: '${A:-x}.t', target: \"${}\"}]\non_error: ${NOPE\n",
			want: []string{
				"6:19: tables[0].source: ${A:-x} is not a variable reference; only ${NAME} is supported",
				"6:40: tables[0].target: ${} is not a variable reference;",
				"7:11: on_error: a ${ has no closing }; write ${NAME}, or $$ for a literal $",
			},
		},
		{
			name: "empty file",
			yaml: "# nothing yet\n",
			want: []string{"1:1: the file is empty; a mapping file needs at least name, source, target and tables"},
		},
		{
			name: "syntax error names the line",
			yaml: "name: shop\nsource:\n  dsn: x\n bad: [\n",
			want: []string{"4: invalid YAML: "},
		},
		{
			name: "unquoted ${} in a flow mapping",
			yaml: "name: shop\nsource: {dsn: ${GREEN_DSN}}\n",
			want: []string{`2: invalid YAML: did not find expected ',' or '}'; inside { } or [ ] quote values that use ${...}, e.g. {dsn: "${GREEN_DSN}"}`},
		},
		{
			name: "tab indentation",
			yaml: "name: shop\nsource:\n\tdsn: x\n",
			want: []string{"3: invalid YAML: found character that cannot start any token; indent with spaces: YAML does not allow tabs"},
		},
		{
			name: "unknown anchor",
			yaml: "name: shop\nsource: *green\n",
			want: []string{"2: invalid YAML: unknown anchor 'green' referenced; define the anchor with &green"},
		},
		{
			name: "not a mapping",
			yaml: "- name: shop\n",
			want: []string{"1:1: the file holds a list; a mapping file is a mapping of name, source, target and tables"},
		},
		{
			name: "two documents",
			yaml: head + "tables: [{source: a, target: b}]\n---\nname: other\n",
			want: []string{"7:1: a second YAML document starts here; a mapping file holds one document"},
		},
		{
			name: "every required field missing, reported together",
			yaml: "on_error: halt\n",
			want: []string{
				"1:1: name: missing; add one, e.g. name: shop",
				"1:1: source: missing; add source: with dsn: ${GREEN_DSN} under it",
				"1:1: target: missing; add target: with dsn: ${BLUE_DSN} under it",
				"1:1: tables: missing; list at least one entry",
			},
		},
		{
			name: "three mistakes give three errors",
			yaml: head + "tables:\n  - source: a\n    target: b\n    trasform: x.js\non_error: stop\nbatch: {max_rows: 0}\n",
			want: []string{
				"9:5: tables[0].trasform: unknown key; did you mean transform? (keys here: source, target, transform, key)",
				`10:11: on_error: "stop" is not an error policy; use halt (stop before the bad change), skip or deadletter`,
				"11:19: batch.max_rows: must be at least 1;",
			},
		},
		{
			name: "max_consecutive_errors must be a whole number of at least 1",
			yaml: head + "tables: [{source: a, target: b}]\non_error: skip\nmax_consecutive_errors: 0\n",
			want: []string{"8:25: max_consecutive_errors: must be at least 1"},
		},
		{
			name: "unknown keys at every level",
			yaml: "name: shop\nsource:\n  dsn: ${GREEN_DSN}\n  password: x\ntarget:\n  dsn: ${BLUE_DSN}\ntables: [{source: a, target: b}]\nbatch: {max_row: 1}\nmetrics: {listen: ':1', path: /m}\nversion: 2\n",
			want: []string{
				"4:3: source.password: unknown key; connection settings belong in the DSN: put password in the dsn string",
				"8:9: batch.max_row: unknown key; did you mean max_rows?",
				"9:25: metrics.path: unknown key; remove it (keys here: listen, ready_max_lag)",
				"10:1: version: unknown key; remove it (keys here: name, source, target, tables, on_error, max_consecutive_errors, transform_timeout, batch, metrics, fence)",
			},
		},
		{
			name: "repeated key",
			yaml: head + "tables: [{source: a, target: b}]\nname: again\n",
			want: []string{"7:1: name: repeated key (first on line 1); keep one"},
		},
		{
			name: "merge keys",
			yaml: "name: shop\nsource: &s {dsn: x}\ntarget:\n  <<: *s\ntables: [{source: a, target: b}]\n",
			want: []string{
				"2:18: source.dsn: not a valid connection string:",
				"4:3: target: merge keys (<<) are not supported; write the keys out",
				"4:3: target.dsn: missing;",
			},
		},
		{
			name: "wrong types",
			yaml: "name: {a: b}\nsource: postgres://u@h/db\ntarget:\n  dsn: [a, b]\ntables:\n  source: a\n",
			want: []string{
				"1:7: name: expected a single value, got a mapping; write it as name: shop",
				"2:9: source: expected a mapping, got a string; write it as a mapping with dsn: ${GREEN_DSN} under source:",
				"4:8: target.dsn: expected a single value, got a list; write it as dsn: ${BLUE_DSN}",
				"6:3: tables: expected a list of entries, got a mapping;",
			},
		},
		{
			name: "bad name",
			yaml: strings.Replace(head, "name: shop", "name: Shop-Prod", 1) + "tables: [{source: a, target: b}]\n",
			want: []string{`1:7: name: "Shop-Prod" is not a valid name; use 1 to 40 lower-case letters, digits and underscores, starting with a letter`},
		},
		{
			name: "name too long for slot names",
			yaml: strings.Replace(head, "name: shop", "name: "+strings.Repeat("a", 41), 1) + "tables: [{source: a, target: b}]\n",
			want: []string{`1:7: name: "` + strings.Repeat("a", 41) + `" is not a valid name`},
		},
		{
			name: "empty values",
			yaml: "name:\nsource:\n  dsn: ${EMPTY}\ntarget:\ntables:\n",
			want: []string{
				"1:6: name: empty; add one",
				"3:8: source.dsn: empty; write a libpq URL",
				"4:8: target: empty; add target: with dsn: ${BLUE_DSN} under it",
				"5:8: tables: empty; list at least one entry",
			},
		},
		{
			name: "empty tables list",
			yaml: head + "tables: []\n",
			want: []string{"6:9: tables: the list is empty; list at least one entry, each a mapping with source and target"},
		},
		{
			name: "bad entries",
			yaml: head + "tables:\n  - public.orders\n  - {source: a}\n  - {target: b, source: 'x.y.z'}\n  - {source: '\"A', target: ''}\n",
			want: []string{
				"7:5: tables[0]: expected a mapping, got a string; write it as {source: public.orders, target: public.orders_v2}",
				"8:5: tables[1].target: missing; name the target table, e.g. target: public.orders",
				`9:25: tables[2].source: table name "x.y.z": want schema.table or table; write schema.table or table (schema public), double-quote parts`,
				`10:14: tables[3].source: table name "\"A": unterminated quote;`,
				`10:28: tables[3].target: table name "": empty part;`,
			},
		},
		{
			name: "duplicate entries",
			yaml: head + `tables:
  - {source: public.a, target: b}
  - {source: c, target: b}
  - {source: a, target: public.b}
  - {source: a, target: b, transform: t.js}
`,
			files: map[string]string{"t.js": ""},
			want: []string{
				"9:5: tables[2]: repeats tables[0] (public.a -> public.b) from line 7; remove one of them",
				"10:5: tables[3]: writes public.b from public.a, like tables[0] (public.a -> public.b) on line 7; one source table writes a target table through one entry",
			},
		},
		{
			name:  "transform files",
			files: map[string]string{"dir.js/x": "", "ok.js": ""},
			yaml: head + `tables:
  - {source: a, target: b, transform: missing.js}
  - {source: a, target: c, transform: dir.js}
  - {source: a, target: d, transform: ""}
  - {source: a, target: e, transform: [ok.js]}
`,
			want: []string{
				"7:39: tables[0].transform: missing.js does not exist (looked for DIR/missing.js); paths are relative to the mapping file's directory DIR",
				"8:39: tables[1].transform: DIR/dir.js is a directory; name the .js file",
				"9:39: tables[2].transform: empty; name the .js file that defines forward() and backward(), or remove the key",
				"10:39: tables[3].transform: expected a single value, got a list; write it as transform: transforms/orders.js",
			},
		},
		{
			name: "keys",
			yaml: head + "tables:\n  - {source: a, target: b, key: []}\n  - {source: a, target: c, key: id}\n  - {source: a, target: d, key: [id, '', id, {x: y}]}\n",
			want: []string{
				"7:33: tables[0].key: expected a list of column names, got an empty list; write key: [id] (or [tenant_id, id]) for columns that both tables have, or key: {source: [id], target: [order_id]}",
				"8:33: tables[1].key: expected a list of column names, got a string;",
				"9:38: tables[2].key[1]: empty column name;",
				"9:42: tables[2].key[2]: column id is listed twice; list each key column once",
				"9:46: tables[2].key[3]: expected a single value, got a mapping;",
			},
		},
		{
			name: "keys by table",
			yaml: head + "tables:\n  - {source: a, target: b, key: {}}\n  - {source: a, target: c, key: {source: [id], targte: [id]}}\n  - {source: a, target: d, key: {target: id, source: [x, x]}}\n  - {source: a, target: e, key: {source: null}}\n",
			want: []string{
				"7:33: tables[0].key: empty; write key: [id] (or [tenant_id, id]) for columns that both tables have, or key: {source: [id], target: [order_id]} for each table's own (either may be left out)",
				"8:48: tables[1].key.targte: unknown key; did you mean target? (keys here: source, target)",
				"9:42: tables[2].key.target: expected a list of column names, got a string;",
				"9:58: tables[2].key.source[1]: column x is listed twice; list each key column once",
				"10:42: tables[3].key.source: expected a list of column names, got nothing;",
			},
		},
		{
			name: "durations and numbers",
			yaml: head + "tables: [{source: a, target: b}]\ntransform_timeout: 0s\nbatch:\n  max_rows: 1e3\n  max_delay: soon\n",
			want: []string{
				"7:20: transform_timeout: must be greater than zero; every transform call needs a time limit",
				`9:13: batch.max_rows: "1e3" is not a whole number; write e.g. max_rows: 5000`,
				`10:14: batch.max_delay: "soon" is not a duration; write a number with a unit (ms, s, m, h), e.g. max_delay: 100ms`,
			},
		},
		{
			name: "a duration without a unit",
			yaml: head + "tables: [{source: a, target: b}]\ntransform_timeout: 5\n",
			want: []string{`7:20: transform_timeout: "5" is not a duration; write a number with a unit (ms, s, m, h), e.g. transform_timeout: 5s`},
		},
		{
			name: "fence not a boolean",
			yaml: head + "tables: [{source: a, target: b}]\nfence: yes\n",
			want: []string{`7:8: fence: "yes" is not true or false; write fence: true (the slice that is not live refuses client writes to the mapped tables) or fence: false`},
		},
		{
			name: "fence a list",
			yaml: head + "tables: [{source: a, target: b}]\nfence: [true]\n",
			want: []string{`7:8: fence: expected a single value, got a list; write it as fence: true`},
		},
		{
			name: "metrics listen",
			yaml: head + "tables: [{source: a, target: b}]\nmetrics:\n  listen: localhost\n",
			want: []string{`8:11: metrics.listen: "localhost" is not host:port; write e.g. listen: 127.0.0.1:9632`},
		},
		{
			name: "metrics ready_max_lag",
			yaml: head + "tables: [{source: a, target: b}]\nmetrics:\n  listen: 127.0.0.1:9632\n  ready_max_lag: 30\n",
			want: []string{`9:18: metrics.ready_max_lag: "30" is not a duration; write a number with a unit (ms, s, m, h), e.g. ready_max_lag: 30s`},
		},
		{
			name: "metrics ready_max_lag not positive",
			yaml: head + "tables: [{source: a, target: b}]\nmetrics: {ready_max_lag: 0s}\n",
			want: []string{`7:26: metrics.ready_max_lag: must be greater than zero; /readyz answers 503 while the live direction lags this much or more, e.g. ready_max_lag: 30s`},
		},
		{
			name: "dsn rejected by pgconn",
			yaml: "name: shop\nsource:\n  dsn: postgres://u:pw@h:99999/db\ntarget:\n  dsn: host=h sslmode=sometimes\ntables: [{source: a, target: b}]\n",
			want: []string{
				"3:8: source.dsn: not a valid connection string: invalid port; write a libpq URL (postgres://user@host:5432/dbname) or keyword/value string",
				"5:8: target.dsn: not a valid connection string: ",
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := writeFiles(t, t.TempDir(), tc.files)
			file := filepath.Join(dir, "mapping.yaml")
			m, err := parse(file, []byte(tc.yaml), lookupIn(testEnv))
			if m != nil || err == nil {
				t.Fatalf("Parse returned %+v, %v; want an error\ninput:\n%s", m, err, tc.yaml)
			}
			got := problems(err)
			if len(got) != len(tc.want) {
				t.Errorf("got %d problems, want %d:\n%s\ninput:\n%s", len(got), len(tc.want), err, tc.yaml)
			}
			for i := range min(len(got), len(tc.want)) {
				want := file + ":" + strings.ReplaceAll(tc.want[i], "DIR", dir)
				if !strings.HasPrefix(got[i], want) {
					t.Errorf("problem %d:\ngot  %s\nwant %s...", i, got[i], want)
				}
				if !strings.Contains(got[i], "; ") {
					t.Errorf("problem %d says what is wrong but not how to fix it: %s", i, got[i])
				}
			}
		})
	}
}

// TestUnreadableTransform: a transform file the daemon may not read is a
// problem that names it. Root reads every file, so as root the test runs
// itself again as nobody.
func TestUnreadableTransform(t *testing.T) {
	if os.Geteuid() == 0 {
		asNobody(t, "TestUnreadableTransform")
		return
	}
	dir := writeFiles(t, t.TempDir(), map[string]string{"secret.js": ""})
	if err := os.Chmod(filepath.Join(dir, "secret.js"), 0); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "mapping.yaml")
	_, err := parse(file, []byte(head+"tables:\n  - source: a\n    target: b\n    transform: secret.js\n"), lookupIn(testEnv))
	want := file + ":9:16: tables[0].transform: cannot read " + filepath.Join(dir, "secret.js") + ": permission denied; make it readable"
	if got := problems(err); len(got) != 1 || !strings.HasPrefix(got[0], want) {
		t.Errorf("got %q\nwant %s...", got, want)
	}
}

// asNobody runs the named test of this binary again as the user nobody and
// fails if it does not pass there.
func asNobody(t *testing.T, name string) {
	t.Helper()
	u, err := user.Lookup("nobody")
	if err != nil {
		t.Fatalf("running as root, and no user nobody to run the test as: %v", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	// A copy of the test binary that nobody may run, in a folder it may write.
	dir, err := os.MkdirTemp("", "config-as-nobody-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	bin := filepath.Join(dir, "config.test")
	data, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run=^"+name+"$", "-test.v")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "TMPDIR="+dir, "HOME="+dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: "+name) {
		t.Fatalf("%s as nobody: %v\n%s", name, err, out)
	}
}

func TestLoad(t *testing.T) {
	dir := writeFiles(t, t.TempDir(), map[string]string{
		"conf/mapping.yaml": head + "tables:\n  - {source: a, target: b, transform: js/t.js}\n",
		"conf/js/t.js":      "",
		"conf/bad.yaml":     head + "tables: []\n",
		"conf/unset.yaml":   "name: shop\nsource:\n  dsn: ${GREEN_DSN}\n",
	})
	t.Setenv("GREEN_DSN", testEnv["GREEN_DSN"])
	t.Setenv("BLUE_DSN", testEnv["BLUE_DSN"])
	t.Chdir(dir)

	m, err := Load("conf/mapping.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if m.Path != filepath.Join(dir, "conf", "mapping.yaml") || m.Dir != filepath.Join(dir, "conf") {
		t.Errorf("Path %q Dir %q", m.Path, m.Dir)
	}
	if m.Tables[0].Transform != filepath.Join(dir, "conf", "js", "t.js") {
		t.Errorf("transform %q", m.Tables[0].Transform)
	}
	if m.Source.DSN.ConnString() != testEnv["GREEN_DSN"] {
		t.Errorf("source dsn not expanded from the environment")
	}

	// Messages name the file as the user wrote it.
	_, err = Load("conf/bad.yaml")
	if got := problems(err); len(got) != 1 || !strings.HasPrefix(got[0], "conf/bad.yaml:6:9: tables: ") {
		t.Errorf("got %q", got)
	}

	_, err = Load("conf/nope.yaml")
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "conf/nope.yaml") {
		t.Errorf("missing file: %v", err)
	}
}

func TestTestdata(t *testing.T) {
	env := lookupIn(testEnv)
	valid, _ := filepath.Glob("testdata/valid/*.yaml")
	invalid, _ := filepath.Glob("testdata/invalid/*.yaml")
	if len(valid) == 0 || len(invalid) == 0 {
		t.Fatal("no testdata")
	}
	for _, file := range valid {
		t.Run(file, func(t *testing.T) {
			m, err := parse(file, mustRead(t, file), env)
			if err != nil {
				t.Fatal(err)
			}
			if m.Name == "" || len(m.Tables) == 0 {
				t.Errorf("%+v", m)
			}
			if s := fmt.Sprintf("%+v", m); strings.Contains(s, canary) {
				t.Errorf("password in %s", s)
			}
		})
	}
	for _, file := range invalid {
		t.Run(file, func(t *testing.T) {
			_, err := parse(file, mustRead(t, file), env)
			if err == nil {
				t.Fatal("no error")
			}
			abs, _ := filepath.Abs(filepath.Dir(file))
			got := strings.ReplaceAll(err.Error(), abs, "$DIR") + "\n"
			golden := strings.TrimSuffix(file, ".yaml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if want := string(mustRead(t, golden)); got != want {
				t.Errorf("errors differ from %s (go test -update rewrites it)\ngot:\n%s\nwant:\n%s", golden, got, want)
			}
		})
	}
}

func TestTestdataEverything(t *testing.T) {
	cleanPGEnv(t)
	m, err := parse("testdata/valid/everything.yaml", mustRead(t, "testdata/valid/everything.yaml"), lookupIn(testEnv))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := m.Source.DSN.String(), "bridge@green.internal:5432/shop"; got != want {
		t.Errorf("source %s, want %s", got, want)
	}
	if got, want := m.Target.DSN.String(), "bridge@blue.internal:6432/shop"; got != want {
		t.Errorf("target %s, want %s", got, want)
	}
	if m.Source.DSN.Password() != canary || m.Target.DSN.Password() != canary {
		t.Errorf("passwords not expanded")
	}
	var names []string
	for _, e := range m.Tables {
		names = append(names, e.Name())
	}
	want := []string{
		"tables[0] (public.people -> crm.contacts)",
		"tables[1] (public.people -> billing.accounts)",
		"tables[2] (legacy.addresses -> crm.contacts)",
		`tables[3] ("Sales"."Order Items" -> sales.order_items)`,
		`tables[4] (café.menü -> "Ünïcode"."Ta.ble")`,
	}
	if !slices.Equal(names, want) {
		t.Errorf("entries:\n%s\nwant:\n%s", strings.Join(names, "\n"), strings.Join(want, "\n"))
	}
	if m.OnError != PolicyDeadletter || m.TransformTimeout != 250*time.Millisecond ||
		m.Batch != (Batch{MaxRows: 20000}) || m.Metrics != (Metrics{Listen: ":9632", ReadyMaxLag: DefaultReadyMaxLag}) {
		t.Errorf("settings %+v", m)
	}
}

func mustRead(t testing.TB, file string) []byte {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestNames(t *testing.T) {
	m := &Mapping{Name: "shop"}
	for _, tc := range []struct{ got, want string }{
		{m.SlotName(Forward), "cdcbridge_shop_forward"},
		{m.SlotName(Reverse), "cdcbridge_shop_reverse"},
		{m.PublicationName(Forward), "cdcbridge_shop_forward"},
		{m.PublicationName(Reverse), "cdcbridge_shop_reverse"},
		{m.OriginName(Forward), "cdcbridge_shop_forward"},
		{m.OriginName(Reverse), "cdcbridge_shop_reverse"},
		{m.OriginPrefix(), "cdcbridge_shop_"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %s, want %s", tc.got, tc.want)
		}
	}
	if !m.OwnsOrigin("cdcbridge_shop_reverse") || m.OwnsOrigin("cdcbridge_shop_v2_forward") || m.OwnsOrigin("") ||
		!m.OwnsOrigin(m.CopyOriginName(Forward, 3)) || m.OwnsOrigin("cdcbridge_shop_forward_copy") || m.OwnsOrigin("cdcbridge_shop_forward_copyx") {
		t.Error("OwnsOrigin")
	}
	// The longest name still gives identifiers within PostgreSQL's 63 bytes.
	long := &Mapping{Name: strings.Repeat("z", 40)}
	if n := len(long.SlotName(Reverse)); n > 63 {
		t.Errorf("slot name of %d bytes", n)
	}
}

func TestDirection(t *testing.T) {
	for _, d := range []Direction{Forward, Reverse} {
		got, err := ParseDirection(d.String())
		if err != nil || got != d {
			t.Errorf("ParseDirection(%q) = %v, %v", d, got, err)
		}
		if d.Opposite().Opposite() != d || d.Opposite() == d {
			t.Errorf("Opposite of %v", d)
		}
	}
	if Direction(0) != Forward {
		t.Error("the zero Direction is not Forward")
	}
	if _, err := ParseDirection("backward"); err == nil {
		t.Error("ParseDirection accepted backward")
	}
	if s := Direction(7).String(); s != "direction(7)" {
		t.Errorf("String of a bad direction: %s", s)
	}
}

func TestTablesByDirection(t *testing.T) {
	tb := func(n string) change.Table { return change.Table{Schema: "public", Name: n} }
	a, b, c, d := tb("a"), tb("b"), tb("c"), tb("d")
	m := &Mapping{
		Source: Side{DSN: NewDSN("host=green user=u dbname=g")},
		Target: Side{DSN: NewDSN("host=blue user=u dbname=b")},
		Tables: []Entry{
			{Index: 0, Source: a, Target: c}, // split a -> c, d
			{Index: 1, Source: a, Target: d},
			{Index: 2, Source: b, Target: c}, // merge a, b -> c
		},
	}
	check := func(what string, got, want []change.Table) {
		t.Helper()
		if !slices.Equal(got, want) {
			t.Errorf("%s = %v, want %v", what, got, want)
		}
	}
	check("SourceTables(Forward)", m.SourceTables(Forward), []change.Table{a, b})
	check("SourceTables(Reverse)", m.SourceTables(Reverse), []change.Table{c, d})
	check("WriteTables(Forward)", m.WriteTables(Forward), []change.Table{c, d})
	check("WriteTables(Reverse)", m.WriteTables(Reverse), []change.Table{a, b})

	idx := func(es []Entry) (out []int) {
		for _, e := range es {
			out = append(out, e.Index)
		}
		return out
	}
	for _, tc := range []struct {
		dir  Direction
		t    change.Table
		want []int
	}{
		{Forward, a, []int{0, 1}},
		{Forward, b, []int{2}},
		{Forward, c, nil},
		{Reverse, c, []int{0, 2}},
		{Reverse, d, []int{1}},
		{Reverse, a, nil},
	} {
		if got := idx(m.EntriesFor(tc.dir, tc.t)); !slices.Equal(got, tc.want) {
			t.Errorf("EntriesFor(%v, %v) = %v, want %v", tc.dir, tc.t, got, tc.want)
		}
	}
	if m.ReadSide(Forward) != m.Source || m.WriteSide(Forward) != m.Target ||
		m.ReadSide(Reverse) != m.Target || m.WriteSide(Reverse) != m.Source {
		t.Error("ReadSide/WriteSide")
	}
	if e := m.Tables[2]; e.Reads(Reverse) != c || e.Writes(Reverse) != b {
		t.Error("Entry.Reads/Writes")
	}
}

// cleanPGEnv keeps the PG* variables of whoever runs the tests out of
// pgconn's defaults.
func cleanPGEnv(t *testing.T) {
	t.Helper()
	for _, k := range []string{"PGHOST", "PGPORT", "PGUSER", "PGDATABASE", "PGPASSWORD", "PGSERVICE", "PGSSLMODE"} {
		t.Setenv(k, "")
	}
	t.Setenv("PGPASSFILE", filepath.Join(t.TempDir(), "none"))
}

func TestDSNString(t *testing.T) {
	cleanPGEnv(t)
	for _, tc := range []struct{ raw, str, password string }{
		{"postgres://alice:" + canary + "@db:5433/shop?sslmode=disable", "alice@db:5433/shop", canary},
		{"postgresql://alice@db/shop", "alice@db:5432/shop", ""},
		{"host=db port=6432 user=bob password='s3 cr\\'et' dbname=x", "bob@db:6432/x", "s3 cr'et"},
		{"postgres://u:p%40ss@h1:5432,h2:5433/db", "u@h1:5432,h2:5433/db", "p@ss"},
		{"postgres://u@[::1]:5432/db", "u@[::1]:5432/db", ""},
		{"host=/var/run/postgresql user=u dbname=d", "u@/var/run/postgresql:5432/d", ""},
		{"postgres://u:pw@h:notaport/db", "<unparseable dsn>", ""},
	} {
		d := NewDSN(tc.raw)
		if d.String() != tc.str || d.Password() != tc.password || d.ConnString() != tc.raw {
			t.Errorf("NewDSN(%q): String %q Password %q ConnString %q; want %q %q", tc.raw, d, d.Password(), d.ConnString(), tc.str, tc.password)
		}
	}
	if s := (DSN{}).String(); s != "<empty dsn>" {
		t.Errorf("zero DSN: %q", s)
	}
	if _, err := ParseDSN("postgres://u:" + canary + "@h:99999/db"); err == nil || strings.Contains(err.Error(), canary) {
		t.Errorf("ParseDSN error %v", err)
	}
}

// TestPasswordCanary checks every way a password could leak.
func TestPasswordCanary(t *testing.T) {
	cleanPGEnv(t)
	dsns := map[string]string{
		"url":           "postgres://alice:" + canary + "@green.internal:5432/shop",
		"keyword/value": "host=blue.internal user=bob password=" + canary + " dbname=shop",
		"quoted":        "host=blue.internal user=bob password='" + canary + "' dbname=shop",
		"sslpassword":   "postgres://alice@h/db?sslpassword=" + canary + "&sslmode=disable",
	}
	for kind, raw := range dsns {
		t.Run(kind, func(t *testing.T) {
			d := NewDSN(raw)
			m := &Mapping{Name: "shop", Source: Side{DSN: d}, Target: Side{DSN: d},
				Tables: []Entry{{Source: change.Table{Schema: "public", Name: "a"}}}}
			outputs := map[string]string{"String": d.String(), "GoString": d.GoString()}
			for _, f := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%10v"} {
				outputs["DSN "+f] = fmt.Sprintf(f, d)
				outputs["*DSN "+f] = fmt.Sprintf(f, &d)
				outputs["Side "+f] = fmt.Sprintf(f, m.Source)
				outputs["Mapping "+f] = fmt.Sprintf(f, *m)
				outputs["*Mapping "+f] = fmt.Sprintf(f, m)
			}
			for name, h := range map[string]func(*bytes.Buffer) slog.Handler{
				"text": func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) },
				"json": func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) },
			} {
				var buf bytes.Buffer
				slog.New(h(&buf)).Info("loaded", "dsn", d, "side", m.Source, "mapping", m, "value", *m, "group", slog.GroupValue(slog.Any("dsn", d)))
				outputs["slog "+name] = buf.String()
			}
			js, err := json.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			outputs["json"] = string(js)
			for name, out := range outputs {
				if strings.Contains(out, canary) {
					t.Errorf("%s shows the password: %s", name, out)
				}
			}
			if !strings.Contains(outputs["slog json"], `"dsn":"`) || !strings.Contains(outputs["DSN %v"], "@") {
				t.Errorf("redacted form missing: %s", outputs["slog json"])
			}
			if got := fmt.Sprintf("%#v", d); !strings.HasPrefix(got, `config.DSN("`) {
				t.Errorf("%%#v = %s", got)
			}

			// Redact scrubs the password and the raw string, keeps the chain.
			pgErr := &pgconn.PgError{Severity: "FATAL", Code: "28P01", Message: "password authentication failed: " + canary}
			err = fmt.Errorf("connecting to %s: %w", raw, pgErr)
			for _, red := range []error{d.Redact(err), m.Redact(err)} {
				if strings.Contains(red.Error(), canary) || !strings.Contains(red.Error(), "xxxxx") {
					t.Errorf("Redact: %v", red)
				}
				var pe *pgconn.PgError
				if !errors.As(red, &pe) || pe.Code != "28P01" || !errors.Is(red, pgErr) {
					t.Errorf("Redact broke the error chain: %#v", red)
				}
			}
			if s := d.RedactString("pw " + canary); s != "pw xxxxx" {
				t.Errorf("RedactString: %q", s)
			}
		})
	}
}

func TestRedactNothingToHide(t *testing.T) {
	cleanPGEnv(t)
	d := NewDSN("host=h user=u dbname=d")
	err := errors.New("connection refused")
	if got := d.Redact(err); got != err {
		t.Errorf("Redact wrapped an error without secrets: %#v", got)
	}
	if d.Redact(nil) != nil || (&Mapping{}).Redact(nil) != nil {
		t.Error("Redact(nil) != nil")
	}
	esc := NewDSN("postgres://u:p%40ss%20w%2F" + canary + "@h/db")
	if esc.Password() != "p@ss w/"+canary {
		t.Fatalf("password %q", esc.Password())
	}
	for _, s := range []string{"p%40ss%20w%2F" + canary, "p%40ss+w%2F" + canary, "p@ss w/" + canary} {
		if got := esc.RedactString("[" + s + "]"); got != "[xxxxx]" {
			t.Errorf("RedactString(%q) = %q", s, got)
		}
	}
}

// TestPasswordCanaryInLoadErrors puts passwords into files that have other
// mistakes, and in places where they do not belong.
func TestPasswordCanaryInLoadErrors(t *testing.T) {
	env := map[string]string{"GREEN_DSN": testEnv["GREEN_DSN"], "PW": canary}
	for name, src := range map[string]string{
		"valid dsns, other mistakes": head + "tables: []\non_error: stop\nbogus: 1\n",
		"password in a bad url":      "name: shop\nsource: {dsn: 'postgres://u:" + canary + "@h:99999/db'}\ntarget: {dsn: 'postgres://u:" + canary + ":x@h/db'}\ntables: []\n",
		"password in a bad kv":       "name: shop\nsource: {dsn: \"host=h password='" + canary + " port=x\"}\ntarget: {dsn: \"port=70000 password=" + canary + "\"}\n",
		"dsn in the wrong places": "name: postgres://u:" + canary + "@h/db\nsource: postgres://u:" + canary + "@h/db\n" +
			"target: {dsn postgres://u:" + canary + "@h/db}\ntables: [{source: 'password=" + canary + "', target: \"a.b.c user=u password=" + canary + "\"}]\n" +
			"on_error: password=" + canary + "\nmetrics: {listen: 'postgres://u:" + canary + "@h:5432/db'}\n",
		"expanded password echoed": "name: shop\nsource: {dsn: \"postgres://u:${PW}@h/db\"}\ntarget: {dsn: \"postgres://u:${PW}@h/db\"}\ntables: [{source: a, target: b}]\non_error: \"${PW}\"\n",
	} {
		t.Run(name, func(t *testing.T) {
			_, err := parse("mapping.yaml", []byte(src), lookupIn(env))
			if err == nil {
				t.Fatal("no error")
			}
			if strings.Contains(err.Error(), canary) {
				t.Errorf("password in errors:\n%v", err)
			}
			if !regexp.MustCompile(`^mapping.yaml:\d+`).MatchString(err.Error()) {
				t.Errorf("errors lost their positions:\n%v", err)
			}
		})
	}
}

func TestExpandEnv(t *testing.T) {
	env := lookupIn(map[string]string{"A": "1", "B": "$A", "E": ""})
	for _, tc := range []struct {
		in, out string
		probs   int
	}{
		{"plain", "plain", 0},
		{"${A}${A}", "11", 0},
		{"x${B}y", "x$Ay", 0},
		{"$$A $${A} $A $", "$A ${A} $A $", 0},
		{"pa$word", "pa$word", 0},
		{"${E}", "", 0},
		{"${MISSING} ${ALSO_MISSING}", " ", 2},
		{"${A", "", 1},
		{"${1A} ${A-b}", " ", 2},
	} {
		out, probs := expandEnv(tc.in, env)
		if out != tc.out || len(probs) != tc.probs {
			t.Errorf("expandEnv(%q) = %q, %+v; want %q with %d problems", tc.in, out, probs, tc.out, tc.probs)
		}
	}
}
