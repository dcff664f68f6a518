package apply

import (
	"sync"

	"github.com/cdcbridge/cdcbridge/change"
)

// Upserts is the set of tables whose inserts are upserts. It outlives the
// Applier (one per pipeline, kept across restarts). Safe for concurrent use.
type Upserts struct {
	mu     sync.Mutex
	tables map[change.Table]bool
}

// Has reports whether inserts into t are upserts.
func (u *Upserts) Has(t change.Table) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.tables[t]
}

// Add makes inserts into t upserts from now on.
func (u *Upserts) Add(t change.Table) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.tables == nil {
		u.tables = map[change.Table]bool{}
	}
	u.tables[t] = true
}
