package output

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"
)

// send sends one request and books every record's outcome: landed or
// failed for good, it is done; otherwise it goes back to its shard's queue to
// wait out its backoff.
func (w *kinesisWriter) send(ctx context.Context, d *dispatcher, req *request) {
	entries := make([]types.PutRecordsRequestEntry, len(req.recs))
	for j, r := range req.recs {
		entries[j] = types.PutRecordsRequestEntry{Data: r.data, PartitionKey: &r.partitionKey}
		if r.explicitHash != "" {
			entries[j].ExplicitHashKey = &r.explicitHash
		}
	}
	op := "PutRecords"
	start := time.Now()
	var (
		out *kinesis.PutRecordsOutput
		err error
	)
	if req.alone {
		op = "PutRecord"
		out, err = w.putAlone(ctx, req.recs[0], entries[0])
	} else {
		name, arn := w.streamRef()
		out, err = w.client.PutRecords(ctx, &kinesis.PutRecordsInput{Records: entries, StreamName: name, StreamARN: arn}, noSDKRetries)
	}
	w.metrics.requestLatency.Timing(time.Since(start).Nanoseconds(), w.conf.stream)
	if ctx.Err() != nil {
		return // closing: the WriteBatch calls waiting return ErrNotConnected
	}
	now := w.now()
	if err == nil && len(out.Records) != len(entries) {
		err = fmt.Errorf("%s answered %d results for %d records", op, len(out.Records), len(entries))
	}
	if err != nil {
		w.bookFailedCall(op, req, now, err)
	} else {
		if w.conf.aggMaxSize > 0 {
			w.learnLandingShards(ctx, req, out)
		}
		w.bookAnswer(req, out, now)
	}

	d.mu.Lock()
	for _, r := range req.recs {
		if r.members == nil {
			d.settle(r)
			continue
		}
		for _, u := range r.members {
			d.settle(u)
		}
	}
	d.booked(req)
	d.mu.Unlock()
	d.signal()
}

// bookFailedCall books a call that failed as a whole: its records fail for
// good when it can never succeed, else they are retried together, after one
// delay.
func (w *kinesisWriter) bookFailedCall(op string, req *request, now time.Time, err error) {
	if permanent := permanentRequestError(w.conf.stream, err); permanent != nil {
		users := 0
		for _, r := range req.recs {
			r.fail(permanent)
			users += r.userRecords()
		}
		w.metrics.failed.Incr(int64(users), w.conf.stream)
		w.log.Errorf("%s to %s failed for good: %v", op, w.conf.stream, permanent)
		return
	}
	w.log.Warnf("%s to %s failed, retrying %d records: %v", op, w.conf.stream, len(req.recs), err)
	delay := w.conf.retry.backoff(req.recs[0].firstUser().attempts + 1)
	for _, r := range req.recs {
		w.retryLater(r, now, err, delay)
	}
}

// bookAnswer books each record's result of an answered call, tells each
// shard's limiter whether Kinesis throttled it, and asks for a shard-map
// refresh when a record landed on a shard other than predicted.
func (w *kinesisWriter) bookAnswer(req *request, out *kinesis.PutRecordsOutput, now time.Time) {
	mispredicted, resent, from := 0, 0, 0
	for _, seg := range req.segs {
		var records, users, bytes, throttled int64
		for j := from; j < seg.end; j++ {
			r, res := req.recs[j], out.Records[j]
			if res.ErrorCode == nil {
				r.landed()
				if r.shard == nil || aws.ToString(res.ShardId) != r.shard.id {
					mispredicted++
					if r.members != nil {
						resent += resendStrays(w.shardMap.Load(), r, aws.ToString(res.ShardId), now)
					}
				}
				records++
				users += int64(r.userRecords())
				bytes += int64(r.size)
				continue
			}
			code, msg := aws.ToString(res.ErrorCode), aws.ToString(res.ErrorMessage)
			recErr := fmt.Errorf("%s: %s", code, msg)
			if r.members != nil {
				recErr = fmt.Errorf("aggregated record of %d messages: %w", len(r.members), recErr)
			}
			switch recordCodeAction(code) {
			case retryThrottled:
				throttled++
				w.retryLater(r, now, recErr, 0)
			case retryRecord:
				w.retryLater(r, now, recErr, 0)
			case failRecord:
				r.fail(recErr)
				w.metrics.failed.Incr(int64(r.userRecords()), w.conf.stream)
			}
		}
		from = seg.end
		s := seg.q.shard
		if s == nil {
			continue // unmapped: no limiter, no shard label
		}
		if throttled > 0 {
			s.limiter.throttled(now)
			w.metrics.throttled.Incr(throttled, w.conf.stream, s.id)
		} else {
			s.limiter.succeeded(now)
		}
		if records > 0 {
			w.metrics.records.Incr(records, w.conf.stream, s.id)
			w.metrics.userRecords.Incr(users, w.conf.stream, s.id)
			w.metrics.bytes.Incr(bytes, w.conf.stream, s.id)
		}
	}
	if resent > 0 {
		w.metrics.resent.Incr(int64(resent), w.conf.stream)
		w.log.Warnf("%d messages of aggregates that landed on a shard other than predicted (%s was resharded) are put again on their own", resent, w.conf.stream)
	}
	if mispredicted > 0 {
		w.metrics.mispredicted.Incr(int64(mispredicted), w.conf.stream)
		w.requestRefresh()
	}
}

