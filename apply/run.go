package apply

import (
	"errors"
	"slices"
	"strings"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/cdcbridge/cdcbridge/catalog"
	"github.com/cdcbridge/cdcbridge/change"
)

// run is a growing statement: rows of one op, table and column set.
type run struct {
	op      change.Op
	table   change.Table
	info    *catalog.Table
	cols    []string // columns written (insert, update)
	keyCols []string // key columns (update, delete; insert when upserting)
	upsert  bool
	// fullRow: one update or delete of a table without a key, keyCols
	// being every column of the old row (see addFullRow).
	fullRow bool
	// inOrder: the table's rows keep the source's order among all rows of
	// the target transaction (see builder.inOrder).
	inOrder bool
	// keyAny: a delete by its one key column = ANY of the keys (anyKey).
	keyAny bool
	sig    string
	// keys holds the row index of each key in the run.
	keys map[string]int
	// untracked: the run holds rows without a key (inserts of no
	// complete key), which holder cannot find.
	untracked bool
	// merged counts the updates merged into the run's rows (see merge).
	merged   int
	params   []pgtype.FlatArray[[]byte] // update/delete: key columns first; nil is NULL
	n        int
	entry    string
	lsn      pglogrepl.LSN
	firstKey string
	// lsns holds the LSN of each row's change, in the order of params.
	lsns []pglogrepl.LSN
}

func (a *Applier) add(o *change.Out) error {
	a.tx.rows++
	for _, v := range o.Vals {
		a.build.bytes += int64(len(v.Data))
	}
	for _, v := range o.Key {
		a.build.bytes += int64(len(v.Data))
	}
	if o.Op == change.Truncate {
		a.build.flushAll()
		if len(o.Truncate) == 0 {
			return nil
		}
		names := make([]string, len(o.Truncate))
		for i, t := range o.Truncate {
			names[i] = t.String()
		}
		// Never CASCADE, whatever the source did: the source's truncate
		// lists every table its cascade reached, and those that are mapped
		// are all here. A cascade on the target could only reach tables
		// outside the mapping, which are not the bridge's to empty; a table
		// there that references one of these makes the truncate fail, as in
		// PostgreSQL's apply worker.
		sql := "TRUNCATE " + strings.Join(names, ", ")
		if o.RestartIdentity {
			sql += " RESTART IDENTITY"
		}
		a.build.queue(sql, item{kind: itemTruncate, trunc: o.Truncate})
		if a.cfg.Observer != nil {
			for _, t := range o.Truncate {
				a.cfg.Observer.Applied(t, change.Truncate, 1)
			}
		}
		return nil
	}
	info := a.cfg.Catalog.Table(o.Table)
	if info == nil {
		return &Error{Entry: o.Entry, Table: o.Table, Op: o.Op, LSN: o.LSN, Err: errors.New("the table is not in the target catalog")}
	}
	if o.FullRow && o.Op != change.Insert {
		return a.addFullRow(o, info)
	}
	cols, vals := o.Cols, o.Vals
	keyCols, key := o.KeyCols, o.Key
	if o.Op == change.Insert {
		keyCols = info.Key
		if len(keyCols) == 0 {
			keyCols = o.KeyCols
		}
		key = make([]change.Value, len(keyCols))
		for i, k := range keyCols {
			v, ok := o.Lookup(k)
			if !ok || v.Kind != change.Text {
				keyCols, key = nil, nil // no complete key: a plain insert
				break
			}
			key[i] = v
		}
	}
	if o.Op == change.Update {
		// Do not SET key columns to the value they already have: identity
		// columns that are GENERATED ALWAYS refuse any update but DEFAULT.
		cols, vals = nil, nil
		for i, c := range o.Cols {
			if j := indexOf(keyCols, c); j >= 0 && o.Vals[i].Equal(key[j]) {
				continue
			}
			cols = append(cols, c)
			vals = append(vals, o.Vals[i])
		}
		if len(cols) == 0 {
			return nil // nothing changes
		}
	}
	if len(keyCols) == 0 && o.Op != change.Insert {
		return &Error{Entry: o.Entry, Table: o.Table, Op: o.Op, LSN: o.LSN, Err: errors.New("no key to find the target row by: give the target table a primary key or a unique index on NOT NULL columns, set key: in the mapping, or set REPLICA IDENTITY FULL on the table read")}
	}
	k := keyString(key)
	moves := o.Op == change.Update && changesKey(keyCols, cols)
	b := &a.build
	inOrder := b.inOrder(o.Table, info, a.cfg.Ordered)
	// Where the change goes: into the open run that holds its key (merged
	// with the image there, or, when it cannot be, after everything open
	// is queued), else into the open run of its shape.
	var r *run
	if b.untracked(o.Table, o.Op, keyCols) {
		// Rows of this table that no key tracks: keep the source's order.
		b.flushAll()
	}
	if k != "" {
		if h, row := b.holder(o.Table, keyCols, k); h != nil {
			if !inOrder && !moves && h.merge(row, o.Op, cols, vals, o.LSN) {
				b.reordered[o.Table] = true
				return nil
			}
			b.flushAll()
		}
	}
	switch {
	case moves:
		// A key change goes alone, in order: the keys it frees and takes
		// are not tracked across runs.
		b.flushAll()
	case inOrder:
		// Rows of a table whose order may be observed join only the last
		// run, as in the source's order.
		if last := b.last(); last != nil && !last.shaped(o.Op, o.Table, cols, keyCols) {
			b.flushAll()
		}
		r = b.last()
	default:
		if b.orderedOpen() {
			b.flushAll()
		}
		r = b.find(o.Op, o.Table, cols, keyCols)
		if r != nil && r != b.last() {
			b.reordered[o.Table] = true
		}
	}
	if r == nil {
		upsert := o.Op == change.Insert && len(keyCols) > 0 && (a.cfg.Upserts == nil || a.cfg.Upserts.Has(o.Table))
		r = &run{op: o.Op, table: o.Table, info: info, cols: cols, keyCols: keyCols, upsert: upsert, inOrder: inOrder,
			keyAny: o.Op == change.Delete && keyAny(a.cfg.Catalog, info, keyCols),
			sig:    sigOf(o.Op, o.Table, cols, keyCols), keys: map[string]int{}, entry: o.Entry, lsn: o.LSN, firstKey: describeKey(keyCols, key)}
		if r.firstKey == "" {
			r.firstKey = describeKey(cols, vals)
		}
		switch o.Op {
		case change.Insert:
			r.params = make([]pgtype.FlatArray[[]byte], len(cols))
		case change.Update:
			r.params = make([]pgtype.FlatArray[[]byte], len(keyCols)+len(cols))
		case change.Delete:
			r.params = make([]pgtype.FlatArray[[]byte], len(keyCols))
		}
		b.open = append(b.open, r)
	}
	if k != "" {
		r.keys[k] = r.n
	} else {
		r.untracked = true
	}
	p := 0
	if o.Op != change.Insert {
		for _, v := range key {
			r.params[p] = append(r.params[p], text(v))
			p++
		}
	}
	if o.Op != change.Delete {
		for _, v := range vals {
			r.params[p] = append(r.params[p], text(v))
			p++
		}
	}
	r.lsns = append(r.lsns, o.LSN)
	r.n++
	b.queued++
	if moves {
		b.flushAll()
	}
	return nil
}

