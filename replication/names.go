package replication

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/cdcbridge/cdcbridge/change"
)

// namePattern is the allow-list for the slot and publication names the bridge
// generates: what PostgreSQL accepts for a slot name, minus the digits and
// underscores at the start, and short enough (63 bytes) not to be truncated.
var namePattern = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)

// ValidName reports an error when name may not be used for a slot or a
// publication: it must match ^[a-z][a-z0-9_]{0,62}$.
func ValidName(kind, name string) error {
	if !namePattern.MatchString(name) {
		return fmt.Errorf("%s name %q is not allowed: use 1 to 63 characters of a-z, 0-9 and _, starting with a letter", kind, name)
	}
	return nil
}

// ident quotes one identifier.
func ident(name string) string { return pgx.Identifier{name}.Sanitize() }

// tableList renders tables as a comma-separated list of quoted names.
func tableList(tables []change.Table) string {
	parts := make([]string, len(tables))
	for i, t := range tables {
		parts[i] = t.String()
	}
	return strings.Join(parts, ", ")
}

// uniqueTables returns tables without duplicates, in their first order.
func uniqueTables(tables []change.Table) []change.Table {
	seen := make(map[change.Table]bool, len(tables))
	out := make([]change.Table, 0, len(tables))
	for _, t := range tables {
		if !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	return out
}