// putAlone sends one record over the PutRecords budget through PutRecord,
// whose limit is the stream's maximum record size, and answers as PutRecords
// would have for it, so that its outcome is booked the same way: the error
// codes PutRecords reports per record come back as the record's result.
func (w *kinesisWriter) putAlone(ctx context.Context, r *outRecord, e types.PutRecordsRequestEntry) (*kinesis.PutRecordsOutput, error) {
	name, arn := w.streamRef()
	out, err := w.client.PutRecord(ctx, &kinesis.PutRecordInput{
		Data: e.Data, PartitionKey: e.PartitionKey, ExplicitHashKey: e.ExplicitHashKey, StreamName: name, StreamARN: arn,
	}, noSDKRetries)
	if err == nil {
		return &kinesis.PutRecordsOutput{Records: []types.PutRecordsResultEntry{{ShardId: out.ShardId, SequenceNumber: out.SequenceNumber}}}, nil
	}
	if code, msg, ok := recordCodeOfCallError(err); ok {
		return &kinesis.PutRecordsOutput{Records: []types.PutRecordsResultEntry{{ErrorCode: &code, ErrorMessage: &msg}}}, nil
	}
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) && (apiErr.ErrorCode() == "ValidationException" || apiErr.ErrorCode() == "InvalidArgumentException") {
		// The likeliest cause: max_record_size is above the stream's own.
		return nil, fmt.Errorf("record of %d bytes refused by PutRecord (is max_record_size, %d, above the stream's maximum record size?): %w",
			r.size, w.conf.maxRecordSize, err)
	}
	return nil, err
}

// retryLater schedules a failed record's next attempt after delay (zero: the
// record's own backoff), or fails it for good once max_retries or
// backoff.max_elapsed_time is spent.
func (w *kinesisWriter) retryLater(r *outRecord, now time.Time, cause error, delay time.Duration) {
	if r.members != nil {
		if delay <= 0 {
			// One delay for all: the messages go again together.
			delay = w.conf.retry.backoff(r.members[0].attempts + 1)
		}
		for _, u := range r.members {
			w.retryLater(u, now, cause, delay)
		}
		return
	}
	if err := w.conf.retry.schedule(&r.retryState, now, cause, delay); err != nil {
		r.fail(err)
		w.metrics.failed.Incr(1, w.conf.stream)
		return
	}
	w.metrics.retries.Incr(1, w.conf.stream)
}

// fail books r as failed for good: an aggregate's messages each with err.
func (r *outRecord) fail(err error) {
	r.err = err
	r.done = true
	for _, u := range r.members {
		u.fail(err)
	}
}

// landed books r, and each message of an aggregate, as landed.
func (r *outRecord) landed() {
	r.done = true
	for _, u := range r.members {
		u.done = true
	}
}

// firstUser is r, or an aggregate's first message.
func (r *outRecord) firstUser() *outRecord {
	if r.members != nil {
		return r.members[0]
	}
	return r
}

// settle books a message done or back in its shard's queue.
func (d *dispatcher) settle(r *outRecord) {
	if r.done {
		d.finish(r)
	} else {
		d.requeue(r)
	}
}
