package transform

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/dop251/goja"

	"github.com/cdcbridge/cdcbridge/change"
)

// rowGivens holds the source values a script was handed, by column.
type rowGivens struct {
	ri *relInfo
	g  []given // Absent where the row had no value or it was not handed over
}

func (rg *rowGivens) get(name string) *given {
	if rg == nil {
		return nil
	}
	i, ok := rg.ri.byName[name]
	if !ok || rg.g[i].val.Kind == change.Absent {
		return nil
	}
	return &rg.g[i]
}

// pending is one write a script asked for, before its key is settled.
type pending struct {
	op     change.Op
	t      *target
	vals   []change.Value // by target column; Absent is not written
	oldKey []change.Value // from an explicit old row
	// oldRow is an explicit old row by target column, for a target
	// without a key.
	oldRow []change.Value
}

// script maps a change through the entry's function.
func (m *Mapper) script(e *entry, ri *relInfo, ch *change.Change) ([]change.Out, error) {
	src, keyOnly := ch.New, false
	if ch.Op == change.Delete {
		src, keyOnly = ch.Old, ch.OldIsKey
	}
	if len(src) != len(ri.rel.Columns) {
		return nil, &mapErr{msg: fmt.Sprintf("the %s row image has %d values for %d columns", ch.Op, len(src), len(ri.rel.Columns))}
	}
	if ch.Old != nil && len(ch.Old) != len(ri.rel.Columns) {
		return nil, &mapErr{msg: fmt.Sprintf("the old row image has %d values for %d columns", len(ch.Old), len(ri.rel.Columns))}
	}
	m.cur, m.ch = e, ch
	defer func() { m.cur, m.ch = nil, nil }()
	var outs []change.Out
	err := m.watch.run(func() error {
		var err error
		outs, err = m.callScript(e, ri, ch, src, keyOnly)
		return err
	})
	if err != nil {
		var me *mapErr
		if errors.As(err, &me) {
			return nil, me
		}
		// A throw met while Go read the returned value (a getter) is
		// described here. That may run the script's code again, so it
		// has a time limit too.
		if rerr := m.watch.run(func() error { me = m.jsErr(err); return nil }); rerr != nil || me == nil {
			me = &mapErr{msg: err.Error(), err: err}
		}
		return nil, me
	}
	return outs, nil
}

func (m *Mapper) jsErr(err error) *mapErr {
	d := describeJSError(err, m.timeout)
	return &mapErr{msg: d.msg, stack: d.stack, err: err}
}

func (m *Mapper) callScript(e *entry, ri *relInfo, ch *change.Change, src change.Row, keyOnly bool) ([]change.Out, error) {
	row, g, err := m.buildRow(ri, src, keyOnly)
	if err != nil {
		return nil, err
	}
	var old goja.Value = goja.Null()
	var og *rowGivens
	if ch.Old != nil {
		if ch.Op == change.Delete {
			old, og = row, g
		} else if old, og, err = m.buildRow(ri, ch.Old, ch.OldIsKey); err != nil {
			return nil, err
		}
	}
	res, err := e.fn(goja.Undefined(), row, m.changeObject(ch, ch.Op, old))
	if err != nil {
		return nil, m.jsErr(err)
	}
	pend, err := m.collect(e, ch.Op, res, g, og, false)
	if err != nil {
		return nil, err
	}
	var oldKeys map[*target][]change.Value
	if ch.Op == change.Update && ch.Old != nil && needsOldKey(pend) {
		if oldKeys, err = m.oldKeys(e, ri, ch); err != nil {
			var me *mapErr
			if errors.As(err, &me) {
				me.msg += " (in the call with the old row image and op \"delete\", made to find the target key before the update)"
			}
			return nil, err
		}
	}
	return m.outs(e, ch, pend, oldKeys)
}

func needsOldKey(pend []pending) bool {
	for _, p := range pend {
		if p.op == change.Update && p.oldKey == nil && p.oldRow == nil {
			return true
		}
	}
	return false
}

// oldKeys transforms the old row image as if it were deleted, which yields
// the target keys the update's rows had before it: when they differ from
// the new ones, the update changes the key. For a target without a key the
// value is the whole old row, by target column.
func (m *Mapper) oldKeys(e *entry, ri *relInfo, ch *change.Change) (map[*target][]change.Value, error) {
	row, g, err := m.buildRow(ri, ch.Old, ch.OldIsKey)
	if err != nil {
		return nil, err
	}
	res, err := e.fn(goja.Undefined(), row, m.changeObject(ch, change.Delete, row))
	if err != nil {
		return nil, m.jsErr(err)
	}
	pend, err := m.collect(e, change.Delete, res, g, nil, true)
	if err != nil {
		return nil, err
	}
	keys := map[*target][]change.Value{}
	for _, p := range pend {
		if _, ok := keys[p.t]; ok {
			continue
		}
		if len(p.t.key) == 0 {
			keys[p.t] = p.vals
			continue
		}
		if k, err := p.t.keyFrom(p.vals, change.Update); err == nil {
			keys[p.t] = k
		}
	}
	return keys, nil
}

