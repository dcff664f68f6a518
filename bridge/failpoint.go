package bridge

import (
	"os"
	"syscall"
	"time"
)

// failpoint kills the process with SIGKILL when the environment variable
// CDCBRIDGE_FAILPOINT names this point. The tests use it to crash the
// daemon at each step of a flip; it does nothing otherwise.
func failpoint(name string) {
	if os.Getenv("CDCBRIDGE_FAILPOINT") == name {
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		time.Sleep(time.Minute) // the signal is delivered before this ends
	}
}
