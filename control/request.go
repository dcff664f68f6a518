package control

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pglogrepl"

	"github.com/cdcbridge/cdcbridge/config"
)

// ForeignPolicy says what a flip does with foreign writes held by the slot
// of the direction becoming live. It is stored with the flip request.
type ForeignPolicy string

const (
	// Refuse: foreign writes stop the flip (the default).
	Refuse ForeignPolicy = ""
	// IncludeWrites starts the new live direction at the first foreign
	// write: they were live traffic and are carried over.
	IncludeWrites ForeignPolicy = "include"
	// DiscardWrites starts it at the flip point: they were test writes.
	DiscardWrites ForeignPolicy = "discard"
)

// RequestFlip asks the daemon to make `to` the live direction and returns
// the request's id. A daemon that has not claimed the request within ttl
// (by the database's clock) answers it as expired instead of carrying it
// out: the command that asked has given up by then.
func RequestFlip(ctx context.Context, db DB, name string, to config.Direction, policy ForeignPolicy, ttl time.Duration) (int64, error) {
	var id int64
	err := db.QueryRow(ctx, `UPDATE cdcbridge.state SET request = $2, request_policy = $3, request_id = request_id + 1,
		request_expires = now() + $4 * interval '1 microsecond', updated_at = now()
		WHERE name = $1 RETURNING request_id`, name, to.String(), string(policy), ttl.Microseconds()).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("recording the flip request: %w", err)
	}
	return id, nil
}

// Claim marks request id as being carried out, unless it is answered,
// claimed already, or expired. It reports whether this caller claimed it
// and, if not, whether it had expired (the caller then answers it so).
func Claim(ctx context.Context, db DB, name string, id int64) (claimed, expired bool, err error) {
	err = db.QueryRow(ctx, `WITH c AS (
			UPDATE cdcbridge.state SET claimed_id = $2, updated_at = now()
			WHERE name = $1 AND request_id = $2 AND answered_id < $2 AND claimed_id < $2
			  AND (request_expires IS NULL OR request_expires > now())
			RETURNING 1)
		SELECT EXISTS (SELECT 1 FROM c),
		       EXISTS (SELECT 1 FROM cdcbridge.state WHERE name = $1 AND request_id = $2 AND request_expires <= now())`,
		name, id).Scan(&claimed, &expired)
	if err != nil {
		return false, false, fmt.Errorf("claiming flip request %d: %w", id, err)
	}
	return claimed, expired && !claimed, nil
}

// Withdraw answers request id as withdrawn, unless a daemon has claimed it
// (it is being carried out) or it is answered. It reports whether it did.
func Withdraw(ctx context.Context, db DB, name string, id int64, answer string) (bool, error) {
	tag, err := db.Exec(ctx, `UPDATE cdcbridge.state SET answered_id = $2, answer = $3, answer_ok = false, updated_at = now()
		WHERE name = $1 AND request_id = $2 AND answered_id < $2 AND claimed_id < $2`, name, id, answer)
	if err != nil {
		return false, fmt.Errorf("withdrawing flip request %d: %w", id, err)
	}
	return tag.RowsAffected() == 1, nil
}

// Answer records the outcome of a flip request.
func Answer(ctx context.Context, db DB, name string, id int64, ok bool, answer string) error {
	_, err := db.Exec(ctx, `UPDATE cdcbridge.state SET answered_id = greatest(answered_id, $2), answer = $3, answer_ok = $4, updated_at = now() WHERE name = $1`,
		name, id, answer, ok)
	return err
}

// RecordFlip makes `live` the live direction from flipLSN on, with the
// previous live direction draining, clears the foreign writes, and answers
// request id.
func RecordFlip(ctx context.Context, db DB, name string, live config.Direction, flipLSN pglogrepl.LSN, id int64, answer string) error {
	_, err := db.Exec(ctx, `UPDATE cdcbridge.state SET live = $2, draining = nullif($3, ''), flip_lsn = $4::pg_lsn, flipped_at = now(),
		generation = generation + 1, foreign_dir = NULL, foreign_txns = 0, first_foreign_lsn = NULL, first_foreign_at = NULL, answered_id = greatest(answered_id, $5), answer = $6, answer_ok = true, updated_at = now() WHERE name = $1`,
		name, live.String(), live.Opposite().String(), flipLSN, id, answer)
	if err != nil {
		return fmt.Errorf("recording the flip: %w", err)
	}
	return nil
}
