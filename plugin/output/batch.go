package output

import (
	"context"

	"github.com/redpanda-data/benthos/v4/public/service"
)

// WriteBatch queues every message of the batch for its shard and waits for
// their results: records are retried alone, and a record that cannot succeed
// fails alone, named in a service.BatchError.
func (w *kinesisWriter) WriteBatch(ctx context.Context, batch service.MessageBatch) error {
	run := w.run.Load()
	if run == nil {
		return service.ErrNotConnected
	}
	job := &batchJob{recs: make([]outRecord, len(batch)), done: make(chan struct{})}
	if pending := w.prepare(batch, job.recs, make([]int, 0, len(batch))); len(pending) > 0 {
		run.d.enqueue(job, pending)
		select {
		case <-job.done:
		case <-ctx.Done():
			select {
			case <-job.done: // done as well: the results stand
				return w.batchResult(batch, job.recs)
			default:
			}
			run.d.abandon(job)
			return ctx.Err()
		case <-run.ctx.Done():
			run.d.abandon(job)
			return service.ErrNotConnected
		}
	}
	return w.batchResult(batch, job.recs)
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
