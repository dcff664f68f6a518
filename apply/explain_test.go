package apply

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/cdcbridge/cdcbridge/change"
)

func checkedRow(id int, qty change.Value, note string) change.Out {
	return ins(checked, []string{"id", "qty", "note"}, v(fmt.Sprint(id)), qty, v(note))
}

func checkedRows(from, to int, qty func(id int) change.Value) []change.Out {
	var outs []change.Out
	for id := from; id <= to; id++ {
		outs = append(outs, checkedRow(id, qty(id), fmt.Sprint("n", id)))
	}
	return outs
}

func qtyOne(int) change.Value { return v("1") }

// rowLSN is the LSN that sendTxn gives the i-th change of a transaction.
func rowLSN(final pglogrepl.LSN, i int) pglogrepl.LSN {
	return final - 0x1000 + pglogrepl.LSN(i)*0x10
}

// sendTxn sends one source transaction of outs, each change at its own
// LSN (rowLSN), from a goroutine: the applier may stop before reading it
// all. It returns the transaction's end LSN.
func (h *harness) sendTxn(final pglogrepl.LSN, outs ...change.Out) pglogrepl.LSN {
	txn := &change.Txn{Xid: uint32(final), FinalLSN: final, CommitTime: time.Now(), EndLSN: final + 8}
	evs := []change.Event{{Kind: change.EvBegin, Txn: txn}}
	for i, o := range outs {
		o.LSN = rowLSN(final, i)
		evs = append(evs, change.Event{Kind: change.EvChange, Txn: txn, Outs: []change.Out{o}, LSN: o.LSN})
	}
	evs = append(evs, change.Event{Kind: change.EvCommit, Txn: txn})
	stop := make(chan struct{})
	h.t.Cleanup(func() { close(stop) })
	go func() {
		for _, ev := range evs {
			select {
			case h.in <- ev:
			case <-stop:
				return
			}
		}
	}()
	return txn.EndLSN
}

