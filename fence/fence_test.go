package fence_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/cdcbridge/cdcbridge/apply"
	"github.com/cdcbridge/cdcbridge/config"
	"github.com/cdcbridge/cdcbridge/control"
	"github.com/cdcbridge/cdcbridge/fence"
	"github.com/cdcbridge/cdcbridge/internal/bridgetest"
	"github.com/cdcbridge/cdcbridge/internal/pgtest"
)

func TestMain(m *testing.M) { bridgetest.Main(m) }

// fencedDDL has a table with a key, one without, and a partitioned table.
const fencedDDL = `
CREATE TABLE keyed (id int PRIMARY KEY, v text);
CREATE TABLE nokey (v text);
CREATE TABLE parted (id int, v text) PARTITION BY RANGE (id);
CREATE TABLE parted_low PARTITION OF parted FOR VALUES FROM (0) TO (100);
CREATE TABLE parted_high PARTITION OF parted FOR VALUES FROM (100) TO (MAXVALUE);
CREATE TABLE unmapped (id int);`

const fencedTables = `  - {source: keyed, target: keyed}
  - {source: nokey, target: nokey}
  - {source: parted, target: parted}
`

func fencedEnv(t *testing.T, fenceOn bool) (*bridgetest.Env, *config.Mapping) {
	t.Helper()
	e := bridgetest.NewEnv(t, fencedDDL, fencedDDL)
	tables := fencedTables
	if fenceOn {
		tables += "fence: true\n"
	}
	return e, e.Mapping("shop", tables, nil)
}

// refused checks that sql fails on conn with the fence's error, naming the
// mapping and the live side.
func refused(t *testing.T, conn *pgx.Conn, live, sql string) {
	t.Helper()
	_, err := conn.Exec(context.Background(), sql)
	var pg *pgconn.PgError
	if !errors.As(err, &pg) || pg.Code != "25006" {
		t.Fatalf("%s: %v, want the fence's error (SQLSTATE 25006)", sql, err)
	}
	want := fmt.Sprintf(`cdcbridge: mapping "shop" fences this database: the live side is %s; write there: this side takes writes from the bridge only, until a flip makes it live`, live)
	if pg.Message != want {
		t.Fatalf("%s: message %q, want %q", sql, pg.Message, want)
	}
}

// accepted checks that sql succeeds on conn.
func accepted(t *testing.T, conn *pgx.Conn, sql string) {
	t.Helper()
	if _, err := conn.Exec(context.Background(), sql); err != nil {
		t.Fatalf("%s: %v, want it accepted", sql, err)
	}
}

// clientWrites are the writes a client may try on a fenced side.
var clientWrites = []string{
	`INSERT INTO keyed VALUES (1, 'client')`,
	`INSERT INTO keyed VALUES (1, 'client') ON CONFLICT (id) DO UPDATE SET v = excluded.v`,
	`UPDATE keyed SET v = 'client'`,
	`DELETE FROM keyed`,
	`TRUNCATE keyed`,
	`INSERT INTO nokey VALUES ('client')`,
	`UPDATE nokey SET v = 'client'`,
	`DELETE FROM nokey`,
	`TRUNCATE nokey`,
	`INSERT INTO parted VALUES (1, 'client')`,
	`UPDATE parted SET v = 'client'`,
	`TRUNCATE parted`,
	// Straight to a partition, past the partitioned table's trigger.
	`INSERT INTO parted_low VALUES (2, 'client')`,
	`UPDATE parted_high SET v = 'client'`,
	`DELETE FROM parted_low`,
	`TRUNCATE parted_high`,
}

// copyIn writes one row into table with COPY FROM STDIN.
func copyIn(conn *pgx.Conn, table, row string) error {
	_, err := conn.PgConn().CopyFrom(context.Background(), strings.NewReader(row+"\n"), "COPY "+table+" FROM STDIN")
	return err
}

func database(t *testing.T, dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimPrefix(u.Path, "/")
}