// addFullRow queues an update or delete of a table without a key as a
// statement of its own that changes one row whose columns all match the
// old row: runs over unnest() cannot do that, since a join reaches every
// copy of a duplicated row, and each change must reach exactly one.
func (a *Applier) addFullRow(o *change.Out, info *catalog.Table) error {
	var cols []string
	var vals []change.Value
	if o.Op == change.Update {
		// Columns that keep their value are not SET: GENERATED ALWAYS
		// identity columns refuse any update but DEFAULT.
		for i, c := range o.Cols {
			if j := indexOf(o.KeyCols, c); j >= 0 && o.Vals[i].Equal(o.Key[j]) {
				continue
			}
			cols = append(cols, c)
			vals = append(vals, o.Vals[i])
		}
		if len(cols) == 0 {
			return nil // nothing changes
		}
	}
	a.build.flushAll()
	r := &run{op: o.Op, table: o.Table, info: info, cols: cols, keyCols: o.KeyCols, fullRow: true, n: 1,
		sig: "\x00full" + sigOf(o.Op, o.Table, cols, o.KeyCols), entry: o.Entry, lsn: o.LSN, firstKey: describeKey(o.KeyCols, o.Key)}
	sql := a.build.sqlCache[r.sig]
	if sql == "" {
		sql = buildFullRowSQL(r, a.cfg.Catalog)
		a.build.sqlCache[r.sig] = sql
	}
	args := make([]any, 0, len(vals)+len(o.Key))
	for _, v := range vals {
		args = append(args, text(v))
	}
	for _, v := range o.Key {
		args = append(args, text(v))
	}
	a.build.queue(sql, item{kind: itemRows, run: r}, args...)
	a.build.queued++
	return nil
}