// A statement of many rows that the server rejects names the row it
// rejected, by its key and its change's LSN, not the statement's first
// row; finding it commits nothing. When no row fails alone (what it meets
// was written by an earlier batch of the transaction), the error says the
// statement failed as a whole.
func TestApplyErrorNamesTheRowAtFault(t *testing.T) {
	const final = 0x10000
	bad := func(bad change.Value) func(int) change.Value {
		return func(id int) change.Value {
			if id == 37 {
				return bad
			}
			return v("1")
		}
	}
	upd := func(id int, qty string) change.Out {
		return change.Out{Op: change.Update, Table: checked, Cols: []string{"qty"}, Vals: []change.Value{v(qty)}, KeyCols: []string{"id"}, Key: []change.Value{v(fmt.Sprint(id))}}
	}
	updates := func() []change.Out {
		var outs []change.Out
		for id := 1; id <= 50; id++ {
			qty := "2"
			if id == 37 {
				qty = "-1"
			}
			outs = append(outs, upd(id, qty))
		}
		return outs
	}
	deletes := func() []change.Out {
		var outs []change.Out
		for id := 1; id <= 50; id++ {
			outs = append(outs, change.Out{Op: change.Delete, Table: checked, KeyCols: []string{"id"}, Key: []change.Value{v(fmt.Sprint(id))}})
		}
		return outs
	}
	// Plain inserts (not upserts) of 32 rows or more go by COPY.
	plain := []func(*Config){func(c *Config) { c.Upserts = &TableSet{} }}
	keep := checkedRows(1, 50, qtyOne)
	keep[36] = checkedRow(37, v("1"), "keep")
	for _, c := range []struct {
		name    string
		opts    []func(*Config)
		setup   []change.Out // committed first
		outs    []change.Out // the transaction that fails
		wantKey string
		wantAt  int    // index in outs of the change named
		rows    int    // Error.Rows wanted
		msg     string // in the error
		code    string // SQLSTATE
	}{
		{name: "insert, CHECK", outs: checkedRows(1, 50, bad(v("0"))),
			wantKey: "id=37", wantAt: 36, msg: "checked_qty_check", code: "23514"},
		{name: "insert, NOT NULL", outs: checkedRows(1, 50, bad(null)),
			wantKey: "id=37", wantAt: 36, msg: "not-null", code: "23502"},
		{name: "insert, integer out of range", outs: checkedRows(1, 50, bad(v("99999999999"))),
			wantKey: "id=37", wantAt: 36, msg: "out of range", code: "22003"},
		{name: "update, CHECK", setup: checkedRows(1, 50, qtyOne), outs: updates(),
			wantKey: "id=37", wantAt: 36, msg: "checked_qty_check", code: "23514"},
		{name: "update of rows the same transaction inserted", outs: append(checkedRows(1, 50, qtyOne), updates()...),
			wantKey: "id=37", wantAt: 50 + 36, msg: "checked_qty_check", code: "23514"},
		{name: "delete, a trigger that raises", setup: keep, outs: deletes(),
			wantKey: "id=37", wantAt: 36, msg: "row 37 is kept", code: "P0001"},
		{name: "insert by COPY, CHECK", opts: plain, outs: checkedRows(1, 50, bad(v("0"))),
			wantKey: "id=37", wantAt: 36, msg: "checked_qty_check", code: "23514"},
		{name: "insert by COPY, NOT NULL", opts: plain, outs: checkedRows(1, 50, bad(null)),
			wantKey: "id=37", wantAt: 36, msg: "not-null", code: "23502"},
		{name: "insert by COPY, integer out of range", opts: plain, outs: checkedRows(1, 50, bad(v("99999999999"))),
			wantKey: "id=37", wantAt: 36, msg: "out of range", code: "22003"},
		{name: "update of rows the same transaction inserted by COPY", opts: plain, outs: append(checkedRows(1, 50, qtyOne), updates()...),
			wantKey: "id=37", wantAt: 50 + 36, msg: "checked_qty_check", code: "23514"},
		{name: "plain insert meeting a row on the target", opts: []func(*Config){func(c *Config) { c.Upserts = &TableSet{} }},
			setup: []change.Out{checkedRow(37, v("5"), "there")}, outs: checkedRows(1, 50, qtyOne),
			wantKey: "id=37", wantAt: 36, msg: "checked_pkey", code: "23505"},
		{name: "the row met came in an earlier batch", opts: []func(*Config){func(c *Config) { c.MaxRows = 50 }},
			outs: func() []change.Out {
				outs := checkedRows(1, 100, qtyOne)
				outs[86] = checkedRow(87, v("1"), "n1") // row 37 of the second statement
				return outs
			}(),
			wantKey: "id=51", wantAt: 50, rows: 50, msg: "checked_note_key", code: "23505"},
	} {
		t.Run(c.name, func(t *testing.T) {
			opts := append([]func(*Config){func(c *Config) { c.MaxRows = 1000 }}, c.opts...)
			h := newHarness(t, 0x1000, opts...)
			start := pglogrepl.LSN(0x1000)
			if c.setup != nil {
				start = h.txn(0x2000, c.setup...)
				h.waitFlushed(start)
			}
			before, progress := h.rows(`SELECT id, qty, note FROM checked`), h.originProgress()
			h.sendTxn(final, c.outs...)
			var err error
			select {
			case err = <-h.done:
			case <-time.After(30 * time.Second):
				t.Fatal("the applier did not stop")
			}
			var key string
			var lsn pglogrepl.LSN
			var ae *Error
			var ce *Conflict
			switch {
			case errors.As(err, &ce):
				key, lsn = ce.Key, ce.LSN
				// Once Run has returned it, the replay can count on upserts.
				if !h.a.cfg.Upserts.Has(ce.Table) {
					t.Errorf("Run returned a conflict on %s, but its inserts are not upserts", ce.Table)
				}
			case errors.As(err, &ae):
				key, lsn = ae.Key, ae.LSN
				if ae.Rows != c.rows {
					t.Errorf("Rows = %d, want %d", ae.Rows, c.rows)
				}
			default:
				t.Fatalf("error = %v; want an *Error or a *Conflict", err)
			}
			if key != c.wantKey || lsn != rowLSN(final, c.wantAt) {
				t.Errorf("error names key %q at %s, want %q at %s: %v", key, lsn, c.wantKey, rowLSN(final, c.wantAt), err)
			}
			if msg := err.Error(); !strings.Contains(msg, c.msg) || !strings.Contains(msg, c.code) {
				t.Errorf("error = %v; want it to say %q (%s)", err, c.msg, c.code)
			}
			if strings.Contains(err.Error(), "failed as a whole") != (c.rows > 1) {
				t.Errorf("error = %v; it says it failed as a whole only when no row was singled out", err)
			}
			// Nothing of the failed transaction, or of the search for its
			// row, is committed, and the positions stay where they were.
			if got := h.rows(`SELECT id, qty, note FROM checked`); got != before {
				t.Errorf("rows changed:\n got %s\nwant %s", got, before)
			}
			if h.a.Flushed() != start || h.checkpointLSN() != start {
				t.Errorf("flushed %s checkpoint %s, want both %s", h.a.Flushed(), h.checkpointLSN(), start)
			}
			if got := h.originProgress(); got != progress {
				t.Errorf("origin progress %s, want %s", got, progress)
			}
		})
	}
}

// originProgress is the replication origin's progress, which every
// database of the cluster shares.
func (h *harness) originProgress() string {
	h.t.Helper()
	var p string
	if err := h.q.QueryRow(context.Background(), `SELECT coalesce(pg_replication_origin_progress('cdcbridge_t_forward', true)::text, '')`).Scan(&p); err != nil {
		h.t.Fatal(err)
	}
	return p
}

func TestRowKey(t *testing.T) {
	params := func(cols ...[]string) []pgtype.FlatArray[[]byte] {
		out := make([]pgtype.FlatArray[[]byte], len(cols))
		for i, c := range cols {
			for _, s := range c {
				if s == "NULL" {
					out[i] = append(out[i], nil)
				} else {
					out[i] = append(out[i], []byte(s))
				}
			}
		}
		return out
	}
	for _, c := range []struct {
		name string
		r    *run
		want string
	}{
		{"insert by its key", &run{op: change.Insert, cols: []string{"b", "a"}, keyCols: []string{"a"}, params: params([]string{"x", "y"}, []string{"1", "2"})}, "a=2"},
		{"insert without a key", &run{op: change.Insert, cols: []string{"a", "b", "c", "d", "e"}, params: params([]string{"1", "2"}, []string{"NULL", "q"}, []string{"", ""}, []string{"", ""}, []string{"", ""})}, "a=2, b=q, c=, d="},
		{"update", &run{op: change.Update, cols: []string{"v"}, keyCols: []string{"a", "b"}, params: params([]string{"1", "2"}, []string{"x", "NULL"}, []string{"v", "w"})}, "a=2, b=NULL"},
		{"delete", &run{op: change.Delete, keyCols: []string{"a"}, params: params([]string{"1", "2"})}, "a=2"},
	} {
		if got := c.r.rowKey(1); got != c.want {
			t.Errorf("%s: rowKey(1) = %q, want %q", c.name, got, c.want)
		}
	}
}
