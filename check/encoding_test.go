package check_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cdcbridge/cdcbridge/check"
	"github.com/cdcbridge/cdcbridge/config"
	"github.com/cdcbridge/cdcbridge/finding"
	"github.com/cdcbridge/cdcbridge/internal/bridgetest"
	"github.com/cdcbridge/cdcbridge/internal/pgtest"
	"github.com/cdcbridge/cdcbridge/pipeline"
)

// encodedDB creates a database with the given encoding on cluster c (a C
// locale fits every encoding) and returns its name; it is dropped, with
// its slots, when the test ends.
func encodedDB(t *testing.T, c *pgtest.Cluster, encoding string) string {
	t.Helper()
	name := fmt.Sprintf("enc_%s_%d", strings.ToLower(encoding), time.Now().UnixNano())
	c.Exec(t, "postgres", fmt.Sprintf("CREATE DATABASE %s ENCODING '%s' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0", pgx.Identifier{name}.Sanitize(), encoding))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, c.DSN("postgres"))
		if err != nil {
			t.Errorf("dropping database %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		// A terminated walsender lets go of its slot asynchronously: the
		// drop is retried until no slot holds the database.
		if !pgtest.Until(20*time.Second, func() bool {
			conn.Exec(ctx, `SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE database = $1 AND active_pid IS NOT NULL`, name)
			conn.Exec(ctx, `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = $1 AND NOT active`, name)
			_, err = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
			return err == nil
		}) {
			t.Errorf("database %s was not dropped: %v", name, err)
		}
	})
	return name
}

// encodedEnv is a pair whose source and target databases have the given
// encodings ("" for the clusters' UTF8 default), with a table t on both;
// dsnParams is appended to both DSNs.
func encodedEnv(t *testing.T, srcEnc, tgtEnc, dsnParams string) *bridgetest.Env {
	t.Helper()
	p := &pgtest.Pair{Dir: t.TempDir()}
	for _, side := range []struct {
		c   *pgtest.Cluster
		enc string
		dsn *string
	}{{pgtest.Source(t), srcEnc, &p.SrcDSN}, {pgtest.Target(t), tgtEnc, &p.TgtDSN}} {
		if side.enc == "" {
			*side.dsn = side.c.NewDB(t)
		} else {
			*side.dsn = side.c.DSN(encodedDB(t, side.c, side.enc))
		}
		*side.dsn += dsnParams
	}
	p.Src, p.Tgt = pgtest.Connect(t, p.SrcDSN), pgtest.Connect(t, p.TgtDSN)
	pgtest.MustExec(t, p.Src, `CREATE TABLE t (id int PRIMARY KEY, s text)`)
	pgtest.MustExec(t, p.Tgt, `CREATE TABLE t (id int PRIMARY KEY, s text)`)
	return &bridgetest.Env{Pair: p, T: t}
}

// encodingFinding returns the finding of check about encodings.
func encodingFinding(t *testing.T, m *config.Mapping, dir config.Direction) finding.Finding {
	t.Helper()
	var found []finding.Finding
	for _, f := range check.Check(context.Background(), m.View(dir)) {
		if f.Where == "encoding" {
			found = append(found, f)
		}
	}
	if len(found) != 1 {
		t.Fatalf("check %s: want one finding about encodings, got %v", dir, found)
	}
	return found[0]
}

