package check

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/cdcbridge/cdcbridge/apply"
	"github.com/cdcbridge/cdcbridge/catalog"
	"github.com/cdcbridge/cdcbridge/change"
	"github.com/cdcbridge/cdcbridge/checkpoint"
	"github.com/cdcbridge/cdcbridge/config"
	"github.com/cdcbridge/cdcbridge/dbconn"
	"github.com/cdcbridge/cdcbridge/deadletter"
	"github.com/cdcbridge/cdcbridge/finding"
	"github.com/cdcbridge/cdcbridge/replication"
	"github.com/cdcbridge/cdcbridge/transform"
)

// spellingHint looks for a table whose name differs from t only in case:
// a mapping that writes public.Order Items means "order items", since
// unquoted names fold to lower case, and the table is "Order Items".
func spellingHint(ctx context.Context, conn *pgx.Conn, t change.Table) string {
	rows, err := conn.Query(ctx, `
		SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind IN ('r', 'p') AND lower(n.nspname) = lower($1) AND lower(c.relname) = lower($2)
		ORDER BY 1, 2 LIMIT 3`, t.Schema, t.Name)
	if err != nil {
		return ""
	}
	names, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (string, error) {
		var c change.Table
		err := r.Scan(&c.Schema, &c.Name)
		return config.DisplayTable(c), err
	})
	if err != nil || len(names) == 0 {
		return ""
	}
	return fmt.Sprintf("did you mean %s? Names in the mapping fold to lower case unless quoted, as in SQL: write it with its double quotes", strings.Join(names, " or "))
}

func joinFix(fix, hint string) string {
	if hint == "" {
		return fix
	}
	return hint + "; otherwise " + fix
}

// Check connects to both sides of the direction v sees and runs every
// up-front check without streaming. It returns all findings, good and bad.
func Check(ctx context.Context, v config.View) []finding.Finding {
	m := v.Mapping()
	readDSN, writeDSN := v.ReadSide.DSN, v.WriteSide.DSN
	readSide, writeSide := v.ReadName, v.WriteName
	var fs []finding.Finding
	s := &databases{}
	var err error
	if s.read, err = dbconn.Connect(ctx, readDSN, readSide); err != nil {
		fs = append(fs, finding.Finding{Where: readSide, Message: m.Redact(err).Error(), Err: m.Redact(err), Fix: "check the DSN, that the server runs and accepts connections from here (pg_hba.conf)"})
	} else {
		defer s.read.Close(context.Background())
		fs = append(fs, finding.Finding{Where: readSide, OK: true, Message: "connected to " + readDSN.String()})
	}
	if s.write, err = dbconn.Connect(ctx, writeDSN, writeSide); err != nil {
		fs = append(fs, finding.Finding{Where: writeSide, Message: m.Redact(err).Error(), Err: m.Redact(err), Fix: "check the DSN, that the server runs and accepts connections from here (pg_hba.conf)"})
	} else {
		defer s.write.Close(context.Background())
		fs = append(fs, finding.Finding{Where: writeSide, OK: true, Message: "connected to " + writeDSN.String()})
	}
	for _, e := range m.Tables {
		if e.Transform == "" {
			continue
		}
		if err := transform.Check(e.Transform); err != nil {
			fs = append(fs, finding.Finding{Where: e.Name(), Message: err.Error(), Fix: "fix the script; it must define function forward(row, change) and function backward(row, change)"})
		} else {
			fs = append(fs, finding.Finding{Where: e.Name(), OK: true, Message: "transform " + e.Transform + " compiles and defines forward and backward"})
		}
	}
	if s.read == nil || s.write == nil {
		return fs
	}
	fs = append(fs, inspect(ctx, v, s)...)
	if len(finding.Problems(fs)) == 0 {
		fs = append(fs, positionFindings(ctx, v, s)...)
	}
	return fs
}

// databases is what the checks of a direction work on: the connections to
// the side read and the side written, and what the checks resolve there.
type databases struct {
	read, write       *pgx.Conn
	readCat, writeCat *catalog.Catalog
	mapper            *transform.Mapper
	// scripts are the compiled transforms the mapper runs (nil: it
	// compiles them).
	scripts *transform.Scripts
}

