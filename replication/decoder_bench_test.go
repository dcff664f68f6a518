package replication

import (
	"testing"

	"github.com/jackc/pglogrepl"
)

// BenchmarkDecode decodes transactions of 100 inserts of a five-column row,
// the stream's hot path: one op is one row.
func BenchmarkDecode(b *testing.B) {
	rel := msgRelation(16384, "public", "items", 'd', col{"id", true}, col{"name", false}, col{"qty", false}, col{"price", false}, col{"created", false})
	ins := msgInsert(16384, "12345", "item 12345", "45", "123.45", "2026-11-30 02:00:00.123456+00")
	upd := msgUpdate(16384, 0, nil, "12345", "item 12345+", "46", "123.45", "2026-11-30 02:00:00.123456+00")
	d := NewDecoder(nil)
	if _, err := d.Decode(1, rel); err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		msg  []byte
	}{{"insert", ins}, {"update", upd}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			lsn := pglogrepl.LSN(0x1000)
			for i := 0; i < b.N; i += 100 {
				if _, err := d.Decode(lsn, msgBegin(lsn+0x1000, uint32(i+1))); err != nil {
					b.Fatal(err)
				}
				for j := 0; j < 100; j++ {
					lsn++
					if _, err := d.Decode(lsn, c.msg); err != nil {
						b.Fatal(err)
					}
				}
				lsn += 0x1000
				if _, err := d.Decode(lsn, msgCommit(lsn, lsn+8)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