// TestFenceRefusesClientsNotTheBridge: on the fenced side, every client
// write to a mapped table or one of its partitions fails with the fence's
// message, whatever the statement, COPY included, and whether or not the
// session writes as a replica; the bridge's sessions, which carry its
// replication origin, write; an unmapped table is not fenced; installing
// again changes nothing; lifting lets clients write again; Remove leaves
// no trigger and no function.
func TestFenceRefusesClientsNotTheBridge(t *testing.T) {
	ctx := context.Background()
	e, m := fencedEnv(t, true)
	pgtest.MustExec(t, e.Tgt, `INSERT INTO keyed VALUES (1, 'a'); INSERT INTO nokey VALUES ('a'); INSERT INTO parted VALUES (1, 'a'), (150, 'b')`)
	log := bridgetest.TextLogger(&bridgetest.LogSink{})
	if err := fence.Install(ctx, m, config.Forward, log); err != nil {
		t.Fatal(err)
	}
	live := "source (" + database(t, e.SrcDSN) + ")"
	for _, sql := range clientWrites {
		refused(t, e.Tgt, live, sql)
	}
	for table, row := range map[string]string{"keyed": "7\tcopied", "nokey": "copied", "parted_low": "7\tcopied"} {
		if err := copyIn(e.Tgt, table, row); err == nil || !strings.Contains(err.Error(), "fences this database") {
			t.Fatalf("COPY into %s: %v, want the fence's error", table, err)
		}
	}
	// A session that writes as a replica, without the origin, is a client.
	replica := pgtest.Connect(t, e.TgtDSN)
	if err := apply.ReplicaRole(ctx, replica); err != nil {
		t.Fatal(err)
	}
	refused(t, replica, live, `INSERT INTO keyed VALUES (2, 'replica')`)
	refused(t, replica, live, `TRUNCATE parted_low`)
	// A client that is not a superuser gets the message too, not a
	// permission error.
	refused(t, plainClient(t, e.TgtDSN), live, `UPDATE keyed SET v = 'plain'`)
	// The source, the live side, and unmapped tables take writes.
	accepted(t, e.Src, `INSERT INTO keyed VALUES (9, 'live'); TRUNCATE parted`)
	accepted(t, e.Tgt, `INSERT INTO unmapped VALUES (1)`)

	// The bridge writes as a replica under its origin, as apply does.
	bridge := pgtest.Connect(t, e.TgtDSN)
	if err := apply.ReplicaRole(ctx, bridge); err != nil {
		t.Fatal(err)
	}
	err := apply.WithOrigin(ctx, bridge, m.OriginName(config.Forward), func() error {
		_, err := bridge.Exec(ctx, `INSERT INTO keyed VALUES (3, 'bridge'); UPDATE nokey SET v = 'bridge'; INSERT INTO parted_high VALUES (170, 'bridge'); DELETE FROM parted WHERE id = 1; TRUNCATE parted_low`)
		if err == nil {
			err = copyIn(bridge, "nokey", "copied")
		}
		return err
	})
	if err != nil {
		t.Fatalf("the bridge's writes: %v", err)
	}
	// So does a session with the origin that does not write as a replica.
	plain := pgtest.Connect(t, e.TgtDSN)
	if err := apply.WithOrigin(ctx, plain, m.OriginName(config.Forward), func() error {
		_, err := plain.Exec(ctx, `DELETE FROM keyed WHERE id = 3`)
		return err
	}); err != nil {
		t.Fatalf("a write under the origin: %v", err)
	}
	if got := bridgetest.Query(t, e.Tgt, `SELECT 'keyed', * FROM keyed UNION ALL SELECT 'nokey', NULL, * FROM nokey UNION ALL SELECT 'parted', * FROM parted`); got != "(keyed,1,a)\n(nokey,,bridge)\n(nokey,,copied)\n(parted,150,b)\n(parted,170,bridge)" {
		t.Fatalf("the target after the bridge's writes:\n%s", got)
	}

	// Every relation has its one trigger, enabled always; installing again
	// leaves them as they are.
	fences := func(conn *pgx.Conn) string {
		return bridgetest.Query(t, conn, `SELECT tgrelid::regclass, tgenabled, tgtype FROM pg_trigger WHERE tgname = 'cdcbridge_fence_shop'`)
	}
	oids := func() string {
		return bridgetest.Query(t, e.Tgt, `SELECT oid FROM pg_trigger WHERE tgname = 'cdcbridge_fence_shop'`)
	}
	want := "(keyed,A,62)\n(nokey,A,62)\n(parted,A,62)\n(parted_high,A,62)\n(parted_low,A,62)"
	if got := fences(e.Tgt); got != want {
		t.Fatalf("fences on the target:\n%s\nwant:\n%s", got, want)
	}
	before := oids()
	if err := fence.Install(ctx, m, config.Forward, log); err != nil {
		t.Fatal(err)
	}
	if after := oids(); after != before {
		t.Fatalf("installing again replaced the triggers: %s, then %s", before, after)
	}
	if got := fences(e.Src); got != "" {
		t.Fatalf("the live side is fenced:\n%s", got)
	}

	// Lifting the fence opens the side, without waiting for its readers.
	reader := pgtest.Connect(t, e.TgtDSN)
	pgtest.MustExec(t, reader, `BEGIN; SELECT count(*) FROM keyed; SELECT count(*) FROM parted`)
	if err := fence.Lift(ctx, m, config.Reverse, log); err != nil {
		t.Fatal(err)
	}
	pgtest.MustExec(t, reader, `COMMIT`)
	accepted(t, e.Tgt, `TRUNCATE keyed`)
	for _, sql := range clientWrites {
		accepted(t, e.Tgt, sql)
	}
	if err := fence.Lift(ctx, m, config.Reverse, log); err != nil {
		t.Fatalf("lifting again: %v", err)
	}
	// Lifted, the triggers are disabled, not dropped (which would wait for
	// every reader); fencing again enables the same triggers.
	if got := fences(e.Tgt); got != strings.ReplaceAll(want, ",A,", ",D,") {
		t.Fatalf("fences on the target once lifted:\n%s", got)
	}
	pgtest.MustExec(t, reader, `BEGIN; SELECT count(*) FROM keyed; SELECT count(*) FROM parted`)
	if err := fence.Install(ctx, m, config.Forward, log); err != nil {
		t.Fatal(err)
	}
	pgtest.MustExec(t, reader, `COMMIT`)
	if got, after := fences(e.Tgt), oids(); got != want || after != before {
		t.Fatalf("fenced again: %s (oids %s, then %s)", got, before, after)
	}
	refused(t, e.Tgt, live, `TRUNCATE parted_high`)
	if err := fence.Lift(ctx, m, config.Reverse, log); err != nil {
		t.Fatal(err)
	}

	// Remove takes the fences and the function away on both sides.
	if err := fence.Install(ctx, m, config.Reverse, log); err != nil {
		t.Fatal(err)
	}
	refused(t, e.Src, "target ("+database(t, e.TgtDSN)+")", `INSERT INTO keyed VALUES (10, 'client')`)
	var out strings.Builder
	if err := fence.Remove(ctx, m, &out); err != nil {
		t.Fatal(err)
	}
	for _, conn := range []*pgx.Conn{e.Src, e.Tgt} {
		if got := bridgetest.Query(t, conn, `SELECT tgname FROM pg_trigger WHERE tgname LIKE 'cdcbridge_fence%' UNION ALL SELECT proname FROM pg_proc WHERE proname = 'fence'`); got != "" {
			t.Fatalf("left after Remove:\n%s\n(it said: %s)", got, out.String())
		}
	}
	if !strings.Contains(out.String(), "dropped the fence of 5 relation(s) on the source") {
		t.Fatalf("Remove said:\n%s", out.String())
	}
	accepted(t, e.Src, `INSERT INTO keyed VALUES (11, 'client')`)
}

