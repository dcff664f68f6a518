package pipeline

import (
	"errors"
	"sync"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/cdcbridge/cdcbridge/apply"
	"github.com/cdcbridge/cdcbridge/transform"
)

// staleCatalog: a change failed in a way that tables altered since the
// pipeline started explain (a column added to the side written, a type
// changed). The pipeline restarts at once, reading the catalogs again; the
// same failure a second time is handled as any other.
type staleCatalog struct{ Err error }

func (e *staleCatalog) Error() string { return e.Err.Error() }
func (e *staleCatalog) Unwrap() error { return e.Err }

// rereads remembers, for the life of a pipeline, the failures that made it
// read the catalogs again: one re-read per mapping entry and column (or
// target table and SQLSTATE), so that a failure that is not about the
// catalogs costs one restart, not one per change.
type rereads struct {
	mu   sync.Mutex
	seen map[string]bool
}

// first reports whether err is about the tables' shape and is the first of
// its kind: then the caller re-reads the catalogs.
func (r *rereads) first(err error) bool {
	if r == nil {
		return false
	}
	var key string
	var te *transform.Error
	var ae *apply.Error
	var pg *pgconn.PgError
	switch {
	case errors.As(err, &te) && te.Column != "" && te.Stack == "":
		key = "transform\x00" + te.Entry + "\x00" + te.Column
	case errors.As(err, &ae) && errors.As(err, &pg) && (pg.Code == pgerrcode.UndefinedColumn || pg.Code == pgerrcode.DatatypeMismatch || pg.Code == pgerrcode.UndefinedTable):
		// undefined column, datatype mismatch, undefined table
		key = "apply\x00" + ae.Table.String() + "\x00" + pg.Code + "\x00" + pg.ColumnName
	default:
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.seen[key] {
		return false
	}
	if r.seen == nil {
		r.seen = map[string]bool{}
	}
	r.seen[key] = true
	return true
}
