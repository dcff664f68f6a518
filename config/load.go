package config

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/cdcbridge/cdcbridge/change"
)

// Load reads the mapping file at path and validates it; see Parse.
func Load(path string) (*Mapping, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading mapping file: %w", err)
	}
	return Parse(path, data)
}

// Parse validates data as the contents of the mapping file at path. Messages
// name the file as path is written; relative transform paths resolve against
// path's directory, and the transform files must exist and be readable.
//
// On any problem Parse returns a nil Mapping and an errors.Join of one error
// per problem, in file order, each
//
//	FILE:LINE:COL: field.path: what is wrong; how to fix it
//
// (a YAML syntax error has no column and no field path). Messages never hold
// a password, even when one was written in the wrong place.
func Parse(path string, data []byte) (*Mapping, error) {
	return parse(path, data, os.LookupEnv)
}

// LoadOffline is Load for commands that connect to no database (cdcbridge
// test): everything is checked but the DSNs, which may name environment
// variables that are not set there. The Mapping's DSNs are empty.
func LoadOffline(path string) (*Mapping, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading mapping file: %w", err)
	}
	return parseWith(path, data, os.LookupEnv, true)
}

func parse(path string, data []byte, lookup func(string) (string, bool)) (*Mapping, error) {
	return parseWith(path, data, lookup, false)
}

func parseWith(path string, data []byte, lookup func(string) (string, bool), offline bool) (*Mapping, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("resolving mapping file %s: %w", path, err)
	}
	p := &parser{file: path, dir: filepath.Dir(abs), data: data, lookup: lookup, offline: offline}
	m := &Mapping{
		Path:             abs,
		Dir:              p.dir,
		OnError:          PolicyHalt,
		TransformTimeout: DefaultTransformTimeout,
		Batch:            Batch{MaxRows: DefaultBatchMaxRows, MaxDelay: DefaultBatchMaxDelay},
	}
	if root := p.document(); root != nil {
		p.top(root, m)
	}
	if len(p.probs) > 0 {
		return nil, p.err()
	}
	return m, nil
}

