// Package dbconn opens the bridge's ordinary (not replication) connections
// to the two sides of a mapping, the same way for every package: with the
// bridge's session defaults (replication.SetClientEncoding), a connect
// timeout, and errors that name the side and its user@host:port/db, never
// the password. A DSN that cannot be parsed is a fault.FatalError.
package dbconn
