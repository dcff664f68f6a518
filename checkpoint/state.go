package checkpoint

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
)

// StateDDL creates the bridge state table. It lives on the target (the new
// slice): one row per mapping, saying which direction is live, where the
// last flip happened, and carrying flip requests from `cdcbridge flip` to
// the running daemon and its answers back.
const StateDDL = `
CREATE SCHEMA IF NOT EXISTS cdcbridge;
CREATE TABLE IF NOT EXISTS cdcbridge.state (
	name          text PRIMARY KEY,
	live          text NOT NULL DEFAULT 'forward',
	flip_lsn      pg_lsn,
	flipped_at    timestamptz,
	generation    int NOT NULL DEFAULT 0,
	draining      text,
	request       text,
	request_policy text NOT NULL DEFAULT '',
	request_id    bigint NOT NULL DEFAULT 0,
	answered_id   bigint NOT NULL DEFAULT 0,
	answer        text,
	answer_ok     bool,
	updated_at    timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE cdcbridge.state ADD COLUMN IF NOT EXISTS foreign_dir text;
ALTER TABLE cdcbridge.state ADD COLUMN IF NOT EXISTS foreign_txns bigint NOT NULL DEFAULT 0;
ALTER TABLE cdcbridge.state ADD COLUMN IF NOT EXISTS first_foreign_lsn pg_lsn;
ALTER TABLE cdcbridge.state ADD COLUMN IF NOT EXISTS first_foreign_at timestamptz;
ALTER TABLE cdcbridge.state ADD COLUMN IF NOT EXISTS request_expires timestamptz;
ALTER TABLE cdcbridge.state ADD COLUMN IF NOT EXISTS claimed_id bigint NOT NULL DEFAULT 0;`

// BridgeState is the state row of a mapping.
type BridgeState struct {
	Name       string
	Live       string // "forward" or "reverse"
	FlipLSN    pglogrepl.LSN
	FlippedAt  time.Time
	Generation int
	// Draining names the direction that was live before the last flip while
	// it still applies what arrives on its side, "" once it is quiet.
	Draining      string
	Request       string
	RequestPolicy string
	RequestID     int64
	AnsweredID    int64
	Answer        string
	AnswerOK      bool
	// RequestExpires is when an unclaimed request stops being valid: the
	// command that made it has given up by then. ClaimedID is the last
	// request a daemon began to carry out.
	RequestExpires time.Time
	ClaimedID      int64
	// Foreign writes held by the armed direction ForeignDir, as last
	// reported by the daemon.
	ForeignDir      string
	ForeignTxns     int64
	FirstForeignLSN pglogrepl.LSN
	FirstForeignAt  time.Time
}

// EnsureState creates the table and the mapping's row (live: the given
// direction) when missing, and returns the row.
func EnsureState(ctx context.Context, db Execer, name, live string) (BridgeState, error) {
	if _, err := db.Exec(ctx, StateDDL); err != nil {
		return BridgeState{}, fmt.Errorf("creating cdcbridge.state: %w", err)
	}
	if _, err := db.Exec(ctx, `INSERT INTO cdcbridge.state (name, live) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING`, name, live); err != nil {
		return BridgeState{}, fmt.Errorf("creating the state of %s: %w", name, err)
	}
	return LoadState(ctx, db, name)
}

// ErrNoState: the mapping has never run.
var ErrNoState = errors.New("no bridge state: the daemon has not run for this mapping yet")

// LoadState reads the state row of a mapping.
func LoadState(ctx context.Context, db Execer, name string) (BridgeState, error) {
	var exists bool
	if err := db.QueryRow(ctx, `SELECT to_regclass('cdcbridge.state') IS NOT NULL`).Scan(&exists); err != nil {
		return BridgeState{}, fmt.Errorf("looking for cdcbridge.state: %w", err)
	}
	if !exists {
		return BridgeState{}, ErrNoState
	}
	var (
		s                         = BridgeState{Name: name}
		flip                      *string
		flippedAt                 *time.Time
		draining, request, answer *string
		answerOK                  *bool
		foreignDir, firstForeign  *string
		firstForeignAt, expires   *time.Time
	)
	err := db.QueryRow(ctx, `SELECT live, flip_lsn::text, flipped_at, generation, draining, request, request_policy, request_id, answered_id, answer, answer_ok,
		foreign_dir, foreign_txns, first_foreign_lsn::text, first_foreign_at, request_expires, claimed_id
		FROM cdcbridge.state WHERE name = $1`, name).Scan(&s.Live, &flip, &flippedAt, &s.Generation, &draining, &request,
		&s.RequestPolicy, &s.RequestID, &s.AnsweredID, &answer, &answerOK, &foreignDir, &s.ForeignTxns, &firstForeign, &firstForeignAt, &expires, &s.ClaimedID)
	if expires != nil {
		s.RequestExpires = *expires
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return BridgeState{}, ErrNoState
	}
	if err != nil {
		return BridgeState{}, fmt.Errorf("reading the state of %s: %w", name, err)
	}
	if flip != nil {
		if s.FlipLSN, err = pglogrepl.ParseLSN(*flip); err != nil {
			return BridgeState{}, err
		}
	}
	if flippedAt != nil {
		s.FlippedAt = *flippedAt
	}
	s.Draining, s.Request, s.Answer = deref(draining), deref(request), deref(answer)
	s.AnswerOK = answerOK != nil && *answerOK
	s.ForeignDir = deref(foreignDir)
	if firstForeign != nil {
		s.FirstForeignLSN, _ = pglogrepl.ParseLSN(*firstForeign)
	}
	if firstForeignAt != nil {
		s.FirstForeignAt = *firstForeignAt
	}
	return s, nil
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// RequestFlip asks the daemon to make `to` the live direction and returns
// the request's id. A daemon that has not claimed the request within ttl
// (by the database's clock) answers it as expired instead of carrying it
// out: the command that asked has given up by then.
func RequestFlip(ctx context.Context, db Execer, name, to, policy string, ttl time.Duration) (int64, error) {
	var id int64
	err := db.QueryRow(ctx, `UPDATE cdcbridge.state SET request = $2, request_policy = $3, request_id = request_id + 1,
		request_expires = now() + $4 * interval '1 microsecond', updated_at = now()
		WHERE name = $1 RETURNING request_id`, name, to, policy, ttl.Microseconds()).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("recording the flip request: %w", err)
	}
	return id, nil
}

