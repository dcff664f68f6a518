package replication

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/cdcbridge/cdcbridge/change"
	"github.com/cdcbridge/cdcbridge/finding"
)

// PreflightOption tells Preflight more about what the bridge will use.
type PreflightOption func(*preflight)

// WithPublication names the publication the bridge will use, and says
// whether it was given (named by the user: used as it is, never created or
// altered). Without it, Preflight assumes the publication still has to be
// created with every table; with it, creating or extending it is only
// checked when the bridge will, and a publication the bridge uses as it is
// (given, or owned by another role) is checked to publish the tables (see
// CheckPublication).
func WithPublication(name string, given bool) PreflightOption {
	return func(p *preflight) { p.publication, p.given = name, given }
}

// WithSlot names the slot the bridge will use. An existing slot needs no free
// slot, and is checked for being usable (pgoutput, this database, not lost).
func WithSlot(name string) PreflightOption {
	return func(p *preflight) { p.slot = name }
}

type preflight struct {
	publication string
	given       bool
	slot        string
}

// Preflight checks what reading tables through logical replication needs
// from the server, the role and the tables, and returns every problem found
// (none: nil), each a finding that did not pass, with its Table (the zero
// Table for the server, role or database) and its fix; Where is left to
// the caller, which knows which side it connected to. It changes nothing. Failing queries are reported as problems
// too, so the result is always complete as far as it could see:
//
//   - wal_level is logical;
//   - the role has REPLICATION (or is superuser);
//   - a replication slot and a WAL sender are free (unless the slot exists);
//   - the role may create the publication (CREATE on the database, ownership
//     of the tables) when it does not exist or lacks a table, or else, for
//     a publication the bridge uses as it is (named by the user, or owned
//     by another role), that it publishes the tables (CheckPublication);
//   - each table exists, is a table, and is readable (SELECT, for the
//     initial copy).
//
// A table without a replica identity is no problem for reading: its inserts
// are replicated, and the source itself rejects its updates and deletes
// while it is published (see ReplicaIdentityWarning).
func Preflight(ctx context.Context, conn *pgx.Conn, tables []change.Table, opts ...PreflightOption) []finding.Finding {
	var cfg preflight
	for _, o := range opts {
		o(&cfg)
	}
	var probs []finding.Finding
	add := func(t change.Table, fix, format string, args ...any) {
		probs = append(probs, finding.Finding{Table: t, Message: fmt.Sprintf(format, args...), Fix: fix})
	}
	none := change.Table{}
	for _, n := range []struct{ kind, name string }{{"publication", cfg.publication}, {"slot", cfg.slot}} {
		if n.name == "" {
			continue
		}
		if err := ValidName(n.kind, n.name); err != nil {
			add(none, "correct the mapping's name", "%v", err)
			return probs
		}
	}

	var (
		walLevel, role, db      string
		super, repl, canCreate  bool
		maxSlots, usedSlots     int
		maxSenders, usedSenders int
	)
	err := conn.QueryRow(ctx, `SELECT current_setting('wal_level'), current_user, current_database(),
			r.rolsuper, r.rolreplication, has_database_privilege(current_database(), 'CREATE'),
			current_setting('max_replication_slots')::int, (SELECT count(*) FROM pg_catalog.pg_replication_slots)::int,
			current_setting('max_wal_senders')::int, (SELECT count(*) FROM pg_catalog.pg_stat_replication)::int
		FROM pg_catalog.pg_roles r WHERE r.rolname = current_user`).
		Scan(&walLevel, &role, &db, &super, &repl, &canCreate, &maxSlots, &usedSlots, &maxSenders, &usedSenders)
	if err != nil {
		add(none, "", "checking the server settings and the role: %v", err)
		return probs
	}
	if p := walLevelProblem(walLevel); p != nil {
		probs = append(probs, *p)
	}
	if !super && !repl {
		add(none, "ALTER ROLE "+ident(role)+" REPLICATION;",
			"role %s lacks the REPLICATION attribute needed to create and read replication slots", ident(role))
	}

	slotExists := false
	if cfg.slot != "" {
		info, err := InspectSlot(ctx, conn, cfg.slot)
		switch {
		case err != nil:
			add(none, "", "checking slot %s: %v", cfg.slot, err)
		case info.Exists:
			slotExists = true
			if info.Plugin != "pgoutput" || info.Database != db {
				add(none, "SELECT pg_drop_replication_slot('"+cfg.slot+"') if it is not used by anything else, or choose another name",
					"slot %s exists but is not a pgoutput slot of database %s (plugin %q, database %q)", cfg.slot, ident(db), info.Plugin, info.Database)
			} else if info.Lost() {
				add(none, "drop the slot with cdcbridge cleanup and start again with an initial copy; raise max_slot_wal_keep_size to keep it from happening again",
					"slot %s was invalidated (wal_status lost): the WAL it needed is gone", cfg.slot)
			}
		}
	}
	if !slotExists {
		switch {
		case maxSlots == 0:
			add(none, "ALTER SYSTEM SET max_replication_slots = 10 and restart the server",
				"max_replication_slots is 0: no replication slot can be created")
		case usedSlots >= maxSlots:
			add(none, fmt.Sprintf("drop unused slots, or ALTER SYSTEM SET max_replication_slots = %d and restart the server", maxSlots+2),
				"all %d replication slots are in use", maxSlots)
		}
	}
	switch {
	case maxSenders == 0:
		add(none, "ALTER SYSTEM SET max_wal_senders = 10 and restart the server",
			"max_wal_senders is 0: no replication connection is possible")
	case usedSenders >= maxSenders:
		add(none, fmt.Sprintf("stop unused replication connections, or ALTER SYSTEM SET max_wal_senders = %d and restart the server", maxSenders+2),
			"all %d WAL senders are in use", maxSenders)
	}

	// Which tables the publication still needs; all when it does not
	// exist. One the bridge uses as it is needs no privilege but its
	// contents: the owner made it.
	pubExists, pubMine := false, true
	published := map[change.Table]bool{}
	if cfg.publication != "" {
		err := conn.QueryRow(ctx, `SELECT count(*) > 0, coalesce(bool_and(pg_catalog.pg_has_role(pubowner, 'USAGE')), true)
			FROM pg_catalog.pg_publication WHERE pubname = $1`, cfg.publication).Scan(&pubExists, &pubMine)
		if err == nil && pubExists {
			var rows pgx.Rows
			rows, err = conn.Query(ctx, `SELECT schemaname, tablename FROM pg_catalog.pg_publication_tables WHERE pubname = $1`, cfg.publication)
			if err == nil {
				var t change.Table
				_, err = pgx.ForEachRow(rows, []any{&t.Schema, &t.Name}, func() error {
					published[t] = true
					return nil
				})
			}
		}
		if err != nil {
			add(none, "", "checking publication %s: %v", cfg.publication, err)
		}
	}
	asIs := cfg.publication != "" && (cfg.given || pubExists && !pubMine)
	if asIs {
		err := CheckPublication(ctx, conn, cfg.publication, existing(ctx, conn, tables))
		var pe *PublicationError
		switch {
		case errors.As(err, &pe):
			msg := pe.problem()
			if !pe.Exists {
				msg += " (the mapping names it, so the bridge does not create it)"
			}
			add(none, "as the owner of the tables run: "+pe.Fix, "%s", msg)
		case err != nil:
			add(none, "", "checking publication %s: %v", cfg.publication, err)
		}
	}
	// The bridge creates its own publication when it is missing: that
	// needs CREATE on the database and ownership of every table, or else
	// the owner of the tables creates it beforehand.
	creates := !asIs && !super && !pubExists
	var notOwned []change.Table
	if creates {
		for _, t := range uniqueTables(tables) {
			var owner bool
			if err := conn.QueryRow(ctx, `SELECT pg_catalog.pg_has_role(c.relowner, 'USAGE') FROM pg_catalog.pg_class c
				JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2`, t.Schema, t.Name).Scan(&owner); err == nil && !owner {
				notOwned = append(notOwned, t)
			}
		}
	}
	if creates && (!canCreate || len(notOwned) > 0) {
		var lacks []string
		alt := []string{}
		if !canCreate {
			lacks = append(lacks, "CREATE on database "+ident(db))
			alt = append(alt, "GRANT CREATE ON DATABASE "+ident(db)+" TO "+ident(role)+";")
		}
		if len(notOwned) > 0 {
			lacks = append(lacks, "ownership of "+tableList(notOwned))
			for _, t := range notOwned {
				alt = append(alt, "ALTER TABLE "+t.String()+" OWNER TO "+ident(role)+";")
			}
		}
		name := cfg.publication
		if name == "" {
			name = "the bridge's publication"
		}
		fix := strings.Join(alt, " ")
		if cfg.publication != "" {
			fix = "or, for the role to create it: " + fix
			fix = "as the owner of the tables run: CREATE PUBLICATION " + ident(cfg.publication) + " FOR TABLE " + tableList(uniqueTables(tables)) +
				" WITH (" + publicationOptions + "); the bridge then uses it as it is; " + fix
		}
		add(none, fix, "role %s may not create publication %s: it lacks %s", ident(role), name, strings.Join(lacks, " and "))
	}

	for _, t := range uniqueTables(tables) {
		var (
			kind             string
			canSelect, owner bool
		)
		err := conn.QueryRow(ctx, `SELECT c.relkind::text,
				has_table_privilege(c.oid, 'SELECT'), pg_has_role(c.relowner, 'USAGE')
			FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
			WHERE n.nspname = $1 AND c.relname = $2`, t.Schema, t.Name).
			Scan(&kind, &canSelect, &owner)
		if errors.Is(err, pgx.ErrNoRows) {
			add(t, "create the table, or correct its name in the mapping", "table %s does not exist", t)
			continue
		}
		if err != nil {
			add(t, "", "checking table %s: %v", t, err)
			continue
		}
		if kind != "r" && kind != "p" {
			add(t, "map a table instead", "%s is not a table (relkind %q): only tables can be published", t, kind)
			continue
		}
		if !canSelect {
			add(t, "GRANT SELECT ON "+t.String()+" TO "+ident(role)+";",
				"role %s may not read table %s (SELECT is needed for the initial copy)", ident(role), t)
		}
		if !asIs && !super && pubExists && !owner && !published[t] {
			add(t, "ALTER TABLE "+t.String()+" OWNER TO "+ident(role)+"; or, as the owner of the tables, drop the publication and create it with every table: DROP PUBLICATION "+ident(cfg.publication)+"; CREATE PUBLICATION "+ident(cfg.publication)+" FOR TABLE "+tableList(uniqueTables(tables))+" WITH ("+publicationOptions+");",
				"role %s does not own table %s and so cannot add it to its publication %s", ident(role), t, cfg.publication)
		}
	}
	return probs
}

