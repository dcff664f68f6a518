package snapshot

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/jackc/pgx/v5"

	"github.com/cdcbridge/cdcbridge/catalog"
	"github.com/cdcbridge/cdcbridge/change"
	"github.com/cdcbridge/cdcbridge/transform"
)

// tableCopy is one table being copied, in one part or several.
type tableCopy struct {
	t        change.Table
	info     *catalog.Table
	rel      *change.Relation
	cols     string       // the quoted columns read, in rel's order
	pass     *passThrough // nil: the rows go through the mapper
	estimate int64
	parts    int

	mu            sync.Mutex
	finished      int // parts whose rows are written
	read, written int64
	// committed receives one value per part committed before the last
	// one, which waits for them all (it has room for every part).
	committed chan struct{}

	// For the progress reports: the rows and bytes read so far (of parts
	// running and done), when its first part began (unix ns, 0: not yet),
	// and whether every part is committed (set under reporting, which
	// keeps a report of the copy running from following the last one).
	rows, bytes atomic.Int64
	began       atomic.Int64
	reporting   sync.Mutex
	done        bool
}

// part is a range of a table's heap blocks, copied in one transaction on
// each side. Together the parts of a table cover every block: the first
// has no lower bound, the last no upper bound, so a row in a block the
// table grew by after it was measured is still read (by the last part).
type part struct {
	tab    *tableCopy
	lo, hi int64 // blocks [lo, hi); lo 0: from the start; hi 0: to the end
	n      int   // 1-based, of tab.parts
	blocks int64 // about how many blocks it reads
}

// where limits a read to the part's blocks by ctid, which PostgreSQL scans
// as a TID range (only those blocks are read). A partitioned table's
// parts take the same block range of each partition.
func (p *part) where() string {
	var c []string
	if p.lo > 0 {
		c = append(c, "ctid >= '("+strconv.FormatInt(p.lo, 10)+",0)'::tid")
	}
	if p.hi > 0 {
		c = append(c, "ctid < '("+strconv.FormatInt(p.hi, 10)+",0)'::tid")
	}
	if len(c) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(c, " AND ")
}

// selectSQL reads the part's rows: a plain table without its inheritance
// children, which its publication does not carry either; a partitioned
// table through its partitions, which are published under its name.
func (p *part) selectSQL() string {
	from := " FROM ONLY "
	if p.tab.info.Kind == 'p' {
		from = " FROM "
	}
	return "SELECT " + p.tab.cols + from + p.tab.t.String() + p.where()
}

// plan describes every table and cuts the large ones into parts (see
// Options.PartBytes). Sizes are read outside the snapshot: they only decide
// where the parts meet, and the last part of a table reads to its end.
// The parts come largest first, so that the workers finish together.
func plan(ctx context.Context, q *pgx.Conn, o Options) ([]*tableCopy, []*part, error) {
	var (
		tabs   []*tableCopy
		blocks []int64 // by table; 0 for a table that cannot be cut
		total  int64
		bs     int64
	)
	for _, t := range o.Tables {
		info := o.ReadCat.Table(t)
		if info == nil {
			return nil, nil, fmt.Errorf("initial copy: %s is not in the catalog of the side read", t)
		}
		tc := &tableCopy{t: t, info: info, rel: info.Relation()}
		cols := make([]string, len(tc.rel.Columns))
		for i, c := range tc.rel.Columns {
			cols[i] = pgx.Identifier{c.Name}.Sanitize()
		}
		tc.cols = strings.Join(cols, ", ")
		tc.pass = planPassThrough(o.Specs, tc, o.ReadCat, o.WriteCat)
		// A partitioned table is measured by its largest partition, since a
		// part takes its block range of each. Only heap tables (every leaf
		// a plain table) can be cut by ctid.
		var size int64
		var heap bool
		leaves := `SELECT $1::oid AS relid`
		if info.Kind == 'p' {
			leaves = `SELECT relid FROM pg_partition_tree($1::oid::regclass) WHERE isleaf`
		}
		err := q.QueryRow(ctx, `
			SELECT coalesce(max(pg_relation_size(c.oid)), 0), current_setting('block_size')::bigint,
			       coalesce(bool_and(c.relkind = 'r'), false),
			       coalesce(sum(greatest(c.reltuples, 0)), 0)::bigint
			FROM (`+leaves+`) l JOIN pg_class c ON c.oid = l.relid`, info.OID).Scan(&size, &bs, &heap, &tc.estimate)
		if err != nil {
			return nil, nil, fmt.Errorf("initial copy: measuring %s: %w", t, err)
		}
		b := size / max(bs, 1)
		if !heap {
			b = 0
		}
		tabs = append(tabs, tc)
		blocks = append(blocks, b)
		total += b
	}
	// Parts of one table written at once slow each other down (they insert
	// into the same heap and indexes, away from the end where PostgreSQL
	// appends fastest), so by default a table is cut only as much as it
	// takes to keep every worker busy: into parts of about an even share
	// of all the tables, and never smaller than minPartBytes.
	per := o.PartBytes / max(bs, 1)
	if o.PartBytes == 0 {
		per = max(minPartBytes/max(bs, 1), (total+int64(o.Workers)-1)/int64(o.Workers))
	}
	var parts []*part
	for k, tc := range tabs {
		n := int64(1)
		if per > 0 && blocks[k] > per {
			n = min((blocks[k]+per-1)/per, int64(maxParts))
		}
		tc.parts = int(n)
		tc.committed = make(chan struct{}, n)
		size := (blocks[k] + n - 1) / n
		for i := int64(0); i < n; i++ {
			p := &part{tab: tc, lo: i * size, hi: (i + 1) * size, n: int(i) + 1, blocks: size}
			if i == n-1 {
				p.hi = 0
				p.blocks = blocks[k] - i*size
			}
			parts = append(parts, p)
		}
	}
	slices.SortStableFunc(parts, func(a, b *part) int { return cmp.Compare(b.blocks, a.blocks) })
	return tabs, parts, nil
}

