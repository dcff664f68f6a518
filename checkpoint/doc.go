// Package checkpoint keeps the bridge's position in the database it writes
// to, in the table cdcbridge.checkpoint, one row per mapping and direction.
//
// The row is updated in the same transaction as the changes it covers (the
// applier queues Statement with its batch), so after a crash the row says
// exactly which source transactions are on the target: nothing before it is
// missing and nothing after it was applied. If the row is gone, Statement
// fails and that transaction with it; IsMissing recognises the failure. Resume decides where a stream
// restarts and refuses, with the reason, every start that could skip or
// repeat data: a slot that is missing, invalidated or ahead of the
// checkpoint, or a source that is not the database the checkpoint came from.
//
// The row also records the replication slot and the system identifier of
// the source it follows.
//
// Beside it, cdcbridge.tables keeps one row per mapping entry and direction
// (Entry): the LSN from which that entry's changes are applied, and whether
// its rows are being copied, are copied, or stream. An entry added to a
// running mapping is copied under a snapshot of its own; its row, written
// with the copy, tells a restart which of its changes the copy holds.
package checkpoint