// merge merges a change into row of the run, which holds the same key:
// an update whose columns the row has (an insert or an update of the same
// row earlier in the target transaction) overwrites them, so the row
// carries one image, as the two changes in order would leave it. It
// reports false, changing nothing, for any other change.
func (r *run) merge(row int, op change.Op, cols []string, vals []change.Value, lsn pglogrepl.LSN) bool {
	if op != change.Update || r.fullRow || (r.op != change.Insert && r.op != change.Update) {
		return false
	}
	base := 0
	if r.op == change.Update {
		base = len(r.keyCols)
	}
	at := make([]int, len(cols))
	for i, c := range cols {
		j := indexOf(r.cols, c)
		if j < 0 {
			return false // a column the row does not set: not one image
		}
		at[i] = base + j
	}
	for i, p := range at {
		r.params[p][row] = text(vals[i])
	}
	r.lsns[row] = lsn
	r.merged++
	return true
}

// changesKey reports whether an update writes a key column (cols holds
// only the columns whose value changes, see add).
func changesKey(keyCols, cols []string) bool {
	for _, k := range keyCols {
		if indexOf(cols, k) >= 0 {
			return true
		}
	}
	return false
}

func indexOf(s []string, x string) int {
	for i, y := range s {
		if y == x {
			return i
		}
	}
	return -1
}

func text(v change.Value) []byte {
	if v.Kind != change.Text {
		return nil // NULL; an absent value never reaches a statement
	}
	if v.Data == nil {
		return []byte{} // the empty string, not NULL
	}
	// Values are never written to once made, so the bytes travel as they
	// are, without a copy.
	return v.Data
}

func keyString(key []change.Value) string {
	if len(key) == 0 {
		return ""
	}
	var b strings.Builder
	for _, v := range key {
		b.WriteByte(byte('0' + v.Kind))
		b.Write(v.Data)
		b.WriteByte(0)
	}
	return b.String()
}

func describeKey(cols []string, key []change.Value) string {
	if len(cols) > 4 {
		cols = cols[:4]
	}
	parts := make([]string, len(cols))
	for i, c := range cols {
		if i < len(key) {
			parts[i] = c + "=" + key[i].String()
		}
	}
	return strings.Join(parts, ", ")
}

func sigOf(op change.Op, t change.Table, cols, keyCols []string) string {
	var b strings.Builder
	b.WriteByte(byte(op))
	b.WriteString(t.Schema)
	b.WriteByte(0)
	b.WriteString(t.Name)
	for _, c := range cols {
		b.WriteByte(1)
		b.WriteString(c)
	}
	for _, c := range keyCols {
		b.WriteByte(2)
		b.WriteString(c)
	}
	return b.String()
}

// flushAll queues every open run, each as one statement, in the order
// the runs were opened.
func (b *builder) flushAll() {
	for _, r := range b.open {
		b.flushRun(r)
	}
	clear(b.open)
	b.open = b.open[:0]
}

// shaped reports whether a change of op to table t writing cols by keyCols
// belongs in run r.
func (r *run) shaped(op change.Op, t change.Table, cols, keyCols []string) bool {
	return r.op == op && r.table == t && !r.fullRow && slices.Equal(r.cols, cols) && slices.Equal(r.keyCols, keyCols)
}

// flushRun queues a run as one statement.
func (b *builder) flushRun(r *run) {
	ck := r.sig
	if r.upsert {
		ck += "\x00upsert"
	}
	if r.copies() {
		ck += "\x00copy"
		sql := b.sqlCache[ck]
		if sql == "" {
			sql = copySQL(r)
			b.sqlCache[ck] = sql
		}
		b.queue(sql, item{kind: itemCopy, run: r, reordered: b.reordered[r.table]})
		return
	}
	sql := b.sqlCache[ck]
	if sql == "" {
		sql = buildSQL(r)
		b.sqlCache[ck] = sql
	}
	args := make([]any, len(r.params))
	for i := range r.params {
		args[i] = r.params[i]
	}
	b.queue(sql, item{kind: itemRows, run: r, reordered: b.reordered[r.table]}, args...)
}