// Claim marks request id as being carried out, unless it is answered,
// claimed already, or expired. It reports whether this caller claimed it
// and, if not, whether it had expired (the caller then answers it so).
func Claim(ctx context.Context, db Execer, name string, id int64) (claimed, expired bool, err error) {
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
func Withdraw(ctx context.Context, db Execer, name string, id int64, answer string) (bool, error) {
	tag, err := db.Exec(ctx, `UPDATE cdcbridge.state SET answered_id = $2, answer = $3, answer_ok = false, updated_at = now()
		WHERE name = $1 AND request_id = $2 AND answered_id < $2 AND claimed_id < $2`, name, id, answer)
	if err != nil {
		return false, fmt.Errorf("withdrawing flip request %d: %w", id, err)
	}
	return tag.RowsAffected() == 1, nil
}

// Answer records the outcome of a flip request.
func Answer(ctx context.Context, db Execer, name string, id int64, ok bool, answer string) error {
	_, err := db.Exec(ctx, `UPDATE cdcbridge.state SET answered_id = greatest(answered_id, $2), answer = $3, answer_ok = $4, updated_at = now() WHERE name = $1`,
		name, id, answer, ok)
	return err
}

// RecordFlip makes `live` the live direction from flipLSN on, with the
// previous live direction draining, and answers request id.
func RecordFlip(ctx context.Context, db Execer, name, live, draining string, flipLSN pglogrepl.LSN, id int64, answer string) error {
	_, err := db.Exec(ctx, `UPDATE cdcbridge.state SET live = $2, draining = nullif($3, ''), flip_lsn = $4::text::pg_lsn, flipped_at = now(),
		generation = generation + 1, foreign_dir = NULL, foreign_txns = 0, first_foreign_lsn = NULL, first_foreign_at = NULL, answered_id = greatest(answered_id, $5), answer = $6, answer_ok = true, updated_at = now() WHERE name = $1`,
		name, live, draining, flipLSN.String(), id, answer)
	if err != nil {
		return fmt.Errorf("recording the flip: %w", err)
	}
	return nil
}

// DrainDone clears the draining direction once it has been quiet.
func DrainDone(ctx context.Context, db Execer, name, dir string) error {
	_, err := db.Exec(ctx, `UPDATE cdcbridge.state SET draining = NULL, updated_at = now() WHERE name = $1 AND draining = $2`, name, dir)
	return err
}

// MoveTo advances a checkpoint to lsn (never backwards); the flip uses it,
// with the direction's pipeline stopped, to start a direction at the flip
// point.
func MoveTo(ctx context.Context, db Execer, name, direction string, lsn pglogrepl.LSN) error {
	_, err := db.Exec(ctx, `UPDATE cdcbridge.checkpoint SET lsn = greatest(lsn, $3::text::pg_lsn), updated_at = now() WHERE name = $1 AND direction = $2`,
		name, direction, lsn.String())
	if err != nil {
		return fmt.Errorf("moving the %s checkpoint to the flip point: %w", direction, err)
	}
	return nil
}

// RecordForeign records the foreign writes an armed direction holds (txns 0
// clears them).
func RecordForeign(ctx context.Context, db Execer, name, dir string, txns int64, first pglogrepl.LSN, firstAt time.Time) error {
	var lsn *string
	var at *time.Time
	if txns > 0 {
		l := first.String()
		lsn, at = &l, &firstAt
	}
	_, err := db.Exec(ctx, `UPDATE cdcbridge.state SET foreign_dir = nullif($2, ''), foreign_txns = $3, first_foreign_lsn = $4::text::pg_lsn, first_foreign_at = $5,
		updated_at = now() WHERE name = $1`, name, dir, txns, lsn, at)
	return err
}

// DeleteState removes the state row of a mapping (cleanup).
func DeleteState(ctx context.Context, db Execer, name string) error {
	var exists bool
	if err := db.QueryRow(ctx, `SELECT to_regclass('cdcbridge.state') IS NOT NULL`).Scan(&exists); err != nil || !exists {
		return err
	}
	_, err := db.Exec(ctx, `DELETE FROM cdcbridge.state WHERE name = $1`, name)
	return err
}
