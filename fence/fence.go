package fence

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/cdcbridge/cdcbridge/change"
	"github.com/cdcbridge/cdcbridge/config"
	"github.com/cdcbridge/cdcbridge/control"
	"github.com/cdcbridge/cdcbridge/dbconn"
)

// functionBody is the body of cdcbridge.fence(). A statement-level trigger
// gets no row, and what it returns is ignored: the function only decides
// whether the statement may run.
//
// SQLSTATE 25006 (read_only_sql_transaction) is what a hot standby answers
// a write with: drivers, poolers and frameworks that send writes elsewhere
// on it treat the fenced slice the same way, and a client that does not
// still gets the message.
const functionBody = `
BEGIN
	IF pg_catalog.pg_replication_origin_session_is_setup() THEN
		RETURN NULL;
	END IF;
	RAISE EXCEPTION USING
		ERRCODE = 'read_only_sql_transaction',
		MESSAGE = format('cdcbridge: mapping "%s" fences this database: the live side is %s; write there: this side takes writes from the bridge only, until a flip makes it live', TG_ARGV[0], TG_ARGV[1]),
		DETAIL = format('%s on %I.%I is refused: only the bridge writes here while the other slice is live.', TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME),
		HINT = 'Write to the live side. cdcbridge flip moves the fence when traffic moves.';
END
`

// functionDDL creates cdcbridge.fence(). It runs as its owner (SECURITY
// DEFINER, with a search path nobody else can write to): asking whether the
// session has set up an origin needs a privilege that clients do not have,
// and a client must get the fence's message, not "permission denied".
const functionDDL = `
CREATE SCHEMA IF NOT EXISTS cdcbridge;
CREATE OR REPLACE FUNCTION cdcbridge.fence() RETURNS trigger
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
	AS $fence$` + functionBody + `$fence$;
REVOKE ALL ON FUNCTION cdcbridge.fence() FROM PUBLIC;`

// TriggerName is the name of a mapping's fence triggers.
func TriggerName(m *config.Mapping) string { return "cdcbridge_fence_" + m.Name }

// Converge puts the fences where the state st wants them: none while the
// side that was live drains, else on the side the live direction writes.
// It lifts before it fences, so a crash between the two leaves both sides
// open, never both closed; the armed direction holds what a client writes
// to the side that should have been fenced meanwhile, as it would without
// a fence.
//
// When the mapping has no fence, it takes away the fences an earlier
// `fence: true` left, so that turning the fence off and restarting opens
// both sides; a side it cannot reach or clear is only logged, as a mapping
// without a fence never needed it.
func Converge(ctx context.Context, m *config.Mapping, st control.State, log *slog.Logger) error {
	if !m.Fence {
		// A mapping without a fence never waited for this: a side that is
		// slow to answer is left for the next start.
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		for _, v := range []config.View{m.View(config.Forward), m.View(config.Reverse)} {
			err := onSide(ctx, v.WriteSide.DSN, v.WriteName, func(tx pgx.Tx) error {
				n, err := drop(ctx, tx, m, nil)
				if n > 0 && err == nil {
					log.Info("fence removed: the mapping has no fence now", "component", "fence", "side", v.WriteName, "relations", n)
				}
				return err
			})
			if err != nil {
				log.Warn("removing the fence left by an earlier fence: true", "component", "fence", "side", v.WriteName, "error", m.Redact(err).Error())
			}
		}
		return nil
	}
	if err := Lift(ctx, m, st.Live, log); err != nil {
		return err
	}
	if st.Drains {
		return Lift(ctx, m, st.Draining, log)
	}
	return Install(ctx, m, st.Live, log)
}

