package failpoint

import (
	"os"
	"os/exec"
	"testing"
)

// TestReleaseBuildIgnoresFailpoints: without the tag, a point named in the
// environment does not kill the process; with it, it does (checked in a
// child process).
func TestReleaseBuildIgnoresFailpoints(t *testing.T) {
	if os.Getenv("FAILPOINT_CHILD") == "1" {
		Hit("here")
		os.Exit(0)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestReleaseBuildIgnoresFailpoints$")
	cmd.Env = append(os.Environ(), "FAILPOINT_CHILD=1", Env+"=here")
	err := cmd.Run()
	killed := err != nil && cmd.ProcessState != nil && !cmd.ProcessState.Exited()
	if killed != Enabled {
		t.Fatalf("built with failpoints=%v, the child was killed=%v (%v)", Enabled, killed, err)
	}
}
