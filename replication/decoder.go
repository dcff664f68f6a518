package replication

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/jackc/pglogrepl"

	"github.com/cdcbridge/cdcbridge/change"
)

// Decoder turns pgoutput messages (protocol version 1, text values) into
// change events. It does no I/O: Stream.Run feeds it live messages, and a
// recorded fixture can feed it the same bytes.
//
// Events come out in stream order:
//
//   - EvBegin (Event.Txn set, Event.LSN the message's position), then one
//     EvChange per row change or truncate (Event.Change set, Event.LSN its
//     position), then EvCommit (Txn.EndLSN set, Event.LSN = Txn.EndLSN).
//   - A transaction made under a replication origin that skipOrigin accepts
//     is not sent at all: its Begin, changes and Commit are replaced by one
//     EvPosition at its EndLSN, so the caller can still advance past it.
//     The relations it announces are remembered all the same.
//   - With a table filter (OnlyTables), changes of other tables are
//     dropped, and a transaction with no change of a kept table is replaced
//     by one EvPosition at its EndLSN, as a skipped one is: a publication
//     made by someone else may hold more tables than the bridge reads.
//   - EvPosition from Keepalive when no transaction is open.
//
// The Begin of a transaction is held back until the next message shows
// whether the transaction has an origin (pgoutput sends Origin right after
// Begin, before anything else of the transaction, or not at all). Relation
// and Type messages do not release it; a change, a Commit or the Origin of a
// forwarded transaction does (with a table filter, only a change of a kept
// table or a Commit).
//
// Every Txn and Change is freshly allocated and shares no memory with the
// input, so callers may keep them and reuse their message buffers. Relations
// are shared: a *change.Relation stays valid (and unchanged) after the
// source announces a new version of the table, which gets a new Relation.
//
// A malformed message, a change for a relation never announced or a message
// out of order is an error naming the LSN; after an error the Decoder's state
// is undefined and it must be discarded. A Decoder is not safe for concurrent
// use.
type Decoder struct {
	skipOrigin func(string) bool
	keepTable  func(change.Table) bool
	rels       map[uint32]*change.Relation

	// At most one of pending, txn and skipping is set.
	pending    *change.Txn // Begin received, not sent yet
	pendingLSN pglogrepl.LSN
	txn        *change.Txn // forwarded and open
	skipping   *change.Txn // open, being skipped for its origin

	// pos is the last position the output vouched for: the EndLSN of the
	// last transaction, or the last EvPosition.
	pos pglogrepl.LSN
}

// NewDecoder returns a Decoder that skips the transactions made under an
// origin for which skipOrigin returns true; nil skips nothing.
func NewDecoder(skipOrigin func(origin string) bool) *Decoder {
	return &Decoder{skipOrigin: skipOrigin, rels: map[uint32]*change.Relation{}}
}

// OnlyTables makes the Decoder drop the changes of the tables for which
// keep returns false (nil keeps every table), and replace a transaction
// with no change of a kept table by an EvPosition. Its Begin is then held
// back until the first change of a kept table. Call it before the first
// Decode.
func (d *Decoder) OnlyTables(keep func(change.Table) bool) { d.keepTable = keep }

// kept reports whether a change message is of a kept table: for a
// truncate, of at least one.
func (d *Decoder) kept(msg pglogrepl.Message) bool {
	if d.keepTable == nil {
		return true
	}
	var ids []uint32
	switch m := msg.(type) {
	case *pglogrepl.InsertMessage:
		ids = []uint32{m.RelationID}
	case *pglogrepl.UpdateMessage:
		ids = []uint32{m.RelationID}
	case *pglogrepl.DeleteMessage:
		ids = []uint32{m.RelationID}
	case *pglogrepl.TruncateMessage:
		ids = m.RelationIDs
	}
	for _, id := range ids {
		// A relation never announced is kept, so that the change reports it.
		if rel := d.rels[id]; rel == nil || d.keepTable(rel.Table) {
			return true
		}
	}
	return false
}

// Relation returns the relation last announced under id, or nil.
func (d *Decoder) Relation(id uint32) *change.Relation { return d.rels[id] }

// InTxn reports whether a transaction is open (begun and not committed).
func (d *Decoder) InTxn() bool { return d.pending != nil || d.txn != nil || d.skipping != nil }