// TestNoFenceWithoutTheKey: without fence: true nothing is installed, and
// the fence an earlier fence: true left goes when the daemon converges.
func TestNoFenceWithoutTheKey(t *testing.T) {
	ctx := context.Background()
	e, m := fencedEnv(t, false)
	log := bridgetest.TextLogger(&bridgetest.LogSink{})
	if err := fence.Converge(ctx, m, control.State{Live: config.Forward}, log); err != nil {
		t.Fatal(err)
	}
	if err := fence.Install(ctx, m, config.Forward, log); err != nil {
		t.Fatal(err)
	}
	for _, sql := range clientWrites {
		accepted(t, e.Tgt, sql)
	}

	fenced := e.Mapping("shop", fencedTables+"fence: true\n", nil)
	if err := fence.Install(ctx, fenced, config.Reverse, log); err != nil {
		t.Fatal(err)
	}
	refused(t, e.Src, "target ("+database(t, e.TgtDSN)+")", `INSERT INTO keyed VALUES (1, 'client')`)
	if err := fence.Converge(ctx, m, control.State{Live: config.Forward}, log); err != nil {
		t.Fatal(err)
	}
	accepted(t, e.Src, `INSERT INTO keyed VALUES (1, 'client')`)
	if got := bridgetest.Query(t, e.Src, `SELECT tgrelid::regclass FROM pg_trigger WHERE tgname = 'cdcbridge_fence_shop'`); got != "" {
		t.Fatalf("fences left with fence: false:\n%s", got)
	}
}

