package replication

import (
	"errors"
	"strings"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5/pgconn"
)

// SQLSTATE codes the server uses for slots and publications.
const (
	codeObjectInUse     = pgerrcode.ObjectInUse
	codeUndefinedObject = pgerrcode.UndefinedObject
	codeDuplicateObject = pgerrcode.DuplicateObject
)

func pgError(err error) *pgconn.PgError {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr
	}
	return nil
}

// IsSlotInUse reports whether err says the replication slot is active for
// another process (SQLSTATE 55006, object_in_use): another bridge, or the
// server not yet having noticed a dead connection. Retrying later may succeed.
func IsSlotInUse(err error) bool {
	e := pgError(err)
	return e != nil && e.Code == codeObjectInUse
}

// IsSlotMissing reports whether err says the replication slot does not exist
// (SQLSTATE 42704, undefined_object, not about a publication). Retrying does
// not help: the slot, and the WAL it held, is gone.
func IsSlotMissing(err error) bool {
	e := pgError(err)
	return e != nil && e.Code == codeUndefinedObject && !aboutPublication(e)
}

// IsPublicationMissing reports whether err says a publication the stream
// reads does not exist (SQLSTATE 42704 raised while looking up a
// publication). pgoutput raises it while decoding, also when the publication
// was created after the slot: the slot then has to be recreated.
func IsPublicationMissing(err error) bool {
	e := pgError(err)
	return e != nil && e.Code == codeUndefinedObject && aboutPublication(e)
}

// IsSlotExists reports whether err says a slot of that name already exists
// (SQLSTATE 42710, duplicate_object).
func IsSlotExists(err error) bool {
	e := pgError(err)
	return e != nil && e.Code == codeDuplicateObject
}

// aboutPublication tells the two undefined_object errors of a stream apart by
// the server function that raised them (GetPublicationByName for a
// publication, ReplicationSlotAcquire for a slot): unlike the message, the
// routine name is not translated.
func aboutPublication(e *pgconn.PgError) bool {
	return strings.Contains(strings.ToLower(e.Routine), "publication")
}
