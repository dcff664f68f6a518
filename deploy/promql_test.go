package deploy

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
)

var metricNameRE = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)

// selector is a metric that a PromQL expression selects, with the label
// names that its {…} matches on.
type selector struct {
	name   string
	labels []string
	block  string // the text between { and }
}

// Words of PromQL that are not metric names. A word followed by "(" is a
// function and needs no entry here; aggregations may be followed by by or
// without instead.
var (
	promqlLabelListWords = []string{"by", "without", "on", "ignoring", "group_left", "group_right"}
	promqlWords          = []string{"and", "or", "unless", "bool", "offset", "atan2", "inf", "nan",
		"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
		"bottomk", "topk", "quantile", "limitk", "limit_ratio"}
)

// selectors returns the metric selectors of a PromQL expression, which may
// hold Grafana's $variables. It is a lexer, not a parser: it knows enough of
// PromQL to tell metric names from functions, keywords, label lists,
// strings, numbers and durations, which is all the checks below need.
func selectors(expr string) ([]selector, error) {
	var out []selector
	s := expr
	i := 0
	skipSpace := func() {
		for i < len(s) && strings.ContainsRune(" \t\r\n", rune(s[i])) {
			i++
		}
	}
	skipString := func() error {
		q := s[i]
		for i++; i < len(s); i++ {
			switch {
			case s[i] == '\\' && q != '`':
				i++
			case s[i] == q:
				i++
				return nil
			}
		}
		return fmt.Errorf("unterminated string in %q", expr)
	}
	skipTo := func(open, close byte) error {
		depth := 0
		for ; i < len(s); i++ {
			switch c := s[i]; {
			case c == '"' || c == '\'' || c == '`':
				if err := skipString(); err != nil {
					return err
				}
				i--
			case c == open:
				depth++
			case c == close:
				depth--
				if depth == 0 {
					i++
					return nil
				}
			}
		}
		return fmt.Errorf("unbalanced %c in %q", open, expr)
	}
	ident := func() string {
		start := i
		for i < len(s) && (s[i] == '_' || s[i] == ':' || s[i] >= 'a' && s[i] <= 'z' || s[i] >= 'A' && s[i] <= 'Z' || s[i] >= '0' && s[i] <= '9') {
			i++
		}
		return s[start:i]
	}
	// matchers reads the label names of a {…} block at i.
	matchers := func() ([]string, string, error) {
		start := i
		if err := skipTo('{', '}'); err != nil {
			return nil, "", err
		}
		block := s[start+1 : i-1]
		var labels []string
		j := 0
		for j < len(block) {
			k := strings.IndexAny(block[j:], "=!")
			if k < 0 {
				break
			}
			labels = append(labels, strings.TrimSpace(block[j:j+k]))
			j += k
			for j < len(block) && strings.ContainsRune("=!~ \t\n", rune(block[j])) {
				j++
			}
			if j < len(block) && (block[j] == '"' || block[j] == '\'' || block[j] == '`') {
				q := block[j]
				for j++; j < len(block) && block[j] != q; j++ {
					if block[j] == '\\' {
						j++
					}
				}
				j++
			}
			for j < len(block) && strings.ContainsRune(", \t\n", rune(block[j])) {
				j++
			}
		}
		return labels, block, nil
	}

	for i < len(s) {
		c := s[i]
		switch {
		case strings.ContainsRune(" \t\r\n", rune(c)):
			i++
		case c == '"' || c == '\'' || c == '`':
			if err := skipString(); err != nil {
				return nil, err
			}
		case c == '#':
			for i < len(s) && s[i] != '\n' {
				i++
			}
		case c == '[':
			if err := skipTo('[', ']'); err != nil {
				return nil, err
			}
		case c == '{':
			return nil, fmt.Errorf("a selector without a metric name in %q", expr)
		case c == '$':
			i++
			if i < len(s) && s[i] == '{' {
				if err := skipTo('{', '}'); err != nil {
					return nil, err
				}
			} else {
				ident()
			}
		case c >= '0' && c <= '9' || c == '.':
			for i < len(s) && (s[i] == '.' || s[i] >= '0' && s[i] <= '9' || s[i] >= 'a' && s[i] <= 'z' || s[i] >= 'A' && s[i] <= 'Z') {
				i++
			}
		case c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
			word := ident()
			skipSpace()
			switch {
			case slices.Contains(promqlLabelListWords, word):
				if i < len(s) && s[i] == '(' {
					if err := skipTo('(', ')'); err != nil {
						return nil, err
					}
				}
			case slices.Contains(promqlWords, strings.ToLower(word)):
			case i < len(s) && s[i] == '(':
				// a function
			default:
				sel := selector{name: word}
				if i < len(s) && s[i] == '{' {
					labels, block, err := matchers()
					if err != nil {
						return nil, err
					}
					sel.labels, sel.block = labels, block
				}
				out = append(out, sel)
			}
		default:
			i++
		}
	}
	return out, nil
}

