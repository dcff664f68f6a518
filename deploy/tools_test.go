package deploy

import (
	"os"
	"os/exec"
	"testing"
)

// inCI reports whether the suite runs in CI, where a missing tool is a
// failure rather than a skip.
func inCI() bool { return os.Getenv("CI") == "true" }

// tool returns the path of the named program, or skips the test (fails it
// in CI) when it is not installed.
func tool(t testing.TB, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		missing(t, "%s not found (Debian package %s; scripts/test.sh installs it as root)", name, pkg)
	}
	return p
}

// missing skips the test for a missing prerequisite, or fails it in CI.
func missing(t testing.TB, format string, args ...any) {
	t.Helper()
	if inCI() {
		t.Fatalf("CI=true: "+format, args...)
	}
	t.Skipf(format, args...)
}

// run runs a command and returns its combined output, failing the test
// with that output when it does not exit 0.
func run(t testing.TB, dir string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %q: %v\n%s", name, args, err, out)
	}
	return string(out)
}