// nameRE keeps derived names (cdcbridge_<name>_reverse, 58 bytes at most)
// within PostgreSQL's 63-byte identifier limit and free of quoting.
var nameRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,39}$`)

var (
	topKeys    = []string{"name", "source", "target", "tables", "on_error", "transform_timeout", "batch", "metrics"}
	sideKeys   = []string{"dsn"}
	entryKeys  = []string{"source", "target", "transform", "key"}
	keySides   = []string{"source", "target"}
	batchKeys  = []string{"max_rows", "max_delay"}
	metricKeys = []string{"listen"}
)

// libpqKeys are connection settings that users may write next to dsn.
var libpqKeys = []string{"host", "hostaddr", "port", "user", "password", "dbname", "database", "sslmode",
	"sslrootcert", "sslcert", "sslkey", "sslpassword", "connect_timeout", "application_name", "options",
	"passfile", "service", "target_session_attrs"}

const dsnForms = "write a libpq URL (postgres://user@host:5432/dbname) or keyword/value string (host=... port=5432 dbname=... user=...)"

// problem is one mistake in the file. col 0 means the column is unknown.
type problem struct {
	line, col int
	path, msg string
}

// parser walks the YAML node tree itself rather than decoding into structs,
// so that every problem keeps its position and all of them are collected.
type parser struct {
	file   string
	dir    string
	data   []byte
	lookup func(string) (string, bool)
	probs  []problem
	// secrets are the passwords found so far; messages are scrubbed of them.
	secrets []string
	// offline skips the DSNs: for commands that need no database.
	offline bool
}

func (p *parser) report(n *yaml.Node, path, format string, args ...any) {
	line, col := 1, 1
	if n != nil && n.Line > 0 {
		line, col = n.Line, n.Column
	}
	p.probs = append(p.probs, problem{line: line, col: col, path: path, msg: fmt.Sprintf(format, args...)})
}

// minMasked keeps very short passwords from turning every message into
// xxxxx soup: a password only reaches a message here if it was typed in the
// wrong field, and the URL and keyword/value patterns catch those anyway.
const minMasked = 4

func (p *parser) err() error {
	slices.SortStableFunc(p.probs, func(a, b problem) int {
		return cmp.Or(cmp.Compare(a.line, b.line), cmp.Compare(a.col, b.col))
	})
	secrets := sortSecrets(slices.DeleteFunc(p.secrets, func(s string) bool { return len(s) < minMasked }))
	errs := make([]error, 0, len(p.probs))
	for _, pr := range p.probs {
		var b strings.Builder
		fmt.Fprintf(&b, "%s:%d:", p.file, pr.line)
		if pr.col > 0 {
			fmt.Fprintf(&b, "%d:", pr.col)
		}
		b.WriteByte(' ')
		if pr.path != "" {
			b.WriteString(pr.path + ": ")
		}
		b.WriteString(pr.msg)
		errs = append(errs, errors.New(maskLoose(redact(b.String(), secrets))))
	}
	return errors.Join(errs...)
}

// document parses the YAML and returns the root node, or nil after reporting
// why there is none.
func (p *parser) document() *yaml.Node {
	dec := yaml.NewDecoder(bytes.NewReader(p.data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			p.report(nil, "", "the file is empty; a mapping file needs at least name, source, target and tables")
		} else {
			p.syntax(err)
		}
		return nil
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case err == nil:
		p.report(&next, "", "a second YAML document starts here; a mapping file holds one document, so remove the --- separator or use one file per mapping")
	case !errors.Is(err, io.EOF):
		p.syntax(err)
	}
	if len(doc.Content) == 0 {
		p.report(&doc, "", "the file has no content; a mapping file needs at least name, source, target and tables")
		return nil
	}
	return resolve(doc.Content[0])
}

var (
	yamlLineRE   = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)
	yamlAnchorRE = regexp.MustCompile(`^unknown anchor '(.*)' referenced$`)
)

// yamlParserProblems are the messages of yaml.v3's parser (as opposed to its
// scanner). For them yaml.v3 reports a 0-based line, and none at all for the
// first line; scanner errors carry the 1-based line.
var yamlParserProblems = []string{
	"did not find expected ',' or ']'",
	"did not find expected ',' or '}'",
	"did not find expected '-' indicator",
	"did not find expected <document start>",
	"did not find expected <stream-start>",
	"did not find expected key",
	"did not find expected node content",
	"found duplicate %TAG directive",
	"found duplicate %YAML directive",
	"found incompatible YAML document",
	"found undefined tag handle",
}

func (p *parser) syntax(err error) {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if m := yamlLineRE.FindStringSubmatch(err.Error()); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
	}
	if slices.Contains(yamlParserProblems, msg) {
		line++
	}
	fix := "fix the YAML syntax around this line"
	if m := yamlAnchorRE.FindStringSubmatch(msg); m != nil {
		// The composer reports no line: find the first use.
		for i, l := range bytes.Split(p.data, []byte("\n")) {
			if bytes.Contains(l, []byte("*"+m[1])) {
				line = i + 1
				break
			}
		}
		fix = fmt.Sprintf("define the anchor with &%s on an earlier value, or write the value out", m[1])
	}
	line = max(line, 1)
	switch text := p.line(line); {
	case strings.Contains(text, "\t") && (strings.Contains(msg, "tab") || strings.Contains(msg, "cannot start any token")):
		fix = "indent with spaces: YAML does not allow tabs"
	case strings.Contains(text, "${") && strings.Contains(text, "{"):
		// ${...} inside a flow mapping or list ends it early: { and } are
		// flow indicators unless the value is quoted.
		fix = `inside { } or [ ] quote values that use ${...}, e.g. {dsn: "${GREEN_DSN}"}, or write the mapping in block style`
	}
	p.probs = append(p.probs, problem{line: line, msg: "invalid YAML: " + msg + "; " + fix})
}

// line returns line n (from 1) of the file, or "".
func (p *parser) line(n int) string {
	lines := bytes.Split(p.data, []byte("\n"))
	if n < 1 || n > len(lines) {
		return ""
	}
	return string(lines[n-1])
}

func (p *parser) top(root *yaml.Node, m *Mapping) {
	if root.Kind != yaml.MappingNode {
		p.report(root, "", "the file holds %s; a mapping file is a mapping of name, source, target and tables", describe(root))
		return
	}
	f := p.fields(root, "", "", topKeys)
	m.Name = p.name(root, f)
	m.Source = p.side(root, f, "source", "GREEN_DSN", "the slice that is live before the release")
	m.Target = p.side(root, f, "target", "BLUE_DSN", "the new slice")
	m.Tables = p.tables(root, f)

	if n := optional(f, "on_error"); n != nil {
		if s, ok := p.scalar(n, "on_error", "on_error: halt"); ok {
			switch pol := Policy(s); pol {
			case PolicyHalt, PolicySkip, PolicyDeadletter:
				m.OnError = pol
			default:
				p.report(n, "on_error", "%q is not an error policy; use halt (stop before the bad change), skip or deadletter", s)
			}
		}
	}
	if n := optional(f, "transform_timeout"); n != nil {
		if d, ok := p.duration(n, "transform_timeout", "transform_timeout: 5s"); ok {
			if d <= 0 {
				p.report(n, "transform_timeout", "must be greater than zero; every transform call needs a time limit, e.g. transform_timeout: 5s")
			} else {
				m.TransformTimeout = d
			}
		}
	}
	if n := optional(f, "batch"); n != nil {
		m.Batch = p.batch(n, m.Batch)
	}
	if n := optional(f, "metrics"); n != nil {
		m.Metrics = p.metrics(n)
	}
}

func (p *parser) name(root *yaml.Node, f map[string]field) string {
	n := p.required(root, f, "name", "name", `add one, e.g. name: shop (it names the bridge's slots, publications and origins)`)
	if n == nil {
		return ""
	}
	s, ok := p.scalar(n, "name", "name: shop")
	if !ok {
		return ""
	}
	if !nameRE.MatchString(s) {
		p.report(n, "name", "%q is not a valid name; use 1 to 40 lower-case letters, digits and underscores, starting with a letter, e.g. shop or shop_v2 (it becomes part of slot, publication and origin names such as cdcbridge_<name>_forward)", s)
		return ""
	}
	return s
}

