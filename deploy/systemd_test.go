package deploy

import (
	"bufio"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const unitFile = "systemd/cdcbridge@.service"

// unitDirectives reads a unit file into section -> key -> values, in order
// (a key may repeat, as SystemCallFilter= does).
func unitDirectives(t *testing.T, path string) map[string]map[string][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	units := map[string]map[string][]string{}
	section := ""
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = line[1 : len(line)-1]
			units[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("%s:%d: %q is not key=value in a section", path, n, line)
			}
			units[section][k] = append(units[section][k], v)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return units
}

// TestSystemdUnitSettings checks the settings an operator relies on: the
// instance's mapping and environment file, restarts, the stop signal, the
// dedicated user and the hardening.
func TestSystemdUnitSettings(t *testing.T) {
	u := unitDirectives(t, unitFile)
	svc := u["Service"]
	want := map[string]string{
		"ExecStart":                "/usr/local/bin/cdcbridge run -c /etc/cdcbridge/%i/mapping.yaml",
		"EnvironmentFile":          "/etc/cdcbridge/%i/env",
		"Restart":                  "on-failure",
		"RestartPreventExitStatus": "2",
		"KillSignal":               "SIGTERM",
		"DynamicUser":              "yes",
		"ReadOnlyPaths":            "/etc/cdcbridge/%i",
		"NoNewPrivileges":          "yes",
		"ProtectSystem":            "strict",
		"ProtectHome":              "yes",
		"PrivateTmp":               "yes",
		"PrivateDevices":           "yes",
		"ProtectKernelTunables":    "yes",
		"ProtectKernelModules":     "yes",
		"ProtectKernelLogs":        "yes",
		"ProtectControlGroups":     "yes",
		"RestrictAddressFamilies":  "AF_UNIX AF_INET AF_INET6",
		"CapabilityBoundingSet":    "",
	}
	for k, v := range want {
		if got := svc[k]; !slices.Equal(got, []string{v}) {
			t.Errorf("[Service] %s = %q, want exactly %q", k, got, v)
		}
	}
	if got := svc["SystemCallFilter"]; len(got) == 0 || got[0] != "@system-service" {
		t.Errorf("[Service] SystemCallFilter = %q, want @system-service first", got)
	}
	for _, k := range []string{"RestartSec", "TimeoutStopSec"} {
		if len(svc[k]) != 1 {
			t.Errorf("[Service] %s = %q, want one value", k, svc[k])
		}
	}
	// The daemon reloads its mapping and scripts on SIGHUP.
	if r := svc["ExecReload"]; !slices.Equal(r, []string{"/bin/kill -HUP $MAINPID"}) {
		t.Errorf("[Service] ExecReload = %q, want the daemon's SIGHUP", r)
	}
	if _, ok := u["Install"]["WantedBy"]; !ok {
		t.Errorf("[Install] has no WantedBy: systemctl enable would do nothing")
	}
}

// TestSystemdAnalyzeVerify runs systemd-analyze verify on an instance of the
// unit and fails on any message about it, warnings included (an unknown or
// misspelt key is only a warning there). The unit's binary must exist, so a
// copy of the unit runs this test's own executable instead.
func TestSystemdAnalyzeVerify(t *testing.T) {
	analyze := tool(t, "systemd-analyze", "systemd")
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := copyUnit(t, exe)
	instance := filepath.Join(dir, "cdcbridge@shop.service")
	out := run(t, dir, analyze, "verify", "--man=no", instance)
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if strings.Contains(line, "cdcbridge@") || strings.Contains(line, dir) {
			t.Errorf("systemd-analyze verify: %s", line)
		} else if line != "" {
			t.Logf("systemd-analyze verify (not about this unit): %s", line)
		}
	}

	// The exposure score runs from 0 (locked down) to 10; the unit is at
	// about 1.1. --threshold is in tenths.
	out = run(t, dir, analyze, "security", "--offline=true", "--threshold=20", "--no-pager", instance)
	if !strings.Contains(out, "Overall exposure level") {
		t.Errorf("systemd-analyze security printed no exposure level:\n%s", out)
	}
}

// copyUnit copies the unit into a temporary directory with ExecStart's
// binary replaced by exe, and returns the directory.
func copyUnit(t *testing.T, exe string) string {
	t.Helper()
	b, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	const bin = "ExecStart=/usr/local/bin/cdcbridge "
	if strings.Count(string(b), "\n"+bin) != 1 {
		t.Fatalf("%s: want one line starting %q", unitFile, bin)
	}
	s := strings.Replace(string(b), "\n"+bin, "\nExecStart="+exe+" ", 1)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "cdcbridge@.service"), []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}
