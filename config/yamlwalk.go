package config

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

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
			p.report(k, kp, "unknown key; %s", unknownKeyFix(path, k.Value, allowed))
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
		p.report(n, path, "environment variable %s is not set; export it or write %s here", e.unset, valueName(path))
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