// minPartBytes is the smallest part a table is cut into by default.
const minPartBytes = 32 << 20

// maxParts bounds the parts of one table.
const maxParts = 64

// passThrough is how the rows of a table whose only entry maps columns by
// name go to its target when every column read lands in a column of the
// same built-in type (binaryTypes): in PostgreSQL's binary COPY form, from one server to
// the other, without being decoded here. The values are those the text
// path would write (the mapping by name passes them through untouched),
// minus the two conversions to text and back.
type passThrough struct {
	write change.Table
}

// binaryTypes are the built-in types whose binary form is the same in
// every database: not the reg* types, whose binary form is an OID that
// names a different object on the other side (their text form names the
// object), and not a type without a binary form (aclitem). An array is
// safe when its element type is. The binary form of an array or a
// composite of a user type names that type's OID, which differs between
// the two sides: those go through text.
var binaryTypes = map[uint32]bool{
	16: true, 17: true, 18: true, 19: true, 20: true, 21: true, 23: true, 25: true, 26: true, // bool bytea char name int8 int2 int4 text oid
	114: true, 142: true, 3802: true, 4072: true, // json xml jsonb jsonpath
	600: true, 601: true, 602: true, 603: true, 604: true, 628: true, 718: true, // point lseg path box polygon line circle
	650: true, 869: true, 774: true, 829: true, // cidr inet macaddr8 macaddr
	700: true, 701: true, 790: true, 1700: true, // float4 float8 money numeric
	1042: true, 1043: true, 1560: true, 1562: true, // bpchar varchar bit varbit
	1082: true, 1083: true, 1114: true, 1184: true, 1186: true, 1266: true, // date time timestamp timestamptz interval timetz
	2950: true, 3220: true, 3614: true, 3615: true, // uuid pg_lsn tsvector tsquery
	3904: true, 3906: true, 3908: true, 3910: true, 3912: true, 3926: true, // int4 num ts tstz date int8 ranges
	4451: true, 4532: true, 4533: true, 4534: true, 4535: true, 4536: true, // and their multiranges
}

// binarySafe reports whether values of the type pass between the two
// databases in binary form unchanged.
func binarySafe(cat *catalog.Catalog, oid uint32) bool {
	if binaryTypes[oid] {
		return true
	}
	t := cat.Type(oid)
	return t != nil && t.Category == 'A' && t.Elem != 0 && binaryTypes[t.Elem]
}

// planPassThrough returns how tc passes through, or nil when its rows must
// go through the mapper: a transform, several entries reading the table,
// a column missing, generated or of another type on the target.
func planPassThrough(specs []transform.Spec, tc *tableCopy, read, write *catalog.Catalog) *passThrough {
	var spec *transform.Spec
	for i := range specs {
		if specs[i].Read != tc.t {
			continue
		}
		if spec != nil {
			return nil
		}
		spec = &specs[i]
	}
	if spec == nil || spec.Script != "" || len(tc.rel.Columns) == 0 {
		return nil
	}
	wt := write.Table(spec.Write)
	if wt == nil {
		return nil
	}
	for _, c := range tc.rel.Columns {
		wc := wt.Column(c.Name)
		if wc == nil || wc.Generated || wc.TypeOID != c.TypeOID || !binarySafe(read, c.TypeOID) {
			return nil
		}
	}
	return &passThrough{write: spec.Write}
}