func (p *parser) side(root *yaml.Node, f map[string]field, key, env, what string) Side {
	example := fmt.Sprintf("a mapping with dsn: ${%s} under %s:", env, key)
	n := p.required(root, f, key, key, fmt.Sprintf("add %s: with dsn: ${%s} under it, the connection string of %s", key, env, what))
	if n == nil {
		return Side{}
	}
	sf := p.fields(n, key, example, sideKeys)
	if sf == nil || p.offline {
		return Side{}
	}
	path := key + ".dsn"
	d := p.required(n, sf, path, "dsn", dsnForms+", e.g. dsn: ${"+env+"}")
	if d == nil {
		return Side{}
	}
	raw, ok := p.scalar(d, path, "dsn: ${"+env+"}")
	if !ok {
		return Side{}
	}
	if raw == "" {
		p.report(d, path, "empty; %s", dsnForms)
		return Side{}
	}
	dsn, err := ParseDSN(raw)
	p.secrets = append(p.secrets, raw)
	p.secrets = append(p.secrets, dsn.passwordSecrets()...)
	if err != nil {
		p.report(d, path, "%v; %s", err, dsnForms)
		return Side{}
	}
	return Side{DSN: dsn}
}

func (p *parser) tables(root *yaml.Node, f map[string]field) []Entry {
	const fix = "list at least one entry, each a mapping with source and target, e.g. - {source: public.orders, target: public.orders_v2}"
	n := p.required(root, f, "tables", "tables", fix)
	if n == nil {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		p.report(n, "tables", "expected a list of entries, got %s; %s", describe(n), fix)
		return nil
	}
	if len(n.Content) == 0 {
		p.report(n, "tables", "the list is empty; %s", fix)
		return nil
	}
	var out []Entry
	seen := map[[2]change.Table]Entry{}
	for i, item := range n.Content {
		e, ok := p.entry(resolve(item), i)
		if !ok {
			continue
		}
		pair := [2]change.Table{e.Source, e.Target}
		if prev, dup := seen[pair]; dup {
			path := fmt.Sprintf("tables[%d]", i)
			if prev.Transform == e.Transform && slices.Equal(prev.Key, e.Key) && slices.Equal(prev.SourceKey, e.SourceKey) {
				p.report(item, path, "repeats %s from line %d; remove one of them", prev.Name(), prev.Line)
			} else {
				p.report(item, path, "writes %s from %s, like %s on line %d; one source table writes a target table through one entry, so merge the two (a transform may return several rows)",
					displayTable(e.Target), displayTable(e.Source), prev.Name(), prev.Line)
			}
			continue
		}
		seen[pair] = e
		out = append(out, e)
	}
	return out
}

