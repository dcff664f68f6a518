//go:build !failpoints

package failpoint

// Enabled reports whether Hit can kill the process (built with the tag).
const Enabled = false

// Hit does nothing: the binary was built without the tag failpoints.
func Hit(string) {}