// Resolved is what the checks of a direction resolved on its databases, for
// a start to reuse: the catalogs of the tables read and written (the side
// written's with cdcbridge.deadletter under the deadletter policy), and a
// mapper of the direction.
type Resolved struct {
	ReadCat, WriteCat *catalog.Catalog
	Mapper            *transform.Mapper
}

// Preflight runs the checks a start of direction dir needs, on its
// connections to the side read and the side written, and returns what they
// resolved and the problems. Only when there are none is Resolved complete.
// The mapper runs scripts, the transforms compiled once for the start
// (nil: the mapper compiles them).
func Preflight(ctx context.Context, m *config.Mapping, dir config.Direction, read, write *pgx.Conn, scripts *transform.Scripts) (Resolved, []finding.Finding) {
	s := &databases{read: read, write: write, scripts: scripts}
	probs := finding.Problems(inspect(ctx, m.View(dir), s))
	return Resolved{ReadCat: s.readCat, WriteCat: s.writeCat, Mapper: s.mapper}, probs
}

func inspect(ctx context.Context, v config.View, s *databases) []finding.Finding {
	m := v.Mapping()
	readSide, writeSide := v.ReadName, v.WriteName
	var fs []finding.Finding
	readTables, writeTables := v.ReadTables(), v.WriteTables()
	for _, p := range replication.Preflight(ctx, s.read, readTables, replication.WithPublication(v.Publication, v.PublicationGiven)) {
		p.Where = readSide
		if p.Table != (change.Table{}) {
			p.Where += " table " + p.Table.String()
		}
		fs = append(fs, p)
	}
	var err error
	if s.readCat, err = catalog.Load(ctx, s.read, readTables); err != nil {
		return append(fs, finding.Finding{Where: readSide, Message: err.Error()})
	}
	for i := range fs {
		if t := fs[i].Table; t != (change.Table{}) && s.readCat.Table(t) == nil {
			fs[i].Fix = joinFix(fs[i].Fix, spellingHint(ctx, s.read, t))
		}
	}
	for _, t := range readTables {
		if t.Schema == checkpoint.Schema {
			fs = append(fs, finding.Finding{Where: readSide + " table " + t.String(), Message: "is in the bridge's own schema " + checkpoint.Schema + ", whose tables hold the bridge's state and are never replicated", Fix: "map the application's tables only"})
		}
	}
	fs = append(fs, partitionFindings(ctx, v, s)...)
	extra := writeTables
	if m.OnError == config.PolicyDeadletter {
		if err := deadletter.Ensure(ctx, s.write); err != nil {
			fs = append(fs, finding.Finding{Where: writeSide, Message: err.Error(), Fix: "the bridge creates the table cdcbridge.deadletter in its schema: GRANT USAGE, CREATE ON SCHEMA cdcbridge TO " + currentRole(ctx, s.write) + "; or, without the schema, see the finding about it"})
		}
		extra = append(append([]change.Table{}, writeTables...), deadletter.Table)
	}
	if s.writeCat, err = catalog.Load(ctx, s.write, extra); err != nil {
		return append(fs, finding.Finding{Where: writeSide, Message: err.Error()})
	}
	missing := false
	var written []uint32
	for _, t := range writeTables {
		info := s.writeCat.Table(t)
		if info == nil {
			missing = true
			fs = append(fs, finding.Finding{Where: writeSide + " table " + t.String(), Message: "does not exist",
				Fix: joinFix("create it on the "+writeSide+" (the bridge copies rows, not schemas), or correct the mapping", spellingHint(ctx, s.write, t))})
			continue
		}
		written = append(written, info.OID)
		fs = append(fs, writePrivileges(ctx, s, writeSide, t)...)
	}
	fs = append(fs, replicaFindings(ctx, s, writeSide, written)...)
	for _, t := range readTables {
		if s.readCat.Table(t) == nil {
			missing = true
		}
	}
	fs = append(fs, keyFindings(v, s)...)
	fs = append(fs, encodingFindings(ctx, v, s)...)
	if !missing {
		opts := transform.Options{Func: v.Func, Timeout: m.TransformTimeout, Read: s.readCat, Write: s.writeCat, Scripts: s.scripts}
		mapper, err := transform.New(transform.Specs(v), opts)
		if err != nil {
			fs = append(fs, finding.Finding{Where: "mapping", Message: err.Error(), Fix: "correct the mapping or the tables so that every mapped column exists on both sides"})
		} else {
			s.mapper = mapper
			fs = append(fs, finding.Finding{Where: "mapping", OK: true, Message: fmt.Sprintf("%d table entries resolve on both sides", len(m.Tables))})
		}
	}
	fs = append(fs, originFindings(ctx, s.write, writeSide)...)
	fs = append(fs, stateSchemaFindings(ctx, s.write, writeSide)...)
	fs = append(fs, sequenceFindings(ctx, v, s)...)
	if len(finding.Problems(fs)) == 0 {
		fs = append(fs, finding.Finding{Where: readSide, OK: true, Message: fmt.Sprintf("logical replication ready for %d tables", len(readTables))})
	}
	return fs
}

