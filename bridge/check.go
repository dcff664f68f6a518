package bridge

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
	"github.com/cdcbridge/cdcbridge/replication"
	"github.com/cdcbridge/cdcbridge/transform"
)

// Finding is one result of the up-front checks.
type Finding struct {
	// Where names the side, table or file the finding is about.
	Where string
	OK    bool
	// Warn marks an OK finding the operator should know of (a trigger that
	// will not fire for replicated rows): it does not stop a start.
	Warn    bool
	Message string
	Fix     string
	// table is the table a finding of the side read is about, if any.
	table change.Table
}

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

func (f Finding) String() string {
	mark := "ok  "
	switch {
	case !f.OK:
		mark = "FAIL"
	case f.Warn:
		mark = "WARN"
	}
	s := fmt.Sprintf("%s %s: %s", mark, f.Where, f.Message)
	if f.Fix != "" {
		s += "\n       fix: " + f.Fix
	}
	return s
}

func problems(fs []Finding) []Finding {
	var out []Finding
	for _, f := range fs {
		if !f.OK {
			out = append(out, f)
		}
	}
	return out
}

// ConfigError lists the problems that keep a mapping from running: a
// missing table, key or privilege, a misconfigured server. Fixing them
// needs the operator, not a retry.
type ConfigError struct {
	Findings []Finding
}

func (e *ConfigError) Error() string {
	lines := make([]string, len(e.Findings))
	for i, f := range e.Findings {
		lines[i] = f.Where + ": " + f.Message
		if f.Fix != "" {
			lines[i] += "; fix: " + f.Fix
		}
	}
	return "the mapping cannot run (`cdcbridge check` lists every finding):\n" + strings.Join(lines, "\n")
}

func findingsError(fs []Finding) error { return &ConfigError{Findings: fs} }

// Check connects to both sides of a direction and runs every up-front
// check without streaming. It returns all findings, good and bad.
func Check(ctx context.Context, m *config.Mapping, dir config.Direction) []Finding {
	readDSN, writeDSN := sides(m, dir)
	readSide, writeSide := dbconn.SideNames(dir)
	var fs []Finding
	s := &setup{}
	var err error
	if s.read, err = dbconn.Connect(ctx, readDSN, readSide); err != nil {
		fs = append(fs, Finding{Where: readSide, Message: m.Redact(err).Error(), Fix: "check the DSN, that the server runs and accepts connections from here (pg_hba.conf)"})
	} else {
		defer s.read.Close(context.Background())
		fs = append(fs, Finding{Where: readSide, OK: true, Message: "connected to " + readDSN.String()})
	}
	if s.write, err = dbconn.Connect(ctx, writeDSN, writeSide); err != nil {
		fs = append(fs, Finding{Where: writeSide, Message: m.Redact(err).Error(), Fix: "check the DSN, that the server runs and accepts connections from here (pg_hba.conf)"})
	} else {
		defer s.write.Close(context.Background())
		fs = append(fs, Finding{Where: writeSide, OK: true, Message: "connected to " + writeDSN.String()})
	}
	for _, e := range m.Tables {
		if e.Transform == "" {
			continue
		}
		if err := transform.Check(e.Transform); err != nil {
			fs = append(fs, Finding{Where: e.Name(), Message: err.Error(), Fix: "fix the script; it must define function forward(row, change) and function backward(row, change)"})
		} else {
			fs = append(fs, Finding{Where: e.Name(), OK: true, Message: "transform " + e.Transform + " compiles and defines forward and backward"})
		}
	}
	if s.read == nil || s.write == nil {
		return fs
	}
	fs = append(fs, inspect(ctx, m, dir, s)...)
	if len(problems(fs)) == 0 {
		fs = append(fs, positionFindings(ctx, m, dir, s)...)
	}
	return fs
}

// preflight runs the checks a start needs and returns the problems. It
// leaves the catalogs and the mapper in s.
func preflight(ctx context.Context, m *config.Mapping, dir config.Direction, s *setup) []Finding {
	return problems(inspect(ctx, m, dir, s))
}

