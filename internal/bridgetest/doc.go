// Package bridgetest is the harness the integration tests of the bridge's
// packages share: a pair of fresh databases with a mapping written for them
// (Env), a direction or a daemon running in the background with its logs
// captured (Proc), waiting on an observed state (Eventually, on
// pgtest.Until, the one condition wait of the tests), and the password
// canary check (Main).
//
// Every log line a Proc or a Logger writes is also kept for the test
// binary; Main fails the run when the canary password of the test clusters
// appears in them, and also when tests made a logger here and yet no line
// was captured at all, so that the check cannot pass by proving nothing. A
// package whose tests use Main must therefore log through this package.
package bridgetest
