package sequences

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/cdcbridge/cdcbridge/change"
)

// Execer is what Sync needs of a connection; *pgx.Conn, pgx.Tx and
// *pgxpool.Pool have it.
type Execer interface {
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

var (
	// ErrNegativeIncrement: a sequence of the pair counts down. Only
	// ascending sequences are kept in step; such a pair is skipped.
	ErrNegativeIncrement = errors.New("the sequence counts down; only ascending sequences are kept in step")
	// ErrOutOfRange: the receiving sequence cannot reach the sender's next
	// value (its MAXVALUE is lower, or the sender is exhausted).
	ErrOutOfRange = errors.New("the receiving sequence cannot reach the sender's next value")
)

// PairError is a problem with one pair; Sync goes on with the others.
type PairError struct {
	Pair Pair
	Err  error
}

func (e *PairError) Error() string {
	return fmt.Sprintf("%s: %s -> %s: %v", e.Pair.Entry, e.Pair.From, e.Pair.To, e.Err)
}

func (e *PairError) Unwrap() error { return e.Err }

// Sync moves each pair's receiving sequence (on to) up to the next value its
// sending sequence (on from) would hand out, when it is behind; a receiver
// that is ahead is left alone. It returns the pairs it moved, in order.
//
// Problems with single pairs (ErrNegativeIncrement, ErrOutOfRange, a
// sequence that no longer exists) come back as *PairError values joined in
// err, next to the pairs that did move. Any other error (the connection, ctx)
// ends the call; changed then holds what moved before it.
func Sync(ctx context.Context, from, to Execer, pairs []Pair) (changed []Pair, err error) {
	return SyncAhead(ctx, from, to, pairs, 0)
}

// SyncAhead is Sync with the receivers moved gap values past the senders'
// next ones. A flip uses it: the side that was live may still hand out a
// few ids while traffic moves, and the gap keeps the new live side clear of
// them.
func SyncAhead(ctx context.Context, from, to Execer, pairs []Pair, gap int64) (changed []Pair, err error) {
	if gap < 0 {
		return nil, fmt.Errorf("sequence gap %d: must not be negative", gap)
	}
	moves, err := syncGap(ctx, from, to, pairs, gap)
	for _, m := range moves {
		changed = append(changed, m.Pair)
	}
	return changed, err
}

// move is a pair whose receiver was set to hand out Next next.
type move struct {
	Pair
	Next int64
}

func sync(ctx context.Context, from, to Execer, pairs []Pair) ([]move, error) {
	return syncGap(ctx, from, to, pairs, 0)
}

func syncGap(ctx context.Context, from, to Execer, pairs []Pair, gap int64) ([]move, error) {
	var (
		pairErrs []error
		fail     = func(p Pair, err error) { pairErrs = append(pairErrs, &PairError{Pair: p, Err: err}) }
		todo     []Pair
		reads    []stmt
		next     []int64
	)
	for _, p := range pairs {
		f, err := quoted(p.From.Sequence)
		if err != nil {
			fail(p, err)
			continue
		}
		if _, err := quoted(p.To.Sequence); err != nil {
			fail(p, err)
			continue
		}
		todo = append(todo, p)
		next = append(next, 0)
		i := len(next) - 1
		reads = append(reads, stmt{
			sql: `SELECT s.last_value, s.is_called, p.seqincrement FROM ` + f + ` s
				JOIN pg_sequence p ON p.seqrelid = s.tableoid`,
			scan: func(row pgx.Row) error {
				var (
					last, inc int64
					called    bool
				)
				if err := row.Scan(&last, &called, &inc); err != nil {
					return err
				}
				switch {
				case inc <= 0:
					return ErrNegativeIncrement
				case !called:
					// Never called, restarted or setval(.., false): nextval
					// returns last_value itself.
					next[i] = last
				case last > math.MaxInt64-inc:
					return fmt.Errorf("it is exhausted: %w", ErrOutOfRange)
				default:
					next[i] = last + inc
				}
				return nil
			},
		})
	}
	errs, err := pipeline(ctx, from, reads)
	if err != nil {
		return nil, fmt.Errorf("reading the sending sequences: %w", err)
	}

	var (
		writes []stmt
		moves  = make([]*move, len(todo))
	)
	for i, p := range todo {
		if errs[i] != nil {
			fail(p, fmt.Errorf("reading the sending sequence %s: %w", p.From.Sequence, errs[i]))
			continue
		}
		t, _ := quoted(p.To.Sequence)
		want := next[i]
		if want > math.MaxInt64-gap {
			fail(p, fmt.Errorf("a gap of %d passes the end of the range: %w", gap, ErrOutOfRange))
			continue
		}
		want += gap
		writes = append(writes, stmt{
			// The receiver's position is read in the statement that moves
			// it, as late as it can be, and the comparison happens there
			// rather than in a second round trip. numeric keeps
			// last_value + increment from overflowing at the top of the
			// range.
			sql: `SELECT p.seqincrement, p.seqmax,
				       CASE WHEN p.seqincrement > 0 AND $1 <= p.seqmax
				                 AND $1 > CASE WHEN s.is_called THEN s.last_value::numeric + p.seqincrement ELSE s.last_value END
				            THEN setval(s.tableoid, $1, false) END
				FROM ` + t + ` s JOIN pg_sequence p ON p.seqrelid = s.tableoid`,
			args: []any{want},
			scan: func(row pgx.Row) error {
				var (
					inc, maxValue int64
					set           *int64
				)
				if err := row.Scan(&inc, &maxValue, &set); err != nil {
					return err
				}
				switch {
				case inc <= 0:
					return ErrNegativeIncrement
				case want > maxValue:
					return fmt.Errorf("the sender's next value %d is above its MAXVALUE %d: %w", want, maxValue, ErrOutOfRange)
				case set != nil:
					moves[i] = &move{Pair: p, Next: want}
				}
				return nil
			},
			pair: i,
		})
	}
	werrs, err := pipeline(ctx, to, writes)
	var out []move
	for _, m := range moves {
		if m != nil {
			out = append(out, *m)
		}
	}
	if err != nil {
		return out, fmt.Errorf("moving the receiving sequences: %w", err)
	}
	for j, w := range writes {
		if werrs[j] != nil {
			p := todo[w.pair]
			fail(p, fmt.Errorf("moving the receiving sequence %s: %w", p.To.Sequence, werrs[j]))
		}
	}
	return out, errors.Join(pairErrs...)
}

// quoted returns a sequence name quoted for SQL. Names are parsed and quoted
// again rather than trusted: a name may come from a mapping file.
func quoted(name string) (string, error) {
	t, err := change.ParseTable(name)
	if err != nil {
		return "", fmt.Errorf("naming the sequence: %w", err)
	}
	return t.String(), nil
}

// stmt is one statement of a pipeline and what to do with its one row.
type stmt struct {
	sql  string
	args []any
	scan func(pgx.Row) error
	pair int
}

// pipeline runs stmts in one round trip where it can and returns each
// statement's error at its index: the error of its scan, or the server's
// when the statement failed there (a *pgconn.PgError). A statement that
// fails on the server does not stop the others: the batch resumes after it.
// PostgreSQL reports a statement that does not prepare (a sequence dropped
// since Discover) before running any of the batch, so when nothing ran the
// first statement is run alone to tell whose error it was. Any other error
// (the connection, ctx) is returned as err.
func pipeline(ctx context.Context, db Execer, stmts []stmt) (errs []error, err error) {
	errs = make([]error, len(stmts))
	for i := 0; i < len(stmts); {
		done, stmtErr, err := batch(ctx, db, stmts[i:], errs[i:])
		if err != nil {
			return nil, err
		}
		i += done
		if stmtErr == nil {
			continue
		}
		if done == 0 && len(stmts)-i > 1 {
			if done, stmtErr, err = batch(ctx, db, stmts[i:i+1], errs[i:i+1]); err != nil {
				return nil, err
			}
			if done == 1 {
				i++
				continue
			}
		}
		errs[i] = stmtErr
		i++
	}
	return errs, nil
}

// batch sends stmts as one batch and scans their rows in order, until one
// fails on the server. It returns how many were scanned and the server's
// error for the next one; scan errors go to errs.
func batch(ctx context.Context, db Execer, stmts []stmt, errs []error) (done int, stmtErr, err error) {
	b := &pgx.Batch{}
	for _, s := range stmts {
		b.Queue(s.sql, s.args...)
	}
	br := db.SendBatch(ctx, b)
	for i, s := range stmts {
		row := &recordingRow{Row: br.QueryRow()}
		scanErr := s.scan(row)
		if row.err != nil {
			var pgErr *pgconn.PgError
			if errors.As(row.err, &pgErr) {
				stmtErr = row.err
			} else {
				err = row.err
			}
			break
		}
		errs[i] = scanErr
		done++
	}
	closeErr := br.Close()
	if err == nil && stmtErr == nil {
		err = closeErr
	}
	return done, stmtErr, err
}

// recordingRow remembers what Scan returned, to tell the server's errors
// from the checks a scan function makes on the values.
type recordingRow struct {
	pgx.Row
	err error
}

func (r *recordingRow) Scan(dest ...any) error {
	r.err = r.Row.Scan(dest...)
	return r.err
}
