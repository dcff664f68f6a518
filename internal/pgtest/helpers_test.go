package pgtest

import (
	"context"
	"strconv"

	"github.com/jackc/pgx/v5"
)

func itoa(i int) string { return strconv.Itoa(i) }

func pgxConnect(dsn string) (*pgx.Conn, error) { return pgx.Connect(context.Background(), dsn) }
