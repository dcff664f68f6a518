package check

import (
	"fmt"
	"strings"

	"github.com/cdcbridge/cdcbridge/catalog"
	"github.com/cdcbridge/cdcbridge/change"
	"github.com/cdcbridge/cdcbridge/config"
	"github.com/cdcbridge/cdcbridge/finding"
	"github.com/cdcbridge/cdcbridge/replication"
)

// keyFindings checks that every table written can find the rows that the
// updates and deletes of the table read name, as PostgreSQL's apply worker
// would: by the entry's key: columns, the table's primary key, a unique
// index on NOT NULL columns, or else (no key at all) the whole old row,
// which only REPLICA IDENTITY FULL on the table read sends. A table read
// without a replica identity is insert-only while it is published, which
// is a warning: the source rejects its updates and deletes.
func keyFindings(v config.View, s *databases) []finding.Finding {
	m, dir := v.Mapping(), v.Direction
	readSide, writeSide := v.ReadName, v.WriteName
	var fs []finding.Finding
	warned := map[change.Table]bool{}
	for _, e := range m.Tables {
		rt, wt, key := e.Reads(dir), e.Writes(dir), e.WriteKey(dir)
		rinfo, info := s.readCat.Table(rt), s.writeCat.Table(wt)
		if rinfo != nil && !warned[rt] {
			warned[rt] = true
			if p := replication.ReplicaIdentityWarning(rt, rinfo.ReplicaIdentity, len(rinfo.Key) > 0, len(rinfo.IdentityIndexKey) > 0); p != nil {
				fs = append(fs, finding.Finding{Where: readSide + " table " + rt.String(), OK: true, Message: "warning: " + p.Message, Fix: p.Fix})
			}
		}
		if info == nil {
			continue
		}
		if rinfo != nil && (sendsKey(rinfo) || rinfo.ReplicaIdentity == 'f') {
			// The other direction publishes the table written: without a
			// replica identity its server rejects the updates and deletes
			// applied to it.
			if p := replication.ReplicaIdentityWarning(wt, info.ReplicaIdentity, len(info.Key) > 0, len(info.IdentityIndexKey) > 0); p != nil {
				fs = append(fs, finding.Finding{Where: e.Name(), Message: fmt.Sprintf("%s has no replica identity, and the other direction publishes it, so the %s rejects the updates and deletes of %s applied to it", wt, writeSide, rt),
					Fix: fmt.Sprintf("ALTER TABLE %s REPLICA IDENTITY FULL, or give it a primary key (or REPLICA IDENTITY USING INDEX on a unique index of NOT NULL columns)", wt)})
			}
		}
		switch {
		case len(key) > 0:
			bad := false
			for _, k := range key {
				if info.Column(k) == nil {
					bad = true
					fs = append(fs, finding.Finding{Where: e.Name(), Message: fmt.Sprintf("key column %q is not a column of %s, the %s table", k, wt, writeSide),
						Fix: "key: [...] names columns that both tables have; name each table's own with key: {source: [...], target: [...]}"})
				}
			}
			if !bad && !info.IsUniqueKey(key) {
				fs = append(fs, finding.Finding{Where: e.Name(), Message: fmt.Sprintf("no unique index on (%s) of %s: inserts are applied as upserts on the key", strings.Join(key, ", "), wt), Fix: fmt.Sprintf("CREATE UNIQUE INDEX ON %s (%s)", wt, strings.Join(quoteAll(key), ", "))})
			}
		case len(info.RowKey()) > 0 || rinfo == nil:
		case rinfo.ReplicaIdentity == 'f':
			fs = append(fs, finding.Finding{Where: e.Name(), OK: true, Message: fmt.Sprintf("%s has no key: an update or delete changes one row that matches the whole old row, which REPLICA IDENTITY FULL on %s sends", wt, rt)})
		case sendsKey(rinfo):
			fs = append(fs, finding.Finding{Where: e.Name(), Message: fmt.Sprintf("%s has no key, and the updates and deletes of %s carry only its key, not the whole old row, so they cannot find their row", wt, rt),
				Fix: fmt.Sprintf("give %s a primary key or a unique index on NOT NULL columns, name its key columns with key: in the mapping, or ALTER TABLE %s REPLICA IDENTITY FULL on the %s", wt, rt, readSide)})
		}
	}
	return fs
}

// sendsKey reports whether the updates and deletes of a table read carry
// the old values of a key (and only those).
func sendsKey(t *catalog.Table) bool {
	switch t.ReplicaIdentity {
	case 'd':
		return len(t.Key) > 0
	case 'i':
		return len(t.IdentityIndexKey) > 0
	}
	return false
}