func inspect(ctx context.Context, m *config.Mapping, dir config.Direction, s *setup) []Finding {
	readSide, writeSide := dbconn.SideNames(dir)
	var fs []Finding
	readTables, writeTables := m.SourceTables(dir), m.WriteTables(dir)
	for _, p := range replication.Preflight(ctx, s.read, readTables) {
		where := readSide
		if p.Table != (change.Table{}) {
			where += " table " + p.Table.String()
		}
		fs = append(fs, Finding{Where: where, Message: p.Message, Fix: p.Fix, table: p.Table})
	}
	var err error
	if s.readCat, err = catalog.Load(ctx, s.read, readTables); err != nil {
		return append(fs, Finding{Where: readSide, Message: err.Error()})
	}
	for i := range fs {
		if t := fs[i].table; t != (change.Table{}) && s.readCat.Table(t) == nil {
			fs[i].Fix = joinFix(fs[i].Fix, spellingHint(ctx, s.read, t))
		}
	}
	for _, t := range readTables {
		if t.Schema == checkpoint.Schema {
			fs = append(fs, Finding{Where: readSide + " table " + t.String(), Message: "is in the bridge's own schema " + checkpoint.Schema + ", whose tables hold the bridge's state and are never replicated", Fix: "map the application's tables only"})
		}
	}
	fs = append(fs, partitionFindings(ctx, m, dir, s)...)
	extra := writeTables
	if m.OnError == config.PolicyDeadletter {
		if err := ensureDeadletter(ctx, s.write); err != nil {
			fs = append(fs, Finding{Where: writeSide, Message: err.Error(), Fix: "grant CREATE on the database, or create the table cdcbridge.deadletter yourself"})
		}
		extra = append(append([]change.Table{}, writeTables...), deadletterTable)
	}
	if s.writeCat, err = catalog.Load(ctx, s.write, extra); err != nil {
		return append(fs, Finding{Where: writeSide, Message: err.Error()})
	}
	missing := false
	var written []uint32
	for _, t := range writeTables {
		info := s.writeCat.Table(t)
		if info == nil {
			missing = true
			fs = append(fs, Finding{Where: writeSide + " table " + t.String(), Message: "does not exist",
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
	fs = append(fs, keyFindings(m, dir, s)...)
	fs = append(fs, encodingFindings(ctx, dir, s)...)
	if !missing {
		opts := transform.Options{Func: transform.FuncName(dir), Timeout: m.TransformTimeout, Read: s.readCat, Write: s.writeCat}
		mapper, err := transform.New(transform.Specs(m, dir), opts)
		if err != nil {
			fs = append(fs, Finding{Where: "mapping", Message: err.Error(), Fix: "correct the mapping or the tables so that every mapped column exists on both sides"})
		} else {
			s.mapper = mapper
			fs = append(fs, Finding{Where: "mapping", OK: true, Message: fmt.Sprintf("%d table entries resolve on both sides", len(m.Tables))})
		}
	}
	var canOrigin bool
	if err := s.write.QueryRow(ctx, `SELECT rolsuper OR has_function_privilege('pg_replication_origin_session_setup(text)', 'EXECUTE') FROM pg_roles WHERE rolname = current_user`).Scan(&canOrigin); err != nil {
		fs = append(fs, Finding{Where: writeSide, Message: "checking replication origin privileges: " + err.Error()})
	} else if !canOrigin {
		fs = append(fs, Finding{Where: writeSide, Message: "the role may not use replication origins, which tag the bridge's writes so they are not replicated back",
			Fix: "GRANT EXECUTE ON FUNCTION pg_replication_origin_create(text), pg_replication_origin_session_setup(text), pg_replication_origin_xact_setup(pg_lsn, timestamptz), pg_replication_origin_oid(text) TO the role, or use a superuser"})
	}
	var canSchema bool
	if err := s.write.QueryRow(ctx, `SELECT to_regnamespace('cdcbridge') IS NOT NULL AND has_schema_privilege('cdcbridge', 'USAGE') OR to_regnamespace('cdcbridge') IS NULL AND has_database_privilege(current_database(), 'CREATE')`).Scan(&canSchema); err == nil && !canSchema {
		fs = append(fs, Finding{Where: writeSide, Message: "the role can neither create nor use the schema cdcbridge, where the checkpoint lives", Fix: "GRANT CREATE ON DATABASE to the role, or create schema cdcbridge owned by it"})
	}
	if len(problems(fs)) == 0 {
		fs = append(fs, Finding{Where: readSide, OK: true, Message: fmt.Sprintf("logical replication ready for %d tables", len(readTables))})
	}
	return fs
}

// sqlASCII is the encoding of a database that stores any bytes unchecked.
const sqlASCII = "SQL_ASCII"

// encodingFindings says what becomes of text on its way from the side read
// to the side written, from the encodings of both databases and of the
// bridge's connections to them (UTF8 unless a DSN sets client_encoding; see
// replication.SetClientEncoding).
func encodingFindings(ctx context.Context, dir config.Direction, s *setup) []Finding {
	readSide, writeSide := dbconn.SideNames(dir)
	var enc [2][2]string
	for i, c := range []*pgx.Conn{s.read, s.write} {
		if err := c.QueryRow(ctx, `SELECT current_setting('server_encoding'), current_setting('client_encoding')`).Scan(&enc[i][0], &enc[i][1]); err != nil {
			return []Finding{{Where: []string{readSide, writeSide}[i], Message: "reading the server and client encodings: " + err.Error()}}
		}
	}
	return []Finding{encodingFinding(readSide, writeSide, enc[0][0], enc[0][1], enc[1][0], enc[1][1])}
}

// encodingFinding judges the way of text from the side read (its database
// encoding r, its connections' client_encoding rc) to the side written (w,
// wc). The bridge passes values on as the bytes it receives: the side read
// sends them converted to rc, and the side written takes them as wc, checks
// them and converts them to w. So text is converted only when rc and wc are
// the same encoding; when they differ, it is misread. A SQL_ASCII database
// holds bytes that it neither checks nor converts; when the client's
// encoding is another, the server checks the bytes as that encoding, both
// ways.
func encodingFinding(rs, ws, r, rc, w, wc string) Finding {
	// check is the encoding the side written checks what it receives as,
	// "" when it takes any bytes.
	check := wc
	if wc == sqlASCII {
		check = w
	}
	if check == sqlASCII {
		check = ""
	}
	// sent is the encoding of what the side read sends. The bytes of a
	// SQL_ASCII database are first taken as an encoding (and checked) by
	// its connection when the client_encoding is another, or else by the
	// side written: ascii names that encoding.
	sent, ascii := rc, ""
	switch {
	case r == sqlASCII && rc != sqlASCII:
		ascii = rc
	case r == sqlASCII:
		sent, ascii = "", check
	case rc == sqlASCII:
		sent = r
	}
	// from is the encoding whose characters the text holds.
	from := r
	if r == sqlASCII {
		from = ascii
	}
	// lossy names the encodings on the way that may lack some of them.
	var lossy []string
	if sent != "" && sent != from && sent != "UTF8" {
		lossy = append(lossy, sent)
	}
	if w != sqlASCII && w != from && w != "UTF8" && w != sent {
		lossy = append(lossy, w)
	}
	f := Finding{Where: "encoding", OK: true}
	switch {
	case r == sqlASCII && w == sqlASCII && ascii == "":
		f.Message = fmt.Sprintf("the %s and the %s both store text as SQL_ASCII, unchecked: values pass unchanged", rs, ws)
	case sent != "" && check != "" && sent != check:
		f.OK = false
		f.Message = fmt.Sprintf("the %s (%s) sends text as %s and the %s (%s) takes what the bridge writes as %s (the client_encoding set in the DSNs), and the bridge does not convert between them: ",
			rs, r, sent, ws, w, check)
		if singleByte(check) {
			f.Message += "a value with characters outside ASCII is stored as other characters, without an error"
		} else {
			f.Message += "a value with characters outside ASCII is either rejected, which stops the daemon, or stored as other characters without an error"
		}
		f.Fix = "set one client_encoding in both DSNs, or none (the bridge then uses UTF8): each server then converts its text to and from it"
		if w != sqlASCII && w != from && w != "UTF8" {
			f.Fix += fmt.Sprintf("; characters of %s that %s cannot represent will still stop the daemon at their change", from, w)
		}
	case r == sqlASCII && (!singleByte(ascii) || len(lossy) > 0):
		f.Warn = true
		f.Message = fmt.Sprintf("the %s stores text as SQL_ASCII, which takes any bytes unchecked, but on the bridge's way to the %s (%s) they are taken as %s", rs, ws, w, ascii)
		var stops []string
		if !singleByte(ascii) {
			stops = append(stops, fmt.Sprintf("the first value whose bytes are not valid %s", ascii))
		}
		if len(lossy) > 0 {
			stops = append(stops, fmt.Sprintf("a value with characters that %s cannot represent", strings.Join(lossy, " or ")))
		}
		f.Message += ": " + strings.Join(stops, " or ") + " stops the daemon at that change, the initial copy included"
		f.Fix = fmt.Sprintf("correct those values on the %s, or let the %s store bytes unchecked too: a database created with ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0, and client_encoding=SQL_ASCII in both DSNs", rs, ws)
	case r == sqlASCII:
		f.Message = fmt.Sprintf("the %s stores text as SQL_ASCII, unchecked, and the %s (%s) takes its bytes unchanged as %s characters", rs, ws, w, ascii)
	case len(lossy) > 0:
		f.Warn = true
		f.Message = fmt.Sprintf("text is converted from %s (the %s) to %s (the %s): a value with characters that %s cannot represent is rejected and stops the daemon at that change, the initial copy included",
			r, rs, w, ws, strings.Join(lossy, " or "))
		enc := "'UTF8'"
		if r != "UTF8" {
			enc += fmt.Sprintf(" (or '%s')", r)
		}
		f.Fix = fmt.Sprintf("keep such characters out of the mapped columns, or create the %s's database with ENCODING %s", ws, enc)
	case r == w:
		f.Message = fmt.Sprintf("the %s and the %s both store text as %s: values pass unchanged", rs, ws, r)
	case w == sqlASCII:
		f.Message = fmt.Sprintf("the %s stores text as SQL_ASCII, unchecked: it receives the %s's text as %s bytes", ws, rs, sent)
		if sent != r {
			f.Warn = true
			f.Message += fmt.Sprintf(", not as the %s bytes the %s holds", r, rs)
		}
	default:
		f.Message = fmt.Sprintf("text is converted from %s (the %s) to %s (the %s), which can represent all of it", r, rs, w, ws)
	}
	return f
}

// singleByte reports whether a server encoding has one byte per character:
// it takes every byte but zero as a character.
func singleByte(enc string) bool {
	for _, p := range []string{"LATIN", "ISO_8859_", "WIN", "KOI8"} {
		if strings.HasPrefix(enc, p) {
			return true
		}
	}
	return false
}

// partitionFindings refuses a mapping that reads a partitioned table and one
// of its partitions: the root is copied with its partitions and publishes
// their changes under its own name, so the partition's rows would arrive
// twice.
func partitionFindings(ctx context.Context, m *config.Mapping, dir config.Direction, s *setup) []Finding {
	readSide, _ := dbconn.SideNames(dir)
	byOID := map[uint32]change.Table{}
	for _, t := range m.SourceTables(dir) {
		if info := s.readCat.Table(t); info != nil {
			byOID[info.OID] = t
		}
	}
	entries := func(t change.Table) string {
		var names []string
		for _, e := range m.EntriesFor(dir, t) {
			names = append(names, e.Name())
		}
		return strings.Join(names, ", ")
	}
	var fs []Finding
	for _, t := range m.SourceTables(dir) {
		info := s.readCat.Table(t)
		if info == nil {
			continue
		}
		var ancestors []uint32
		if err := s.read.QueryRow(ctx, `SELECT coalesce(array_agg(relid::oid), '{}') FROM pg_partition_ancestors($1::oid::regclass) WHERE relid <> $1::oid::regclass`, info.OID).Scan(&ancestors); err != nil {
			fs = append(fs, Finding{Where: readSide + " table " + t.String(), Message: "reading its partition ancestors: " + err.Error()})
			continue
		}
		for _, a := range ancestors {
			root, ok := byOID[a]
			if !ok {
				continue
			}
			fs = append(fs, Finding{Where: entries(t) + " and " + entries(root),
				Message: fmt.Sprintf("%s is a partition of %s and both are read: the root is copied with its partitions and publishes their changes under its own name, so the rows of %s would arrive twice", t, root, t),
				Fix:     fmt.Sprintf("map the partitioned table %s alone (its partitions' changes arrive under its name, whichever partition they are in) or its partitions alone, not both", root)})
		}
	}
	return fs
}

// replicaFindings checks that the role can write as a replica, and lists
// the triggers of the tables written that replicated rows will not fire
// (and those they will), as PostgreSQL's apply worker behaves.
func replicaFindings(ctx context.Context, s *setup, side string, tables []uint32) []Finding {
	var fs []Finding
	if err := apply.ReplicaRole(ctx, s.write); err != nil {
		f := Finding{Where: side, Message: err.Error()}
		var pe *apply.PrivilegeError
		if errors.As(err, &pe) {
			f.Message, f.Fix = "the role may not set session_replication_role: "+pe.Err.Error(), pe.Fix
		}
		return append(fs, f)
	}
	if _, err := s.write.Exec(ctx, "RESET session_replication_role"); err != nil {
		return append(fs, Finding{Where: side, Message: "resetting session_replication_role: " + err.Error()})
	}
	fs = append(fs, Finding{Where: side, OK: true, Message: "the role can write as a replica (session_replication_role = replica): triggers and foreign-key checks of the tables written do not fire again for replicated rows"})
	if len(tables) == 0 {
		return fs
	}
	rows, err := s.write.Query(ctx, `
		SELECT t.tgrelid::regclass::text, quote_ident(t.tgname), t.tgenabled::text
		FROM pg_trigger t
		WHERE t.tgrelid = ANY($1::oid[]) AND NOT t.tgisinternal AND t.tgenabled <> 'D'
		ORDER BY 1, 2`, tables)
	if err != nil {
		return append(fs, Finding{Where: side, Message: "listing the triggers of the tables written: " + err.Error()})
	}
	type trig struct{ Table, Name, Enabled string }
	trigs, err := pgx.CollectRows(rows, pgx.RowToStructByPos[trig])
	if err != nil {
		return append(fs, Finding{Where: side, Message: "listing the triggers of the tables written: " + err.Error()})
	}
	for _, t := range trigs {
		where := side + " table " + t.Table
		if t.Enabled == "O" {
			fs = append(fs, Finding{Where: where, OK: true, Warn: true,
				Message: fmt.Sprintf("trigger %s does not fire for the rows the bridge writes (it fires for client writes only, as with PostgreSQL's own replication)", t.Name),
				Fix:     fmt.Sprintf("if it must also act on replicated rows: ALTER TABLE %s ENABLE ALWAYS TRIGGER %s", t.Table, t.Name)})
			continue
		}
		fs = append(fs, Finding{Where: where, OK: true,
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

func writePrivileges(ctx context.Context, s *setup, side string, t change.Table) []Finding {
	var missing []string
	for _, p := range []string{"SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE"} {
		var ok bool
		if err := s.write.QueryRow(ctx, `SELECT has_table_privilege($1::regclass, $2)`, t.String(), p).Scan(&ok); err != nil {
			return []Finding{{Where: side + " table " + t.String(), Message: "checking privileges: " + err.Error()}}
		}
		if !ok {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 {
		return []Finding{{Where: side + " table " + t.String(), Message: "the role lacks " + strings.Join(missing, ", "),
			Fix: fmt.Sprintf("GRANT %s ON %s TO the bridge's role", strings.Join(missing, ", "), t)}}
	}
	return nil
}

// positionFindings reports the checkpoint and slot, and whether a start
// would be refused.
func positionFindings(ctx context.Context, m *config.Mapping, dir config.Direction, s *setup) []Finding {
	readSide, _ := dbconn.SideNames(dir)
	slot := m.SlotName(dir)
	info, err := replication.InspectSlot(ctx, s.read, slot)
	if err != nil {
		return []Finding{{Where: readSide, Message: "reading the slot: " + err.Error()}}
	}
	st, err := checkpoint.Load(ctx, s.write, m.Name, dir.String())
	if errors.Is(err, checkpoint.ErrNone) {
		return []Finding{{Where: "checkpoint", OK: true, Message: "none yet: the first run creates the slot " + slot + " (the live direction first copies the existing rows; the armed one follows from then on)"}}
	}
	if err != nil {
		return []Finding{{Where: "checkpoint", Message: err.Error()}}
	}
	sysid, err := replication.SystemID(ctx, s.read)
	if err != nil {
		return []Finding{{Where: readSide, Message: err.Error()}}
	}
	if _, err := checkpoint.Resume(st, checkpoint.Slot{Exists: info.Exists, ConfirmedFlushLSN: info.ConfirmedFlushLSN, WALStatus: info.WALStatus}, sysid); err != nil {
		return []Finding{{Where: "checkpoint", Message: err.Error()}}
	}
	msg := fmt.Sprintf("at %s; slot %s confirmed %s, retains %d bytes of WAL", st.LSN, slot, info.ConfirmedFlushLSN, info.RetainedBytes)
	if info.Active {
		msg += fmt.Sprintf(", in use by process %d", info.ActivePID)
	}
	return []Finding{{Where: "checkpoint", OK: true, Message: msg}}
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
