package replication

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/cdcbridge/cdcbridge/change"
)

// publicationOptions are the options every bridge publication has: all four
// operations, and partitioned tables published as their root so that changes
// carry the table name the mapping uses rather than a partition's.
const publicationOptions = `publish = 'insert, update, delete, truncate', publish_via_partition_root = true`

// EnsurePublication makes sure the publication name publishes tables for
// the bridge.
//
// A publication the bridge's role may alter (it owns it, or is superuser)
// is the bridge's own, as is a missing one: a missing publication is
// created; an existing one has its table set replaced (ALTER PUBLICATION
// ... SET TABLE, which also drops row filters, column lists and schemas)
// and its options reset, but only when they differ, so calling it again
// with the same tables changes nothing and takes no locks on the tables.
// A publication FOR ALL TABLES is then an error: it is not one the bridge
// made. Creating a publication needs CREATE on the database and ownership
// of the tables (or superuser).
//
// A publication that another role owns (made beforehand by the owner of
// the tables) is used as it is, and so is one the caller was given (given:
// the user named it): it is only checked to publish every table, with
// every operation and without row filters or column lists; other tables in
// it are fine. When it does not, the error is a *PublicationError with the
// SQL that its owner runs to fix it. tables must not be empty.
func EnsurePublication(ctx context.Context, conn *pgx.Conn, name string, tables []change.Table, given bool) error {
	if err := ValidName("publication", name); err != nil {
		return err
	}
	tables = uniqueTables(tables)
	if len(tables) == 0 {
		return fmt.Errorf("publication %s: no tables to publish", name)
	}
	for _, t := range tables {
		if t.Schema == "" || t.Name == "" {
			return fmt.Errorf("publication %s: table %s needs a schema and a name", name, t)
		}
	}

	var allTables, ins, upd, del, trunc, viaRoot, mine bool
	read := func() error {
		return conn.QueryRow(ctx, `SELECT puballtables, pubinsert, pubupdate, pubdelete, pubtruncate, pubviaroot, pg_catalog.pg_has_role(pubowner, 'USAGE')
			FROM pg_catalog.pg_publication WHERE pubname = $1`, name).Scan(&allTables, &ins, &upd, &del, &trunc, &viaRoot, &mine)
	}
	err := read()
	if errors.Is(err, pgx.ErrNoRows) && given {
		return CheckPublication(ctx, conn, name, tables)
	}
	if errors.Is(err, pgx.ErrNoRows) {
		sql := "CREATE PUBLICATION " + ident(name) + " FOR TABLE " + tableList(tables) + " WITH (" + publicationOptions + ")"
		_, err = conn.Exec(ctx, sql)
		if err == nil {
			return nil
		}
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != codeDuplicateObject { // created concurrently
			return fmt.Errorf("creating publication %s: %w", name, err)
		}
		err = read()
	}
	if err != nil {
		return fmt.Errorf("reading publication %s: %w", name, err)
	}
	if given || !mine {
		return CheckPublication(ctx, conn, name, tables)
	}
	if allTables {
		return fmt.Errorf("publication %s is FOR ALL TABLES and was not made by the bridge: drop it or choose another name", name)
	}

	if !(ins && upd && del && trunc && viaRoot) {
		if _, err := conn.Exec(ctx, "ALTER PUBLICATION "+ident(name)+" SET ("+publicationOptions+")"); err != nil {
			return fmt.Errorf("setting options of publication %s: %w", name, err)
		}
	}

	same, err := publishesExactly(ctx, conn, name, tables)
	if err != nil {
		return fmt.Errorf("reading tables of publication %s: %w", name, err)
	}
	if same {
		return nil
	}
	if _, err := conn.Exec(ctx, "ALTER PUBLICATION "+ident(name)+" SET TABLE "+tableList(tables)); err != nil {
		return fmt.Errorf("setting tables of publication %s: %w", name, err)
	}
	return nil
}

// PublicationError says that a publication the bridge uses as it is does
// not publish what the bridge reads, and what its owner runs to fix that.
type PublicationError struct {
	// Publication is the publication's name.
	Publication string
	// Exists is false when there is no such publication.
	Exists bool
	// Missing are the tables it does not publish (under their own name),
	// Filtered those it publishes with a row filter or a column list.
	Missing, Filtered []change.Table
	// Operations lists what it does not publish of insert, update, delete
	// and truncate; ViaRoot is set when it must publish partitioned
	// tables under their own name (publish_via_partition_root) and
	// does not.
	Operations []string
	ViaRoot    bool
	// Fix is the SQL that the owner of the publication and the tables runs.
	Fix string
}