// Keepalive returns an EvPosition at walEnd, the server's WAL end from a
// primary keepalive message, when no transaction is open and walEnd is past
// the last position the Decoder's output vouched for; otherwise ok is false.
// Every transaction ending at or before walEnd has then been sent: the
// server sends a transaction once it has read its commit record, and it
// reports as its WAL end only what it has read.
func (d *Decoder) Keepalive(walEnd pglogrepl.LSN) (ev change.Event, ok bool) {
	if d.InTxn() || walEnd <= d.pos {
		return change.Event{}, false
	}
	d.pos = walEnd
	return change.Event{Kind: change.EvPosition, LSN: walEnd}, true
}

// Decode decodes one pgoutput message, received at walStart (the XLogData
// start position), and returns the events it completes: often none (Relation,
// Type, a Begin held back), at most two (a held-back Begin and a change).
func (d *Decoder) Decode(walStart pglogrepl.LSN, data []byte) (evs []change.Event, err error) {
	if len(data) == 0 {
		return nil, fmt.Errorf("decoding message at LSN %s: empty message", walStart)
	}
	kind := pglogrepl.MessageType(data[0])
	defer func() {
		// pglogrepl's decoders index without bounds checks; a short message
		// they were not guarded against must not take the process down.
		if r := recover(); r != nil {
			evs, err = nil, fmt.Errorf("decoding %s message at LSN %s: malformed (%v)", kindName(data[0]), walStart, r)
		}
	}()
	if err := precheck(data); err != nil {
		return nil, fmt.Errorf("decoding %s message at LSN %s: %w", kindName(data[0]), walStart, err)
	}
	msg, err := pglogrepl.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("decoding %s message at LSN %s: %w", kindName(data[0]), walStart, err)
	}
	evs, err = d.handle(walStart, msg)
	if err != nil {
		return nil, fmt.Errorf("decoding %s message at LSN %s: %w", kind, walStart, err)
	}
	return evs, nil
}

func kindName(b byte) string {
	if s := pglogrepl.MessageType(b).String(); s != "Unknown" {
		return s
	}
	return fmt.Sprintf("unknown (type byte 0x%02x)", b)
}

func (d *Decoder) handle(walStart pglogrepl.LSN, msg pglogrepl.Message) ([]change.Event, error) {
	switch m := msg.(type) {
	case *pglogrepl.BeginMessage:
		if d.InTxn() {
			return nil, fmt.Errorf("transaction %d begins while transaction %d is open", m.Xid, d.openXid())
		}
		d.pending = &change.Txn{Xid: m.Xid, FinalLSN: m.FinalLSN, CommitTime: m.CommitTime}
		d.pendingLSN = walStart
		return nil, nil

	case *pglogrepl.OriginMessage:
		if d.pending == nil {
			return nil, fmt.Errorf("origin %q does not directly follow a Begin", m.Name)
		}
		d.pending.Origin = m.Name
		if d.skipOrigin != nil && d.skipOrigin(m.Name) {
			d.skipping, d.pending = d.pending, nil
			return nil, nil
		}
		if d.keepTable != nil {
			return nil, nil // released by its first change of a kept table
		}
		return d.release(nil), nil

	case *pglogrepl.RelationMessage:
		rel := &change.Relation{
			ID:              m.RelationID,
			Table:           change.Table{Schema: m.Namespace, Name: m.RelationName},
			ReplicaIdentity: m.ReplicaIdentity,
			Columns:         make([]change.Column, len(m.Columns)),
		}
		if int(m.ColumnNum) != len(m.Columns) {
			return nil, fmt.Errorf("relation %d announces %d columns and has %d", m.RelationID, m.ColumnNum, len(m.Columns))
		}
		for i, c := range m.Columns {
			rel.Columns[i] = change.Column{Name: c.Name, TypeOID: c.DataType, TypeMod: c.TypeModifier, Key: c.Flags&1 != 0}
		}
		d.rels[m.RelationID] = rel
		return nil, nil

	case *pglogrepl.TypeMessage:
		// Column type OIDs are enough: values are in text form, and the
		// consumers resolve types from their own catalog.
		return nil, nil

	case *pglogrepl.LogicalDecodingMessage:
		// pg_logical_emit_message output, sent only with the messages option.
		return nil, nil

	case *pglogrepl.InsertMessage, *pglogrepl.UpdateMessage, *pglogrepl.DeleteMessage, *pglogrepl.TruncateMessage:
		if d.skipping != nil {
			return nil, nil
		}
		if !d.kept(m) {
			if d.pending == nil && d.txn == nil {
				return nil, errors.New("row change outside a transaction")
			}
			return nil, nil
		}
		evs := d.release(nil)
		if d.txn == nil {
			return nil, errors.New("row change outside a transaction")
		}
		c, err := d.change(walStart, m)
		if err != nil {
			return nil, err
		}
		return append(evs, change.Event{Kind: change.EvChange, Txn: d.txn, Change: c, LSN: walStart}), nil

	case *pglogrepl.CommitMessage:
		if d.pending != nil && d.keepTable != nil {
			// No change of a kept table: nothing to send but the position.
			d.pending = nil
			d.advance(m.TransactionEndLSN)
			return []change.Event{{Kind: change.EvPosition, LSN: m.TransactionEndLSN}}, nil
		}
		evs := d.release(nil)
		switch {
		case d.skipping != nil:
			d.skipping.EndLSN = m.TransactionEndLSN
			d.skipping = nil
			d.advance(m.TransactionEndLSN)
			return append(evs, change.Event{Kind: change.EvPosition, LSN: m.TransactionEndLSN, Own: true}), nil
		case d.txn != nil:
			t := d.txn
			t.EndLSN = m.TransactionEndLSN
			d.txn = nil
			d.advance(m.TransactionEndLSN)
			return append(evs, change.Event{Kind: change.EvCommit, Txn: t, LSN: t.EndLSN}), nil
		}
		return nil, errors.New("commit outside a transaction")
	}
	return nil, fmt.Errorf("unsupported message type %s", msg.Type())
}

