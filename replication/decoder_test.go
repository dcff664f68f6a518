package replication

import (
	"encoding/binary"
	"math/rand"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"

	"github.com/cdcbridge/cdcbridge/change"
)

// Builders for pgoutput v1 messages, after the protocol documentation.

func be16(b []byte, v uint16) []byte { return binary.BigEndian.AppendUint16(b, v) }
func be32(b []byte, v uint32) []byte { return binary.BigEndian.AppendUint32(b, v) }
func be64(b []byte, v uint64) []byte { return binary.BigEndian.AppendUint64(b, v) }
func cstr(b []byte, s string) []byte { return append(append(b, s...), 0) }

func msgBegin(final pglogrepl.LSN, xid uint32) []byte {
	b := be64([]byte{'B'}, uint64(final))
	b = be64(b, 1000)
	return be32(b, xid)
}

func msgCommit(commit, end pglogrepl.LSN) []byte {
	b := be64([]byte{'C', 0}, uint64(commit))
	b = be64(b, uint64(end))
	return be64(b, 1000)
}

func msgOrigin(name string) []byte { return cstr(be64([]byte{'O'}, 7), name) }

type col struct {
	name string
	key  bool
}

func msgRelation(id uint32, ns, name string, ident byte, cols ...col) []byte {
	b := be32([]byte{'R'}, id)
	b = cstr(cstr(b, ns), name)
	b = append(b, ident)
	b = be16(b, uint16(len(cols)))
	for _, c := range cols {
		flags := byte(0)
		if c.key {
			flags = 1
		}
		b = cstr(append(b, flags), c.name)
		b = be32(b, 25) // text
		b = be32(b, 0xffffffff)
	}
	return b
}

// tuple takes values: "\x00n" for NULL, "\x00u" for unchanged, else text.
func tuple(b []byte, vals ...string) []byte {
	b = be16(b, uint16(len(vals)))
	for _, v := range vals {
		switch v {
		case "\x00n":
			b = append(b, 'n')
		case "\x00u":
			b = append(b, 'u')
		default:
			b = be32(append(b, 't'), uint32(len(v)))
			b = append(b, v...)
		}
	}
	return b
}

func msgInsert(rel uint32, vals ...string) []byte {
	return tuple(append(be32([]byte{'I'}, rel), 'N'), vals...)
}

func msgUpdate(rel uint32, oldKind byte, old []string, vals ...string) []byte {
	b := be32([]byte{'U'}, rel)
	if oldKind != 0 {
		b = tuple(append(b, oldKind), old...)
	}
	return tuple(append(b, 'N'), vals...)
}

func msgDelete(rel uint32, kind byte, old ...string) []byte {
	return tuple(append(be32([]byte{'D'}, rel), kind), old...)
}

func msgTruncate(opts byte, rels ...uint32) []byte {
	b := be32([]byte{'T'}, uint32(len(rels)))
	b = append(b, opts)
	for _, r := range rels {
		b = be32(b, r)
	}
	return b
}

// feed decodes msgs in order at LSNs 0/100, 0/200, … and returns all events.
func feed(t *testing.T, d *Decoder, msgs ...[]byte) []change.Event {
	t.Helper()
	var all []change.Event
	for i, m := range msgs {
		evs, err := d.Decode(pglogrepl.LSN(100*(i+1)), m)
		if err != nil {
			t.Fatalf("message %d (%q): %v", i, m[0], err)
		}
		all = append(all, evs...)
	}
	return all
}

func kinds(evs []change.Event) string {
	var b strings.Builder
	for _, e := range evs {
		b.WriteString(map[change.EventKind]string{change.EvBegin: "B", change.EvChange: "X", change.EvCommit: "C", change.EvPosition: "P"}[e.Kind])
	}
	return b.String()
}

var relA = msgRelation(16384, "public", "a", 'd', col{"id", true}, col{"v", false})

