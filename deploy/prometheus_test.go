package deploy

import (
	"os"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Record      string            `yaml:"record"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

type ruleTests struct {
	RuleFiles []string `yaml:"rule_files"`
	Tests     []struct {
		Name          string `yaml:"name"`
		AlertRuleTest []struct {
			EvalTime  string `yaml:"eval_time"`
			Alertname string `yaml:"alertname"`
			ExpAlerts []struct {
				ExpLabels map[string]string `yaml:"exp_labels"`
			} `yaml:"exp_alerts"`
		} `yaml:"alert_rule_test"`
	} `yaml:"tests"`
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// Not strict: promtool checks both files' fields; this reads a part.
	if err := yaml.NewDecoder(f).Decode(v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// TestPrometheusRules runs promtool on the alerts: the rules must load, and
// their unit tests (series that fire and series that must not) must pass.
func TestPrometheusRules(t *testing.T) {
	promtool := tool(t, "promtool", "prometheus")
	out := run(t, "prometheus", promtool, "check", "rules", "alerts.yaml")
	t.Logf("promtool check rules:\n%s", out)
	out = run(t, "prometheus", promtool, "test", "rules", "alerts_test.yaml")
	t.Logf("promtool test rules:\n%s", out)
}

// TestPrometheusAlertsShape checks what promtool does not: every alert uses
// only metrics and labels that the daemon exports, names its mapping (and
// direction) for the person paged, says what to do, and has unit tests in
// which it fires and in which it must not.
func TestPrometheusAlertsShape(t *testing.T) {
	exported := exportedMetrics(t)
	var rules ruleFile
	readYAML(t, "prometheus/alerts.yaml", &rules)
	var tests ruleTests
	readYAML(t, "prometheus/alerts_test.yaml", &tests)
	if !slices.Equal(tests.RuleFiles, []string{"alerts.yaml"}) {
		t.Errorf("alerts_test.yaml tests %v, want [alerts.yaml]", tests.RuleFiles)
	}

	fires := map[string]int{}
	silent := map[string]int{}
	for _, tc := range tests.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname]++
			} else {
				silent[a.Alertname]++
			}
		}
	}

	alerts := 0
	seen := map[string]bool{}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				t.Errorf("group %s: a recording rule %q; the file holds alerts only", g.Name, r.Record)
				continue
			}
			alerts++
			if seen[r.Alert] {
				t.Errorf("%s: defined twice", r.Alert)
			}
			seen[r.Alert] = true
			sels := checkSelectors(t, r.Alert, r.Expr, exported)

			if s := r.Labels["severity"]; s != "warning" && s != "critical" {
				t.Errorf("%s: severity %q, want warning or critical", r.Alert, s)
			}
			for _, k := range []string{"summary", "description", "runbook_url"} {
				if strings.TrimSpace(r.Annotations[k]) == "" {
					t.Errorf("%s: no %s annotation", r.Alert, k)
				}
			}
			if !strings.HasSuffix(r.Annotations["runbook_url"], "README.md#alerts") {
				t.Errorf("%s: runbook_url %q, want the README's section Alerts", r.Alert, r.Annotations["runbook_url"])
			}
			// The labels that every selected cdcbridge metric carries must
			// reach the person paged.
			text := r.Annotations["summary"] + r.Annotations["description"]
			for _, l := range []string{"mapping", "direction", "slot", "side"} {
				all := false
				for _, sel := range sels {
					if !strings.HasPrefix(sel.name, "cdcbridge_") {
						continue
					}
					all = slices.Contains(exported[sel.name], l)
					if !all {
						break
					}
				}
				if all && !strings.Contains(text, "$labels."+l) {
					t.Errorf("%s: its metrics carry %q but neither summary nor description shows {{ $labels.%s }}", r.Alert, l, l)
				}
			}

			if fires[r.Alert] == 0 {
				t.Errorf("%s: no test in alerts_test.yaml in which it fires", r.Alert)
			}
			if silent[r.Alert] == 0 {
				t.Errorf("%s: no test in alerts_test.yaml in which it must not fire (exp_alerts: [])", r.Alert)
			}
		}
	}
	for name := range fires {
		if !seen[name] {
			t.Errorf("alerts_test.yaml tests %s, which alerts.yaml does not define", name)
		}
	}
	// lag (2), retained WAL (2), halted, not ready, foreign writes, stream
	// and process restarts, down and absent.
	if alerts < 11 {
		t.Errorf("%d alerts; want at least 11", alerts)
	}
}