// entry parses one item of tables. ok is false when the item is unusable;
// its problems have been reported.
func (p *parser) entry(n *yaml.Node, i int) (Entry, bool) {
	path := fmt.Sprintf("tables[%d]", i)
	e := Entry{Index: i, Line: n.Line}
	f := p.fields(n, path, "{source: public.orders, target: public.orders_v2}", entryKeys)
	if f == nil {
		return e, false
	}
	var okS, okT bool
	e.Source, okS = p.table(n, f, path, "source")
	e.Target, okT = p.table(n, f, path, "target")
	ok := okS && okT
	if t := optional(f, "transform"); t != nil {
		var okX bool
		e.Transform, okX = p.transform(t, path+".transform")
		ok = ok && okX
	}
	if k, present := f["key"]; present {
		var okK bool
		e.SourceKey, e.Key, okK = p.keys(k.val, path+".key")
		ok = ok && okK
	}
	return e, ok
}

func (p *parser) table(entry *yaml.Node, f map[string]field, path, key string) (change.Table, bool) {
	path += "." + key
	n := p.required(entry, f, path, key, fmt.Sprintf("name the %s table, e.g. %s: public.orders", key, key))
	if n == nil {
		return change.Table{}, false
	}
	s, ok := p.scalar(n, path, key+": public.orders")
	if !ok {
		return change.Table{}, false
	}
	t, err := change.ParseTable(s)
	if err != nil {
		p.report(n, path, `%v; write schema.table or table (schema public), double-quote parts that keep capitals, dots or spaces, and wrap such a name in single quotes for YAML: '"Sales"."Order Items"'`, err)
		return change.Table{}, false
	}
	return t, true
}

func (p *parser) transform(n *yaml.Node, path string) (string, bool) {
	s, ok := p.scalar(n, path, "transform: transforms/orders.js")
	if !ok {
		return "", false
	}
	if s == "" {
		p.report(n, path, "empty; name the .js file that defines forward() and backward(), or remove the key for an identity mapping")
		return "", false
	}
	abs := s
	if !filepath.IsAbs(abs) {
		abs = filepath.Join(p.dir, abs)
	}
	abs = filepath.Clean(abs)
	where := fmt.Sprintf("paths are relative to the mapping file's directory %s", p.dir)
	fi, err := os.Stat(abs)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		p.report(n, path, "%s does not exist (looked for %s); %s", s, abs, where)
		return "", false
	case err != nil:
		p.report(n, path, "cannot read %s: %v; check the path and the permissions of its directories", abs, pathErr(err))
		return "", false
	case fi.IsDir():
		p.report(n, path, "%s is a directory; name the .js file that defines forward() and backward()", abs)
		return "", false
	case !fi.Mode().IsRegular():
		p.report(n, path, "%s is not a regular file; name the .js file that defines forward() and backward()", abs)
		return "", false
	}
	file, err := os.Open(abs)
	if err != nil {
		p.report(n, path, "cannot read %s: %v; make it readable by the user that runs cdcbridge", abs, pathErr(err))
		return "", false
	}
	_ = file.Close()
	return abs, true
}

// pathErr drops the path that os errors repeat.
func pathErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// keyForms says how key: is written.
const keyForms = "key: [id] (or [tenant_id, id]) for columns that both tables have, " +
	"or key: {source: [id], target: [order_id]} for each table's own (either may be left out); remove key to use each table's primary key"