// partitionFindings refuses a mapping that reads a partitioned table and one
// of its partitions: the root is copied with its partitions and publishes
// their changes under its own name, so the partition's rows would arrive
// twice.
func partitionFindings(ctx context.Context, v config.View, s *databases) []finding.Finding {
	readSide := v.ReadName
	byOID := map[uint32]change.Table{}
	for _, t := range v.ReadTables() {
		if info := s.readCat.Table(t); info != nil {
			byOID[info.OID] = t
		}
	}
	entries := func(t change.Table) string {
		var names []string
		for _, e := range v.EntriesFor(t) {
			names = append(names, e.Name())
		}
		return strings.Join(names, ", ")
	}
	var fs []finding.Finding
	for _, t := range v.ReadTables() {
		info := s.readCat.Table(t)
		if info == nil {
			continue
		}
		var ancestors []uint32
		if err := s.read.QueryRow(ctx, `SELECT coalesce(array_agg(relid::oid), '{}') FROM pg_partition_ancestors($1::oid::regclass) WHERE relid <> $1::oid::regclass`, info.OID).Scan(&ancestors); err != nil {
			fs = append(fs, finding.Finding{Where: readSide + " table " + t.String(), Message: "reading its partition ancestors: " + err.Error()})
			continue
		}
		for _, a := range ancestors {
			root, ok := byOID[a]
			if !ok {
				continue
			}
			fs = append(fs, finding.Finding{Where: entries(t) + " and " + entries(root),
				Message: fmt.Sprintf("%s is a partition of %s and both are read: the root is copied with its partitions and publishes their changes under its own name, so the rows of %s would arrive twice", t, root, t),
				Fix:     fmt.Sprintf("map the partitioned table %s alone (its partitions' changes arrive under its name, whichever partition they are in) or its partitions alone, not both", root)})
		}
	}
	return fs
}

// replicaFindings checks that the role can write as a replica, and lists
// the triggers of the tables written that replicated rows will not fire
// (and those they will), as PostgreSQL's apply worker behaves.
func replicaFindings(ctx context.Context, s *databases, side string, tables []uint32) []finding.Finding {
	var fs []finding.Finding
	if err := apply.ReplicaRole(ctx, s.write); err != nil {
		f := finding.Finding{Where: side, Message: err.Error()}
		var pe *apply.PrivilegeError
		if errors.As(err, &pe) {
			f.Message = "the role may not set session_replication_role: " + pe.Err.Error()
			f.Fix = "GRANT SET ON PARAMETER session_replication_role TO " + currentRole(ctx, s.write) + "; as a superuser: the bridge writes as a replica (session_replication_role = replica) so that triggers and foreign keys do not act twice on replicated rows"
		}
		return append(fs, f)
	}
	if _, err := s.write.Exec(ctx, "RESET session_replication_role"); err != nil {
		return append(fs, finding.Finding{Where: side, Message: "resetting session_replication_role: " + err.Error()})
	}
	fs = append(fs, finding.Finding{Where: side, OK: true, Message: "the role can write as a replica (session_replication_role = replica): triggers and foreign-key checks of the tables written do not fire again for replicated rows"})
	if len(tables) == 0 {
		return fs
	}
	rows, err := s.write.Query(ctx, `
		SELECT t.tgrelid::regclass::text, quote_ident(t.tgname), t.tgenabled::text
		FROM pg_trigger t
		WHERE t.tgrelid = ANY($1::oid[]) AND NOT t.tgisinternal AND t.tgenabled <> 'D'
		ORDER BY 1, 2`, tables)
	if err != nil {
		return append(fs, finding.Finding{Where: side, Message: "listing the triggers of the tables written: " + err.Error()})
	}
	type trig struct{ Table, Name, Enabled string }
	trigs, err := pgx.CollectRows(rows, pgx.RowToStructByPos[trig])
	if err != nil {
		return append(fs, finding.Finding{Where: side, Message: "listing the triggers of the tables written: " + err.Error()})
	}
	for _, t := range trigs {
		where := side + " table " + t.Table
		if t.Enabled == "O" {
			fs = append(fs, finding.Finding{Where: where, OK: true, Warn: true,
				Message: fmt.Sprintf("trigger %s does not fire for the rows the bridge writes (it fires for client writes only, as with PostgreSQL's own replication)", t.Name),
				Fix:     fmt.Sprintf("if it must also act on replicated rows: ALTER TABLE %s ENABLE ALWAYS TRIGGER %s", t.Table, t.Name)})
			continue
		}
		fs = append(fs, finding.Finding{Where: where, OK: true,
			Message: fmt.Sprintf("trigger %s fires for the rows the bridge writes too (ENABLE %s)", t.Name, map[string]string{"A": "ALWAYS", "R": "REPLICA"}[t.Enabled])})
	}
	return fs
}

