// Package checkpointer is the DynamoDB side of the aws_kinesis input's lease protocol
// (docs/LEASES.md): the shard rows and worker rows of one lease table, read with paginated,
// consistent Queries on one partition (never a Scan), and every ownership-dependent write made
// conditional on owner and epoch exactly as the "Writes" table of LEASES.md says.
//
// A Table is one worker's handle on the table. It holds no state about leases: callers read a
// snapshot with Leases and Workers, decide (checkpointer/balance), and write with Claim,
// Checkpoint, RequestHandoff, HandOver, ForceHandoff, Finish and Release. Liveness is judged by
// the caller from the Heartbeat counters on its own monotonic clock; this package never reads
// LeaseTimeout for liveness (it writes one on every change of owner, for the built-in input's
// tools).
//
// # Failed conditions
//
// A write whose condition fails returns an error wrapping ErrLeaseLost (writes by the owner:
// Checkpoint, Finish, HandOver, Release) or ErrClaimConflict (writes by a taker: Claim,
// RequestHandoff, ForceHandoff). Only these two mean "the row is not as you think". Any other
// error (throttling after the SDK's retries, a timeout, a cancelled context) leaves the outcome
// unknown: the write may or may not have been applied. A caller that gets one should re-read the
// leases before acting; a row that says ClientID = this worker which the worker does not run
// must be adopted (read from its checkpoint) or released.
//
// The SDK retries a request whose response was lost; if the first attempt was applied, the
// retry of a write that changes the owner or the epoch fails its own condition. So on a failed
// condition the Table reads the row back (a consistent GetItem) and reports success when the row
// is exactly what this call meant to write. The same read gives the error its detail (the
// current owner and epoch): DynamoDB can return the old item inside the failure, dynalite cannot,
// so this package does not rely on it.
//
// # What the conditions do not check
//
// Sequence numbers are decimal strings of varying length: a condition cannot compare them
// numerically, so a checkpoint write does not check that it moves forward. The owner (the ack
// tracker) only ever writes forward; that is the caller's job. What the condition does guarantee
// is that a worker which no longer owns the shard at its epoch can never move its checkpoint.
//
// # Throttling
//
// ProvisionedThroughputExceededException and ThrottlingException are retried by the SDK's
// standard retryer (the default of every client built from aws.Config); this package does not
// retry on its own.
package checkpointer
