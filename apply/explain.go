package apply

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/cdcbridge/cdcbridge/change"
	"github.com/cdcbridge/cdcbridge/checkpoint"
)

// Error is an apply failure with where it happened: the change the target
// rejected, by its key and the LSN of its change on the side read.
type Error struct {
	Entry string
	Table change.Table
	Op    change.Op
	Key   string
	LSN   pglogrepl.LSN
	// Rows is set when the statement that failed carried several rows and
	// the one the server rejected could not be singled out (the error is
	// not about one row's values, or no row failed when they were tried
	// one by one): Key and LSN are then the first row's.
	Rows int
	Err  error
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "applying %s to %s", e.Op, e.Table)
	if e.Entry != "" {
		fmt.Fprintf(&b, " (mapping %s)", e.Entry)
	}
	if e.Key != "" {
		fmt.Fprintf(&b, " key %s", e.Key)
	}
	if e.LSN != 0 {
		fmt.Fprintf(&b, " at source LSN %s", e.LSN)
	}
	if e.Rows > 1 {
		fmt.Fprintf(&b, ", the first of %d rows in a statement that failed as a whole", e.Rows)
	}
	fmt.Fprintf(&b, ": %v", e.Err)
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// explain turns the error of a queued statement into one that says what
// failed. row is the index of the row of a run that the server rejected,
// or -1 when it is not known.
func (a *Applier) explain(it item, err error, row int) error {
	switch it.kind {
	case itemRows, itemCopy:
		r := it.run
		e := &Error{Entry: r.entry, Table: r.table, Op: r.op, Key: r.firstKey, LSN: r.lsn, Err: err}
		switch {
		case row >= 0:
			e.Key, e.LSN = r.rowKey(row), r.lsns[row]
		case r.n > 1:
			e.Rows = r.n
		}
		return e
	case itemTruncate:
		e := &Error{Table: it.trunc[0], Op: change.Truncate, Err: err}
		var pg *pgconn.PgError
		if errors.As(err, &pg) && pg.Code == pgerrcode.FeatureNotSupported && pg.Detail != "" {
			// A table outside the mapping references one of these: the
			// bridge never cascades into it.
			e.Err = fmt.Errorf("%w: %s; the bridge empties only mapped tables and never cascades into others on the side written: map that table too, or drop its foreign key", err, pg.Detail)
		}
		if len(it.trunc) > 1 {
			names := make([]string, len(it.trunc))
			for i, t := range it.trunc {
				names[i] = t.String()
			}
			e.Key = "tables " + strings.Join(names, ", ")
		}
		return e
	case itemOrigin:
		return fmt.Errorf("tagging the transaction with replication origin %s: %w", a.cfg.Origin, err)
	case itemCheckpoint:
		if checkpoint.IsMissing(err) {
			return &checkpointMissingError{name: a.cfg.Name, direction: a.cfg.Direction, err: err}
		}
		return fmt.Errorf("writing the checkpoint: %w", err)
	}
	return fmt.Errorf("applying to the target (%s): %w", it.kind, err)
}

// findWait bounds the search for the row a statement failed on.
const findWait = 10 * time.Second

// findRow finds which row of the run of items[failed], a statement of
// several rows that the server rejected with err, is the one at fault, and
// returns its index in the run, or -1.
//
// The failed statement has aborted the target transaction, and the applier
// rolls it back in any case. findRow rolls it back at once, then in a new
// transaction that it always rolls back replays what the batch ran of that
// transaction before the statement (the earlier rows may be what the
// statement's rows meet), then the statement once per row, with the same
// text, pipelined in one round trip. The first row to fail as the whole
// statement did, with the same SQLSTATE, is the one. Nothing is committed:
// the data applied and the origin's progress stay as they were. (Sequence
// values taken by column defaults are not given back, as for any rolled
// back insert.) Rows of the transaction sent in earlier batches are not
// replayed; when the culprit needs them, no row fails alone and the answer
// is -1.
//
// Only errors about a row's values are searched for: a data exception, an
// integrity constraint, a WITH CHECK OPTION, a trigger that raised.
func (a *Applier) findRow(ctx context.Context, items []item, failed int, err error) int {
	r := items[failed].run
	var pg *pgconn.PgError
	if r.n < 2 || r.fullRow || !errors.As(err, &pg) || !rowError(pg.Code) || ctx.Err() != nil || a.conn.IsClosed() {
		return -1
	}
	ctx, cancel := context.WithTimeout(ctx, findWait)
	defer cancel()
	if _, err := a.conn.Exec(ctx, "ROLLBACK"); err != nil {
		return -1
	}
	defer func() {
		// Also when ctx ended: a transaction left open would hold the
		// diagnosis's rows and locks.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		a.conn.Exec(rctx, "ROLLBACK")
	}()
	d := &pgx.Batch{}
	d.Queue("BEGIN")
	from := 0
	for j := failed - 1; j >= 0; j-- {
		if items[j].kind == itemBegin {
			from = j + 1
			break
		}
	}
	for j := from; j < failed; j++ {
		switch items[j].kind {
		case itemRows, itemTruncate:
			d.Queue(items[j].sql, items[j].args...)
		case itemCopy:
			// The same rows as an INSERT, which a pipelined batch can hold.
			r := items[j].run
			args := make([]any, len(r.params))
			for c := range r.params {
				args[c] = r.params[c]
			}
			d.Queue(buildSQL(r), args...)
		}
	}
	first := d.Len()
	sql := items[failed].sql
	for k := 0; k < r.n; k++ {
		args := make([]any, len(r.params))
		for c := range r.params {
			args[c] = pgtype.FlatArray[[]byte]{r.params[c][k]}
		}
		d.Queue(sql, args...)
	}
	br := a.conn.SendBatch(ctx, d)
	defer br.Close()
	for j := 0; j < d.Len(); j++ {
		_, err := br.Exec()
		if err == nil {
			continue
		}
		var got *pgconn.PgError
		if j >= first && errors.As(err, &got) && got.Code == pg.Code {
			return j - first
		}
		return -1
	}
	return -1
}

