package control

import (
	"context"
	"time"

	"github.com/jackc/pglogrepl"

	"github.com/cdcbridge/cdcbridge/config"
)

// ForeignWrites describes the foreign transactions an armed stream holds:
// client writes to mapped tables of the side that should not be taking
// writes.
type ForeignWrites struct {
	// First is the commit LSN of the first one, FirstAt its commit time.
	First   pglogrepl.LSN
	FirstAt time.Time
	// Txns counts them since the checkpoint.
	Txns int64
}

// RecordForeign records the foreign writes that the armed direction dir
// holds (fw.Txns 0 clears them).
func RecordForeign(ctx context.Context, db DB, name string, dir config.Direction, fw ForeignWrites) error {
	var lsn *pglogrepl.LSN
	var at *time.Time
	if fw.Txns > 0 {
		lsn, at = &fw.First, &fw.FirstAt
	}
	_, err := db.Exec(ctx, `UPDATE cdcbridge.state SET foreign_dir = nullif($2, ''), foreign_txns = $3, first_foreign_lsn = $4::pg_lsn, first_foreign_at = $5,
		updated_at = now() WHERE name = $1`, name, dir.String(), fw.Txns, lsn, at)
	return err
}
