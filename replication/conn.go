package replication

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// connectReplication opens a logical replication connection
// (replication=database) to the database connString names.
func connectReplication(ctx context.Context, connString string) (*pgconn.PgConn, error) {
	cfg, err := pgconn.ParseConfig(connString)
	if err != nil {
		return nil, &connStringError{err: err}
	}
	cfg.RuntimeParams["replication"] = "database"
	SetClientEncoding(cfg.RuntimeParams)
	SetServerKeepalives(cfg.RuntimeParams)
	// pgoutput prints values with the walsender session's output settings.
	// Fix them, so the text that reaches transforms and fixtures is the
	// same whatever the server's or role's defaults: ISO dates, UTC,
	// shortest exact floats, hex bytea.
	for _, s := range TextForm {
		cfg.RuntimeParams[s[0]] = s[1]
	}
	if cfg.RuntimeParams["application_name"] == "" {
		// What operators see in pg_stat_replication and pg_stat_activity.
		cfg.RuntimeParams["application_name"] = "cdcbridge"
	}
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		// pgconn's connect errors name user, host and database, never the password.
		return nil, fmt.Errorf("connecting for replication: %w", err)
	}
	return conn, nil
}

// connStringError hides a connection string that could not be parsed: pgconn
// redacts passwords from it only on a best-effort basis, and the underlying
// url errors quote the string whole. The original stays reachable with
// errors.As for a caller that knows how to redact it.
type connStringError struct{ err error }

func (e *connStringError) Error() string {
	return "parsing the connection string: it is not valid (not shown here, as it may hold a password)"
}

func (e *connStringError) Unwrap() error { return e.err }

// TextForm lists the session settings that decide the text form of values:
// ISO dates, UTC, shortest exact floats, hex bytea. The stream's walsender
// runs with them, and every other session of the bridge that reads or
// writes values sets them too (SetTextForm), so that a value has one text
// form wherever it is read, compared or written.
var TextForm = [][2]string{
	{"DateStyle", "ISO, YMD"},
	{"IntervalStyle", "postgres"},
	{"TimeZone", "UTC"},
	{"extra_float_digits", "1"},
	{"bytea_output", "hex"},
}

// SetTextForm sets TextForm on a session.
func SetTextForm(ctx context.Context, conn *pgx.Conn) error {
	for _, s := range TextForm {
		if _, err := conn.Exec(ctx, "SELECT pg_catalog.set_config($1, $2, false)", s[0], s[1]); err != nil {
			return fmt.Errorf("setting %s = %s: %w", s[0], s[1], err)
		}
	}
	return nil
}

// SetClientEncoding makes a connection's client_encoding UTF8 unless the
// connection string (or PGCLIENTENCODING) chose one: pass it the runtime
// parameters of every connection the bridge opens. Transforms, JSON and Go
// strings are all UTF-8, and a server converts its text to and from the
// client's encoding, so a LATIN1 side and a UTF8 side exchange characters,
// not bytes misread. (Without it a connection takes its database's
// encoding, and text passes between two differently encoded databases as
// unconverted bytes.) A SQL_ASCII database does no conversion: its bytes
// must then be valid UTF-8, or both DSNs must say client_encoding=SQL_ASCII.
func SetClientEncoding(params map[string]string) {
	if _, ok := params["client_encoding"]; !ok {
		params["client_encoding"] = "UTF8"
	}
}

// ServerKeepalives are the TCP keepalive settings every session of the
// bridge asks its server for, unless the connection string sets them: the
// server probes a silent client after 10 s, every 5 s, and ends the session
// after 3 unanswered probes. A daemon whose host dies or is cut off thus
// lets go of its locks (and a standby takes over) within about half a
// minute, not after the kernel's default of two hours. They do nothing on
// a Unix socket. (A walsender of such a daemon ends after the server's
// wal_sender_timeout, 60 s by default.)
var ServerKeepalives = [][2]string{
	{"tcp_keepalives_idle", "10"},
	{"tcp_keepalives_interval", "5"},
	{"tcp_keepalives_count", "3"},
}

// SetServerKeepalives sets ServerKeepalives in a connection's runtime
// parameters where the connection string did not set them.
func SetServerKeepalives(params map[string]string) {
	for _, s := range ServerKeepalives {
		if _, ok := params[s[0]]; !ok {
			params[s[0]] = s[1]
		}
	}
}

// ConnectSQL opens a normal (not a replication) connection with the
// bridge's session defaults (SetClientEncoding). Errors name user, host and
// database, never the password.
func ConnectSQL(ctx context.Context, connString string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(connString)
	if err != nil {
		return nil, &connStringError{err: err}
	}
	SetClientEncoding(cfg.RuntimeParams)
	SetServerKeepalives(cfg.RuntimeParams)
	return pgx.ConnectConfig(ctx, cfg)
}
