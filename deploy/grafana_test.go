package deploy

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

type grafanaPanel struct {
	ID         int            `json:"id"`
	Type       string         `json:"type"`
	Title      string         `json:"title"`
	Datasource map[string]any `json:"datasource"`
	GridPos    *struct {
		H, W, X, Y int
	} `json:"gridPos"`
	Targets []struct {
		Expr  string `json:"expr"`
		RefID string `json:"refId"`
	} `json:"targets"`
	Panels []grafanaPanel `json:"panels"` // a collapsed row's
}

type grafanaDashboard struct {
	Title      string `json:"title"`
	UID        string `json:"uid"`
	Templating struct {
		List []struct {
			Name       string          `json:"name"`
			Type       string          `json:"type"`
			Query      json.RawMessage `json:"query"`
			Definition string          `json:"definition"`
		} `json:"list"`
	} `json:"templating"`
	Panels []grafanaPanel `json:"panels"`
}

// labelValues reads Grafana's label_values(SELECTOR, LABEL).
var labelValues = regexp.MustCompile(`^label_values\((.+),\s*([a-zA-Z_][a-zA-Z0-9_]*)\)$`)

// dashboardMetrics are what the dashboard must show: lag, throughput,
// latency, retained WAL, direction and flip state, readiness, copy
// progress, errors, foreign writes and the build.
var dashboardMetrics = []string{
	"cdcbridge_lag_seconds", "cdcbridge_lag_bytes",
	"cdcbridge_changes_applied_total", "cdcbridge_transactions_applied_total",
	"cdcbridge_apply_commit_seconds_bucket", "cdcbridge_slot_retained_wal_bytes",
	"cdcbridge_direction", "cdcbridge_streaming", "cdcbridge_ready", "cdcbridge_halted",
	"cdcbridge_snapshot_rows_copied", "cdcbridge_snapshot_rows_estimated", "cdcbridge_snapshot_bytes_copied",
	"cdcbridge_transform_errors_total", "cdcbridge_changes_skipped_total", "cdcbridge_rows_missing_total",
	"cdcbridge_stream_restarts_total", "cdcbridge_foreign_write_transactions", "cdcbridge_build_info",
}

// TestGrafanaDashboard checks that every metric and label the dashboard
// queries is one the daemon exports, that each panel follows the mapping
// and direction variables, and that the panels cover what an operator
// watches during a release.
func TestGrafanaDashboard(t *testing.T) {
	exported := exportedMetrics(t)
	b, err := os.ReadFile("grafana/cdcbridge.json")
	if err != nil {
		t.Fatal(err)
	}
	var d grafanaDashboard
	dec := json.NewDecoder(strings.NewReader(string(b)))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("grafana/cdcbridge.json: %v", err)
	}
	if d.Title == "" || d.UID == "" {
		t.Errorf("the dashboard needs a title and a fixed uid (links and provisioning use it)")
	}

	vars := map[string]bool{}
	for _, v := range d.Templating.List {
		vars[v.Name] = true
		if v.Type != "query" {
			continue
		}
		q := v.Definition
		var obj struct{ Query string }
		if json.Unmarshal(v.Query, &obj) == nil && obj.Query != "" && obj.Query != q {
			t.Errorf("variable %s: definition %q and query %q differ", v.Name, q, obj.Query)
		}
		m := labelValues.FindStringSubmatch(q)
		if m == nil {
			t.Errorf("variable %s: %q is not label_values(SELECTOR, LABEL)", v.Name, q)
			continue
		}
		for _, sel := range checkSelectors(t, "variable "+v.Name, m[1], exported) {
			if !slices.Contains(exported[sel.name], m[2]) {
				t.Errorf("variable %s: %s has no label %s", v.Name, sel.name, m[2])
			}
		}
	}
	for _, want := range []string{"datasource", "mapping", "direction"} {
		if !vars[want] {
			t.Errorf("no template variable %s", want)
		}
	}

	used := map[string]bool{}
	ids := map[int]string{}
	var walk func([]grafanaPanel)
	walk = func(ps []grafanaPanel) {
		for _, p := range ps {
			where := "panel " + p.Title
			if prev, ok := ids[p.ID]; ok || p.ID == 0 {
				t.Errorf("%s: id %d is not unique (also %s)", where, p.ID, prev)
			}
			ids[p.ID] = p.Title
			if p.Title == "" || p.GridPos == nil || p.GridPos.W == 0 || p.GridPos.H == 0 {
				t.Errorf("panel %d: needs a title and a grid position", p.ID)
			}
			walk(p.Panels)
			if p.Type == "row" {
				continue
			}
			if p.Datasource["uid"] != "${datasource}" {
				t.Errorf("%s: data source %v, want the ${datasource} variable", where, p.Datasource)
			}
			if len(p.Targets) == 0 {
				t.Errorf("%s: no query", where)
			}
			for _, tg := range p.Targets {
				for _, sel := range checkSelectors(t, where, tg.Expr, exported) {
					used[sel.name] = true
					if !strings.HasPrefix(sel.name, "cdcbridge_") {
						if !strings.Contains(tg.Expr, "group_left (mapping)") {
							t.Errorf("%s: %s is not joined to a mapping (group_left (mapping) on cdcbridge_build_info): %q", where, sel.name, tg.Expr)
						}
						continue
					}
					for _, l := range []string{"mapping", "direction"} {
						if slices.Contains(exported[sel.name], l) && !strings.Contains(sel.block, l+`=~"$`+l+`"`) {
							t.Errorf("%s: %s is not filtered by $%s: %q", where, sel.name, l, tg.Expr)
						}
					}
				}
			}
		}
	}
	walk(d.Panels)
	for _, m := range dashboardMetrics {
		if !used[m] {
			t.Errorf("no panel shows %s", m)
		}
	}
}
