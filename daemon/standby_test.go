package daemon_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/cdcbridge/cdcbridge/control"
	"github.com/cdcbridge/cdcbridge/internal/bridgetest"
	"github.com/cdcbridge/cdcbridge/internal/pgtest"
)

// TestStandbyTakesOver: a second daemon of a mapping does not exit: it
// stands by (the target shows it waiting for the daemon lock) and, once
// the active one stops, takes over from the checkpoints.
func TestStandbyTakesOver(t *testing.T) {
	e := bridgetest.NewEnv(t, bridgetest.OrdersGreen, bridgetest.OrdersBlue)
	m := e.Mapping("standby", "  - source: orders\n    target: orders_v2\n    transform: orders.js\n", map[string]string{"orders.js": bridgetest.OrdersJS})
	active := e.Daemon(m, false)
	active.WaitModes(t, "forward live", "reverse armed")
	standby := e.Daemon(m, false)
	pgtest.WaitFor(t, 30*time.Second, "the second daemon to stand by", func() bool {
		return strings.Contains(standby.Logs.String(), "another daemon runs this mapping; standing by")
	}, standby.Logs)
	roles := func() string {
		ds, err := control.DaemonSessions(context.Background(), e.Tgt, m.Name)
		if err != nil {
			t.Fatal(err)
		}
		var r []string
		for _, d := range ds {
			if d.Active {
				r = append(r, "active")
			} else {
				r = append(r, "standby")
			}
		}
		return strings.Join(r, ",")
	}
	pgtest.WaitFor(t, 10*time.Second, "the target to show an active daemon and a standby", func() bool { return roles() == "active,standby" }, standby.Logs)
	e.ExecSource(t, `INSERT INTO orders (amount, status, note) SELECT g, 'new', 'active' FROM generate_series(1, 10) g`)
	bridgetest.Eventually(t, e.Tgt, bridgetest.BlueRows, bridgetest.Query(t, e.Src, bridgetest.GreenAsBlue), active)
	if err, stopped := standby.Stopped(); stopped {
		t.Fatalf("the standby exited: %v\n%s", err, standby.Logs.String())
	}

	active.Stop(t)
	e.ExecSource(t, `INSERT INTO orders (amount, status, note) SELECT g, 'paid', 'standby' FROM generate_series(1, 10) g`)
	standby.WaitModes(t, "forward live", "reverse armed")
	bridgetest.Eventually(t, e.Tgt, bridgetest.BlueRows, bridgetest.Query(t, e.Src, bridgetest.GreenAsBlue), standby)
	if !strings.Contains(standby.Logs.String(), "this standby takes over") {
		t.Errorf("the takeover was not logged\n%s", standby.Logs.String())
	}
	if got := roles(); got != "active" {
		t.Errorf("after the takeover the target shows %q", got)
	}
}
