package check_test

import (
	"context"
	"net/url"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/cdcbridge/cdcbridge/check"
	"github.com/cdcbridge/cdcbridge/config"
	"github.com/cdcbridge/cdcbridge/finding"
	"github.com/cdcbridge/cdcbridge/internal/bridgetest"
	"github.com/cdcbridge/cdcbridge/internal/pgtest"
)

// TestStateSchemaPrivileges: a role that may not create the schema
// cdcbridge is told to be given it; given the schema without CREATE on it,
// it is told to get CREATE; with USAGE and CREATE the schema is fine; a
// table in it that another role owns is named, with the ALTER that fixes
// it. Each fix, run as the owner, clears its finding.
func TestStateSchemaPrivileges(t *testing.T) {
	e := bridgetest.NewEnv(t, `CREATE TABLE a (id int PRIMARY KEY)`, `CREATE TABLE a (id int PRIMARY KEY)`)
	var db string
	if err := e.Tgt.QueryRow(context.Background(), `SELECT current_database()`).Scan(&db); err != nil {
		t.Fatal(err)
	}
	role := "schema_" + db
	quoted := pgx.Identifier{role}.Sanitize()
	for _, c := range []*pgx.Conn{e.Src, e.Tgt} {
		pgtest.MustExec(t, c, `CREATE ROLE `+quoted+` LOGIN REPLICATION PASSWORD 'schema-pw'; GRANT ALL ON a TO `+quoted)
		t.Cleanup(func() {
			c.Exec(context.Background(), `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1`, role)
			c.Exec(context.Background(), `DROP OWNED BY `+quoted+`; DROP ROLE `+quoted)
		})
	}
	as := func(dsn string) string {
		u, err := url.Parse(dsn)
		if err != nil {
			t.Fatal(err)
		}
		u.User = url.UserPassword(role, "schema-pw")
		return u.String()
	}
	t.Setenv("PRIV_SRC", as(e.SrcDSN))
	t.Setenv("PRIV_TGT", as(e.TgtDSN))
	p := e.WriteFile("priv.yaml", "name: priv\nsource:\n  dsn: ${PRIV_SRC}\ntarget:\n  dsn: ${PRIV_TGT}\ntables:\n  - source: a\n    target: a\n")
	m, err := config.Load(p)
	if err != nil {
		t.Fatal(err)
	}
	schemaFindings := func() []finding.Finding {
		var out []finding.Finding
		for _, f := range check.Check(context.Background(), m.View(config.Forward)) {
			if !f.OK && f.Where == "target" && strings.Contains(f.Message, "schema cdcbridge") || strings.HasPrefix(f.Where, "target table cdcbridge.") {
				out = append(out, f)
			}
		}
		return out
	}
	steps := []struct {
		want, fix string
	}{
		{"may not create the schema cdcbridge", "CREATE SCHEMA cdcbridge AUTHORIZATION " + quoted + ";"},
		{"may not use the schema cdcbridge (it needs USAGE and CREATE on it)", "GRANT USAGE, CREATE ON SCHEMA cdcbridge TO " + quoted + ";"},
		{"belongs to role", "ALTER TABLE cdcbridge.checkpoint OWNER TO " + quoted + ";"},
	}
	for i, step := range steps {
		fs := schemaFindings()
		if len(fs) != 1 || !strings.Contains(fs[0].Message, step.want) || !strings.HasPrefix(fs[0].Fix, step.fix) {
			t.Fatalf("step %d: want one finding %q with the fix %q, got %v", i, step.want, step.fix, fs)
		}
		switch i {
		case 0:
			// The owner makes the schema instead, and keeps it: the role
			// may only look in it so far.
			pgtest.MustExec(t, e.Tgt, `CREATE SCHEMA cdcbridge; GRANT USAGE ON SCHEMA cdcbridge TO `+quoted)
		case 1:
			pgtest.MustExec(t, e.Tgt, step.fix+` CREATE TABLE cdcbridge.checkpoint (name text)`)
		case 2:
			pgtest.MustExec(t, e.Tgt, step.fix)
		}
	}
	if fs := schemaFindings(); len(fs) != 0 {
		t.Fatalf("after the fixes: %v", fs)
	}
}