// keys parses an entry's key: a list of columns that both tables have, or a
// mapping with a list for each table.
func (p *parser) keys(n *yaml.Node, path string) (source, target []string, ok bool) {
	n = resolve(n)
	if n.Kind != yaml.MappingNode {
		cols, ok := p.key(n, path)
		return cols, cols, ok
	}
	f := p.fields(n, path, "key: {source: [id], target: [order_id]}", keySides)
	if f == nil {
		return nil, nil, false
	}
	if len(f) == 0 {
		p.report(n, path, "empty; write %s", keyForms)
		return nil, nil, false
	}
	okS, okT := true, true
	if v, present := f["source"]; present {
		source, okS = p.key(v.val, path+".source")
	}
	if v, present := f["target"]; present {
		target, okT = p.key(v.val, path+".target")
	}
	return source, target, okS && okT
}

func (p *parser) key(n *yaml.Node, path string) ([]string, bool) {
	const fix = "write " + keyForms
	n = resolve(n)
	if n.Kind != yaml.SequenceNode || len(n.Content) == 0 {
		got := "an empty list"
		if n.Kind != yaml.SequenceNode {
			got = describe(n)
		}
		p.report(n, path, "expected a list of column names, got %s; %s", got, fix)
		return nil, false
	}
	var cols []string
	ok := true
	for j, c := range n.Content {
		c = resolve(c)
		cp := fmt.Sprintf("%s[%d]", path, j)
		s, good := p.scalar(c, cp, "key: [id]")
		switch {
		case !good:
			ok = false
		case s == "":
			p.report(c, cp, "empty column name; %s", fix)
			ok = false
		case slices.Contains(cols, s):
			p.report(c, cp, "column %s is listed twice; list each key column once", s)
			ok = false
		default:
			cols = append(cols, s)
		}
	}
	return cols, ok
}

func (p *parser) batch(n *yaml.Node, b Batch) Batch {
	f := p.fields(n, "batch", "batch: {max_rows: 5000, max_delay: 100ms}", batchKeys)
	if v := optional(f, "max_rows"); v != nil {
		if s, ok := p.scalar(v, "batch.max_rows", "max_rows: 5000"); ok {
			switch r, err := strconv.Atoi(s); {
			case err != nil:
				p.report(v, "batch.max_rows", "%q is not a whole number; write e.g. max_rows: 5000", s)
			case r < 1:
				p.report(v, "batch.max_rows", "must be at least 1; write e.g. max_rows: 5000")
			default:
				b.MaxRows = r
			}
		}
	}
	if v := optional(f, "max_delay"); v != nil {
		if d, ok := p.duration(v, "batch.max_delay", "max_delay: 100ms"); ok {
			if d < 0 {
				p.report(v, "batch.max_delay", "must not be negative; write e.g. max_delay: 100ms, or 0 to commit each source transaction on its own")
			} else {
				b.MaxDelay = d
			}
		}
	}
	return b
}

func (p *parser) metrics(n *yaml.Node) Metrics {
	f := p.fields(n, "metrics", "metrics: {listen: 127.0.0.1:9187}", metricKeys)
	v := optional(f, "listen")
	if v == nil {
		return Metrics{}
	}
	s, ok := p.scalar(v, "metrics.listen", "listen: 127.0.0.1:9187")
	if !ok || s == "" {
		return Metrics{}
	}
	_, port, err := net.SplitHostPort(s)
	if err == nil {
		_, err = strconv.ParseUint(port, 10, 16)
	}
	if err != nil {
		p.report(v, "metrics.listen", `%q is not host:port; write e.g. listen: 127.0.0.1:9187 or listen: ":9187" (all interfaces), or listen: "" to turn the endpoint off`, s)
		return Metrics{}
	}
	return Metrics{Listen: s}
}

func (p *parser) duration(n *yaml.Node, path, example string) (time.Duration, bool) {
	s, ok := p.scalar(n, path, example)
	if !ok {
		return 0, false
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		p.report(n, path, "%q is not a duration; write a number with a unit (ms, s, m, h), e.g. %s", s, example)
		return 0, false
	}
	return d, true
}