func TestDecoderTransaction(t *testing.T) {
	d := NewDecoder(nil)
	evs := feed(t, d,
		relA, // announced outside a transaction: allowed, emits nothing
		msgBegin(0x500, 7),
		msgInsert(16384, "1", "x"),
		msgUpdate(16384, 'K', []string{"1", "\x00n"}, "2", "\x00u"),
		msgUpdate(16384, 0, nil, "2", "y"),
		msgDelete(16384, 'K', "2", "\x00n"),
		msgTruncate(3, 16384),
		msgCommit(0x500, 0x600),
	)
	if got := kinds(evs); got != "BXXXXXC" {
		t.Fatalf("events %s, want BXXXXXC", got)
	}
	tx := evs[0].Txn
	if tx.Xid != 7 || tx.FinalLSN != 0x500 || tx.EndLSN != 0x600 || tx.Origin != "" {
		t.Errorf("txn %+v", tx)
	}
	if evs[0].LSN != 200 {
		t.Errorf("Begin LSN %s, want the Begin message's 0/C8", evs[0].LSN)
	}
	ins := evs[1].Change
	if ins.Op != change.Insert || ins.Rel.Table != tbl("public", "a") || rowString(ins.New) != "(1,x)" || ins.Old != nil || ins.LSN != 300 {
		t.Errorf("insert %+v new %s", ins, rowString(ins.New))
	}
	if !ins.Rel.Columns[0].Key || ins.Rel.Columns[1].Key || ins.Rel.ReplicaIdentity != 'd' {
		t.Errorf("relation %+v", ins.Rel)
	}
	upd := evs[2].Change
	if upd.Op != change.Update || !upd.OldIsKey || rowString(upd.Old) != "(1,NULL)" || rowString(upd.New) != "(2,<unchanged>)" {
		t.Errorf("key update: old %s (key %v) new %s", rowString(upd.Old), upd.OldIsKey, rowString(upd.New))
	}
	if upd := evs[3].Change; upd.Old != nil || upd.OldIsKey {
		t.Errorf("plain update has old %s", rowString(upd.Old))
	}
	del := evs[4].Change
	if del.Op != change.Delete || !del.OldIsKey || rowString(del.Old) != "(2,NULL)" || del.New != nil {
		t.Errorf("delete: old %s new %s", rowString(del.Old), rowString(del.New))
	}
	tr := evs[5].Change
	if tr.Op != change.Truncate || !tr.Cascade || !tr.RestartIdentity || len(tr.Truncated) != 1 || tr.Truncated[0] != ins.Rel {
		t.Errorf("truncate %+v", tr)
	}
	if evs[6].LSN != 0x600 {
		t.Errorf("commit event LSN %s", evs[6].LSN)
	}
}

func TestDecoderValuesDoNotAliasInput(t *testing.T) {
	d := NewDecoder(nil)
	feed(t, d, relA, msgBegin(1, 1))
	m := msgInsert(16384, "1", "abc")
	evs, err := d.Decode(300, m)
	if err != nil {
		t.Fatal(err)
	}
	for i := range m {
		m[i] = 'Z'
	}
	if got := rowString(evs[1].Change.New); got != "(1,abc)" {
		t.Fatalf("after overwriting the message buffer the row reads %s: values alias the input", got)
	}
}

func TestDecoderRelationReannounced(t *testing.T) {
	d := NewDecoder(nil)
	evs := feed(t, d, relA, msgBegin(1, 1), msgInsert(16384, "1", "x"),
		msgRelation(16384, "public", "a", 'f', col{"id", true}, col{"v", false}, col{"w", false}),
		msgInsert(16384, "2", "y", "z"), msgCommit(1, 2))
	first, second := evs[1].Change.Rel, evs[2].Change.Rel
	if first == second || len(first.Columns) != 2 || len(second.Columns) != 3 || second.ReplicaIdentity != 'f' {
		t.Fatalf("re-announced relation: first %+v second %+v", first, second)
	}
	if d.Relation(16384) != second {
		t.Fatalf("Relation returns the old version")
	}
}

func TestDecoderOrigin(t *testing.T) {
	skip := func(o string) bool { return strings.HasPrefix(o, "cdcbridge_") }
	d := NewDecoder(skip)
	evs := feed(t, d,
		msgBegin(0x500, 1), msgOrigin("cdcbridge_shop_forward"),
		// A relation announced inside a skipped transaction must still be known later.
		relA, msgInsert(16384, "1", "x"), msgCommit(0x500, 0x600),
		msgBegin(0x700, 2), msgOrigin("someone_else"), msgInsert(16384, "2", "y"), msgCommit(0x700, 0x800),
		msgBegin(0x900, 3), msgInsert(16384, "3", "z"), msgCommit(0x900, 0xa00),
	)
	if got := kinds(evs); got != "PBXCBXC" {
		t.Fatalf("events %s, want PBXCBXC", got)
	}
	if evs[0].LSN != 0x600 {
		t.Errorf("position of the skipped transaction %s, want its end 0/600", evs[0].LSN)
	}
	if evs[1].Txn.Origin != "someone_else" || evs[1].Txn.Xid != 2 {
		t.Errorf("forwarded transaction %+v, want origin someone_else", evs[1].Txn)
	}
	if evs[4].Txn.Origin != "" || evs[4].Txn.Xid != 3 {
		t.Errorf("plain transaction %+v", evs[4].Txn)
	}
}