// Lift opens the side that direction live reads: the side a flip to live
// makes live, before traffic moves there. It disables the fence's triggers
// rather than dropping them: disabling takes a lock that waits for the
// side's writers only (there are none but the bridge), where dropping
// would wait for every reader too and hold up the ones behind it. A
// disabled trigger costs nothing, and is enabled again by the next
// Install. It does nothing when the mapping has no fence.
func Lift(ctx context.Context, m *config.Mapping, live config.Direction, log *slog.Logger) error {
	if !m.Fence {
		return nil
	}
	v := m.View(live)
	return onSide(ctx, v.ReadSide.DSN, v.ReadName, func(tx pgx.Tx) error {
		// The side must be one the bridge can fence again later: a daemon
		// that could lift a fence but not put it back would leave a side
		// open that should not be.
		if _, err := relations(ctx, tx, v.ReadTables()); err != nil {
			return err
		}
		have, err := triggers(ctx, tx, m)
		if err != nil {
			return err
		}
		var n int
		for rel, t := range have {
			if t.enabled == disabled {
				continue
			}
			if err := alter(ctx, tx, m, rel, "DISABLE"); err != nil {
				return err
			}
			n++
		}
		if n > 0 {
			log.Info("fence lifted", "component", "fence", "side", v.ReadName, "relations", n)
		}
		return nil
	})
}

// Install fences the side that direction live writes: its mapped tables,
// and their partitions, refuse every write but the bridge's, with a message
// that names the mapping and the side live reads. It does nothing when the
// mapping has no fence.
func Install(ctx context.Context, m *config.Mapping, live config.Direction, log *slog.Logger) error {
	if !m.Fence {
		return nil
	}
	v := m.View(live)
	args := []string{m.Name, v.ReadName + " (" + database(v.ReadSide.DSN) + ")"}
	return onSide(ctx, v.WriteSide.DSN, v.WriteName, func(tx pgx.Tx) error {
		if err := ensureFunction(ctx, tx); err != nil {
			return err
		}
		rels, err := relations(ctx, tx, v.WriteTables())
		if err != nil {
			return err
		}
		// A trigger on a relation no longer mapped, or with another message,
		// goes; one that was lifted is enabled again; one in place is left
		// untouched (no lock taken).
		have, err := triggers(ctx, tx, m)
		if err != nil {
			return err
		}
		stale := map[string]bool{}
		for rel, t := range have {
			if !slices.Contains(rels, rel) || !slices.Equal(args, t.args) {
				stale[rel] = true
			}
		}
		if _, err := drop(ctx, tx, m, stale); err != nil {
			return err
		}
		var made int
		for _, r := range rels {
			t, ok := have[r]
			switch {
			case ok && !stale[r] && t.enabled == always:
				continue
			case ok && !stale[r]:
				err = alter(ctx, tx, m, r, "ENABLE ALWAYS")
			default:
				err = create(ctx, tx, m, r, args)
			}
			if err != nil {
				return err
			}
			made++
		}
		if made > 0 {
			log.Info("fence installed", "component", "fence", "side", v.WriteName, "live", v.ReadName, "relations", made)
		}
		return nil
	})
}