// buildRow makes the row object handed to a script. A column without a
// value (an unchanged TOASTed value, or a column outside the replica
// identity in a key-only old image) is not a property at all.
func (m *Mapper) buildRow(ri *relInfo, src change.Row, keyOnly bool) (goja.Value, *rowGivens, error) {
	rg := &rowGivens{ri: ri, g: make([]given, len(src))}
	obj := m.vm.NewObject()
	for i, v := range src {
		col := ri.rel.Columns[i]
		if v.Kind == change.Absent || keyOnly && !col.Key {
			continue
		}
		rg.g[i] = given{typ: ri.types[i], val: v}
		js, err := m.conv.toJS(&rg.g[i])
		if err != nil {
			s := v.String()
			if len(s) > 64 {
				s = s[:61] + "..."
			}
			return nil, nil, &mapErr{column: col.Name, colType: ri.types[i].name, msg: fmt.Sprintf("reading %q: %v", s, err), err: err}
		}
		// Defined rather than assigned: a column named __proto__ is data.
		if err := obj.DefineDataProperty(col.Name, js, goja.FLAG_TRUE, goja.FLAG_TRUE, goja.FLAG_TRUE); err != nil {
			return nil, nil, err
		}
	}
	return obj, rg, nil
}

func (m *Mapper) changeObject(ch *change.Change, op change.Op, old goja.Value) goja.Value {
	var commit goja.Value = goja.Null()
	if ch.Txn != nil && !ch.Txn.CommitTime.IsZero() {
		commit = m.vm.ToValue(ch.Txn.CommitTime.UTC().Format("2006-01-02T15:04:05.000000Z"))
	}
	table := ch.Rel.Table.Schema + "." + ch.Rel.Table.Name
	// One call of a helper costs less than five property sets from Go.
	o, err := m.makeChange(goja.Undefined(), m.vm.ToValue(op.String()), m.vm.ToValue(table), old, m.vm.ToValue(ch.LSN.String()), commit)
	if err != nil {
		panic(err) // the helper cannot throw; an interrupt surfaces through the watchdog
	}
	return o
}

const returnWant = "want a row object, null, or {op, table, row} (or an array of them)"

// collect reads what a script returned. keysOnly reads only the target key
// columns of every row, which is all a delete needs (all columns of a
// target without a key, which finds its row by all of them).
func (m *Mapper) collect(e *entry, op change.Op, res goja.Value, g, og *rowGivens, keysOnly bool) ([]pending, error) {
	if res == nil || goja.IsUndefined(res) || goja.IsNull(res) {
		return nil, nil
	}
	o, ok := res.(*goja.Object)
	if !ok {
		return nil, &mapErr{msg: fmt.Sprintf("returned %s; %s", describe(res), returnWant)}
	}
	if o.ClassName() == "Array" {
		var pend []pending
		n := arrayLen(o)
		for i := 0; i < n; i++ {
			el := o.Get(strconv.Itoa(i))
			if el == nil || goja.IsUndefined(el) || goja.IsNull(el) {
				continue
			}
			eo, ok := el.(*goja.Object)
			if !ok || !isFullControl(eo, nil) {
				return nil, &mapErr{msg: fmt.Sprintf("returned an array whose element [%d] is %s; want {op, table, row} objects", i, describe(el))}
			}
			p, err := m.fullControl(e, op, eo, g, og, keysOnly)
			if err != nil {
				var me *mapErr
				if errors.As(err, &me) {
					me.msg = fmt.Sprintf("in element [%d]: %s", i, me.msg)
				}
				return nil, err
			}
			pend = append(pend, p)
		}
		return pend, nil
	}
	var keys []string
	if o.ClassName() == "Object" {
		keys = o.Keys()
	}
	if isFullControl(o, keys) {
		p, err := m.fullControl(e, op, o, g, og, keysOnly)
		if err != nil {
			return nil, err
		}
		return []pending{p}, nil
	}
	if o.ClassName() != "Object" {
		return nil, &mapErr{msg: fmt.Sprintf("returned %s; %s", describe(res), returnWant)}
	}
	vals, err := m.rowVals(o, keys, e.write, g, keysOnly || op == change.Delete)
	if err != nil {
		return nil, err
	}
	return []pending{{op: op, t: e.write, vals: vals}}, nil
}

