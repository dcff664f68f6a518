package dbconn

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cdcbridge/cdcbridge/config"
	"github.com/cdcbridge/cdcbridge/fault"
	"github.com/cdcbridge/cdcbridge/replication"
)

// Connect opens a normal connection to a side, with errors that name the
// side and never the password.
func Connect(ctx context.Context, dsn config.DSN, side string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(dsn.ConnString())
	if err != nil {
		return nil, &fault.FatalError{Err: fmt.Errorf("the %s DSN is not valid: %w", side, dsn.Redact(err))}
	}
	replication.SetClientEncoding(cfg.RuntimeParams)
	replication.SetServerKeepalives(cfg.RuntimeParams)
	cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	conn, err := pgx.ConnectConfig(cctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connecting to the %s (%s): %w", side, dsn, dsn.Redact(err))
	}
	return conn, nil
}