func (e *PublicationError) Error() string {
	who := "its owner"
	if !e.Exists {
		who = "the owner of the tables"
	}
	return e.problem() + "; as " + who + " run: " + e.Fix
}

// problem is the error without its fix.
func (e *PublicationError) problem() string {
	if !e.Exists {
		return fmt.Sprintf("publication %s does not exist", e.Publication)
	}
	var what []string
	if len(e.Missing) > 0 {
		what = append(what, "does not publish "+tableList(e.Missing))
	}
	if len(e.Filtered) > 0 {
		what = append(what, "publishes "+tableList(e.Filtered)+" with a row filter or a column list, which would hide changes")
	}
	if len(e.Operations) > 0 {
		what = append(what, "does not publish "+strings.Join(e.Operations, ", "))
	}
	if e.ViaRoot {
		what = append(what, "publishes the changes of partitioned tables under their partitions' names (publish_via_partition_root is off)")
	}
	return fmt.Sprintf("publication %s %s", e.Publication, strings.Join(what, "; it "))
}

// CheckPublication checks, changing nothing, that the publication name
// publishes every table of tables under its own name, with inserts,
// updates, deletes and truncates, and without row filters or column lists
// that would hide changes; a partitioned table needs
// publish_via_partition_root. Other tables in it are fine: their changes
// are not mapped and are passed over. The error is a *PublicationError
// when it does not.
func CheckPublication(ctx context.Context, conn *pgx.Conn, name string, tables []change.Table) error {
	if err := ValidName("publication", name); err != nil {
		return err
	}
	tables = uniqueTables(tables)
	pe := &PublicationError{Publication: name, Exists: true}
	var ins, upd, del, trunc, viaRoot bool
	err := conn.QueryRow(ctx, `SELECT pubinsert, pubupdate, pubdelete, pubtruncate, pubviaroot
		FROM pg_catalog.pg_publication WHERE pubname = $1`, name).Scan(&ins, &upd, &del, &trunc, &viaRoot)
	if errors.Is(err, pgx.ErrNoRows) {
		pe.Exists, pe.Missing = false, tables
		pe.Fix = "CREATE PUBLICATION " + ident(name) + " FOR TABLE " + tableList(tables) + " WITH (" + publicationOptions + ");"
		return pe
	}
	if err != nil {
		return fmt.Errorf("reading publication %s: %w", name, err)
	}
	for _, op := range []struct {
		name string
		on   bool
	}{{"insert", ins}, {"update", upd}, {"delete", del}, {"truncate", trunc}} {
		if !op.on {
			pe.Operations = append(pe.Operations, op.name)
		}
	}
	// What pgoutput sends for each table, as the server resolves the
	// publication (its tables, schemas and partitions): a row filter, or
	// fewer columns than the table has.
	rows, err := conn.Query(ctx, `SELECT pt.schemaname, pt.tablename,
			pt.rowfilter IS NOT NULL OR cardinality(pt.attnames) < (SELECT count(*) FROM pg_catalog.pg_attribute a
				WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped)
		FROM pg_catalog.pg_publication_tables pt
		JOIN pg_catalog.pg_namespace n ON n.nspname = pt.schemaname
		JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = pt.tablename
		WHERE pt.pubname = $1`, name)
	if err != nil {
		return fmt.Errorf("reading the tables of publication %s: %w", name, err)
	}
	published := map[change.Table]bool{} // true: filtered
	var (
		t change.Table
		f bool
	)
	if _, err := pgx.ForEachRow(rows, []any{&t.Schema, &t.Name, &f}, func() error {
		published[t] = f
		return nil
	}); err != nil {
		return fmt.Errorf("reading the tables of publication %s: %w", name, err)
	}
	for _, t := range tables {
		// A partitioned table in a publication without
		// publish_via_partition_root is published as its partitions: it is
		// in it, under the wrong names.
		var partitioned, member bool
		if err := conn.QueryRow(ctx, `SELECT c.relkind = 'p',
				p.puballtables
				OR EXISTS (SELECT 1 FROM pg_catalog.pg_publication_rel pr WHERE pr.prpubid = p.oid AND pr.prrelid = c.oid)
				OR EXISTS (SELECT 1 FROM pg_catalog.pg_publication_namespace pn WHERE pn.pnpubid = p.oid AND pn.pnnspid = c.relnamespace)
			FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace, pg_catalog.pg_publication p
			WHERE n.nspname = $1 AND c.relname = $2 AND p.pubname = $3`, t.Schema, t.Name, name).Scan(&partitioned, &member); err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("reading table %s of publication %s: %w", t, name, err)
		}
		if partitioned && !viaRoot {
			pe.ViaRoot = true
		}
		filtered, ok := published[t]
		switch {
		case !ok && !(partitioned && member):
			pe.Missing = append(pe.Missing, t)
		case filtered:
			pe.Filtered = append(pe.Filtered, t)
		}
	}
	if len(pe.Missing) == 0 && len(pe.Filtered) == 0 && len(pe.Operations) == 0 && !pe.ViaRoot {
		return nil
	}
	var fix []string
	if len(pe.Filtered) > 0 {
		fix = append(fix, "ALTER PUBLICATION "+ident(name)+" DROP TABLE "+tableList(pe.Filtered)+";")
	}
	if add := append(append([]change.Table{}, pe.Filtered...), pe.Missing...); len(add) > 0 {
		fix = append(fix, "ALTER PUBLICATION "+ident(name)+" ADD TABLE "+tableList(add)+";")
	}
	if len(pe.Operations) > 0 || pe.ViaRoot {
		opts := "publish = 'insert, update, delete, truncate'"
		if pe.ViaRoot {
			opts += ", publish_via_partition_root = true"
		}
		fix = append(fix, "ALTER PUBLICATION "+ident(name)+" SET ("+opts+");")
	}
	pe.Fix = strings.Join(fix, " ")
	return pe
}

