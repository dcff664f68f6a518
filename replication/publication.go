package replication

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/cdcbridge/cdcbridge/change"
)

// publicationOptions are the options every bridge publication has: all four
// operations, and partitioned tables published as their root so that changes
// carry the table name the mapping uses rather than a partition's.
const publicationOptions = `publish = 'insert, update, delete, truncate', publish_via_partition_root = true`

// EnsurePublication makes the publication name publish exactly tables.
//
// A missing publication is created; an existing one has its table set
// replaced (ALTER PUBLICATION ... SET TABLE, which also drops row filters,
// column lists and schemas) and its options reset, but only when they differ,
// so calling it again with the same tables changes nothing and takes no locks
// on the tables. tables must not be empty. A publication FOR ALL TABLES is an
// error: it is not one the bridge made. Creating a publication needs CREATE
// on the database and ownership of the tables (or superuser).
func EnsurePublication(ctx context.Context, conn *pgx.Conn, name string, tables []change.Table) error {
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

	var allTables, ins, upd, del, trunc, viaRoot bool
	err := conn.QueryRow(ctx, `SELECT puballtables, pubinsert, pubupdate, pubdelete, pubtruncate, pubviaroot
		FROM pg_catalog.pg_publication WHERE pubname = $1`, name).Scan(&allTables, &ins, &upd, &del, &trunc, &viaRoot)
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
		err = conn.QueryRow(ctx, `SELECT puballtables, pubinsert, pubupdate, pubdelete, pubtruncate, pubviaroot
			FROM pg_catalog.pg_publication WHERE pubname = $1`, name).Scan(&allTables, &ins, &upd, &del, &trunc, &viaRoot)
	}
	if err != nil {
		return fmt.Errorf("reading publication %s: %w", name, err)
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

// DropPublication drops the publication if it exists.
func DropPublication(ctx context.Context, conn *pgx.Conn, name string) error {
	if err := ValidName("publication", name); err != nil {
		return err
	}
	if _, err := conn.Exec(ctx, "DROP PUBLICATION IF EXISTS "+ident(name)); err != nil {
		return fmt.Errorf("dropping publication %s: %w", name, err)
	}
	return nil
}
