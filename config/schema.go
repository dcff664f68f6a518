package config

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/cdcbridge/cdcbridge/change"
)

// nameRE keeps derived names (cdcbridge_<name>_reverse, 58 bytes at most)
// within PostgreSQL's 63-byte identifier limit and free of quoting.
var nameRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,39}$`)

var (
	topKeys    = []string{"name", "source", "target", "tables", "on_error", "max_consecutive_errors", "transform_timeout", "batch", "metrics", "fence"}
	sideKeys   = []string{"dsn", "publication"}
	entryKeys  = []string{"source", "target", "transform", "key"}
	keySides   = []string{"source", "target"}
	batchKeys  = []string{"max_rows", "max_delay"}
	metricKeys = []string{"listen", "ready_max_lag"}
)

// libpqKeys are connection settings that users may write next to dsn.
var libpqKeys = []string{"host", "hostaddr", "port", "user", "password", "dbname", "database", "sslmode",
	"sslrootcert", "sslcert", "sslkey", "sslpassword", "connect_timeout", "application_name", "options",
	"passfile", "service", "target_session_attrs"}

// unknownKeyFix says what to do about key, which the mapping has no place for
// at path: a connection setting belongs in the DSN; anything else is likely
// misspelt.
func unknownKeyFix(path, key string, allowed []string) string {
	if (path == "source" || path == "target") && slices.Contains(libpqKeys, key) {
		return fmt.Sprintf("connection settings belong in the DSN: put %s in the dsn string, as a keyword/value pair or a URL query parameter", key)
	}
	return suggest(key, allowed)
}

// valueName names the value at path in a message.
func valueName(path string) string {
	if strings.HasSuffix(path, ".dsn") {
		return "the DSN"
	}
	return "the value"
}

const dsnForms = "write a libpq URL (postgres://user@host:5432/dbname) or keyword/value string (host=... port=5432 dbname=... user=...)"

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
	if n := optional(f, "max_consecutive_errors"); n != nil {
		if s, ok := p.scalar(n, "max_consecutive_errors", "max_consecutive_errors: 10"); ok {
			switch r, err := strconv.Atoi(s); {
			case err != nil:
				p.report(n, "max_consecutive_errors", "%q is not a whole number; write e.g. max_consecutive_errors: 10", s)
			case r < 1:
				p.report(n, "max_consecutive_errors", "must be at least 1: under skip or deadletter the direction halts once more changes than this fail in a row; write e.g. max_consecutive_errors: 10")
			default:
				m.MaxConsecutiveErrors = r
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
		m.Metrics = p.metrics(n, m.Metrics)
	}
	if n := optional(f, "fence"); n != nil {
		if s, ok := p.scalar(n, "fence", "fence: true"); ok {
			switch strings.ToLower(s) {
			case "true":
				m.Fence = true
			case "false":
				m.Fence = false
			default:
				p.report(n, "fence", "%q is not true or false; write fence: true (the slice that is not live refuses client writes to the mapped tables) or fence: false", s)
			}
		}
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
	if sf == nil {
		return Side{}
	}
	pub := p.publication(sf, key)
	if p.offline {
		return Side{Publication: pub}
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
	return Side{DSN: dsn, Publication: pub}
}

// publicationRE is what a publication named in the mapping may be called:
// the names the bridge itself gives (lower case, no quoting, at most 63
// bytes), since the name travels unquoted in the replication protocol.
var publicationRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)

// publication parses a side's optional publication: the name of a
// publication made beforehand on that side (by the owner of its tables),
// which the direction reading the side uses as it is.
func (p *parser) publication(sf map[string]field, side string) string {
	v := optional(sf, "publication")
	if v == nil {
		return ""
	}
	path := side + ".publication"
	s, ok := p.scalar(v, path, "publication: "+side+"_pub")
	if !ok {
		return ""
	}
	switch {
	case s == "":
		p.report(v, path, "empty; name the publication that the owner of the %s's tables made for the bridge, or remove the key to let the bridge make cdcbridge_<name>_<direction> itself", side)
	case !publicationRE.MatchString(s):
		p.report(v, path, "%q is not a publication name the bridge can use; use 1 to 63 lower-case letters, digits and underscores, starting with a letter (rename it with ALTER PUBLICATION ... RENAME TO ...)", s)
	default:
		return s
	}
	return ""
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

func (p *parser) metrics(n *yaml.Node, m Metrics) Metrics {
	f := p.fields(n, "metrics", "metrics: {listen: 127.0.0.1:9632}", metricKeys)
	if v := optional(f, "listen"); v != nil {
		m.Listen = p.listen(v)
	}
	if v := optional(f, "ready_max_lag"); v != nil {
		if d, ok := p.duration(v, "metrics.ready_max_lag", "ready_max_lag: 30s"); ok {
			if d <= 0 {
				p.report(v, "metrics.ready_max_lag", "must be greater than zero; /readyz answers 503 while the live direction lags this much or more, e.g. ready_max_lag: 30s")
			} else {
				m.ReadyMaxLag = d
			}
		}
	}
	return m
}

// listen returns the address of metrics.listen, "" when it is empty or
// wrong (reported).
func (p *parser) listen(v *yaml.Node) string {
	s, ok := p.scalar(v, "metrics.listen", "listen: 127.0.0.1:9632")
	if !ok || s == "" {
		return ""
	}
	_, port, err := net.SplitHostPort(s)
	if err == nil {
		_, err = strconv.ParseUint(port, 10, 16)
	}
	if err != nil {
		p.report(v, "metrics.listen", `%q is not host:port; write e.g. listen: 127.0.0.1:9632 or listen: ":9632" (all interfaces), or listen: "" to turn the endpoint off`, s)
		return ""
	}
	return s
}