// Remove takes every fence of the mapping away, on both sides, and the
// function once no fence of any mapping uses it. Unlike Lift it acts
// whether or not the mapping has a fence now: it is for cleanup.
func Remove(ctx context.Context, m *config.Mapping, w io.Writer) error {
	for _, side := range []config.View{m.View(config.Forward), m.View(config.Reverse)} {
		err := onSide(ctx, side.WriteSide.DSN, side.WriteName, func(tx pgx.Tx) error {
			n, err := drop(ctx, tx, m, nil)
			if err != nil {
				return err
			}
			if n > 0 {
				fmt.Fprintf(w, "dropped the fence of %d relation(s) on the %s\n", n, side.WriteName)
			}
			var unused bool
			if err := tx.QueryRow(ctx, `SELECT to_regprocedure('cdcbridge.fence()') IS NOT NULL
				AND NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgfoid = to_regprocedure('cdcbridge.fence()'))`).Scan(&unused); err != nil {
				return fmt.Errorf("looking for fences on the %s: %w", side.WriteName, err)
			}
			if unused {
				if _, err := tx.Exec(ctx, `DROP FUNCTION cdcbridge.fence()`); err != nil {
					return fmt.Errorf("dropping cdcbridge.fence() on the %s: %w", side.WriteName, err)
				}
				fmt.Fprintf(w, "dropped the function cdcbridge.fence() on the %s\n", side.WriteName)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// lockTimeout bounds the wait for a table lock: dropping a trigger waits for
// every transaction that touches the table, reads included, and makes later
// ones wait behind it.
const lockTimeout = "10s"

// onSide runs fn in one transaction on a side: a fence is on all of its
// relations or on none.
func onSide(ctx context.Context, dsn config.DSN, side string, fn func(pgx.Tx) error) error {
	conn, err := dbconn.Connect(ctx, dsn, side)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET LOCAL lock_timeout = '"+lockTimeout+"'"); err != nil {
			return err
		}
		return fn(tx)
	})
	if err != nil {
		return fmt.Errorf("changing the fence on the %s: %w", side, dsn.Redact(err))
	}
	return nil
}

// ensureFunction creates or updates cdcbridge.fence(), leaving one that is
// as it should be alone (it may belong to another mapping's role).
func ensureFunction(ctx context.Context, tx pgx.Tx) error {
	var current *string
	if err := tx.QueryRow(ctx, `SELECT prosrc FROM pg_proc WHERE oid = to_regprocedure('cdcbridge.fence()')`).Scan(&current); err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("reading cdcbridge.fence(): %w", err)
	}
	if current != nil && *current == functionBody {
		return nil
	}
	var can bool
	if err := tx.QueryRow(ctx, `SELECT has_function_privilege('pg_replication_origin_session_is_setup()', 'EXECUTE')`).Scan(&can); err != nil {
		return err
	}
	if !can {
		return fmt.Errorf("the fence asks whether a session writes with the bridge's replication origin, which the bridge's role may not: as a superuser run GRANT EXECUTE ON FUNCTION pg_replication_origin_session_is_setup() TO %s",
			pgx.Identifier{tx.Conn().Config().User}.Sanitize())
	}
	if _, err := tx.Exec(ctx, functionDDL); err != nil {
		return fmt.Errorf("creating cdcbridge.fence(): %w", err)
	}
	return nil
}

// relations lists the tables given and all their partitions, as regclass
// prints them (quoted where needed, ready for SQL). The bridge's role must
// own each (or be a member of its owner's role): putting a trigger on a
// table takes only the TRIGGER privilege, but enabling it ALWAYS and
// dropping it take the owner.
func relations(ctx context.Context, tx pgx.Tx, tables []change.Table) ([]string, error) {
	var names []string
	for _, t := range tables {
		names = append(names, t.String())
	}
	// pg_partition_tree lists nothing for a table outside any partition
	// tree, hence the table itself beside it.
	rows, err := tx.Query(ctx, `SELECT DISTINCT x.rel::regclass::text, pg_has_role(c.relowner, 'USAGE'), c.relowner::regrole::text
		FROM unnest($1::text[]) t(name)
		CROSS JOIN LATERAL (SELECT t.name::regclass UNION SELECT relid FROM pg_partition_tree(t.name::regclass)) x(rel)
		JOIN pg_class c ON c.oid = x.rel
		WHERE c.relkind IN ('r', 'p') ORDER BY 1`, names)
	if err != nil {
		return nil, fmt.Errorf("listing the mapped tables and their partitions: %w", err)
	}
	var (
		out, notOwned []string
		owners        = map[string]bool{}
		rel, owner    string
		owned         bool
	)
	_, err = pgx.ForEachRow(rows, []any{&rel, &owned, &owner}, func() error {
		out = append(out, rel)
		if !owned {
			notOwned = append(notOwned, rel)
			owners[owner] = true
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing the mapped tables and their partitions: %w", err)
	}
	if len(notOwned) > 0 {
		return nil, &OwnerError{Tables: notOwned, Owners: slices.Sorted(maps.Keys(owners)), Role: tx.Conn().Config().User}
	}
	return out, nil
}

// OwnerError: the bridge's role does not own tables it must fence. Retrying
// does not help.
type OwnerError struct {
	Tables []string // as regclass prints them
	Owners []string // their owners, as regrole prints them
	Role   string
}

func (e *OwnerError) Error() string {
	return fmt.Sprintf("fence: true needs the bridge's role to own the tables it fences, to enable the fence's trigger ALWAYS and to drop it again, and it does not own %s: "+
		"as a superuser run GRANT %s TO %s, or turn the fence off (fence: false)",
		strings.Join(e.Tables, ", "), strings.Join(e.Owners, ", "), pgx.Identifier{e.Role}.Sanitize())
}

// trigger is a fence trigger as the catalog has it.
type trigger struct {
	args    []string
	enabled string // pg_trigger.tgenabled: always, disabled, or O or R
}

// The values of pg_trigger.tgenabled the fence sets.
const (
	always   = "A"
	disabled = "D"
)

// triggers lists the mapping's fence triggers by relation.
func triggers(ctx context.Context, tx pgx.Tx, m *config.Mapping) (map[string]trigger, error) {
	rows, err := tx.Query(ctx, `SELECT tgrelid::regclass::text, tgenabled::text, tgargs FROM pg_trigger WHERE tgname = $1`, TriggerName(m))
	if err != nil {
		return nil, fmt.Errorf("listing the fences: %w", err)
	}
	out := map[string]trigger{}
	var rel string
	var t trigger
	var raw []byte
	_, err = pgx.ForEachRow(rows, []any{&rel, &t.enabled, &raw}, func() error {
		// tgargs holds each argument followed by a NUL byte.
		t.args = nil
		for _, a := range bytes.Split(bytes.TrimSuffix(raw, []byte{0}), []byte{0}) {
			t.args = append(t.args, string(a))
		}
		out[rel] = t
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing the fences: %w", err)
	}
	return out, nil
}

// drop drops the mapping's fence triggers on the relations in only (every
// one when only is nil) and returns how many it dropped.
func drop(ctx context.Context, tx pgx.Tx, m *config.Mapping, only map[string]bool) (int, error) {
	have, err := triggers(ctx, tx, m)
	if err != nil {
		return 0, err
	}
	var n int
	for rel := range have {
		if only != nil && !only[rel] {
			continue
		}
		if _, err := tx.Exec(ctx, "DROP TRIGGER "+pgx.Identifier{TriggerName(m)}.Sanitize()+" ON "+rel); err != nil {
			return n, fmt.Errorf("dropping the fence on %s: %w", rel, err)
		}
		n++
	}
	return n, nil
}

// create puts the fence trigger on one relation, enabled ALWAYS: it fires in
// sessions that write as a replica too, and only the origin decides.
func create(ctx context.Context, tx pgx.Tx, m *config.Mapping, rel string, args []string) error {
	name := pgx.Identifier{TriggerName(m)}.Sanitize()
	quoted := make([]string, len(args))
	for i, a := range args {
		quoted[i] = quoteLiteral(a)
	}
	sql := "CREATE TRIGGER " + name + " BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON " + rel +
		" FOR EACH STATEMENT EXECUTE FUNCTION cdcbridge.fence(" + strings.Join(quoted, ", ") + ")"
	if _, err := tx.Exec(ctx, sql); err != nil {
		return fmt.Errorf("fencing %s: %w", rel, err)
	}
	return alter(ctx, tx, m, rel, "ENABLE ALWAYS")
}

// alter enables (how: "ENABLE ALWAYS") or disables ("DISABLE") the fence
// trigger on one relation.
func alter(ctx context.Context, tx pgx.Tx, m *config.Mapping, rel, how string) error {
	if _, err := tx.Exec(ctx, "ALTER TABLE ONLY "+rel+" "+how+" TRIGGER "+pgx.Identifier{TriggerName(m)}.Sanitize()); err != nil {
		return fmt.Errorf("changing the fence on %s: %w", rel, err)
	}
	return nil
}

// quoteLiteral quotes s as an SQL string literal, read the same whatever
// standard_conforming_strings says (trigger arguments cannot be bound
// parameters).
func quoteLiteral(s string) string {
	s = strings.ReplaceAll(s, "'", "''")
	if strings.Contains(s, `\`) {
		return "E'" + strings.ReplaceAll(s, `\`, `\\`) + "'"
	}
	return "'" + s + "'"
}

// database is the name of the database a DSN connects to, for the fence's
// message.
func database(dsn config.DSN) string {
	cfg, err := pgconn.ParseConfig(dsn.ConnString())
	switch {
	case err != nil:
		return "?"
	case cfg.Database == "":
		return cfg.User // as libpq and the server default it
	}
	return cfg.Database
}
