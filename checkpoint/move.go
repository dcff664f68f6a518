package checkpoint

import (
	"context"
	"fmt"

	"github.com/jackc/pglogrepl"
)

// MoveTo advances a checkpoint to lsn (never backwards); the flip uses it,
// with the direction's pipeline stopped, to start a direction at the flip
// point.
func MoveTo(ctx context.Context, db Execer, name, direction string, lsn pglogrepl.LSN) error {
	_, err := db.Exec(ctx, `UPDATE cdcbridge.checkpoint SET lsn = greatest(lsn, $3::pg_lsn), updated_at = now() WHERE name = $1 AND direction = $2`,
		name, direction, lsn)
	if err != nil {
		return fmt.Errorf("moving the %s checkpoint to the flip point: %w", direction, err)
	}
	return nil
}
