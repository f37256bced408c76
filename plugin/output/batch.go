package output

import (
	"context"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/redpanda-data/benthos/v4/public/service"
)

// WriteBatch writes every message of the batch to Kinesis, retrying only
// the records that failed, and fails alone each record that cannot succeed.
func (w *kinesisWriter) WriteBatch(ctx context.Context, batch service.MessageBatch) error {
	if w.shardMap.Load() == nil {
		return service.ErrNotConnected
	}
	recs := make([]outRecord, len(batch))
	pending := w.prepare(batch, recs, make([]int, 0, len(batch)))

	var (
		req      = make([]int, 0, min(len(pending), maxRequestRecords))
		entries  = make([]types.PutRecordsRequestEntry, 0, cap(req))
		seenKeys map[string]struct{}
		tallies  = map[*shardState]*shardTally{}
	)
	if w.conf.orderPerKey {
		seenKeys = make(map[string]struct{}, len(pending))
	}
	for len(pending) > 0 {
		w.repredict(recs, pending)
		now := w.now()
		var wait time.Duration
		req, wait = packRequest(recs, pending, now, w.conf.orderPerKey, w.admit, req, seenKeys)
		if len(req) == 0 {
			// Wait a little longer than the limiter asks, so that the next
			// request carries a handful of records rather than one.
			if err := w.sleep(ctx, max(wait, minPacingWait)); err != nil {
				return err
			}
			continue
		}
		entries = entries[:0]
		for _, i := range req {
			r := &recs[i]
			e := types.PutRecordsRequestEntry{Data: r.data, PartitionKey: &r.partitionKey}
			if r.explicitHash != "" {
				e.ExplicitHashKey = &r.explicitHash
			}
			entries = append(entries, e)
		}
		if err := w.put(ctx, recs, req, entries, tallies); err != nil {
			return err
		}
		pending = compactPending(recs, pending)
	}
	return w.batchResult(batch, recs)
}

// minPacingWait is the shortest wait for a shard's limiter: 10ms gathers
// about ten records per shard at 1,000 records/s, and keeps the request rate
// sane when many shards are paced at once.
const minPacingWait = 10 * time.Millisecond

// admit asks the record's shard limiter. A record no open shard covers (the
// map is mid-reshard) is sent unpaced; the answer will say where it went.
func (w *kinesisWriter) admit(r *outRecord, now time.Time) (bool, time.Duration) {
	if r.shard == nil {
		return true, 0
	}
	return r.shard.limiter.take(now, r.size)
}

// repredict moves pending records onto the current shard map after a refresh.
func (w *kinesisWriter) repredict(recs []outRecord, pending []int) {
	m := w.shardMap.Load()
	for _, i := range pending {
		if r := &recs[i]; r.shardMap != m {
			r.shardMap, r.shard = m, m.lookup(r.hash)
		}
	}
}

// compactPending drops the records that are done, keeping batch order.
func compactPending(recs []outRecord, pending []int) []int {
	kept := pending[:0]
	for _, i := range pending {
		if !recs[i].done {
			kept = append(kept, i)
		}
	}
	return kept
}

// batchResult is nil when every record landed, else a BatchError naming each
// failed message and why.
func (w *kinesisWriter) batchResult(batch service.MessageBatch, recs []outRecord) error {
	var bErr *service.BatchError
	failed := 0
	for i := range recs {
		if recs[i].err == nil {
			continue
		}
		if bErr == nil {
			bErr = service.NewBatchError(batch, recs[i].err)
		}
		bErr.Failed(i, recs[i].err)
		failed++
	}
	if bErr == nil {
		return nil
	}
	w.log.Errorf("%d of %d messages could not be written to %s, the first: %v", failed, len(batch), w.conf.stream, firstErr(recs))
	return bErr
}

func firstErr(recs []outRecord) error {
	for i := range recs {
		if recs[i].err != nil {
			return recs[i].err
		}
	}
	return nil
}