// release sends a held-back Begin: appends its event to evs and opens the
// transaction.
func (d *Decoder) release(evs []change.Event) []change.Event {
	if d.pending == nil {
		return evs
	}
	d.txn, d.pending = d.pending, nil
	return append(evs, change.Event{Kind: change.EvBegin, Txn: d.txn, LSN: d.pendingLSN})
}

func (d *Decoder) advance(lsn pglogrepl.LSN) {
	if lsn > d.pos {
		d.pos = lsn
	}
}

func (d *Decoder) openXid() uint32 {
	for _, t := range []*change.Txn{d.pending, d.txn, d.skipping} {
		if t != nil {
			return t.Xid
		}
	}
	return 0
}

func (d *Decoder) relation(id uint32) (*change.Relation, error) {
	rel := d.rels[id]
	if rel == nil {
		return nil, fmt.Errorf("change for relation %d, which was never announced", id)
	}
	return rel, nil
}

func (d *Decoder) change(lsn pglogrepl.LSN, msg pglogrepl.Message) (*change.Change, error) {
	c := &change.Change{LSN: lsn, Txn: d.txn}
	var err error
	switch m := msg.(type) {
	case *pglogrepl.InsertMessage:
		c.Op = change.Insert
		if c.Rel, err = d.relation(m.RelationID); err != nil {
			return nil, err
		}
		if c.New, err = row(c.Rel, m.Tuple, "new"); err != nil {
			return nil, err
		}
	case *pglogrepl.UpdateMessage:
		c.Op = change.Update
		if c.Rel, err = d.relation(m.RelationID); err != nil {
			return nil, err
		}
		if m.OldTuple != nil {
			if c.Old, err = row(c.Rel, m.OldTuple, "old"); err != nil {
				return nil, err
			}
			c.OldIsKey = m.OldTupleType == pglogrepl.UpdateMessageTupleTypeKey
		}
		if c.New, err = row(c.Rel, m.NewTuple, "new"); err != nil {
			return nil, err
		}
	case *pglogrepl.DeleteMessage:
		c.Op = change.Delete
		if c.Rel, err = d.relation(m.RelationID); err != nil {
			return nil, err
		}
		if c.Old, err = row(c.Rel, m.OldTuple, "old"); err != nil {
			return nil, err
		}
		c.OldIsKey = m.OldTupleType == pglogrepl.DeleteMessageTupleTypeKey
	case *pglogrepl.TruncateMessage:
		c.Op = change.Truncate
		c.Cascade = m.Option&pglogrepl.TruncateOptionCascade != 0
		c.RestartIdentity = m.Option&pglogrepl.TruncateOptionRestartIdentity != 0
		c.Truncated = make([]*change.Relation, len(m.RelationIDs))
		for i, id := range m.RelationIDs {
			if c.Truncated[i], err = d.relation(id); err != nil {
				return nil, err
			}
		}
	}
	return c, nil
}