// isFullControl tells {op, table, row, old} apart from a row: it has an own
// row property holding an object and no own properties but those four.
// keys are o's own enumerable keys, if the caller has them.
func isFullControl(o *goja.Object, keys []string) bool {
	if o.ClassName() != "Object" {
		return false
	}
	if keys == nil {
		keys = o.Keys()
	}
	hasRow := false
	for _, k := range keys {
		switch k {
		case "row":
			hasRow = true
		case "op", "table", "old":
		default:
			return false
		}
	}
	if !hasRow {
		return false
	}
	r, ok := o.Get("row").(*goja.Object)
	return ok && r.ClassName() == "Object"
}

func (m *Mapper) fullControl(e *entry, op change.Op, o *goja.Object, g, og *rowGivens, keysOnly bool) (pending, error) {
	p := pending{op: op, t: e.write}
	if v := o.Get("op"); v != nil && !goja.IsUndefined(v) {
		s, _ := prim(v).(string)
		parsed, err := change.ParseOp(s)
		if err != nil || parsed == change.Truncate {
			return p, &mapErr{msg: fmt.Sprintf("returned op %s; want \"insert\", \"update\" or \"delete\"", describe(v))}
		}
		p.op = parsed
	}
	if v := o.Get("table"); v != nil && !goja.IsUndefined(v) {
		s, ok := prim(v).(string)
		if !ok {
			return p, &mapErr{msg: fmt.Sprintf("returned table %s; want a table name such as \"schema.name\"", describe(v))}
		}
		t, err := m.lookup(e, s)
		if err != nil {
			return p, err
		}
		p.t = t
	}
	var err error
	if p.vals, err = m.rowVals(o.Get("row").(*goja.Object), nil, p.t, g, keysOnly || p.op == change.Delete); err != nil {
		return p, err
	}
	if v := o.Get("old"); v != nil && !goja.IsUndefined(v) && !goja.IsNull(v) {
		oo, ok := v.(*goja.Object)
		if !ok || oo.ClassName() != "Object" {
			return p, &mapErr{msg: fmt.Sprintf("returned old %s; want the old row (at least its key) as an object", describe(v))}
		}
		vals, err := m.rowVals(oo, nil, p.t, og, true)
		if err != nil {
			return p, err
		}
		if len(p.t.key) == 0 {
			p.oldRow = vals
		} else if p.oldKey, err = p.t.keyFrom(vals, p.op); err != nil {
			var me *mapErr
			if errors.As(err, &me) {
				me.msg = "in old: " + me.msg
			}
			return p, err
		}
	}
	return p, nil
}

// rowVals encodes a returned row for table t. Undefined values write
// nothing; generated columns are computed by the target and left out.
// keys are o's own enumerable keys, if the caller has them.
func (m *Mapper) rowVals(o *goja.Object, keys []string, t *target, g *rowGivens, keysOnly bool) ([]change.Value, error) {
	vals := make([]change.Value, len(t.cols))
	put := func(p int, v goja.Value) error {
		c := t.cols[p]
		ev, err := m.conv.encode(v, c.typ, g.get(c.name))
		if err != nil {
			return &mapErr{column: c.name, colType: c.typeName, msg: err.Error()}
		}
		vals[p] = ev
		return nil
	}
	if keysOnly && len(t.key) > 0 {
		for _, p := range t.keyPos {
			v := o.Get(t.cols[p].name)
			if v == nil || goja.IsUndefined(v) {
				continue
			}
			if err := put(p, v); err != nil {
				return nil, err
			}
		}
		return vals, nil
	}
	if keys == nil {
		keys = o.Keys()
	}
	for _, k := range keys {
		p, ok := t.byName[k]
		if !ok {
			return nil, &mapErr{column: k, msg: fmt.Sprintf("not a column of %s", t.name)}
		}
		if t.cols[p].generated && !t.isKey(p) {
			continue
		}
		v := o.Get(k)
		if v == nil || goja.IsUndefined(v) {
			continue
		}
		if err := put(p, v); err != nil {
			return nil, err
		}
	}
	return vals, nil
}

func (t *target) isKey(p int) bool {
	for _, k := range t.keyPos {
		if k == p {
			return true
		}
	}
	return false
}

