package deploy

import (
	"encoding/json"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestDeployedCommandLines checks that the command lines of the systemd
// unit, the Kubernetes Deployment and the image's CMD use flags that
// `cdcbridge run` has, as its --help lists them.
func TestDeployedCommandLines(t *testing.T) {
	out, err := exec.Command(cdcbridgeBinary(t), "run", "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("cdcbridge run --help: %v\n%s", err, out)
	}
	flags := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\s+-{1,2}([a-z][a-z0-9-]*)`).FindAllStringSubmatch(string(out), -1) {
		flags[m[1]] = true
	}
	if !flags["c"] {
		t.Fatalf("cdcbridge run --help lists no -c:\n%s", out)
	}

	lines := map[string][]string{}
	unit := unitDirectives(t, unitFile)
	lines[unitFile] = strings.Fields(unit["Service"]["ExecStart"][0])[1:]
	lines["kubernetes/deployment.yaml"] = loadManifests(t).deployment.Spec.Template.Spec.Containers[0].Args
	cf, err := os.ReadFile("container/Containerfile")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^CMD (\[.*\])$`).FindSubmatch(cf)
	if m == nil {
		t.Fatalf("container/Containerfile has no CMD [...]")
	}
	var cmd []string
	if err := json.Unmarshal(m[1], &cmd); err != nil {
		t.Fatalf("container/Containerfile: CMD %s: %v", m[1], err)
	}
	lines["container/Containerfile"] = cmd

	for file, args := range lines {
		if len(args) == 0 || args[0] != "run" {
			t.Errorf("%s: %q does not run the daemon", file, args)
			continue
		}
		if !slices.Contains(args, "-c") {
			t.Errorf("%s: %q names no mapping with -c", file, args)
		}
		for _, a := range args[1:] {
			if !strings.HasPrefix(a, "-") {
				continue
			}
			name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
			if !flags[name] {
				t.Errorf("%s: cdcbridge run has no flag %s", file, a)
			}
		}
	}
}