func quoteAll(cols []string) []string {
	out := make([]string, len(cols))
	for i, c := range cols {
		out[i] = pgx.Identifier{c}.Sanitize()
	}
	return out
}

func writePrivileges(ctx context.Context, s *databases, side string, t change.Table) []finding.Finding {
	var missing []string
	for _, p := range []string{"SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE"} {
		var ok bool
		if err := s.write.QueryRow(ctx, `SELECT has_table_privilege($1::regclass, $2)`, t.String(), p).Scan(&ok); err != nil {
			return []finding.Finding{{Where: side + " table " + t.String(), Message: "checking privileges: " + err.Error()}}
		}
		if !ok {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 {
		return []finding.Finding{{Where: side + " table " + t.String(), Message: "the role lacks " + strings.Join(missing, ", "),
			Fix: fmt.Sprintf("GRANT %s ON %s TO %s;", strings.Join(missing, ", "), t, currentRole(ctx, s.write))}}
	}
	return nil
}

// positionFindings reports the checkpoint and slot, and whether a start
// would be refused.
func positionFindings(ctx context.Context, v config.View, s *databases) []finding.Finding {
	m, dir := v.Mapping(), v.Direction
	readSide := v.ReadName
	slot := v.Slot
	info, err := replication.InspectSlot(ctx, s.read, slot)
	if err != nil {
		return []finding.Finding{{Where: readSide, Message: "reading the slot: " + err.Error()}}
	}
	st, err := checkpoint.Load(ctx, s.write, m.Name, dir.String())
	if errors.Is(err, checkpoint.ErrNone) {
		return []finding.Finding{{Where: "checkpoint", OK: true, Message: "none yet: the first run creates the slot " + slot + " (the live direction first copies the existing rows; the armed one follows from then on)"}}
	}
	if err != nil {
		return []finding.Finding{{Where: "checkpoint", Message: err.Error()}}
	}
	sysid, err := replication.SystemID(ctx, s.read)
	if err != nil {
		return []finding.Finding{{Where: readSide, Message: err.Error()}}
	}
	if _, err := checkpoint.Resume(st, checkpoint.Slot{Exists: info.Exists, ConfirmedFlushLSN: info.ConfirmedFlushLSN, WALStatus: info.WALStatus}, sysid); err != nil {
		return []finding.Finding{{Where: "checkpoint", Message: err.Error()}}
	}
	msg := fmt.Sprintf("at %s; slot %s confirmed %s, retains %d bytes of WAL", st.LSN, slot, info.ConfirmedFlushLSN, info.RetainedBytes)
	if info.Active {
		msg += fmt.Sprintf(", in use by process %d", info.ActivePID)
	}
	return []finding.Finding{{Where: "checkpoint", OK: true, Message: msg}}
}

// CheckScripts compiles every transform script of the mapping and checks
// that it defines forward and backward. It needs no database, so a broken
// script stops a start before anything connects.
func CheckScripts(m *config.Mapping) error {
	var errs []error
	seen := map[string]bool{}
	for _, e := range m.Tables {
		if e.Transform == "" || seen[e.Transform] {
			continue
		}
		seen[e.Transform] = true
		if err := transform.Check(e.Transform); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", e.Name(), err))
		}
	}
	return errors.Join(errs...)
}
