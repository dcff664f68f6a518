package transform

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/dop251/goja"

	"github.com/cdcbridge/cdcbridge/catalog"
	"github.com/cdcbridge/cdcbridge/change"
)

// Spec is one mapping entry: the changes of one table read, written to
// another through a script or by column name.
type Spec struct {
	Entry  string       // human name of the entry, for errors: "tables[1] (public.orders -> public.orders_v2)"
	Read   change.Table // the table the changes come from
	Write  change.Table // the entry's target table
	Script string       // absolute path of the transform; "" maps columns by name
	Key    []string     // key columns of the Write table; nil means its own (catalog.Table.RowKey)
}

// Options configure a Mapper.
type Options struct {
	Func    string        // "forward" or "backward": the function of each script to call
	Timeout time.Duration // the time limit of an entry's calls for one change; 0 means 5s
	Read    *catalog.Catalog
	Write   *catalog.Catalog
	Logger  *slog.Logger // receives console output; nil discards it
	// Scripts, when set, holds the compiled scripts (see Compile), shared
	// with other Mappers; a script of specs it does not hold is compiled
	// as without it. nil compiles every script of specs here.
	Scripts *Scripts
}

// DefaultTimeout is the time limit of a call when Options.Timeout is 0.
const DefaultTimeout = 5 * time.Second

// Mapper turns source changes into target writes. It owns one JavaScript
// runtime and is not safe for concurrent use: use one Mapper per goroutine.
type Mapper struct {
	timeout time.Duration
	log     *slog.Logger
	read    *catalog.Catalog
	write   *catalog.Catalog
	vm      *goja.Runtime
	watch   *watchdog
	conv    *conv
	rtypes  *types
	wtypes  *types

	entries []*entry
	byRead  map[change.Table][]*entry
	targets map[change.Table]*target // tables scripts name, by their own key
	names   map[string]change.Table  // table names returned by scripts, resolved
	rels    map[uint32]*relInfo

	cur *entry // the entry being mapped, for console output
	ch  *change.Change

	makeChange goja.Callable // (op, table, old, lsn, commitTime) -> object
}

// makeChangeProgram builds the change object inside the runtime: one call
// costs less than setting five properties from Go. Like the scripts, it is
// compiled once and run in each runtime.
var makeChangeProgram = goja.MustCompile("cdcbridge-change.js", "(function (op, table, old, lsn, commitTime) { return {op, table, old, lsn, commitTime}; })", false)

type entry struct {
	Spec
	fn    goja.Callable // nil: identity mapping
	write *target
}

// target is a table written to, with the key that identifies its rows (nil
// without one: updates and deletes then find a row by the whole old row).
type target struct {
	name   change.Table
	cols   []tcol
	byName map[string]int
	key    []string
	keyPos []int
}

type tcol struct {
	name      string
	typ       *pgType
	typeName  string
	generated bool
}

// relInfo is what a source relation needs for mapping, kept until the
// stream announces the relation again.
type relInfo struct {
	rel    *change.Relation
	types  []*pgType
	byName map[string]int
	ident  []int // columns that identify a source row in errors
	idmaps map[*entry]*idmap
}

// idmap maps a relation's columns to an identity-mapped entry's target.
type idmap struct {
	pos    []int // target column of each source column; skip or missing
	keySrc []int // source column of each target key column, or -1
}

const (
	skip    = -1 // generated on the target: computed there
	missing = -2 // no such column on the target
)

