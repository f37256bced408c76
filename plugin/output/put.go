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

// shardTally counts one response's outcome for one shard.
type shardTally struct {
	records, bytes, throttled int64
}

// put sends one request and books every record's outcome. It returns an
// error only when ctx is done.
func (w *kinesisWriter) put(ctx context.Context, recs []outRecord, req []int, entries []types.PutRecordsRequestEntry, tallies map[*shardState]*shardTally) error {
	name, arn := w.streamRef()
	op := "PutRecords"
	start := time.Now()
	var (
		out *kinesis.PutRecordsOutput
		err error
	)
	if sendsAlone(recs, req) {
		op = "PutRecord"
		out, err = w.putAlone(ctx, &recs[req[0]], entries[0])
	} else {
		out, err = w.client.PutRecords(ctx, &kinesis.PutRecordsInput{Records: entries, StreamName: name, StreamARN: arn}, noSDKRetries)
	}
	w.metrics.requestLatency.Timing(time.Since(start).Nanoseconds(), w.conf.stream)
	now := w.now()
	if err == nil && len(out.Records) != len(entries) {
		err = fmt.Errorf("%s answered %d results for %d records", op, len(out.Records), len(entries))
	}
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if permanent := permanentRequestError(w.conf.stream, err); permanent != nil {
			for _, i := range req {
				recs[i].fail(permanent)
			}
			w.metrics.failed.Incr(int64(len(req)), w.conf.stream)
			w.log.Errorf("%s to %s failed for good: %v", op, w.conf.stream, permanent)
			return nil
		}
		w.log.Warnf("%s to %s failed, retrying %d records: %v", op, w.conf.stream, len(req), err)
		// The records of a failed call retry together, after one delay.
		delay := w.conf.retry.backoff(recs[req[0]].attempts + 1)
		for _, i := range req {
			w.retryLater(&recs[i], now, err, delay)
		}
		return nil
	}

	clear(tallies)
	tally := func(s *shardState) *shardTally {
		t, ok := tallies[s]
		if !ok {
			t = &shardTally{}
			tallies[s] = t
		}
		return t
	}
	mispredicted := 0
	for j, res := range out.Records {
		r := &recs[req[j]]
		if res.ErrorCode == nil {
			r.done = true
			if r.shard == nil || aws.ToString(res.ShardId) != r.shard.id {
				mispredicted++
			}
			if r.shard != nil {
				t := tally(r.shard)
				t.records++
				t.bytes += int64(r.size)
			}
			continue
		}
		code, msg := aws.ToString(res.ErrorCode), aws.ToString(res.ErrorMessage)
		recErr := fmt.Errorf("%s: %s", code, msg)
		switch recordCodeAction(code) {
		case retryThrottled:
			if r.shard != nil {
				tally(r.shard).throttled++
			}
			w.retryLater(r, now, recErr, 0)
		case retryRecord:
			w.retryLater(r, now, recErr, 0)
		case failRecord:
			r.fail(recErr)
			w.metrics.failed.Incr(1, w.conf.stream)
		}
	}
	for s, t := range tallies {
		if t.throttled > 0 {
			s.limiter.throttled(now)
			w.metrics.throttled.Incr(t.throttled, w.conf.stream, s.id)
		} else {
			s.limiter.succeeded(now)
		}
		if t.records > 0 {
			w.metrics.records.Incr(t.records, w.conf.stream, s.id)
			w.metrics.bytes.Incr(t.bytes, w.conf.stream, s.id)
		}
	}
	if mispredicted > 0 {
		w.metrics.mispredicted.Incr(int64(mispredicted), w.conf.stream)
		w.requestRefresh()
	}
	return nil
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
	if err := w.conf.retry.schedule(&r.retryState, now, cause, delay); err != nil {
		r.fail(err)
		w.metrics.failed.Incr(1, w.conf.stream)
		return
	}
	w.metrics.retries.Incr(1, w.conf.stream)
}

func (r *outRecord) fail(err error) {
	r.err = err
	r.done = true
}
