package opscli

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/benthos-kinesis/benthos-kinesis/checkpointer/ack"
	"github.com/benthos-kinesis/benthos-kinesis/internal/kinesisapi"
)

// Kinesis has no call that answers "which record is at time T" or "which is the last record":
// both are found by reading, with the same pacing and throttle handling as countRecords.

// callTimeout bounds each Kinesis call of scan: an endpoint that never answers (kinesalite does
// not answer an AT_TIMESTAMP GetShardIterator when no record is at or after the time) fails the
// command rather than hang it.
const callTimeout = 10 * time.Second

// unanswered says plainly that Kinesis did not answer call within callTimeout, when that is
// what err is (the call's own deadline, not the caller's context, ended it); otherwise it
// returns nil. AT_TIMESTAMP gets the likely reason: the local emulator.
func unanswered(ctx context.Context, err error, s kinesisapi.Stream, shard, call string, it types.ShardIteratorType) error {
	if !errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil {
		return nil
	}
	why := ""
	if it == types.ShardIteratorTypeAtTimestamp {
		why = " (kinesalite, the local emulator, never answers it when no record is at or after the time)"
	}
	return fmt.Errorf("shard %s of %s: Kinesis did not answer %s within %v%s: %w", shard, s, call, callTimeout, why, err)
}

// scan reads a shard from the iterator in asks for, calling each for every record until it
// returns true. It stops at the tip (an empty answer with MillisBehindLatest 0) and at the end
// of a closed shard (no NextShardIterator, ended true).
func scan(ctx context.Context, api kinesisAPI, s kinesisapi.Stream, shard string, in kinesis.GetShardIteratorInput,
	pace time.Duration, each func(types.Record) bool) (ended bool, err error) {
	in.StreamName, in.StreamARN, in.ShardId = s.Name(), s.ARN(), aws.String(shard)
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	out, err := api.GetShardIterator(cctx, &in)
	cancel()
	if err := unanswered(ctx, err, s, shard, "GetShardIterator "+string(in.ShardIteratorType), in.ShardIteratorType); err != nil {
		return false, err
	}
	if err != nil {
		return false, fmt.Errorf("getting a %s iterator for shard %s of stream %s: %w", in.ShardIteratorType, shard, s, kinesisapi.NotFound(s, err))
	}
	it := out.ShardIterator
	var lastCall time.Time
	for it != nil {
		if !lastCall.IsZero() {
			if err := kinesisapi.Sleep(ctx, pace-time.Since(lastCall)); err != nil {
				return false, err
			}
		}
		lastCall = time.Now()
		cctx, cancel := context.WithTimeout(ctx, callTimeout)
		res, err := api.GetRecords(cctx, &kinesis.GetRecordsInput{ShardIterator: it, Limit: aws.Int32(getRecordsLimit), StreamARN: s.ARN()})
		cancel()
		if err != nil {
			var throttled *types.ProvisionedThroughputExceededException
			if errors.As(err, &throttled) {
				if err := kinesisapi.Sleep(ctx, throttleBackoff); err != nil {
					return false, err
				}
				continue
			}
			if err := unanswered(ctx, err, s, shard, "GetRecords", ""); err != nil {
				return false, err
			}
			return false, fmt.Errorf("reading shard %s of stream %s: %w", shard, s, kinesisapi.NotFound(s, err))
		}
		for _, r := range res.Records {
			if each(r) {
				return false, nil
			}
		}
		if len(res.Records) == 0 && aws.ToInt64(res.MillisBehindLatest) == 0 && res.NextShardIterator != nil {
			return false, nil
		}
		it = res.NextShardIterator
	}
	return true, nil
}

// record is a found record: its sequence number and arrival time.
type record struct {
	Seq     string
	Arrival time.Time
}

func toRecord(r types.Record) *record {
	return &record{Seq: aws.ToString(r.SequenceNumber), Arrival: aws.ToTime(r.ApproximateArrivalTimestamp)}
}

// firstAtOrAfter returns the first record written at or after at (what AT_TIMESTAMP gives), nil
// when there is none yet (or, ended, none ever: the shard is closed).
func firstAtOrAfter(ctx context.Context, api kinesisAPI, s kinesisapi.Stream, shard string, at time.Time, pace time.Duration) (*record, bool, error) {
	var found *record
	ended, err := scan(ctx, api, s, shard, kinesis.GetShardIteratorInput{
		ShardIteratorType: types.ShardIteratorTypeAtTimestamp, Timestamp: aws.Time(at),
	}, pace, func(r types.Record) bool {
		found = toRecord(r)
		return true
	})
	return found, ended && found == nil, err
}

// lastBefore returns the record just before next in the shard (next nil: the last record written
// before at), nil when there is none. It reads windows that end at next and start at at less 1 s,
// 2 s, 4 s, ..., until a window holds a record before next or starts before the shard's oldest
// record: the data read is about what the last window holds, not the whole shard.
func lastBefore(ctx context.Context, api kinesisAPI, s kinesisapi.Stream, shard string, at time.Time, next *record, pace time.Duration) (*record, error) {
	var oldest *record
	if _, err := scan(ctx, api, s, shard, kinesis.GetShardIteratorInput{ShardIteratorType: types.ShardIteratorTypeTrimHorizon}, pace,
		func(r types.Record) bool { oldest = toRecord(r); return true }); err != nil {
		return nil, err
	}
	if oldest == nil || (next != nil && oldest.Seq == next.Seq) {
		return nil, nil
	}
	var stop ack.Position
	if next != nil {
		p, err := ack.ParseSequenceNumber(next.Seq)
		if err != nil {
			return nil, fmt.Errorf("shard %s of stream %s: %w", shard, s, err)
		}
		stop = p
	}
	for d := time.Second; ; d *= 2 {
		from := at.Add(-d)
		var last *record
		in := kinesis.GetShardIteratorInput{ShardIteratorType: types.ShardIteratorTypeAtTimestamp, Timestamp: aws.Time(from)}
		if !from.After(oldest.Arrival) {
			in = kinesis.GetShardIteratorInput{ShardIteratorType: types.ShardIteratorTypeTrimHorizon}
		}
		var perr error
		_, err := scan(ctx, api, s, shard, in, pace, func(r types.Record) bool {
			rec := toRecord(r)
			if next != nil {
				p, err := ack.ParseSequenceNumber(rec.Seq)
				if err != nil {
					perr = err
					return true
				}
				if p.Compare(stop) >= 0 {
					return true
				}
			} else if !rec.Arrival.Before(at) {
				return true
			}
			last = rec
			return false
		})
		if err == nil {
			err = perr
		}
		if err != nil {
			return nil, err
		}
		if last != nil || !from.After(oldest.Arrival) {
			return last, nil
		}
	}
}

// checkSequence checks that seq is a sequence number of the shard: Kinesis gives an
// AFTER_SEQUENCE_NUMBER iterator only for one.
func checkSequence(ctx context.Context, api kinesisAPI, s kinesisapi.Stream, shard, seq string) error {
	if _, err := ack.ParseSequenceNumber(seq); err != nil {
		return err
	}
	_, err := api.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{
		StreamName: s.Name(), StreamARN: s.ARN(), ShardId: aws.String(shard),
		ShardIteratorType: types.ShardIteratorTypeAfterSequenceNumber, StartingSequenceNumber: aws.String(seq),
	})
	if err != nil {
		return fmt.Errorf("sequence number %s of shard %s of stream %s: %w", seq, shard, s, kinesisapi.NotFound(s, err))
	}
	return nil
}