// New loads the scripts of specs into a runtime of the Mapper's own,
// compiling each file once unless opts.Scripts holds it already, and checks
// the entries against the catalogs: every Read table must be in opts.Read,
// every Write table in opts.Write, key columns must exist, and the columns
// of an identity mapping must exist on the written side. All problems are
// reported at once.
func New(specs []Spec, opts Options) (*Mapper, error) {
	if opts.Func != "forward" && opts.Func != "backward" {
		return nil, fmt.Errorf("transform function %q: want forward or backward", opts.Func)
	}
	if opts.Read == nil || opts.Write == nil {
		return nil, errors.New("transform: both catalogs are needed")
	}
	m := &Mapper{
		timeout: opts.Timeout,
		log:     opts.Logger,
		read:    opts.Read,
		write:   opts.Write,
		byRead:  map[change.Table][]*entry{},
		targets: map[change.Table]*target{},
		names:   map[string]change.Table{},
		rels:    map[uint32]*relInfo{},
	}
	if m.timeout <= 0 {
		m.timeout = DefaultTimeout
	}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	m.log = m.log.With("component", "transform")
	m.vm = newRuntime(m.log, m.consoleAttrs)
	m.watch = newWatchdog(m.vm, m.timeout)
	mc, err := m.vm.RunProgram(makeChangeProgram)
	if err != nil {
		return nil, fmt.Errorf("transform helpers: %w", err)
	}
	m.makeChange, _ = goja.AssertFunction(mc)
	m.conv = newConv(m.vm)
	m.rtypes = newTypes(opts.Read, m.conv.pg)
	m.wtypes = newTypes(opts.Write, m.conv.pg)

	loaded := map[string]map[string]goja.Callable{}
	var errs []error
	writeSide := "target"
	if opts.Func == "backward" {
		writeSide = "source"
	}
	for _, s := range specs {
		e := &entry{Spec: s}
		fail := func(format string, args ...any) {
			errs = append(errs, fmt.Errorf("%s: %s", s.Entry, fmt.Sprintf(format, args...)))
		}
		rt := opts.Read.Table(s.Read)
		if rt == nil {
			fail("table %s does not exist in the database read from", s.Read)
		}
		wt := opts.Write.Table(s.Write)
		if wt == nil {
			fail("table %s does not exist in the database written to", s.Write)
		} else {
			e.write = m.newTarget(wt, s.Key)
			for _, k := range s.Key {
				if wt.Column(k) == nil {
					fail("key column %s is not a column of %s, the %s table: key: [...] names columns that both tables have; "+
						"write key: {source: [...], target: [...]} to name each table's own", k, s.Write, writeSide)
				}
			}
		}
		if s.Script == "" {
			if rt != nil && wt != nil {
				for _, c := range rt.Columns {
					if !c.Generated && wt.Column(c.Name) == nil {
						fail("column %s of %s has no column of that name in %s: add it there, or map the entry with a transform", c.Name, s.Read, s.Write)
					}
				}
			}
		} else {
			fns, ok := loaded[s.Script]
			if !ok {
				prg, err := opts.Scripts.program(s.Script)
				if err == nil {
					fns, err = load(m.vm, prg, s.Script, m.timeout)
				}
				if err != nil {
					fail("%v", err)
				}
				loaded[s.Script] = fns
			}
			if fns != nil {
				if e.fn = fns[opts.Func]; e.fn == nil {
					fail("%s: %s is not defined as a function", s.Script, opts.Func)
				}
			}
		}
		m.entries = append(m.entries, e)
		m.byRead[s.Read] = append(m.byRead[s.Read], e)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *Mapper) newTarget(t *catalog.Table, key []string) *target {
	tg := &target{name: t.Name, byName: make(map[string]int, len(t.Columns)), key: t.RowKey()}
	if len(key) > 0 {
		tg.key = key
	}
	for i, c := range t.Columns {
		tg.cols = append(tg.cols, tcol{name: c.Name, typ: m.wtypes.get(c.TypeOID), typeName: c.TypeName, generated: c.Generated})
		tg.byName[c.Name] = i
	}
	for _, k := range tg.key {
		if p, ok := tg.byName[k]; ok {
			tg.keyPos = append(tg.keyPos, p)
		}
	}
	if tg.cols != nil && len(tg.keyPos) != len(tg.key) {
		tg.key, tg.keyPos = nil, nil
	}
	for i := range tg.cols {
		if tg.cols[i].typeName == "" {
			tg.cols[i].typeName = tg.cols[i].typ.name
		}
	}
	return tg
}

// Map returns the writes for one change: for each entry reading the
// change's table, in entry order, the outs its mapping produces. A
// truncate becomes one Out truncating the mapped target tables. A change of
// an unmapped table maps to nothing. Errors are *Error.
func (m *Mapper) Map(ch *change.Change) ([]change.Out, error) {
	if ch.Op == change.Truncate {
		return m.truncate(ch), nil
	}
	if ch.Rel == nil {
		return nil, &Error{LSN: ch.LSN, Msg: fmt.Sprintf("%s without a relation", ch.Op)}
	}
	entries := m.byRead[ch.Rel.Table]
	if len(entries) == 0 {
		return nil, nil
	}
	ri := m.relation(ch.Rel)
	var outs []change.Out
	for _, e := range entries {
		var o []change.Out
		var err error
		if e.fn == nil {
			o, err = m.identity(e, ri, ch)
		} else {
			o, err = m.script(e, ri, ch)
		}
		if err != nil {
			var me *mapErr
			if errors.As(err, &me) {
				return nil, m.fail(e, ri, ch, me)
			}
			return nil, err
		}
		outs = append(outs, o...)
	}
	return outs, nil
}

func (m *Mapper) truncate(ch *change.Change) []change.Out {
	out := change.Out{Op: change.Truncate, RestartIdentity: ch.RestartIdentity, LSN: ch.LSN}
	seen := map[change.Table]bool{}
	var names []string
	for _, rel := range ch.Truncated {
		for _, e := range m.byRead[rel.Table] {
			if out.Source == (change.Table{}) {
				out.Source = rel.Table
			}
			names = append(names, e.Entry)
			if !seen[e.Write] {
				seen[e.Write] = true
				out.Truncate = append(out.Truncate, e.Write)
			}
		}
	}
	if len(out.Truncate) == 0 {
		return nil
	}
	out.Entry = strings.Join(names, "; ")
	return []change.Out{out}
}

func (m *Mapper) relation(rel *change.Relation) *relInfo {
	if ri := m.rels[rel.ID]; ri != nil && ri.rel == rel {
		return ri
	}
	ri := &relInfo{rel: rel, types: make([]*pgType, len(rel.Columns)), byName: make(map[string]int, len(rel.Columns)), idmaps: map[*entry]*idmap{}}
	ct := m.read.Table(rel.Table)
	for i, c := range rel.Columns {
		oid := c.TypeOID
		if oid == 0 && ct != nil {
			if cc := ct.Column(c.Name); cc != nil {
				oid = cc.TypeOID
			}
		}
		ri.types[i] = m.rtypes.get(oid)
		ri.byName[c.Name] = i
		if c.Key {
			ri.ident = append(ri.ident, i)
		}
	}
	if len(ri.ident) == 0 && ct != nil {
		for _, k := range ct.Key {
			if i, ok := ri.byName[k]; ok {
				ri.ident = append(ri.ident, i)
			}
		}
	}
	m.rels[rel.ID] = ri
	return ri
}

func (ri *relInfo) idmap(e *entry) *idmap {
	if im := ri.idmaps[e]; im != nil {
		return im
	}
	im := &idmap{pos: make([]int, len(ri.rel.Columns))}
	for i, c := range ri.rel.Columns {
		p, ok := e.write.byName[c.Name]
		switch {
		case !ok:
			im.pos[i] = missing
		case e.write.cols[p].generated:
			im.pos[i] = skip
		default:
			im.pos[i] = p
		}
	}
	for _, k := range e.write.key {
		src, ok := ri.byName[k]
		if !ok {
			src = -1
		}
		im.keySrc = append(im.keySrc, src)
	}
	ri.idmaps[e] = im
	return im
}

// identity maps columns by name, passing values through untouched.
func (m *Mapper) identity(e *entry, ri *relInfo, ch *change.Change) ([]change.Out, error) {
	im := ri.idmap(e)
	out := change.Out{Op: ch.Op, Table: e.write.name, KeyCols: e.write.key, Entry: e.Entry, Source: e.Read, LSN: ch.LSN}
	if ch.Op == change.Insert || ch.Op == change.Update {
		if len(ch.New) != len(ri.rel.Columns) {
			return nil, &mapErr{msg: fmt.Sprintf("the new row has %d values for %d columns", len(ch.New), len(ri.rel.Columns))}
		}
		vals := make([]change.Value, len(e.write.cols))
		for i, v := range ch.New {
			if v.Kind == change.Absent {
				continue
			}
			switch p := im.pos[i]; p {
			case skip:
			case missing:
				return nil, &mapErr{column: ri.rel.Columns[i].Name,
					msg: fmt.Sprintf("has no column of that name in %s: add it there, or map the entry with a transform", e.write.name)}
			default:
				vals[p] = v
			}
		}
		out.Cols, out.Vals = e.write.compact(vals)
	}
	if ch.Op == change.Update || ch.Op == change.Delete {
		if len(e.write.key) == 0 {
			cols, vals, err := m.identityOldRow(e, ri, im, ch)
			if err != nil {
				return nil, err
			}
			out.KeyCols, out.Key, out.FullRow = cols, vals, true
			return []change.Out{out}, nil
		}
		key, err := m.identityKey(e, ri, im, ch)
		if err != nil {
			return nil, err
		}
		out.Key = key
	}
	return []change.Out{out}, nil
}

// identityOldRow maps the full old row image of an update or delete to the
// columns of a target without a key, which finds its row by all of them.
func (m *Mapper) identityOldRow(e *entry, ri *relInfo, im *idmap, ch *change.Change) ([]string, []change.Value, error) {
	if ch.Old == nil || ch.OldIsKey {
		return nil, nil, noKeyErr(e.write.name, e.Read)
	}
	if len(ch.Old) != len(ri.rel.Columns) {
		return nil, nil, &mapErr{msg: fmt.Sprintf("the old row has %d values for %d columns", len(ch.Old), len(ri.rel.Columns))}
	}
	vals := make([]change.Value, len(e.write.cols))
	for i, v := range ch.Old {
		if v.Kind == change.Absent {
			continue
		}
		switch p := im.pos[i]; p {
		case skip:
		case missing:
			return nil, nil, &mapErr{column: ri.rel.Columns[i].Name,
				msg: fmt.Sprintf("has no column of that name in %s: add it there, or map the entry with a transform", e.write.name)}
		default:
			vals[p] = v
		}
	}
	return e.write.oldRow(vals)
}

// oldRow lists the columns of an old row image, by target column, that
// find a row of a target without a key.
func (t *target) oldRow(vals []change.Value) ([]string, []change.Value, error) {
	cols, out := t.compact(vals)
	if len(cols) == 0 {
		return nil, nil, &mapErr{msg: fmt.Sprintf("the old row gives no column of %s to find the row by, which has no key", t.name)}
	}
	return cols, out, nil
}

// identityKey finds the values of the target key in the source row: in the
// old image when there is one, else in the new row, where only replica
// identity columns are sure to hold the value the target row has now.
func (m *Mapper) identityKey(e *entry, ri *relInfo, im *idmap, ch *change.Change) ([]change.Value, error) {
	if len(e.write.key) == 0 {
		return nil, noKeyErr(e.write.name, e.Read)
	}
	fix := fmt.Sprintf("set REPLICA IDENTITY FULL on %s, or map the entry with a transform", e.Read)
	key := make([]change.Value, len(e.write.key))
	for j, k := range e.write.key {
		src := im.keySrc[j]
		if src < 0 {
			return nil, &mapErr{column: k, msg: fmt.Sprintf("target key column of %s is not a column of %s: map the entry with a transform, or set the entry's key", e.write.name, e.Read)}
		}
		var v change.Value
		switch {
		case ch.Old != nil:
			if ch.OldIsKey && !ri.rel.Columns[src].Key {
				return nil, &mapErr{column: k, msg: fmt.Sprintf("target key column is not in the replica identity of %s, so its old value is not sent: %s", e.Read, fix)}
			}
			if src < len(ch.Old) {
				v = ch.Old[src]
			}
		default:
			if !ri.rel.Columns[src].Key {
				return nil, &mapErr{column: k, msg: fmt.Sprintf("target key column is not in the replica identity of %s, so an update that changes it cannot find the target row: %s", e.Read, fix)}
			}
			if src < len(ch.New) {
				v = ch.New[src]
			}
		}
		if v.Kind != change.Text {
			return nil, &mapErr{column: k, msg: fmt.Sprintf("the source row has no value for this target key column (%s): %s", v, fix)}
		}
		key[j] = v
	}
	return key, nil
}

// compact lists the columns with a value to write, in table order, leaving
// out generated columns.
func (t *target) compact(vals []change.Value) ([]string, []change.Value) {
	n := 0
	for i, v := range vals {
		if v.Kind != change.Absent && !t.cols[i].generated {
			n++
		}
	}
	cols, out := make([]string, 0, n), make([]change.Value, 0, n)
	for i, v := range vals {
		if v.Kind != change.Absent && !t.cols[i].generated {
			cols = append(cols, t.cols[i].name)
			out = append(out, v)
		}
	}
	return cols, out
}

// noKeyErr: the table written has no key, and the change carries no full
// old row to find its row by.
func noKeyErr(t, read change.Table) *mapErr {
	return &mapErr{msg: fmt.Sprintf("%s has no key to find the row to change by, and the change carries only the key of the row of %s, not the whole old row: "+
		"give %s a primary key or a unique index on NOT NULL columns, name its key columns with key: in the mapping, or ALTER TABLE %s REPLICA IDENTITY FULL", t, read, t, read)}
}

// mapErr is an Error before the change's context is added.
type mapErr struct {
	column, colType string
	msg, stack      string
	err             error
}

func (e *mapErr) Error() string { return e.msg }

func (m *Mapper) fail(e *entry, ri *relInfo, ch *change.Change, me *mapErr) *Error {
	return &Error{
		Entry:   e.Entry,
		Table:   e.Read,
		Key:     ri.keyString(ch),
		LSN:     ch.LSN,
		Column:  me.column,
		colType: me.colType,
		Msg:     me.msg,
		Stack:   me.stack,
		Err:     me.err,
	}
}

// keyString names the source row by its identity columns: "id=42".
func (ri *relInfo) keyString(ch *change.Change) string {
	var parts []string
	for _, i := range ri.ident {
		v := change.Value{Kind: change.Absent}
		if ch.Old != nil && i < len(ch.Old) && ch.Old[i].Kind != change.Absent {
			v = ch.Old[i]
		} else if i < len(ch.New) {
			v = ch.New[i]
		}
		if v.Kind == change.Absent {
			continue
		}
		s := v.String()
		if len(s) > 64 {
			s = s[:61] + "..."
		}
		parts = append(parts, ri.rel.Columns[i].Name+"="+s)
	}
	return strings.Join(parts, ",")
}

func (m *Mapper) consoleAttrs() []any {
	if m.cur == nil || m.ch == nil {
		return nil
	}
	a := []any{"entry", m.cur.Entry, "table", m.cur.Read.String(), "lsn", m.ch.LSN.String()}
	if m.ch.Txn != nil {
		a = append(a, "xid", m.ch.Txn.Xid)
	}
	return a
}