func TestDecoderKeepalive(t *testing.T) {
	d := NewDecoder(nil)
	if ev, ok := d.Keepalive(0x100); !ok || ev.Kind != change.EvPosition || ev.LSN != 0x100 {
		t.Fatalf("idle keepalive: %+v %v", ev, ok)
	}
	if _, ok := d.Keepalive(0x100); ok {
		t.Fatalf("a keepalive that did not move made a position")
	}
	feed(t, d, relA, msgBegin(0x500, 1))
	if _, ok := d.Keepalive(0x200); ok {
		t.Fatalf("keepalive while a Begin is held back made a position")
	}
	feed(t, d, msgInsert(16384, "1", "x"))
	if _, ok := d.Keepalive(0x300); ok {
		t.Fatalf("keepalive inside a transaction made a position")
	}
	feed(t, d, msgCommit(0x500, 0x600))
	if _, ok := d.Keepalive(0x580); ok {
		t.Fatalf("keepalive behind the last commit made a position")
	}
	if ev, ok := d.Keepalive(0x700); !ok || ev.LSN != 0x700 {
		t.Fatalf("keepalive after the commit: %+v %v", ev, ok)
	}
}

func TestDecoderErrors(t *testing.T) {
	ins := msgInsert(16384, "1", "hello")
	tests := []struct {
		name  string
		setup [][]byte
		msg   []byte
		want  string
	}{
		{"empty", nil, nil, "empty message"},
		{"unknown type", nil, []byte{'Z', 1, 2, 3}, "unknown (type byte 0x5a)"},
		{"unknown relation", [][]byte{msgBegin(1, 1)}, msgInsert(99, "1"), "relation 99"},
		{"change outside txn", [][]byte{relA}, ins, "outside a transaction"},
		{"commit outside txn", nil, msgCommit(1, 2), "outside a transaction"},
		{"begin inside txn", [][]byte{relA, msgBegin(1, 1), ins}, msgBegin(3, 2), "while transaction 1 is open"},
		{"origin after a change", [][]byte{relA, msgBegin(1, 1), ins}, msgOrigin("x"), "does not directly follow"},
		{"column count", [][]byte{relA, msgBegin(1, 1)}, msgInsert(16384, "1"), "has 1 columns, the relation 2"},
		{"binary value", [][]byte{relA, msgBegin(1, 1)}, append(append(be32([]byte{'I'}, 16384), 'N', 0, 2, 'n', 'b', 0, 0, 0, 1), 'x'), "not text"},
		{"bad tuple kind", [][]byte{relA, msgBegin(1, 1)}, append(be32([]byte{'I'}, 16384), 'N', 0, 1, 'q'), "unknown format"},
		{"huge length", [][]byte{relA, msgBegin(1, 1)}, append(be32([]byte{'I'}, 16384), 'N', 0, 1, 't', 0xff, 0xff, 0xff, 0xff, 'x'), "needs 4294967295 bytes"},
		{"huge truncate", [][]byte{relA, msgBegin(1, 1)}, []byte{'T', 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0x40, 0}, "relation ids"},
		{"trailing bytes", [][]byte{relA, msgBegin(1, 1)}, append(msgInsert(16384, "1", "x"), 0), "unexpected bytes"},
		{"update without new tuple", [][]byte{relA, msgBegin(1, 1)}, tuple(append(be32([]byte{'U'}, 16384), 'K'), "1", "\x00n"), "tuple type missing"},
		{"short relation", nil, relA[:12], "Relation message at LSN 0/2A"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := NewDecoder(nil)
			feedNoCheck := func() {
				for _, m := range tt.setup {
					if _, err := d.Decode(1, m); err != nil {
						t.Fatalf("setup %q: %v", m, err)
					}
				}
			}
			feedNoCheck()
			_, err := d.Decode(42, tt.msg)
			if err == nil {
				t.Fatalf("Decode(%q) succeeded", tt.msg)
			}
			if !strings.Contains(err.Error(), "0/2A") || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Decode(%q) = %v, want an error naming LSN 0/2A and %q", tt.msg, err, tt.want)
			}
		})
	}
}