// check compares the two sides' encodings in each direction and says what
// will happen to text on its way: a SQL_ASCII source feeding a UTF8 target
// is a warning, and the daemon does stop at the first value that is not
// valid UTF8; text in other encodings is misread unless both connections
// use one client_encoding, and then converted, with a warning when the side
// written cannot represent every character.
func TestCheckEncodings(t *testing.T) {
	const mapping = "  - source: t\n    target: t\n"
	for _, c := range []struct {
		name           string
		src, tgt, dsn  string
		forward, rever string // the findings wanted, as printed
	}{
		{name: "same encoding", forward: "ok   encoding: the source and the target both store text as UTF8: values pass unchanged",
			rever: "ok   encoding: the target and the source both store text as UTF8: values pass unchanged"},
		{name: "both SQL_ASCII", src: "SQL_ASCII", tgt: "SQL_ASCII",
			forward: "WARN encoding: the source stores text as SQL_ASCII, which takes any bytes unchecked, but on the bridge's way to the target (SQL_ASCII) they are taken as UTF8: " +
				"the first value whose bytes are not valid UTF8 stops the daemon at that change, the initial copy included\n" +
				"       fix: correct those values on the source, or let the target store bytes unchecked too: a database created with ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0, and client_encoding=SQL_ASCII in both DSNs",
			rever: "WARN encoding: the target stores text as SQL_ASCII, which takes any bytes unchecked, but on the bridge's way to the source (SQL_ASCII) they are taken as UTF8: " +
				"the first value whose bytes are not valid UTF8 stops the daemon at that change, the initial copy included\n" +
				"       fix: correct those values on the target, or let the source store bytes unchecked too: a database created with ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0, and client_encoding=SQL_ASCII in both DSNs"},
		{name: "both SQL_ASCII with client_encoding=SQL_ASCII", src: "SQL_ASCII", tgt: "SQL_ASCII", dsn: "&client_encoding=SQL_ASCII",
			forward: "ok   encoding: the source and the target both store text as SQL_ASCII, unchecked: values pass unchanged",
			rever:   "ok   encoding: the target and the source both store text as SQL_ASCII, unchecked: values pass unchanged"},
		{name: "SQL_ASCII to UTF8", src: "SQL_ASCII",
			forward: "WARN encoding: the source stores text as SQL_ASCII, which takes any bytes unchecked, but on the bridge's way to the target (UTF8) they are taken as UTF8: " +
				"the first value whose bytes are not valid UTF8 stops the daemon at that change, the initial copy included\n" +
				"       fix: correct those values on the source, or let the target store bytes unchecked too: a database created with ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0, and client_encoding=SQL_ASCII in both DSNs",
			rever: "ok   encoding: the source stores text as SQL_ASCII, unchecked: it receives the target's text as UTF8 bytes"},
		{name: "LATIN1 to UTF8", src: "LATIN1",
			forward: "ok   encoding: text is converted from LATIN1 (the source) to UTF8 (the target), which can represent all of it",
			rever: "WARN encoding: text is converted from UTF8 (the target) to LATIN1 (the source): a value with characters that LATIN1 cannot represent is rejected and stops the daemon at that change, the initial copy included\n" +
				"       fix: keep such characters out of the mapped columns, or create the source's database with ENCODING 'UTF8'"},
		{name: "LATIN1 to UTF8 with client_encoding=LATIN1", src: "LATIN1", dsn: "&client_encoding=LATIN1",
			forward: "ok   encoding: text is converted from LATIN1 (the source) to UTF8 (the target), which can represent all of it",
			rever: "WARN encoding: text is converted from UTF8 (the target) to LATIN1 (the source): a value with characters that LATIN1 cannot represent is rejected and stops the daemon at that change, the initial copy included\n" +
				"       fix: keep such characters out of the mapped columns, or create the source's database with ENCODING 'UTF8'"},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := encodedEnv(t, c.src, c.tgt, c.dsn)
			m := e.Mapping("enc", mapping, nil)
			if got := encodingFinding(t, m, config.Forward).String(); got != c.forward {
				t.Errorf("forward:\n got %s\nwant %s", got, c.forward)
			}
			if got := encodingFinding(t, m, config.Reverse).String(); got != c.rever {
				t.Errorf("reverse:\n got %s\nwant %s", got, c.rever)
			}
			if c.name == "LATIN1 to UTF8" {
				// What the finding says happens: é (one byte in LATIN1)
				// arrives as é (two in UTF8), copied and streamed.
				pgtest.MustExec(t, e.Src, `INSERT INTO t VALUES (1, convert_from('\x636166e9', 'LATIN1'))`)
				d := e.Start(m, config.Forward)
				pgtest.MustExec(t, e.Src, `INSERT INTO t VALUES (2, convert_from('\xe974e9', 'LATIN1'))`)
				bridgetest.Eventually(t, e.Tgt, `SELECT string_agg(s || ' ' || octet_length(s), ', ' ORDER BY id) FROM t`, `("café 5, été 5")`, d)
				return
			}
			if c.name != "SQL_ASCII to UTF8" {
				return
			}
			// What the warning says happens: the first value that is not
			// valid UTF8 (é in LATIN1, a single byte) stops the daemon.
			pgtest.MustExec(t, e.Src, `INSERT INTO t VALUES (1, 'plain'), (2, E'caf\351')`)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			logs := &bridgetest.LogSink{}
			err := pipeline.Run(ctx, pipeline.Options{Mapping: m, Direction: config.Forward, Logger: bridgetest.TextLogger(logs), MaxBackoff: time.Second})
			if err == nil || !strings.Contains(err.Error(), `invalid byte sequence for encoding "UTF8": 0xe9`) {
				t.Fatalf("the daemon ended with %v; want it stopped by the byte that is not UTF8\n%s", err, logs.String())
			}
		})
	}
}
