package version

import (
	"runtime"
	"strings"
	"testing"
)

func TestStampedVersionWins(t *testing.T) {
	i := read("v9.8.7", "abc123")
	if i.Version != "v9.8.7" || i.Revision != "abc123" || i.GoVersion != runtime.Version() {
		t.Fatalf("read(stamped) = %+v", i)
	}
	if s := i.String(); s != "cdcbridge v9.8.7 (abc123) "+runtime.Version() {
		t.Fatalf("String() = %q", s)
	}
}

func TestUnstampedVersionIsNeverEmpty(t *testing.T) {
	i := read("", "")
	if i.Version == "" || !strings.HasPrefix(i.GoVersion, "go") {
		t.Fatalf("read(unstamped) = %+v", i)
	}
}
