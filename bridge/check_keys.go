package bridge

import (
	"fmt"
	"strings"

	"github.com/cdcbridge/cdcbridge/config"
)

// keyFindings checks that every table written can find its rows: by the
// entry's key columns, or by the table's primary key.
func keyFindings(m *config.Mapping, dir config.Direction, s *setup) []Finding {
	var fs []Finding
	for _, e := range m.Tables {
		wt := e.Target
		key := e.Key
		if dir == config.Reverse {
			wt, key = e.Source, nil
		}
		info := s.writeCat.Table(wt)
		if info == nil {
			continue
		}
		switch {
		case len(key) > 0:
			for _, k := range key {
				if info.Column(k) == nil {
					fs = append(fs, Finding{Where: e.Name(), Message: fmt.Sprintf("key column %q does not exist in %s", k, wt), Fix: "name columns of the target table in key:"})
				}
			}
			if !info.IsUniqueKey(key) {
				fs = append(fs, Finding{Where: e.Name(), Message: fmt.Sprintf("no unique index on (%s) of %s: inserts are applied as upserts on the key", strings.Join(key, ", "), wt), Fix: fmt.Sprintf("CREATE UNIQUE INDEX ON %s (%s)", wt, strings.Join(quoteAll(key), ", "))})
			}
		case len(info.Key) == 0:
			fs = append(fs, Finding{Where: e.Name(), Message: fmt.Sprintf("%s has no primary key, so updates and deletes cannot find their row", wt), Fix: "add a primary key to it, or name its key columns with key: [col, ...] in the mapping (with a unique index on them)"})
		}
	}
	return fs
}
