// Package ack tracks, for one shard read by the aws_kinesis input, which delivered batches have
// been acknowledged, and from that the shard's checkpoint: the end of the longest prefix of
// delivered batches that are all acknowledged (see docs/LEASES.md and DESIGN.md, "Reading").
//
// The reader of a shard hands its records downstream in batches, in shard order. For each batch
// it calls [Tracker.Deliver] with the batch's [Position] (the sequence number, and for KPL
// aggregates the sub-sequence number, of its last record) and its number of messages, and
// attaches the returned [BatchID] to the batch's acknowledgement function, which calls
// [Tracker.Ack]. Acknowledgements arrive in any order; the checkpoint only moves over a batch
// once it and every batch delivered before it are acknowledged. A batch that is nacked, or never
// answered (shutdown), is simply never acknowledged: it holds the checkpoint back for good, and
// the input delivers it again (auto_replay_nacks) or stops. There is no Nack method because
// a nack changes nothing here.
//
// The caller writes a checkpoint to the lease table only when it moved: [Tracker.Committable]
// gives the checkpoint when it is beyond the last written one, and [Tracker.Committed] records
// a successful write. [Tracker.InFlight] counts delivered messages not yet covered by the
// checkpoint, so the reader can stop at checkpoint_limit. When the shard is lost,
// [Tracker.Reset] forgets every batch so that none of them can ever be checkpointed;
// [Tracker.Resume] does the same and starts from a checkpoint read from the table.
//
// The tracker is a plain data structure: no goroutines, no I/O, no clock. Deliver and Ack are
// O(1) amortised and allocate nothing in steady state; memory is proportional to the batches
// in flight (those not yet in the acknowledged prefix).
package ack
