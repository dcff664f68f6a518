package apply

import (
	"strings"
	"testing"
)

// Every kind of queued statement has the name errors show for it.
func TestItemKindNames(t *testing.T) {
	seen := map[string]itemKind{}
	for k := itemBegin; k <= itemWALEnd; k++ {
		name := k.String()
		if strings.HasPrefix(name, "itemKind(") {
			t.Errorf("kind %d has no name", k)
		}
		if other, ok := seen[name]; ok {
			t.Errorf("kinds %d and %d are both named %q", other, k, name)
		}
		seen[name] = k
	}
}
