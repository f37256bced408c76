// Package lease is the per-worker lease protocol of the aws_kinesis input (docs/LEASES.md) as a
// pure state machine, in the manner of etcd raft's Step: a [Machine] is fed observations
// ([Event]: the time on the worker's monotonic clock, heartbeat results, what a read of the
// table and of ListShards returned and when that read was sent, the result of each write it
// asked for, what a shard's consumer reports) and returns what to do ([Intent]: read the table,
// one conditional write, start or stop a consumer, fence, unfence, log a lease change).
//
// It does no I/O, starts no goroutine, has no clock and no global random source: the same
// events give the same intents. plugin/input's coordinator is the shell that performs the
// intents against DynamoDB and Kinesis and feeds their results back; the deterministic
// simulation and the scenario scripts of this package's tests drive this very machine.
//
// # Rules the machine keeps
//
//   - At most one write per shard is in flight; a shard is in exactly one [Phase].
//   - Every ownership write is conditional (checkpointer); a failed condition means the shard
//     is lost and its consumer is dropped. An answer that never came (a timeout, a throttled
//     call) leaves the shard's fate to the next read of the table that was sent after it.
//   - A read of the table sent before a shard's last write was answered says nothing about that
//     shard: it is ignored for it.
//   - Liveness is judged on the worker's own clock, at the time the worker-row read was sent:
//     a worker whose counter has not changed for a lease period is dead; a changed counter
//     counts from when the answer came back.
//   - Fencing has one deadline, [Machine.DeliverUntil]: the last successful heartbeat's send
//     time plus [Config.FenceAfter]. Past it the worker delivers nothing; it delivers again
//     only once a heartbeat succeeded, a read sent after that heartbeat was seen, and every
//     lease still held was re-taken (epoch+1).
//   - A shard whose consumer was stopped with batches still in flight (a hand-over, a finish)
//     is never read again by this worker: the hand-over or finish is retried until it settles
//     or the shard is lost.
//   - A hand-off request is honoured only while the worker that asked is alive; a shard read
//     to its end is marked finished only when every batch was acknowledged.
package lease