// publishesExactly reports whether the publication holds exactly tables,
// without row filters, column lists or schemas.
func publishesExactly(ctx context.Context, conn *pgx.Conn, name string, tables []change.Table) (bool, error) {
	var schemas int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_catalog.pg_publication_namespace pn
		JOIN pg_catalog.pg_publication p ON p.oid = pn.pnpubid WHERE p.pubname = $1`, name).Scan(&schemas); err != nil {
		return false, err
	}
	if schemas > 0 {
		return false, nil
	}
	rows, err := conn.Query(ctx, `SELECT n.nspname, c.relname, pr.prqual IS NOT NULL OR pr.prattrs IS NOT NULL
		FROM pg_catalog.pg_publication_rel pr
		JOIN pg_catalog.pg_publication p ON p.oid = pr.prpubid
		JOIN pg_catalog.pg_class c ON c.oid = pr.prrelid
		JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
		WHERE p.pubname = $1`, name)
	if err != nil {
		return false, err
	}
	have := map[change.Table]bool{}
	filtered := false
	var (
		t change.Table
		f bool
	)
	if _, err := pgx.ForEachRow(rows, []any{&t.Schema, &t.Name, &f}, func() error {
		have[t] = true
		filtered = filtered || f
		return nil
	}); err != nil {
		return false, err
	}
	if filtered || len(have) != len(tables) {
		return false, nil
	}
	for _, t := range tables {
		if !have[t] {
			return false, nil
		}
	}
	return true, nil
}

// DropPublication drops the publication if it exists and is the bridge's:
// one that was given (the mapping names it) or that another role owns (the
// owner of the tables made it) is left as it is, and kept says why and
// what its owner runs once nothing uses it. kept is "" when the
// publication was dropped or did not exist.
func DropPublication(ctx context.Context, conn *pgx.Conn, name string, given bool) (kept string, err error) {
	if err := ValidName("publication", name); err != nil {
		return "", err
	}
	var owner string
	var mine bool
	err = conn.QueryRow(ctx, `SELECT pg_catalog.pg_get_userbyid(pubowner), pg_catalog.pg_has_role(pubowner, 'USAGE')
		FROM pg_catalog.pg_publication WHERE pubname = $1`, name).Scan(&owner, &mine)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return "", nil
	case err != nil:
		return "", fmt.Errorf("reading publication %s: %w", name, err)
	case given:
		return "the mapping names it, so its owner made it and drops it (DROP PUBLICATION " + ident(name) + ") once nothing uses it", nil
	case !mine:
		return "role " + ident(owner) + " made it and drops it (DROP PUBLICATION " + ident(name) + ") once nothing uses it", nil
	}
	if _, err := conn.Exec(ctx, "DROP PUBLICATION IF EXISTS "+ident(name)); err != nil {
		return "", fmt.Errorf("dropping publication %s: %w", name, err)
	}
	return "", nil
}