// walLevelProblem classifies the server's wal_level.
func walLevelProblem(level string) *finding.Finding {
	if level == "logical" {
		return nil
	}
	return &finding.Finding{
		Message: fmt.Sprintf("wal_level is %q: logical replication needs wal_level = logical", level),
		Fix:     "ALTER SYSTEM SET wal_level = logical and restart the server",
	}
}

// ReplicaIdentityWarning says what the source does with the updates and
// deletes of a table without a replica identity (relreplident, given
// whether it has a primary key and a valid replica identity index): while
// the table is published, it rejects them ("cannot update table ...
// because it does not have a replica identity and publishes updates"), so
// only its inserts are replicated. That is all an insert-only table (an
// audit log, pgbench_history) needs, so it is a warning (OK and Warn), not
// a problem. nil when the table has a replica identity.
func ReplicaIdentityWarning(t change.Table, relreplident byte, hasPK, hasIdentityIndex bool) *finding.Finding {
	fix := "if it takes updates or deletes: ALTER TABLE " + t.String() + " REPLICA IDENTITY FULL, or give it a primary key " +
		"(or REPLICA IDENTITY USING INDEX on a unique index of NOT NULL columns)"
	const consequence = "while it is published, the source rejects its updates and deletes, and only its inserts are replicated"
	switch relreplident {
	case 'd':
		if hasPK {
			return nil
		}
		return &finding.Finding{Table: t, OK: true, Warn: true, Fix: fix,
			Message: fmt.Sprintf("table %s has no primary key and REPLICA IDENTITY DEFAULT: %s", t, consequence)}
	case 'n':
		return &finding.Finding{Table: t, OK: true, Warn: true, Fix: fix,
			Message: fmt.Sprintf("table %s has REPLICA IDENTITY NOTHING: %s", t, consequence)}
	case 'i':
		if hasIdentityIndex {
			return nil
		}
		return &finding.Finding{Table: t, OK: true, Warn: true, Fix: fix,
			Message: fmt.Sprintf("table %s has REPLICA IDENTITY USING INDEX, but the index is gone: %s", t, consequence)}
	}
	return nil
}

// existing returns the tables that exist, for checking a publication:
// a missing table is a problem of its own.
func existing(ctx context.Context, conn *pgx.Conn, tables []change.Table) []change.Table {
	var out []change.Table
	for _, t := range uniqueTables(tables) {
		var ok bool
		if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
			WHERE n.nspname = $1 AND c.relname = $2)`, t.Schema, t.Name).Scan(&ok); err != nil || ok {
			out = append(out, t)
		}
	}
	return out
}
