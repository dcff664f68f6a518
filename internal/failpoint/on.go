//go:build failpoints

package failpoint

import (
	"os"
	"syscall"
	"time"
)

// Enabled reports whether Hit can kill the process (built with the tag).
const Enabled = true

// Hit kills the process with SIGKILL when CDCBRIDGE_FAILPOINT is name.
func Hit(name string) {
	if os.Getenv(Env) == name {
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		time.Sleep(time.Minute) // the signal is delivered before this ends
	}
}
