package apply

import (
	"sync"

	"github.com/cdcbridge/cdcbridge/change"
)

// TableSet is a set of tables that a Conflict taught something about, such
// as the tables whose inserts are upserts (Config.Upserts). It outlives the
// Applier: the caller makes one per pipeline and hands it to each Applier
// it runs there, one after the other, so that what a Conflict taught holds
// after the restart from the checkpoint.
//
// An Applier adds to it on the goroutine of its Run only, when it takes the
// Conflict of a failed batch and before Run returns it; it reads it on the
// same goroutine, while building runs. Safe for concurrent use all the same.
type TableSet struct {
	mu     sync.Mutex
	tables map[change.Table]bool
}

// Has reports whether t is in the set.
func (u *TableSet) Has(t change.Table) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.tables[t]
}

// Add puts t in the set.
func (u *TableSet) Add(t change.Table) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.tables == nil {
		u.tables = map[change.Table]bool{}
	}
	u.tables[t] = true
}
