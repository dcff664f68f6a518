package sequences

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/cdcbridge/cdcbridge/change"
	"github.com/cdcbridge/cdcbridge/config"
)

// Seq is a sequence and the column it stands behind.
type Seq struct {
	// Table and Column name the column the sequence feeds. They are for
	// messages: Sync uses only Sequence.
	Table  change.Table
	Column string
	// Sequence is the schema-qualified sequence name as regclass prints it
	// with quote_ident: public.orders_id_seq, "Shop"."Order Lines_Id_seq".
	Sequence string
}

// String describes the sequence for messages: public.orders.id (public.orders_id_seq).
func (s Seq) String() string {
	if s.Column == "" {
		return s.Sequence
	}
	return fmt.Sprintf("%s.%s.%s (%s)", ident(s.Table.Schema), ident(s.Table.Name), ident(s.Column), s.Sequence)
}

// ident quotes a name for messages the way quote_ident does, but for
// keywords: only when it is not all lower case letters, digits and
// underscores, or starts with a digit.
func ident(s string) string {
	plain := s != ""
	for i, r := range s {
		switch {
		case r == '_' || (r >= 'a' && r <= 'z'):
		case r >= '0' && r <= '9':
			plain = plain && i > 0
		default:
			plain = false
		}
	}
	if plain {
		return s
	}
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}

// Pair is a sequence on the sending side and the one on the receiving side
// that must stay at least as far.
type Pair struct {
	// Entry names the mapping entry the pair was found for (Entry.Name), for
	// messages.
	Entry string
	From  Seq
	To    Seq
}

// Querier is what Discover needs of a connection.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// Discover finds the sequence pairs of every entry of m, oriented for
// direction dir: From on the side dir reads (the source going forward),
// To on the side it writes. src and tgt are connections to the source and
// target slices, whatever the direction. A mapped table missing on either
// side is an error; a table without sequences simply contributes no pair.
func Discover(ctx context.Context, src, tgt Querier, m *config.Mapping, dir config.Direction) ([]Pair, error) {
	srcCols := map[change.Table][]column{}
	tgtCols := map[change.Table][]column{}
	load := func(q Querier, cache map[change.Table][]column, t change.Table, side string) ([]column, error) {
		if cols, ok := cache[t]; ok {
			return cols, nil
		}
		cols, err := loadColumns(ctx, q, t)
		if err != nil {
			return nil, fmt.Errorf("finding the sequences of %s on the %s: %w", t, side, err)
		}
		if cols == nil {
			return nil, fmt.Errorf("finding the sequences of %s on the %s: the table does not exist", t, side)
		}
		cache[t] = cols
		return cols, nil
	}
	var found []Pair
	for _, e := range m.Tables {
		sc, err := load(src, srcCols, e.Source, "source")
		if err != nil {
			return nil, fmt.Errorf("%s: %w", e.Name(), err)
		}
		tc, err := load(tgt, tgtCols, e.Target, "target")
		if err != nil {
			return nil, fmt.Errorf("%s: %w", e.Name(), err)
		}
		if len(e.Key) > 0 {
			tc = withKey(tc, e.Key)
		}
		found = append(found, match(e, sc, tc, dir)...)
	}
	return Merge(nil, found, nil), nil
}

// column is one column of a table, with the sequence behind it ("" when
// none) and whether it belongs to the table's key.
type column struct {
	name string
	key  bool
	seq  string
}

