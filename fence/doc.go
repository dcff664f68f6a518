// Package fence owns the optional write fence of a mapping (`fence: true`):
// the slice that is not live refuses client writes to the mapped tables,
// while the bridge's own writes, which carry its replication origin, pass.
//
// The fence is a statement-level trigger named cdcbridge_fence_<mapping>,
// BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE, on each table the live
// direction writes and on each of their partitions (a statement-level
// trigger on a partitioned table does not fire for a statement that names a
// partition). It calls cdcbridge.fence(), one function per database shared
// by the mappings, which lets a session that has set up a replication
// origin through and raises SQLSTATE 25006 (read_only_sql_transaction)
// otherwise, naming the mapping and the live side. The trigger is enabled
// ALWAYS, so it fires in sessions that write as a replica
// (session_replication_role = replica, as the bridge does) too, and only
// the origin decides. Enabling it ALWAYS and dropping it take the table's
// owner, so the bridge's role must own the mapped tables of both sides, or
// be a member of their owner's role (OwnerError says which GRANT).
//
// Which side is fenced follows from the control state alone: the side the
// live direction writes, and none while the side that was live drains
// after a flip. Nothing about the fence is recorded beside it, so a daemon
// killed at any step converges on restart (Converge). Lift opens the side
// a flip makes live, before the flip is recorded, by disabling its
// triggers; Install closes the side that was live once it has drained,
// creating the triggers or enabling them again; neither waits for the
// side's readers. Remove drops every fence of a mapping, and the function
// once no mapping uses it (cleanup). Each acts on one side in one
// transaction and leaves alone what is already as it should be, so running
// one again, or after a crash, is harmless. With Mapping.Fence false, Lift
// and Install do nothing, and Converge takes away what an earlier
// `fence: true` left.
//
// The fence covers the partitions that exist when it is installed: one
// created or attached later is fenced the next time the side is (a
// restart, or the fence coming back after a flip).
package fence