// row converts a tuple of rel. The byte slices pglogrepl hands out are its
// own fresh copies (TupleData.Decode allocates each value), so they are kept
// without copying again; a test guards that.
func row(rel *change.Relation, t *pglogrepl.TupleData, which string) (change.Row, error) {
	if t == nil {
		return nil, fmt.Errorf("relation %s: no %s tuple", rel.Table, which)
	}
	if len(t.Columns) != len(rel.Columns) {
		return nil, fmt.Errorf("relation %s: %s tuple has %d columns, the relation %d", rel.Table, which, len(t.Columns), len(rel.Columns))
	}
	r := make(change.Row, len(t.Columns))
	for i, col := range t.Columns {
		switch col.DataType {
		case pglogrepl.TupleDataTypeNull:
			r[i] = change.Value{Kind: change.Null}
		case pglogrepl.TupleDataTypeToast:
			r[i] = change.Value{Kind: change.Absent}
		case pglogrepl.TupleDataTypeText:
			r[i] = change.Value{Kind: change.Text, Data: col.Data}
		default:
			return nil, fmt.Errorf("relation %s: column %s of the %s tuple has format %q, not text", rel.Table, rel.Columns[i].Name, which, col.DataType)
		}
	}
	return r, nil
}

// precheck validates the layout of the messages whose pglogrepl decoders
// trust lengths read from the input (tuples, truncate relation lists), so
// that garbage cannot make them allocate gigabytes or index past the end.
func precheck(data []byte) error {
	p := 1
	var err error
	switch data[0] {
	case 'I':
		if p, err = skip(data, p, 4); err != nil { // relation id
			return err
		}
		if p, err = tupleTag(data, p, "N"); err != nil {
			return err
		}
		p, err = checkTuple(data, p)
	case 'U':
		if p, err = skip(data, p, 4); err != nil {
			return err
		}
		if p < len(data) && (data[p] == 'K' || data[p] == 'O') {
			if p, err = checkTuple(data, p+1); err != nil {
				return err
			}
		}
		if p, err = tupleTag(data, p, "N"); err != nil {
			return err
		}
		p, err = checkTuple(data, p)
	case 'D':
		if p, err = skip(data, p, 4); err != nil {
			return err
		}
		if p, err = tupleTag(data, p, "KO"); err != nil {
			return err
		}
		p, err = checkTuple(data, p)
	case 'T':
		if p, err = skip(data, p, 5); err != nil { // count and options
			return err
		}
		n := binary.BigEndian.Uint32(data[1:5])
		if uint64(len(data)-p) != 4*uint64(n) {
			return fmt.Errorf("truncate of %d relations needs %d bytes of relation ids, has %d", n, 4*uint64(n), len(data)-p)
		}
		return nil
	default:
		return nil
	}
	if err != nil {
		return err
	}
	if p != len(data) {
		return fmt.Errorf("%d unexpected bytes after the tuple", len(data)-p)
	}
	return nil
}

func skip(data []byte, p, n int) (int, error) {
	if len(data)-p < n {
		return p, fmt.Errorf("truncated at byte %d of %d", len(data), p+n)
	}
	return p + n, nil
}

func tupleTag(data []byte, p int, want string) (int, error) {
	if p >= len(data) {
		return p, fmt.Errorf("truncated at byte %d: tuple type missing", p)
	}
	for i := 0; i < len(want); i++ {
		if data[p] == want[i] {
			return p + 1, nil
		}
	}
	return p, fmt.Errorf("tuple type %q at byte %d, want one of %q", data[p], p, want)
}

// checkTuple checks the TupleData starting at p and returns where it ends.
func checkTuple(data []byte, p int) (int, error) {
	if len(data)-p < 2 {
		return p, fmt.Errorf("truncated at byte %d: column count missing", len(data))
	}
	n := int(binary.BigEndian.Uint16(data[p:]))
	p += 2
	for i := 0; i < n; i++ {
		if p >= len(data) {
			return p, fmt.Errorf("truncated at byte %d: column %d of %d missing", p, i+1, n)
		}
		kind := data[p]
		p++
		switch kind {
		case 'n', 'u':
		case 't', 'b':
			if len(data)-p < 4 {
				return p, fmt.Errorf("truncated at byte %d: length of column %d missing", len(data), i+1)
			}
			l := uint64(binary.BigEndian.Uint32(data[p:]))
			p += 4
			if uint64(len(data)-p) < l {
				return p, fmt.Errorf("truncated at byte %d: column %d needs %d bytes, %d left", len(data), i+1, l, len(data)-p)
			}
			p += int(l)
		default:
			return p, fmt.Errorf("column %d has unknown format %q", i+1, kind)
		}
	}
	return p, nil
}