// keyFrom takes the target key out of a row's values.
func (t *target) keyFrom(vals []change.Value, op change.Op) ([]change.Value, error) {
	key := make([]change.Value, len(t.keyPos))
	for j, p := range t.keyPos {
		switch vals[p].Kind {
		case change.Absent:
			return nil, &mapErr{column: t.cols[p].name, msg: fmt.Sprintf("the returned row has no value for this key column of %s, which an %s needs", t.name, op)}
		case change.Null:
			return nil, &mapErr{column: t.cols[p].name, msg: fmt.Sprintf("the returned row has null for this key column of %s, which an %s needs", t.name, op)}
		}
		key[j] = vals[p]
	}
	return key, nil
}

func (m *Mapper) outs(e *entry, ch *change.Change, pend []pending, oldKeys map[*target][]change.Value) ([]change.Out, error) {
	outs := make([]change.Out, 0, len(pend))
	for _, p := range pend {
		out := change.Out{Op: p.op, Table: p.t.name, KeyCols: p.t.key, Entry: e.Entry, Source: e.Read, LSN: ch.LSN}
		if p.op != change.Delete {
			out.Cols, out.Vals = p.t.compact(p.vals)
		}
		if (p.op == change.Update || p.op == change.Delete) && len(p.t.key) == 0 {
			if err := fullRow(&out, e, ch, p, oldKeys); err != nil {
				return nil, err
			}
		} else if p.op == change.Update || p.op == change.Delete {
			switch {
			case p.oldKey != nil:
				out.Key = p.oldKey
			case p.op == change.Update && oldKeys[p.t] != nil:
				out.Key = oldKeys[p.t]
			default:
				key, err := p.t.keyFrom(p.vals, p.op)
				if err != nil {
					return nil, err
				}
				out.Key = key
			}
		}
		outs = append(outs, out)
	}
	return outs, nil
}

// fullRow sets the old row that an update or delete of a target without a
// key finds its row by: the explicit old row, or the change's full old row
// image as the entry maps it (a delete's row is that image).
func fullRow(out *change.Out, e *entry, ch *change.Change, p pending, oldKeys map[*target][]change.Value) error {
	if ch.Old == nil || ch.OldIsKey {
		return noKeyErr(p.t.name, e.Read)
	}
	row := p.oldRow
	switch {
	case row != nil:
	case p.op == change.Delete:
		row = p.vals
	default:
		if row = oldKeys[p.t]; row == nil {
			return &mapErr{msg: fmt.Sprintf("%s has no key, and the old row image, transformed as a delete, gives no row of it to find the row to %s by: return one, or give the update an explicit old row", p.t.name, p.op)}
		}
	}
	cols, vals, err := p.t.oldRow(row)
	if err != nil {
		return err
	}
	out.KeyCols, out.Key, out.FullRow = cols, vals, true
	return nil
}

// lookup finds a table a script named: "schema.name" as change.table
// spells it, a bare name (in the entry's target schema, then public, then
// any schema where it is unique), or a quoted SQL name.
func (m *Mapper) lookup(e *entry, s string) (*target, error) {
	ck := e.Write.Schema + "\x00" + s
	name, ok := m.names[ck]
	if !ok {
		if name, ok = m.resolve(e, s); !ok {
			return nil, &mapErr{msg: fmt.Sprintf("returned table %q, which is not a table of the database written to", s)}
		}
		m.names[ck] = name
	}
	if name == e.Write {
		return e.write, nil
	}
	if t := m.targets[name]; t != nil {
		return t, nil
	}
	t := m.newTarget(m.write.Table(name), nil)
	m.targets[name] = t
	return t, nil
}

func (m *Mapper) resolve(e *entry, s string) (change.Table, bool) {
	exists := func(t change.Table) bool { return m.write.Table(t) != nil }
	if i := strings.IndexByte(s, '.'); i >= 0 && strings.Count(s, ".") == 1 && !strings.Contains(s, `"`) {
		if t := (change.Table{Schema: s[:i], Name: s[i+1:]}); exists(t) {
			return t, true
		}
	}
	if !strings.Contains(s, ".") {
		for _, schema := range []string{e.Write.Schema, "public"} {
			if t := (change.Table{Schema: schema, Name: s}); exists(t) {
				return t, true
			}
		}
		var found []change.Table
		for t := range m.write.Tables {
			if t.Name == s {
				found = append(found, t)
			}
		}
		if len(found) == 1 {
			return found[0], true
		}
	}
	if t, err := change.ParseTable(s); err == nil && exists(t) {
		return t, true
	}
	return change.Table{}, false
}