// checkCuts feeds every proper prefix of msg (after setup) to a fresh
// decoder: each must fail with an error naming the LSN, none may panic; the
// whole message must decode.
func checkCuts(t *testing.T, setup [][]byte, msg []byte) {
	t.Helper()
	fresh := func() *Decoder {
		d := NewDecoder(nil)
		for _, m := range setup {
			if _, err := d.Decode(1, m); err != nil {
				t.Fatalf("setup: %v", err)
			}
		}
		return d
	}
	for n := 0; n < len(msg); n++ {
		cut := append([]byte(nil), msg[:n]...)
		_, err := fresh().Decode(0x16B3748, cut)
		if err == nil {
			t.Fatalf("the first %d of %d bytes of the message decoded without error: %q", n, len(msg), cut)
		}
		if !strings.Contains(err.Error(), "0/16B3748") {
			t.Fatalf("error for the first %d bytes does not name the LSN: %v", n, err)
		}
	}
	if _, err := fresh().Decode(0x16B3748, msg); err != nil {
		t.Fatalf("the whole message: %v", err)
	}
}

func TestDecoderTruncatedMessages(t *testing.T) {
	open := [][]byte{relA, msgBegin(1, 1)}
	for name, m := range map[string][]byte{
		"insert":       msgInsert(16384, "1", "hello"),
		"insert nulls": msgInsert(16384, "\x00n", "\x00u"),
		"update key":   msgUpdate(16384, 'K', []string{"1", "\x00n"}, "2", "x"),
		"update full":  msgUpdate(16384, 'O', []string{"1", "a"}, "1", "b"),
		"delete":       msgDelete(16384, 'K', "1", "\x00n"),
		"truncate":     msgTruncate(0, 16384),
		"commit":       msgCommit(1, 2),
		"origin":       msgOrigin("cdcbridge_x"),
		"begin":        msgBegin(1, 1),
		"relation":     relA,
	} {
		t.Run(name, func(t *testing.T) {
			setup := open
			switch name {
			case "begin", "relation":
				setup = nil
			case "origin":
				setup = [][]byte{msgBegin(1, 1)}
			}
			checkCuts(t, setup, m)
		})
	}
}

// TestDecoderGarbage throws random bytes, and random corruptions of valid
// messages, at a decoder: errors are fine, panics are not.
func TestDecoderGarbage(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	valid := [][]byte{relA, msgBegin(1, 1), msgInsert(16384, "1", "hello"), msgUpdate(16384, 'O', []string{"1", "a"}, "1", "b"),
		msgDelete(16384, 'K', "1", "\x00n"), msgTruncate(1, 16384), msgCommit(1, 2), msgOrigin("o")}
	deadline := time.Now().Add(2 * time.Second)
	for i := 0; i < 20000 && time.Now().Before(deadline); i++ {
		var m []byte
		if i%2 == 0 {
			m = make([]byte, rng.Intn(40))
			rng.Read(m)
			if len(m) > 0 {
				m[0] = "BCORYIUDTMZ"[rng.Intn(11)]
			}
		} else {
			m = append([]byte(nil), valid[rng.Intn(len(valid))]...)
			for j := 0; j <= rng.Intn(3); j++ {
				m[rng.Intn(len(m))] = byte(rng.Intn(256))
			}
		}
		d := NewDecoder(nil)
		d.Decode(1, relA)
		d.Decode(2, msgBegin(1, 1))
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Fatalf("Decode(%q) panicked: %v", m, r)
				}
			}()
			d.Decode(3, m)
		}()
	}
}

func FuzzDecoder(f *testing.F) {
	for _, m := range [][]byte{relA, msgInsert(16384, "1", "x"), msgUpdate(16384, 'K', []string{"1", "\x00n"}, "2", "\x00u"),
		msgDelete(16384, 'O', "1", "x"), msgTruncate(3, 16384), msgCommit(1, 2), msgOrigin("o"), msgBegin(1, 1)} {
		f.Add(m)
	}
	f.Fuzz(func(t *testing.T, m []byte) {
		d := NewDecoder(nil)
		d.Decode(1, relA)
		d.Decode(2, msgBegin(1, 1))
		if _, err := d.Decode(3, m); err != nil && !strings.Contains(err.Error(), "0/3") {
			t.Fatalf("error does not name the LSN: %v", err)
		}
	})
}
