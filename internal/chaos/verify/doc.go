// Package verify judges a fault-injection run of the Kinesis input from the
// outside: given what a writer put into a stream, what every reader process
// delivered, what the harness did to those processes and what the lease table
// looked like over time, it says whether anything was lost, delivered out of
// order, or delivered twice without a fault to explain it.
//
// It is pure: apart from ReadDeliveryFiles, which opens the files it is
// given, it only parses from an io.Reader and computes. The harness in
// internal/chaos owns the processes, the signals and the clock.
//
// # The run it expects
//
// A writer writes, for every key k in 0..Keys-1, the records n = 0..PerKey-1
// of partition key "key-<k>" in increasing n (Written). Readers deliver each
// record they receive as one JSON line (see Delivery.AppendJSON for the exact
// shape):
//
//	{"k":"key-3","n":17,"shard":"shardId-000000000001","seq":"4959...","t":1732570000123456789,"w":"r2.1"}
//
// where t is the wall-clock delivery time in unix nanoseconds and w the
// incarnation of the reader that delivered it (reader r2, incarnation 1). A
// process killed mid-write leaves a torn final line, which ParseDeliveries
// ignores and counts. Each incarnation should write its own file: a restarted
// process appending to its predecessor's file would glue its first line onto
// the torn one, and that line is rejected as malformed.
//
// The harness records Events (started, killed, stopped, continued,
// partitioned, lease lost, ...) per incarnation, and LeaseSamples of the
// DynamoDB lease table.
//
// # What Check verifies
//
//   - Lost: every written record was delivered at least once.
//   - Unknown: nothing was delivered that was never written.
//   - Order: per key, the first deliveries of the records, in time order, are
//     in write order.
//   - Duplicates: every delivery after the first of a record is a duplicate,
//     attributed to the fault that explains it (a kill, a SIGSTOP, a network
//     partition, a lost lease), or to the writer when the stream itself holds
//     the record twice; the rest are unexplained.
//   - Stale zombies: a process resumed after SIGSTOP must not, once a grace
//     period has passed, deliver records another incarnation already
//     delivered: that means it kept reading a shard it had lost. (Unless
//     that other incarnation was itself killed, frozen, partitioned or
//     fenced in between: then the resumed process may have retaken the
//     shard legitimately.)
//   - Leases: per shard, the epoch (the fencing token) never decreases and is
//     never shared by two owners, and the checkpoint never moves backwards.
//
// Report.Err says what failed; Report.String is a short table for test logs
// and docs/RELIABILITY.md.
//
// All times are wall-clock times of one machine: the readers and the harness
// must run on the same host.
package verify
