package apply

import (
	"sync"

	"github.com/cdcbridge/cdcbridge/change"
)

// Upserts is the set of tables whose inserts are upserts. It outlives the
// Applier: the caller makes one per pipeline and hands it to each Applier
// it runs there, one after the other, so that what a Conflict taught holds
// after the restart from the checkpoint.
//
// An Applier adds to it on the goroutine of its Run only, when it takes the
// Conflict of a failed batch and before Run returns it; it reads it on the
// same goroutine, while building runs. Safe for concurrent use all the same.
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
