package control

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/cdcbridge/cdcbridge/checkpoint"
	"github.com/cdcbridge/cdcbridge/config"
)

// DDL creates the bridge state table. It lives on the target (the new
// slice): one row per mapping, saying which direction is live, where the
// last flip happened, and carrying flip requests from `cdcbridge flip` to
// the running daemon and its answers back.
const DDL = checkpoint.SchemaDDL + `
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

// DB is what the operations here need of a connection or transaction.
type DB interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// State is the state row of a mapping. Directions are stored by name; a
// name other than "reverse" reads as forward, as it always has.
type State struct {
	Name       string
	Live       config.Direction
	FlipLSN    pglogrepl.LSN
	FlippedAt  time.Time
	Generation int
	// Draining, when Drains is set, is the direction that was live before
	// the last flip while it still applies what arrives on its side; Drains
	// is cleared once that side is quiet.
	Draining config.Direction
	Drains   bool
	// The last flip request: the direction asked for, what to do with
	// foreign writes, and its id.
	Request       config.Direction
	RequestPolicy ForeignPolicy
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
	// reported by the daemon (Foreign.Txns 0: none).
	ForeignDir config.Direction
	Foreign    ForeignWrites
}

// Mode says what the state has direction dir do: the live direction is
// Live, the one that drains is Draining, the other is Armed.
func (s State) Mode(dir config.Direction) Mode {
	switch {
	case dir == s.Live:
		return Live
	case s.Drains && dir == s.Draining:
		return Draining
	}
	return Armed
}

// Ensure creates the table and the mapping's row (live: the given
// direction) when missing, and returns the row.
func Ensure(ctx context.Context, db DB, name string, live config.Direction) (State, error) {
	if _, err := db.Exec(ctx, DDL); err != nil {
		return State{}, fmt.Errorf("creating cdcbridge.state: %w", err)
	}
	if _, err := db.Exec(ctx, `INSERT INTO cdcbridge.state (name, live) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING`, name, live.String()); err != nil {
		return State{}, fmt.Errorf("creating the state of %s: %w", name, err)
	}
	return Load(ctx, db, name)
}

// ErrNoState: the mapping has never run.
var ErrNoState = errors.New("no bridge state: the daemon has not run for this mapping yet")

// Load reads the state row of a mapping.
func Load(ctx context.Context, db DB, name string) (State, error) {
	var exists bool
	if err := db.QueryRow(ctx, `SELECT to_regclass('cdcbridge.state') IS NOT NULL`).Scan(&exists); err != nil {
		return State{}, fmt.Errorf("looking for cdcbridge.state: %w", err)
	}
	if !exists {
		return State{}, ErrNoState
	}
	var (
		s                         = State{Name: name}
		live, policy              string
		flip, firstForeign        *pglogrepl.LSN
		flippedAt                 *time.Time
		draining, request, answer *string
		answerOK                  *bool
		foreignDir                *string
		firstForeignAt, expires   *time.Time
	)
	err := db.QueryRow(ctx, `SELECT live, flip_lsn, flipped_at, generation, draining, request, request_policy, request_id, answered_id, answer, answer_ok,
		foreign_dir, foreign_txns, first_foreign_lsn, first_foreign_at, request_expires, claimed_id
		FROM cdcbridge.state WHERE name = $1`, name).Scan(&live, &flip, &flippedAt, &s.Generation, &draining, &request,
		&policy, &s.RequestID, &s.AnsweredID, &answer, &answerOK, &foreignDir, &s.Foreign.Txns, &firstForeign, &firstForeignAt, &expires, &s.ClaimedID)
	if expires != nil {
		s.RequestExpires = *expires
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return State{}, ErrNoState
	}
	if err != nil {
		return State{}, fmt.Errorf("reading the state of %s: %w", name, err)
	}
	if flip != nil {
		s.FlipLSN = *flip
	}
	if flippedAt != nil {
		s.FlippedAt = *flippedAt
	}
	s.Live = direction(live)
	if d := deref(draining); d != "" {
		s.Draining, s.Drains = direction(d), true
	}
	s.Request, s.RequestPolicy = direction(deref(request)), ForeignPolicy(policy)
	s.Answer = deref(answer)
	s.AnswerOK = answerOK != nil && *answerOK
	s.ForeignDir = direction(deref(foreignDir))
	if firstForeign != nil {
		s.Foreign.First = *firstForeign
	}
	if firstForeignAt != nil {
		s.Foreign.FirstAt = *firstForeignAt
	}
	return s, nil
}

// direction reads a direction stored by name.
func direction(s string) config.Direction {
	if s == config.Reverse.String() {
		return config.Reverse
	}
	return config.Forward
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// SetLive makes dir the live direction. It is for a mapping that has never
// flipped (Generation 0), whose daemon starts with --reverse; a flip moves
// the live direction with RecordFlip.
func SetLive(ctx context.Context, db DB, name string, dir config.Direction) error {
	_, err := db.Exec(ctx, `UPDATE cdcbridge.state SET live = $2 WHERE name = $1`, name, dir.String())
	return err
}

// DrainDone clears the draining direction once it has been quiet.
func DrainDone(ctx context.Context, db DB, name string, dir config.Direction) error {
	_, err := db.Exec(ctx, `UPDATE cdcbridge.state SET draining = NULL, updated_at = now() WHERE name = $1 AND draining = $2`, name, dir.String())
	return err
}

// Delete removes the state row of a mapping (cleanup).
func Delete(ctx context.Context, db DB, name string) error {
	var exists bool
	if err := db.QueryRow(ctx, `SELECT to_regclass('cdcbridge.state') IS NOT NULL`).Scan(&exists); err != nil || !exists {
		return err
	}
	_, err := db.Exec(ctx, `DELETE FROM cdcbridge.state WHERE name = $1`, name)
	return err
}
