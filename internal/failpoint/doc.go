// Package failpoint crashes the process at named points, for the tests that
// kill the daemon at each step of a flip or a copy and check that a restart
// finishes the job with nothing lost or applied twice. It owns the switch
// and nothing else: the points themselves are calls of Hit in the code that
// reaches them (the daemon's flip and drain, the flip's carry, the initial
// copy and the backfill of package pipeline).
//
// It is compiled in only with the build tag failpoints (the tests of
// cmd/cdcbridge build the binary so); in a release binary Hit does nothing
// and costs nothing, and Enabled is false.
//
// With the tag, Hit(name) kills the process with SIGKILL when the
// environment variable CDCBRIDGE_FAILPOINT (Env) is name, and does not
// return.
package failpoint
