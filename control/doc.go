// Package control owns the bridge's control state: the row of a mapping in
// cdcbridge.state on the target (the new slice), and the advisory locks that
// say who may act on the mapping.
//
// The row says which direction is live, where and when the last flip
// happened, which direction still drains the side that was live, the flip
// request that `cdcbridge flip` hands to the running daemon and the daemon's
// answer, and the foreign writes an armed direction holds. Every change to
// it goes through a typed operation here (Ensure, SetLive, RequestFlip,
// Claim, Withdraw, Answer, RecordFlip, DrainDone, RecordForeign, Delete);
// no other package writes the table. Each operation is one statement, so
// the row is consistent after a crash at any point.
//
// A flip request goes through three ids: RequestFlip raises request_id;
// the daemon claims it (Claim) before carrying it out, unless it expired or
// was withdrawn; and the answer (Answer, RecordFlip, Withdraw) raises
// answered_id. A request that is neither claimed nor answered by its
// deadline is never carried out later.
//
// Locks: one daemon per mapping holds LockDaemon on the target for its life;
// each running direction holds LockDirection on the side it writes, on the
// connection it writes with. LockDirections takes both direction locks, for
// the commands that must not act behind a daemon's back (flip without a
// daemon, cleanup).
package control