// checkSelectors reports every metric in expr that the daemon does not
// export, and every label matched on that the metric does not carry.
func checkSelectors(t *testing.T, where, expr string, exported map[string][]string) []selector {
	t.Helper()
	sels, err := selectors(expr)
	if err != nil {
		t.Errorf("%s: %v", where, err)
		return nil
	}
	if len(sels) == 0 {
		t.Errorf("%s: %q selects no metric", where, expr)
	}
	for _, sel := range sels {
		labels, ok := exported[sel.name]
		if !ok {
			t.Errorf("%s: %s is not a metric that cdcbridge exports (in %q)", where, sel.name, expr)
			continue
		}
		for _, l := range sel.labels {
			if !slices.Contains(labels, l) && l != "__name__" {
				t.Errorf("%s: %s has no label %q (it has %v)", where, sel.name, l, labels)
			}
		}
	}
	return sels
}

func TestSelectors(t *testing.T) {
	for _, tc := range []struct {
		expr string
		want []string
	}{
		{`up{job="cdcbridge"} == 0`, []string{"up{job}"}},
		{`absent(up{job="cdcbridge"})`, []string{"up{job}"}},
		{`histogram_quantile(0.99, sum by (le, direction) (rate(cdcbridge_apply_commit_seconds_bucket{mapping=~"$mapping", direction=~"$direction"}[$__rate_interval])))`,
			[]string{"cdcbridge_apply_commit_seconds_bucket{mapping,direction}"}},
		{"(cdcbridge_lag_bytes > 1024 * 1024)\n  and on (job, instance) (cdcbridge_direction == 1)\n  unless on (job) (sum by (job) (delta(x_total[10m])) > 0)",
			[]string{"cdcbridge_lag_bytes", "cdcbridge_direction", "x_total"}},
		{`(changes(process_start_time_seconds[30m]) > 2) * on (job, instance) group_left (mapping) max by (job, instance, mapping) (cdcbridge_build_info)`,
			[]string{"process_start_time_seconds", "cdcbridge_build_info"}},
		{`sum(rate(a_total{op!="insert",table=~"a\"}b"}[5m])) without (op) / ignoring(x) b offset 5m`,
			[]string{"a_total{op,table}", "b"}},
		{`label_replace(foo, "dst", "$1", "src", "(.*)") or vector(0) # a comment: bar`, []string{"foo"}},
		{`max_over_time(foo[1h:5m]) > bool 1e3 and topk(3, bar)`, []string{"foo", "bar"}},
	} {
		sels, err := selectors(tc.expr)
		var got []string
		for _, sel := range sels {
			if sel.labels == nil {
				got = append(got, sel.name)
			} else {
				got = append(got, sel.name+"{"+strings.Join(sel.labels, ",")+"}")
			}
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("selectors(%q) = %v, %v; want %v", tc.expr, got, err, tc.want)
		}
	}
	if got, _ := selectors(`a{x=~"$x", y="1"}`); len(got) != 1 || got[0].block != `x=~"$x", y="1"` {
		t.Errorf("selectors kept the block %q", got)
	}
	for _, bad := range []string{`foo{a="b"`, `rate(foo[5m)`, `foo{a="b}`} {
		if _, err := selectors(bad); err == nil {
			t.Errorf("selectors(%q): no error", bad)
		}
	}
}