// field is one key of a YAML mapping and its (alias-resolved) value.
type field struct{ key, val *yaml.Node }

// fields checks that n is a mapping whose keys are all in allowed, each at
// most once, and returns them by name. It returns nil, after reporting, when
// n is not a mapping.
func (p *parser) fields(n *yaml.Node, path, example string, allowed []string) map[string]field {
	if n.Kind != yaml.MappingNode {
		p.report(n, path, "expected a mapping, got %s; write it as %s", describe(n), example)
		return nil
	}
	out := make(map[string]field, len(allowed))
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), resolve(n.Content[i+1])
		if k.Kind != yaml.ScalarNode {
			p.report(k, path, "a key must be a plain name, not %s; the keys here are %s", describe(k), strings.Join(allowed, ", "))
			continue
		}
		if k.Tag == "!!merge" {
			p.report(k, path, "merge keys (<<) are not supported; write the keys out")
			continue
		}
		kp := joinPath(path, k.Value)
		if !slices.Contains(allowed, k.Value) {
			if (path == "source" || path == "target") && slices.Contains(libpqKeys, k.Value) {
				p.report(k, kp, "unknown key; connection settings belong in the DSN: put %s in the dsn string, as a keyword/value pair or a URL query parameter", k.Value)
				continue
			}
			p.report(k, kp, "unknown key; %s", suggest(k.Value, allowed))
			continue
		}
		if prev, dup := out[k.Value]; dup {
			p.report(k, kp, "repeated key (first on line %d); keep one", prev.key.Line)
			continue
		}
		out[k.Value] = field{key: k, val: v}
	}
	return out
}

// required returns the value of key, or nil after reporting that it is
// missing (at the parent mapping) or empty.
func (p *parser) required(parent *yaml.Node, f map[string]field, path, key, fix string) *yaml.Node {
	kv, ok := f[key]
	switch {
	case !ok:
		p.report(parent, path, "missing; %s", fix)
		return nil
	case isNull(kv.val):
		p.report(kv.val, path, "empty; %s", fix)
		return nil
	}
	return kv.val
}

// optional returns the value of key, or nil when it is absent or null.
func optional(f map[string]field, key string) *yaml.Node {
	kv, ok := f[key]
	if !ok || isNull(kv.val) {
		return nil
	}
	return kv.val
}

// scalar returns the value of a scalar node with ${VAR} expanded ("" for
// null). ok is false, after reporting, when n is not a scalar or refers to
// variables that are not set.
func (p *parser) scalar(n *yaml.Node, path, example string) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		p.report(n, path, "expected a single value, got %s; write it as %s", describe(n), example)
		return "", false
	}
	if isNull(n) {
		return "", true
	}
	v, probs := expandEnv(n.Value, p.lookup)
	for _, e := range probs {
		if e.unset == "" {
			p.report(n, path, "%s", e.msg)
			continue
		}
		what := "the value"
		if strings.HasSuffix(path, ".dsn") {
			what = "the DSN"
		}
		p.report(n, path, "environment variable %s is not set; export it or write %s here", e.unset, what)
	}
	return v, len(probs) == 0
}

func resolve(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.Tag == "!!null" }

// describe names what kind of value n is, without quoting it: the value
// could be a secret in the wrong place.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!null":
			return "nothing"
		case "!!int", "!!float":
			return "a number"
		case "!!bool":
			return "true/false"
		}
		return "a string"
	}
	return "a YAML document"
}

func joinPath(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

// suggest proposes the allowed key closest to a misspelt one.
func suggest(key string, allowed []string) string {
	best, bestD := "", 3
	for _, a := range allowed {
		d := editDistance(strings.ToLower(key), a)
		if d < bestD {
			best, bestD = a, d
		}
	}
	list := strings.Join(allowed, ", ")
	if best != "" {
		return fmt.Sprintf("did you mean %s? (keys here: %s)", best, list)
	}
	return fmt.Sprintf("remove it (keys here: %s)", list)
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
