package deploy

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
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

const (
	versionPkg  = "github.com/cdcbridge/cdcbridge/internal/version"
	testVersion = "v0.0.0-deploytest"
	testRev     = "0123456789abcdef0123456789abcdef01234567"
)

var bin struct {
	once sync.Once
	dir  string
	path string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if bin.dir != "" {
		os.RemoveAll(bin.dir)
	}
	os.Exit(code)
}

// cdcbridgeBinary builds the daemon once per test run as the Containerfile
// says: static, without file system paths, with a stamped version.
func cdcbridgeBinary(t testing.TB) string {
	t.Helper()
	bin.once.Do(func() {
		if bin.dir, bin.err = os.MkdirTemp("", "cdcbridge-deploy-"); bin.err != nil {
			return
		}
		bin.path = filepath.Join(bin.dir, "cdcbridge")
		cmd := exec.Command("go", "build", "-trimpath",
			"-ldflags", fmt.Sprintf("-s -w -X %s.Version=%s -X %s.Revision=%s", versionPkg, testVersion, versionPkg, testRev),
			"-o", bin.path, "./cmd/cdcbridge")
		cmd.Dir = ".."
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			bin.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if bin.err != nil {
		t.Fatal(bin.err)
	}
	return bin.path
}
