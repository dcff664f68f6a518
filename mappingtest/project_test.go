package mappingtest

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cdcbridge/cdcbridge/config"
	"github.com/cdcbridge/cdcbridge/fixture"
)

var update = flag.Bool("update", false, "rewrite the golden files of the project's fixtures in testdata/fixtures")

// fixturesDir holds the project's recorded fixtures and their mapping.
var fixturesDir = filepath.Join("..", "testdata", "fixtures")

// TestProjectFixtures runs the fixtures' identity mapping over every project
// fixture, as `cdcbridge test -c testdata/fixtures/mapping.yaml FIXTURE`
// does, and compares with the golden file beside the fixture, so that a
// change in what the decoder and the transforms make of recorded WAL shows
// as a diff of readable lines. With -update it rewrites the golden files
// (scripts/record-fixtures.sh does, after recording).
func TestProjectFixtures(t *testing.T) {
	m, err := config.LoadOffline(filepath.Join(fixturesDir, "mapping.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join(fixturesDir, "*.jsonl*"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures in %s: %v", fixturesDir, err)
	}
	for _, f := range files {
		name := strings.TrimSuffix(strings.TrimSuffix(filepath.Base(f), ".gz"), ".jsonl")
		t.Run(name, func(t *testing.T) {
			switch name {
			case "big_txn":
				checkBigTxn(t, m, f)
			case "relation_change":
				checkRelationChange(t, m, f)
			default:
				res, err := Run(f, Options{Mapping: m, Direction: config.Forward, Update: *update})
				if err != nil {
					t.Fatal(err)
				}
				checkResult(t, res)
			}
		})
	}
}

func checkResult(t *testing.T, res Result) {
	t.Helper()
	if res.Changes == 0 {
		t.Errorf("%s: no change of a mapped table", res.Fixture)
	}
	if !res.OK() {
		var b strings.Builder
		Report(&b, []Result{res})
		t.Errorf("%s", b.String())
	}
}

// checkBigTxn checks the 100,000 inserts of big_txn line by line instead of
// against a golden file, which would be 6 MB of lines that differ only in
// their position and id.
func checkBigTxn(t *testing.T, m *config.Mapping, fixture string) {
	abs, err := filepath.Abs(fixture)
	if err != nil {
		t.Fatal(err)
	}
	local := filepath.Join(t.TempDir(), filepath.Base(fixture))
	if err := os.Symlink(abs, local); err != nil {
		t.Fatal(err)
	}
	res, err := Run(local, Options{Mapping: m, Direction: config.Forward, Update: true})
	if err != nil {
		t.Fatal(err)
	}
	checkResult(t, res)
	out, err := os.ReadFile(res.Golden)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	if len(lines) != 100000 || res.Changes != 100000 {
		t.Fatalf("%d lines for %d changes, want 100000", len(lines), res.Changes)
	}
	prev := lsnOf(lines[0]) - 1
	for i, l := range lines {
		want := fmt.Sprintf(`%s insert "public"."big_txn" row(id='%d'::integer)`, lsnOf(l), i+1)
		if l != want || lsnOf(l) <= prev {
			t.Fatalf("line %d: %s\nwant %s, after %s", i+1, l, want, prev)
		}
		prev = lsnOf(l)
	}
}

// checkRelationChange: the source gains a column during the recording that
// the target (and the catalog of it in the header) lacks, so the test names
// the column and the fix, as the bridge would, instead of writing a golden
// file.
func checkRelationChange(t *testing.T, m *config.Mapping, fixture string) {
	_, err := Run(fixture, Options{Mapping: m, Direction: config.Forward})
	const want = `column b: has no column of that name in "public"."relation_change": add it there, or map the entry with a transform`
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("got %v, want an error containing %s", err, want)
	}
}

// TestFullCatalogSameOutput: a fixture whose header holds every type of the
// database (as fixtures were recorded before headers were trimmed) gives
// exactly the output it gives with its header cut down to the types the
// mapped tables use: trimming loses nothing a run reads.
func TestFullCatalogSameOutput(t *testing.T) {
	m, err := config.LoadOffline(filepath.Join(fixturesDir, "mapping.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	full, trimmed := filepath.Join(dir, "full.jsonl"), filepath.Join(dir, "trimmed.jsonl")
	rewrite(t, filepath.Join(fixturesDir, "legacy", "values_full_catalog.jsonl.gz"), full, false)
	rewrite(t, full, trimmed, true)
	var outs []string
	for _, f := range []string{full, trimmed} {
		res, err := Run(f, Options{Mapping: m, Direction: config.Forward, Update: true})
		if err != nil {
			t.Fatal(err)
		}
		checkResult(t, res)
		b, err := os.ReadFile(res.Golden)
		if err != nil {
			t.Fatal(err)
		}
		outs = append(outs, string(b))
	}
	if d := diff(outs[0], outs[1]); d != "" || outs[0] == "" {
		t.Fatalf("the output with the whole catalog differs from the output with the trimmed one (- whole, + trimmed):\n%s", d)
	}
}

// rewrite copies the fixture at from to to (plain), trimming the header's
// catalogs if trim is set.
func rewrite(t *testing.T, from, to string, trim bool) {
	t.Helper()
	r, err := fixture.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	h := r.Header()
	if trim {
		h.Catalog = h.Catalog.Trimmed()
	}
	f, err := os.Create(to)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w, err := fixture.NewWriter(f, h)
	if err != nil {
		t.Fatal(err)
	}
	for {
		msg, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if msg.Keepalive {
			err = w.WriteKeepalive(msg.LSN)
		} else {
			err = w.WriteMessage(msg.LSN, msg.Time, msg.Data)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}