// rowError reports whether a SQLSTATE is about the values of a row, so
// that trying the rows one by one can single out the one at fault.
func rowError(code string) bool {
	return pgerrcode.IsDataException(code) || // a value out of range, of bad syntax, in a bad encoding
		pgerrcode.IsIntegrityConstraintViolation(code) || // NOT NULL, CHECK, unique, exclusion
		pgerrcode.IsTriggeredDataChangeViolation(code) ||
		pgerrcode.IsWithCheckOptionViolation(code) ||
		pgerrcode.IsPLpgSQLError(code) // raised by a trigger that runs on replicated rows
}

// rowKey describes row k of a run of several rows by its key, or by its
// first columns when it has none, as firstKey describes the first.
func (r *run) rowKey(k int) string {
	if r.fullRow {
		return r.firstKey
	}
	val := func(p int) change.Value {
		if b := r.params[p][k]; b != nil {
			return change.Value{Kind: change.Text, Data: b}
		}
		return change.Value{Kind: change.Null}
	}
	cols := r.keyCols
	key := make([]change.Value, len(cols))
	switch {
	case r.op != change.Insert:
		// Key columns come first.
		for i := range cols {
			key[i] = val(i)
		}
	case len(cols) > 0:
		for i, c := range cols {
			key[i] = val(indexOf(r.cols, c))
		}
	default:
		cols = r.cols
		key = make([]change.Value, len(cols))
		for i := range cols {
			key[i] = val(i)
		}
	}
	return describeKey(cols, key)
}

// Conflict asks for the target transaction to be applied again from the
// checkpoint, with what it taught. Nothing of the transaction is
// committed. Either a plain insert met a row already on the target: the
// table's inserts are upserts from now on (Config.Upserts). Or, Ordered, a
// unique or exclusion constraint failed on a table whose changes had been
// grouped out of the source's order (see builder), which can fail where
// the source's order passes (a row taking a value another row frees later
// in the source's order but earlier in the statement's): the table's
// changes keep the source's order from now on (Config.Ordered), and if the
// constraint fails again then, it is an error of its own.
type Conflict struct {
	Table   change.Table
	Key     string
	LSN     pglogrepl.LSN
	Ordered bool
	Err     error
}

func (e *Conflict) Error() string {
	if e.Ordered {
		return fmt.Sprintf("a unique constraint of %s failed at source LSN %s (%s) on changes applied out of the source's order; they keep that order from now on: %v", e.Table, e.LSN, e.Key, e.Err)
	}
	return fmt.Sprintf("an insert into %s at source LSN %s met a row already on the target (%s); its inserts are upserts from now on: %v", e.Table, e.LSN, e.Key, e.Err)
}

func (e *Conflict) Unwrap() error { return e.Err }

// checkpointMissingError: the checkpoint row vanished under the daemon. The
// transaction was rolled back, so nothing is applied without its position.
type checkpointMissingError struct {
	name, direction string
	err             error
}

func (e *checkpointMissingError) Error() string {
	return fmt.Sprintf("the checkpoint row %s/%s is missing from cdcbridge.checkpoint on the target (was it deleted?); nothing was committed", e.name, e.direction)
}

func (e *checkpointMissingError) Unwrap() error { return e.err }

// isOrderViolation reports an error that the order of rows within a table
// may cause: a unique or exclusion violation.
func isOrderViolation(err error) bool {
	var pg *pgconn.PgError
	return errors.As(err, &pg) && (pg.Code == pgerrcode.UniqueViolation || pg.Code == pgerrcode.ExclusionViolation)
}

// isUniqueViolation reports a unique_violation.
func isUniqueViolation(err error) bool {
	var pg *pgconn.PgError
	return errors.As(err, &pg) && pg.Code == pgerrcode.UniqueViolation
}