// TestConverge: whatever fences a crash left, Converge puts them where the
// state wants them: on the side the live direction writes, or nowhere while
// the side that was live drains.
func TestConverge(t *testing.T) {
	ctx := context.Background()
	e, m := fencedEnv(t, true)
	log := bridgetest.TextLogger(&bridgetest.LogSink{})
	src, tgt := "source ("+database(t, e.SrcDSN)+")", "target ("+database(t, e.TgtDSN)+")"
	probe := `UPDATE keyed SET v = 'probe'`
	for _, c := range []struct {
		name  string
		left  []config.Direction // Install for each before Converge
		state control.State
		// the side that must refuse, "" for none
		fenced string
	}{
		{"a crash between lift and record: both open, forward live", nil, control.State{Live: config.Forward}, "target"},
		{"both fenced, reverse live", []config.Direction{config.Forward, config.Reverse}, control.State{Live: config.Reverse}, "source"},
		{"fenced the old side, crashed before the drain was recorded", []config.Direction{config.Reverse}, control.State{Live: config.Reverse, Drains: true, Draining: config.Forward}, ""},
		{"the drain recorded, the old side not yet fenced", nil, control.State{Live: config.Reverse}, "source"},
		{"the wrong side fenced", []config.Direction{config.Reverse}, control.State{Live: config.Forward}, "target"},
	} {
		t.Run(c.name, func(t *testing.T) {
			for _, dir := range c.left {
				if err := fence.Install(ctx, m, dir, log); err != nil {
					t.Fatal(err)
				}
			}
			if err := fence.Converge(ctx, m, c.state, log); err != nil {
				t.Fatal(err)
			}
			switch c.fenced {
			case "target":
				refused(t, e.Tgt, src, probe)
				accepted(t, e.Src, probe)
			case "source":
				refused(t, e.Src, tgt, probe)
				accepted(t, e.Tgt, probe)
			default:
				accepted(t, e.Src, probe)
				accepted(t, e.Tgt, probe)
			}
		})
	}
}

// plainClient connects to dsn as a new role that may write the tables but
// is no superuser.
func plainClient(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	admin := pgtest.Connect(t, dsn)
	role := "fence_client_" + strings.ToLower(strings.ReplaceAll(t.Name(), "/", "_"))
	if len(role) > 60 {
		role = role[:60]
	}
	pgtest.MustExec(t, admin, fmt.Sprintf(`CREATE ROLE %s LOGIN PASSWORD 'client-pw'; GRANT ALL ON ALL TABLES IN SCHEMA public TO %[1]s`, pgx.Identifier{role}.Sanitize()))
	t.Cleanup(func() {
		admin.Exec(context.Background(), fmt.Sprintf(`DROP OWNED BY %s; DROP ROLE %[1]s`, pgx.Identifier{role}.Sanitize()))
	})
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(role, "client-pw")
	return pgtest.Connect(t, u.String())
}

