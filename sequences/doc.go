// Package sequences keeps the sequences behind mapped columns on the
// receiving slice at least as far as on the sending slice.
//
// Logical replication carries rows, not sequence values: the bridge writes
// ids the sender handed out, and the receiver's own sequences never move. A
// slice that starts taking inserts after a flip would then hand out ids that
// already exist. While a direction runs, the bridge calls Sync every few
// seconds (Run) and once more at the flip, before the new live side needs
// its sequences.
//
// # Finding the sequences
//
// Discover reads both slices' catalogs once. The sequence behind a column is
// the one pg_get_serial_sequence reports (serial, bigserial, and identity
// columns, GENERATED ALWAYS or BY DEFAULT, and any sequence made OWNED BY the
// column), or else the one sequence a nextval(...) column default names (a
// sequence created on its own). A late-bound default, nextval('x'::text),
// names no sequence the catalog can follow and is not found.
//
// The two sides are matched by mapped column. An identity mapping (no
// transform) pairs same-named columns. An entry with a transform pairs
// same-named columns too, and also the key columns when each side has
// exactly one sequence-backed key column (orders.id -> orders_v2.order_id)
// and neither is already paired by name. The key is the primary key, or the
// replica identity index without one; the entry's key list overrides it for
// the target table. A pair runs From the sending side of the direction To
// the receiving side. Pairs that join the same two sequences (one sequence
// feeding several entries) are kept once. Merge combines discovered pairs
// with pairs named elsewhere and drops excluded ones; Discover uses it too.
//
// A receiving sequence with no sending sequence (the sender's ids come from
// the application) is not paired: there is no sender position to follow.
//
// # Keeping them in step
//
// Sync reads each sending sequence (SELECT last_value, is_called FROM seq)
// and computes the next value it would hand out: last_value + increment once
// called, last_value exactly before that (a fresh sequence, or one after
// RESTART or setval(..., false), next hands out last_value itself). On the
// receiver one statement per pair compares that with the receiver's own next
// value and, only when the sender is ahead, calls setval(seq, next, false),
// so the receiver's next nextval() returns exactly the sender's next value.
// A receiver is never moved backwards, and Sync is idempotent: a second call
// changes nothing. setval is not transactional and not replicated, so it
// needs no tagging and is never echoed.
//
// With CACHE above 1 the sender's last_value already covers every value its
// sessions have cached, so Sync errs on the safe side. A receiver session
// that had cached values before a setval keeps using them; receivers take no
// inserts while they receive, so this matters only for a receiver that is
// written to anyway (the bridge reports such foreign writes).
//
// The receiver's read and setval are one statement, but nextval is not
// transactional: a nextval on the receiver between them is not seen. The
// same argument applies: the receiver is not handing out ids meanwhile.
//
// Only ascending sequences are kept in step. A pair with a descending
// sequence on either side is skipped with an error wrapping
// ErrNegativeIncrement; a sender ahead of the receiver's MAXVALUE is skipped
// with ErrOutOfRange. Both come back in a *PairError, joined, next to the
// pairs Sync did move; the other pairs are synced regardless.
//
// Statements are pipelined: a Sync costs one round trip to each side. When a
// statement fails (a sequence dropped since Discover, a missing privilege),
// the rest are sent one at a time so that the error names its pair and the
// other pairs still move.
package sequences
