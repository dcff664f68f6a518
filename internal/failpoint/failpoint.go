package failpoint

// Env names the point at which a binary built with the tag dies.
const Env = "CDCBRIDGE_FAILPOINT"