// TestFenceNeedsTheOwner: a bridge role that owns no table cannot fence
// (enabling the trigger ALWAYS and dropping it take the owner), and says
// which GRANT fixes that, as it does for EXECUTE on
// pg_replication_origin_session_is_setup(); once a member of the tables'
// owner role, it fences them, and its replica sessions under its origin
// write.
func TestFenceNeedsTheOwner(t *testing.T) {
	ctx := context.Background()
	e, _ := fencedEnv(t, true)
	const owner, bridgeRole = "fence_owner", "fence_bridge"
	for _, side := range []struct {
		conn *pgx.Conn
		dsn  string
	}{{e.Src, e.SrcDSN}, {e.Tgt, e.TgtDSN}} {
		pgtest.MustExec(t, side.conn, fmt.Sprintf(`CREATE ROLE %s; CREATE ROLE %s LOGIN PASSWORD 'bridge-pw';
			ALTER TABLE keyed OWNER TO %[1]s; ALTER TABLE nokey OWNER TO %[1]s; ALTER TABLE parted OWNER TO %[1]s;
			ALTER TABLE parted_low OWNER TO %[1]s; ALTER TABLE parted_high OWNER TO %[1]s;
			GRANT CREATE ON DATABASE %[3]s TO %[2]s; GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE, TRIGGER ON ALL TABLES IN SCHEMA public TO %[2]s`,
			owner, bridgeRole, pgx.Identifier{database(t, side.dsn)}.Sanitize()))
		conn := side.conn
		t.Cleanup(func() {
			conn.Exec(context.Background(), `DROP OWNED BY fence_bridge, fence_owner CASCADE; DROP ROLE fence_bridge, fence_owner`)
		})
	}
	as := func(dsn string) string {
		u, err := url.Parse(dsn)
		if err != nil {
			t.Fatal(err)
		}
		u.User = url.UserPassword(bridgeRole, "bridge-pw")
		return u.String()
	}
	superSrc, superTgt := e.SrcDSN, e.TgtDSN
	e.SrcDSN, e.TgtDSN = as(e.SrcDSN), as(e.TgtDSN)
	m := e.Mapping("shop", fencedTables+"fence: true\n", nil)
	e.SrcDSN, e.TgtDSN = superSrc, superTgt
	log := bridgetest.TextLogger(&bridgetest.LogSink{})

	err := fence.Install(ctx, m, config.Forward, log)
	if err == nil || !strings.Contains(err.Error(), `as a superuser run GRANT EXECUTE ON FUNCTION pg_replication_origin_session_is_setup() TO "fence_bridge"`) {
		t.Fatalf("fencing without EXECUTE on pg_replication_origin_session_is_setup(): %v, want the GRANT that fixes it", err)
	}
	pgtest.MustExec(t, e.Tgt, `GRANT EXECUTE ON FUNCTION pg_replication_origin_session_is_setup() TO fence_bridge`)
	err = fence.Install(ctx, m, config.Forward, log)
	var oe *fence.OwnerError
	if !errors.As(err, &oe) || !strings.Contains(err.Error(), "it does not own keyed, nokey, parted, parted_high, parted_low: as a superuser run GRANT fence_owner TO \"fence_bridge\"") {
		t.Fatalf("fencing tables the role does not own: %v, want an OwnerError with the GRANT", err)
	}
	if err := fence.Lift(ctx, m, config.Forward, log); !errors.As(err, &oe) {
		t.Fatalf("lifting where the role could not fence again: %v, want an OwnerError", err)
	}
	if got := bridgetest.Query(t, e.Tgt, `SELECT tgrelid::regclass FROM pg_trigger WHERE tgname = 'cdcbridge_fence_shop'`); got != "" {
		t.Fatalf("a failed fence left triggers:\n%s", got)
	}
	pgtest.MustExec(t, e.Tgt, `GRANT fence_owner TO fence_bridge`)
	if err := fence.Install(ctx, m, config.Forward, log); err != nil {
		t.Fatal(err)
	}
	if got := bridgetest.Query(t, e.Tgt, `SELECT tgrelid::regclass, tgenabled FROM pg_trigger WHERE tgname = 'cdcbridge_fence_shop'`); got != "(keyed,A)\n(nokey,A)\n(parted,A)\n(parted_high,A)\n(parted_low,A)" {
		t.Fatalf("fences made by a member of the owner's role:\n%s", got)
	}
	live := "source (" + database(t, e.SrcDSN) + ")"
	for _, sql := range clientWrites {
		refused(t, e.Tgt, live, sql)
	}
	// The bridge's role, writing as a replica under its origin, passes.
	pgtest.MustExec(t, e.Tgt, `GRANT SET ON PARAMETER session_replication_role TO fence_bridge;
		GRANT EXECUTE ON FUNCTION pg_replication_origin_create(text), pg_replication_origin_session_setup(text), pg_replication_origin_session_reset(), pg_replication_origin_oid(text) TO fence_bridge`)
	bridge := pgtest.Connect(t, as(e.TgtDSN))
	if err := apply.ReplicaRole(ctx, bridge); err != nil {
		t.Fatal(err)
	}
	if err := apply.WithOrigin(ctx, bridge, m.OriginName(config.Forward), func() error {
		_, err := bridge.Exec(ctx, `INSERT INTO keyed VALUES (3, 'bridge'); TRUNCATE parted_low`)
		return err
	}); err != nil {
		t.Fatalf("the bridge's writes: %v", err)
	}
	refused(t, bridge, live, `INSERT INTO keyed VALUES (4, 'bridge without its origin')`)
	if err := fence.Lift(ctx, m, config.Reverse, log); err != nil {
		t.Fatal(err)
	}
	accepted(t, e.Tgt, `INSERT INTO keyed VALUES (4, 'client')`)
}
