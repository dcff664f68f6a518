package apply

import (
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/cdcbridge/cdcbridge/catalog"
	"github.com/cdcbridge/cdcbridge/change"
)

func ident(s string) string { return pgx.Identifier{s}.Sanitize() }

// castType is the type a text value is cast to for a column: the column's
// type without its modifier, so the assignment to the column applies the
// modifier (and its checks) exactly as a plain INSERT would.
func (r *run) castType(col string) string {
	if c := r.info.Column(col); c != nil {
		return c.CastName
	}
	return "text"
}

// buildSQL renders a run's statement. Every value arrives as an element of
// a text[] parameter and is cast to its column's type on the server.
func buildSQL(r *run) string {
	var b strings.Builder
	tbl := r.table.String()
	switch r.op {
	case change.Insert:
		names := make([]string, len(r.cols))
		sel := make([]string, len(r.cols))
		unn := make([]string, len(r.cols))
		alias := make([]string, len(r.cols))
		for i, c := range r.cols {
			names[i] = ident(c)
			alias[i] = fmt.Sprintf("c%d", i+1)
			sel[i] = fmt.Sprintf("u.c%d::%s", i+1, r.castType(c))
			unn[i] = fmt.Sprintf("$%d::text[]", i+1)
		}
		fmt.Fprintf(&b, "INSERT INTO %s (%s)", tbl, strings.Join(names, ", "))
		if r.info.HasIdentityAlways() {
			b.WriteString(" OVERRIDING SYSTEM VALUE")
		}
		fmt.Fprintf(&b, " SELECT %s FROM unnest(%s) AS u(%s)", strings.Join(sel, ", "), strings.Join(unn, ", "), strings.Join(alias, ", "))
		if r.upsert {
			keys := make([]string, len(r.keyCols))
			for i, k := range r.keyCols {
				keys[i] = ident(k)
			}
			var sets []string
			for _, c := range r.cols {
				if indexOf(r.keyCols, c) < 0 {
					sets = append(sets, fmt.Sprintf("%s = EXCLUDED.%s", ident(c), ident(c)))
				}
			}
			fmt.Fprintf(&b, " ON CONFLICT (%s) DO ", strings.Join(keys, ", "))
			if len(sets) == 0 {
				b.WriteString("NOTHING")
			} else {
				b.WriteString("UPDATE SET " + strings.Join(sets, ", "))
			}
		}
	case change.Update:
		nk := len(r.keyCols)
		var sets, unn, alias, where []string
		for i, k := range r.keyCols {
			alias = append(alias, fmt.Sprintf("k%d", i+1))
			unn = append(unn, fmt.Sprintf("$%d::text[]", i+1))
			where = append(where, fmt.Sprintf("t.%s = u.k%d::%s", ident(k), i+1, r.castType(k)))
		}
		for i, c := range r.cols {
			alias = append(alias, fmt.Sprintf("c%d", i+1))
			unn = append(unn, fmt.Sprintf("$%d::text[]", nk+i+1))
			sets = append(sets, fmt.Sprintf("%s = u.c%d::%s", ident(c), i+1, r.castType(c)))
		}
		fmt.Fprintf(&b, "UPDATE %s AS t SET %s FROM unnest(%s) AS u(%s) WHERE %s", tbl,
			strings.Join(sets, ", "), strings.Join(unn, ", "), strings.Join(alias, ", "), strings.Join(where, " AND "))
	case change.Delete:
		if r.keyAny {
			fmt.Fprintf(&b, "DELETE FROM %s AS t WHERE %s", tbl, anyKey(r))
			break
		}
		var unn, alias, where []string
		for i, k := range r.keyCols {
			alias = append(alias, fmt.Sprintf("k%d", i+1))
			unn = append(unn, fmt.Sprintf("$%d::text[]", i+1))
			where = append(where, fmt.Sprintf("t.%s = u.k%d::%s", ident(k), i+1, r.castType(k)))
		}
		fmt.Fprintf(&b, "DELETE FROM %s AS t USING unnest(%s) AS u(%s) WHERE %s", tbl,
			strings.Join(unn, ", "), strings.Join(alias, ", "), strings.Join(where, " AND "))
	}
	return b.String()
}

// anyKey is the condition that a run's only key column is one of its
// keys: a delete by it (DELETE ... WHERE key = ANY) costs the server about
// two thirds of a join with unnest(), and is answered from the key's index.
func anyKey(r *run) string {
	k := r.keyCols[0]
	return fmt.Sprintf("t.%s = ANY($1::text[]::%s[])", ident(k), r.castType(k))
}

// keyAny reports whether a key of one column can be matched with = ANY of
// an array cast from text[]: a type with an equality operator that is not
// itself an array or a composite.
func keyAny(cat *catalog.Catalog, info *catalog.Table, keyCols []string) bool {
	if len(keyCols) != 1 {
		return false
	}
	c := info.Column(keyCols[0])
	if c == nil {
		return false
	}
	t := cat.Type(cat.Resolve(c.TypeOID))
	return t != nil && t.Category != 'A' && t.Typtype != 'c' && cat.HasEquality(c.TypeOID)
}

// buildFullRowSQL renders the statement of one update or delete of a table
// without a key: it changes the first row, locked, whose columns all match
// the old row, NULL matching NULL, as PostgreSQL's apply worker does. The
// new values come first as parameters, then the old row. A column whose
// type has no equality operator (json, xml, point, ...) is compared by its
// text form; the others by their type's equality. The row is named by its
// ctid, with its partition's tableoid for a partitioned table; a plain
// table is changed without its inheritance children, whose ctids overlap.
func buildFullRowSQL(r *run, cat *catalog.Catalog) string {
	tbl := r.table.String()
	only, id, sel := "ONLY ", "ctid", "ctid"
	if r.info.Kind == 'p' {
		only, id, sel = "", "(tableoid, ctid)", "tableoid, ctid"
	}
	n := 0
	param := func() string { n++; return fmt.Sprintf("$%d::text", n) }
	sets := make([]string, len(r.cols))
	for i, c := range r.cols {
		sets[i] = fmt.Sprintf("%s = %s::%s", ident(c), param(), r.castType(c))
	}
	where := make([]string, len(r.keyCols))
	for i, k := range r.keyCols {
		if c := r.info.Column(k); c != nil && cat.HasEquality(c.TypeOID) {
			where[i] = fmt.Sprintf("%s IS NOT DISTINCT FROM %s::%s", ident(k), param(), c.CastName)
		} else {
			where[i] = fmt.Sprintf("%s::text IS NOT DISTINCT FROM %s", ident(k), param())
		}
	}
	find := fmt.Sprintf("%s = (SELECT %s FROM %s%s WHERE %s LIMIT 1 FOR UPDATE)", id, sel, only, tbl, strings.Join(where, " AND "))
	if r.op == change.Delete {
		return fmt.Sprintf("DELETE FROM %s%s WHERE %s", only, tbl, find)
	}
	return fmt.Sprintf("UPDATE %s%s SET %s WHERE %s", only, tbl, strings.Join(sets, ", "), find)
}
