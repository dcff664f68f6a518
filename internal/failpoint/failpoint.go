// Package failpoint crashes the process at named points, for the tests that
// kill the daemon at each step of a flip or a copy. It is compiled in only
// with the build tag failpoints (the tests of cmd/cdcbridge build the binary
// so); in a release binary Hit does nothing and costs nothing.
//
// With the tag, Hit(name) kills the process with SIGKILL when the
// environment variable CDCBRIDGE_FAILPOINT is name.
package failpoint

// Env names the point at which a binary built with the tag dies.
const Env = "CDCBRIDGE_FAILPOINT"