// loadColumns returns every live column of t, or nil when t does not exist.
//
// The sequence behind a column is pg_get_serial_sequence's (owned sequences:
// serial and identity columns), or else the single sequence that a
// nextval(...) default depends on: a nextval('x'::regclass) default records
// a dependency on x, which is exact where parsing the expression's text
// would have to redo PostgreSQL's quoting and search_path rules.
func loadColumns(ctx context.Context, q Querier, t change.Table) ([]column, error) {
	rows, err := q.Query(ctx, `
		SELECT a.attname,
		       coalesce(a.attnum = ANY (k.indkey::int2[]), false),
		       coalesce(quote_ident(sn.nspname) || '.' || quote_ident(s.relname), '')
		FROM pg_class c
		JOIN pg_namespace n ON n.oid = c.relnamespace
		JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
		LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
		LEFT JOIN LATERAL (
			SELECT i.indkey FROM pg_index i
			WHERE i.indrelid = c.oid AND (i.indisprimary OR i.indisreplident)
			ORDER BY i.indisprimary DESC
			LIMIT 1) k ON true
		CROSS JOIN LATERAL (
			SELECT coalesce(
				pg_get_serial_sequence(quote_ident(n.nspname) || '.' || quote_ident(c.relname), a.attname)::regclass::oid,
				(SELECT CASE WHEN count(*) = 1 THEN min(dep.refobjid) END
				 FROM pg_depend dep
				 JOIN pg_class ds ON ds.oid = dep.refobjid AND ds.relkind = 'S'
				 WHERE pg_get_expr(d.adbin, d.adrelid) ~ '^nextval\('
				   AND dep.classid = 'pg_attrdef'::regclass AND dep.objid = d.oid
				   AND dep.refclassid = 'pg_class'::regclass)) AS oid) x
		LEFT JOIN pg_class s ON s.oid = x.oid
		LEFT JOIN pg_namespace sn ON sn.oid = s.relnamespace
		WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')
		ORDER BY a.attnum`, t.Schema, t.Name)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var cols []column
	for rows.Next() {
		var c column
		if err := rows.Scan(&c.name, &c.key, &c.seq); err != nil {
			return nil, err
		}
		cols = append(cols, c)
	}
	return cols, rows.Err()
}

// withKey returns a copy of cols whose key is exactly the named columns.
func withKey(cols []column, key []string) []column {
	out := slices.Clone(cols)
	for i := range out {
		out[i].key = slices.Contains(key, out[i].name)
	}
	return out
}

// match pairs the sequence-backed columns of an entry's two tables.
func match(e config.Entry, src, tgt []column, dir config.Direction) []Pair {
	var (
		pairs        []Pair
		usedS, usedT = map[string]bool{}, map[string]bool{}
	)
	add := func(s, t column) {
		from := Seq{Table: e.Source, Column: s.name, Sequence: s.seq}
		to := Seq{Table: e.Target, Column: t.name, Sequence: t.seq}
		if dir == config.Reverse {
			from, to = to, from
		}
		pairs = append(pairs, Pair{Entry: e.Name(), From: from, To: to})
		usedS[s.name], usedT[t.name] = true, true
	}
	for _, s := range src {
		if s.seq == "" {
			continue
		}
		if i := slices.IndexFunc(tgt, func(t column) bool { return t.name == s.name }); i >= 0 && tgt[i].seq != "" {
			add(s, tgt[i])
		}
	}
	if e.Transform == "" {
		return pairs
	}
	// A transform may rename the key (orders.id -> orders_v2.order_id).
	// The rows it writes keep the sender's ids there, so the two key
	// sequences must stay in step even though the names differ. With more
	// than one candidate on a side there is no telling which goes with
	// which; the mapping has to name them.
	sk, tk := keySeqs(src), keySeqs(tgt)
	if len(sk) == 1 && len(tk) == 1 && !usedS[sk[0].name] && !usedT[tk[0].name] {
		add(sk[0], tk[0])
	}
	return pairs
}

func keySeqs(cols []column) []column {
	var out []column
	for _, c := range cols {
		if c.key && c.seq != "" {
			out = append(out, c)
		}
	}
	return out
}

// Merge returns the pairs of base that drop does not reject (drop may be
// nil), followed by the pairs of add, leaving out every pair that joins the
// same two sequences as an earlier one. It is how pairs named in a mapping
// join and override the discovered ones: Merge(discovered, named, excluded).
// Sequence names compare as PostgreSQL resolves them, so public.s, s and
// "public"."s" are one sequence.
func Merge(base, add []Pair, drop func(Pair) bool) []Pair {
	type key struct{ from, to string }
	seen := map[key]bool{}
	var out []Pair
	keep := func(p Pair) {
		k := key{canonical(p.From.Sequence), canonical(p.To.Sequence)}
		if !seen[k] {
			seen[k] = true
			out = append(out, p)
		}
	}
	for _, p := range base {
		if drop == nil || !drop(p) {
			keep(p)
		}
	}
	for _, p := range add {
		keep(p)
	}
	return out
}

// canonical returns the quoted, schema-qualified form of a sequence name, or
// the name itself when it does not parse (Sync reports that).
func canonical(name string) string {
	t, err := change.ParseTable(name)
	if err != nil {
		return name
	}
	return t.String()
}
