package check

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/cdcbridge/cdcbridge/checkpoint"
	"github.com/cdcbridge/cdcbridge/config"
	"github.com/cdcbridge/cdcbridge/finding"
	"github.com/cdcbridge/cdcbridge/sequences"
)

// currentRole is the role the connection runs as, quoted for SQL.
func currentRole(ctx context.Context, conn *pgx.Conn) string {
	var role string
	if err := conn.QueryRow(ctx, `SELECT current_user`).Scan(&role); err != nil {
		role = conn.Config().User
	}
	return pgx.Identifier{role}.Sanitize()
}

// originFunctions are the replication-origin functions the bridge calls
// on the side it writes: they tag its transactions so that the direction
// reading that side skips them. The server revokes them from PUBLIC.
var originFunctions = []string{
	"pg_replication_origin_create(text)",
	"pg_replication_origin_oid(text)",
	"pg_replication_origin_session_setup(text)",
	"pg_replication_origin_session_reset()",
	"pg_replication_origin_xact_setup(pg_lsn, timestamptz)",
}

// originFindings checks that the role may call every origin function.
func originFindings(ctx context.Context, conn *pgx.Conn, side string) []finding.Finding {
	var missing []string
	for _, fn := range originFunctions {
		var ok bool
		if err := conn.QueryRow(ctx, `SELECT has_function_privilege($1, 'EXECUTE')`, fn).Scan(&ok); err != nil {
			return []finding.Finding{{Where: side, Message: "checking replication origin privileges: " + err.Error()}}
		}
		if !ok {
			missing = append(missing, fn)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return []finding.Finding{{Where: side, Message: "the role may not use replication origins (" + strings.Join(missing, ", ") + "), which tag the bridge's writes so they are not replicated back",
		Fix: "GRANT EXECUTE ON FUNCTION " + strings.Join(missing, ", ") + " TO " + currentRole(ctx, conn) + ";"}}
}

// stateSchemaFindings checks that the role can keep its state in the
// schema cdcbridge: create it (CREATE on the database), or use the one it
// is given (USAGE and CREATE on it, for the tables it creates there), and
// alter the tables already in it (their owner: the bridge adds columns as
// it is upgraded).
func stateSchemaFindings(ctx context.Context, conn *pgx.Conn, side string) []finding.Finding {
	var (
		exists, usage, create, createDB bool
		db                              string
	)
	if err := conn.QueryRow(ctx, `SELECT to_regnamespace($1) IS NOT NULL,
			coalesce(has_schema_privilege(to_regnamespace($1), 'USAGE'), false), coalesce(has_schema_privilege(to_regnamespace($1), 'CREATE'), false),
			has_database_privilege(current_database(), 'CREATE'), current_database()`, checkpoint.Schema).
		Scan(&exists, &usage, &create, &createDB, &db); err != nil {
		return []finding.Finding{{Where: side, Message: "checking the privileges on schema " + checkpoint.Schema + ": " + err.Error()}}
	}
	role := currentRole(ctx, conn)
	if !exists {
		if createDB {
			return nil
		}
		return []finding.Finding{{Where: side, Message: "the role may not create the schema " + checkpoint.Schema + ", where the bridge keeps its checkpoints and state",
			Fix: fmt.Sprintf("CREATE SCHEMA %s AUTHORIZATION %s; or GRANT CREATE ON DATABASE %s TO %s;", checkpoint.Schema, role, pgx.Identifier{db}.Sanitize(), role)}}
	}
	if !usage || !create {
		return []finding.Finding{{Where: side, Message: "the role may not use the schema " + checkpoint.Schema + " (it needs USAGE and CREATE on it), where the bridge keeps its checkpoints and state",
			Fix: fmt.Sprintf("GRANT USAGE, CREATE ON SCHEMA %s TO %s;", checkpoint.Schema, role)}}
	}
	rows, err := conn.Query(ctx, `SELECT c.oid::regclass::text, pg_get_userbyid(c.relowner) FROM pg_class c
		WHERE c.relnamespace = to_regnamespace($1) AND c.relkind IN ('r', 'p') AND NOT pg_has_role(c.relowner, 'USAGE') ORDER BY 1`, checkpoint.Schema)
	if err != nil {
		return []finding.Finding{{Where: side, Message: "checking the tables of schema " + checkpoint.Schema + ": " + err.Error()}}
	}
	type owned struct{ Table, Owner string }
	others, err := pgx.CollectRows(rows, pgx.RowToStructByPos[owned])
	if err != nil {
		return []finding.Finding{{Where: side, Message: "checking the tables of schema " + checkpoint.Schema + ": " + err.Error()}}
	}
	var fs []finding.Finding
	for _, o := range others {
		fs = append(fs, finding.Finding{Where: side + " table " + o.Table, Message: fmt.Sprintf("belongs to role %s: the bridge keeps its state there and adds columns to it as it is upgraded, which only the owner may", pgx.Identifier{o.Owner}.Sanitize()),
			Fix: fmt.Sprintf("ALTER TABLE %s OWNER TO %s;", o.Table, role)})
	}
	return fs
}

// sequenceFindings checks that the role can keep the sequences of the
// direction in step (see package sequences): read the sending ones, and
// read and setval the receiving ones.
func sequenceFindings(ctx context.Context, v config.View, s *databases) []finding.Finding {
	byName := map[string]*pgx.Conn{v.ReadName: s.read, v.WriteName: s.write}
	pairs, err := sequences.Discover(ctx, byName["source"], byName["target"], v.Mapping(), v.Direction)
	if err != nil {
		return []finding.Finding{{Where: "sequences", Message: err.Error()}}
	}
	var fs []finding.Finding
	seen := map[string]bool{}
	need := func(conn *pgx.Conn, side, seq string, privs ...string) {
		if seen[side+" "+seq] {
			return
		}
		seen[side+" "+seq] = true
		var missing []string
		for _, p := range privs {
			var ok bool
			if err := conn.QueryRow(ctx, `SELECT has_sequence_privilege($1, $2)`, seq, p).Scan(&ok); err != nil {
				fs = append(fs, finding.Finding{Where: side + " sequence " + seq, Message: "checking privileges: " + err.Error()})
				return
			}
			if !ok {
				missing = append(missing, p)
			}
		}
		if len(missing) > 0 {
			fs = append(fs, finding.Finding{Where: side + " sequence " + seq, Message: "the role lacks " + strings.Join(missing, ", ") + " on it, which keeping the sequences of the two sides in step needs",
				Fix: fmt.Sprintf("GRANT %s ON SEQUENCE %s TO %s;", strings.Join(missing, ", "), seq, currentRole(ctx, conn))})
		}
	}
	for _, p := range pairs {
		need(s.read, v.ReadName, p.From.Sequence, "SELECT")
		need(s.write, v.WriteName, p.To.Sequence, "SELECT", "UPDATE")
	}
	return fs
}
