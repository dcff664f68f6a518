package config

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestPublicationKey: a side may name the publication that the direction
// reading it uses, made beforehand by the owner of its tables; without it
// the direction uses the bridge's own. Bad names are errors at their line.
func TestPublicationKey(t *testing.T) {
	env := map[string]string{"GREEN_DSN": "host=green dbname=g", "BLUE_DSN": "host=blue dbname=b"}
	const tables = "tables: [{source: a, target: b}]\n"
	src := "name: shop\nsource:\n  dsn: ${GREEN_DSN}\n  publication: green_pub\ntarget:\n  dsn: ${BLUE_DSN}\n" + tables
	m, err := parse(filepath.Join(t.TempDir(), "mapping.yaml"), []byte(src), lookupIn(env))
	if err != nil {
		t.Fatalf("%v\n%s", err, src)
	}
	fwd, rev := m.View(Forward), m.View(Reverse)
	if fwd.Publication != "green_pub" || !fwd.PublicationGiven || m.PublicationName(Forward) != "green_pub" {
		t.Errorf("forward reads the source through %q (given %v), want green_pub as the mapping names it", fwd.Publication, fwd.PublicationGiven)
	}
	if rev.Publication != "cdcbridge_shop_reverse" || rev.PublicationGiven || m.PublicationName(Reverse) != "cdcbridge_shop_reverse" {
		t.Errorf("reverse reads the target through %q (given %v), want the bridge's own cdcbridge_shop_reverse", rev.Publication, rev.PublicationGiven)
	}
	if fwd.Slot != "cdcbridge_shop_forward" {
		t.Errorf("a named publication renamed the slot: %s", fwd.Slot)
	}

	for _, tc := range []struct{ value, want string }{
		{`""`, `5:16: target.publication: empty; name the publication that the owner of the target's tables made`},
		{"Blue_Pub", `5:16: target.publication: "Blue_Pub" is not a publication name the bridge can use; use 1 to 63 lower-case letters`},
		{`"pub'; DROP TABLE x; --"`, `target.publication: "pub'; DROP TABLE x; --" is not a publication name`},
		{strings.Repeat("p", 64), "is not a publication name"},
		{"[a, b]", "5:16: target.publication: expected a single value, got a list"},
		{"${NO_SUCH_PUB}", "5:16: target.publication: environment variable NO_SUCH_PUB is not set"},
	} {
		src := "name: shop\nsource:\n  dsn: ${GREEN_DSN}\ntarget:\n  publication: " + tc.value + "\n  dsn: ${BLUE_DSN}\n" + tables
		_, err := parse(filepath.Join(t.TempDir(), "mapping.yaml"), []byte(src), lookupIn(env))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("publication: %s: got %v, want an error with %q", tc.value, err, tc.want)
		}
	}
	// An offline parse (no database needed) still checks the name.
	src = "name: shop\nsource:\n  dsn: ${GREEN_DSN}\n  publication: Bad\ntarget:\n  dsn: ${BLUE_DSN}\n" + tables
	if _, err := parseWith(filepath.Join(t.TempDir(), "mapping.yaml"), []byte(src), lookupIn(env), true); err == nil || !strings.Contains(err.Error(), "source.publication") {
		t.Errorf("offline parse of a bad publication name: %v", err)
	}
}
