package bridgetest

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cdcbridge/cdcbridge/internal/pgtest"
)

// Workload is a client writing in the background, one transaction per
// call of its step, until Stop. Tests wait on the transactions it has
// committed (WaitTxns), never on time.
type Workload struct {
	stop   atomic.Bool
	txns   atomic.Int64
	wg     sync.WaitGroup
	mu     sync.Mutex
	err    error
	cancel context.CancelFunc
}

// StartWorkload runs step(ctx, i) for i = 0, 1, ... in a goroutine until
// Stop, or until step fails; each call that returns nil counts as one
// committed transaction. It is stopped when the test ends.
func StartWorkload(t testing.TB, step func(ctx context.Context, i int64) error) *Workload {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w := &Workload{cancel: cancel}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		for i := int64(0); !w.stop.Load(); i++ {
			if err := step(ctx, i); err != nil {
				if ctx.Err() == nil {
					w.mu.Lock()
					w.err = err
					w.mu.Unlock()
				}
				return
			}
			w.txns.Add(1)
		}
	}()
	t.Cleanup(func() { w.halt() })
	return w
}

// Txns returns how many transactions it has committed.
func (w *Workload) Txns() int64 { return w.txns.Load() }

func (w *Workload) failed() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// WaitTxns waits until it has committed n more transactions, failing the
// test if it fails or takes more than 30s.
func (w *Workload) WaitTxns(t testing.TB, n int64) {
	t.Helper()
	target := w.txns.Load() + n
	if !pgtest.Until(30*time.Second, func() bool {
		if err := w.failed(); err != nil {
			t.Fatalf("the workload failed: %v", err)
		}
		return w.txns.Load() >= target
	}) {
		t.Fatalf("the workload committed %d of %d transactions in 30s", w.txns.Load(), target)
	}
}

func (w *Workload) halt() {
	w.stop.Store(true)
	w.wg.Wait()
	w.cancel()
}

// Stop stops it after the transaction under way, and fails the test if it
// failed.
func (w *Workload) Stop(t testing.TB) {
	t.Helper()
	w.halt()
	if err := w.failed(); err != nil {
		t.Fatalf("the workload failed: %v", err)
	}
}
