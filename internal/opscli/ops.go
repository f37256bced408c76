package opscli

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/benthos-kinesis/benthos-kinesis/internal/kinesisapi"
)

const (
	// pollInterval is the pause between two DescribeStreamSummary calls while waiting.
	pollInterval = 200 * time.Millisecond
	// getRecordsLimit is the Limit of every GetRecords call.
	getRecordsLimit = 10000
	// getRecordsPace is the least time between two GetRecords calls on one shard (the service
	// allows 5 calls per second per shard).
	getRecordsPace = 200 * time.Millisecond
	// throttleBackoff is the pause after a ProvisionedThroughputExceededException.
	throttleBackoff = 200 * time.Millisecond
)

// describe returns the stream's summary.
func describe(ctx context.Context, api kinesisAPI, s kinesisapi.Stream) (*types.StreamDescriptionSummary, error) {
	out, err := api.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{
		StreamName: s.Name(),
		StreamARN:  s.ARN(),
	})
	if err != nil {
		return nil, err
	}
	if out.StreamDescriptionSummary == nil {
		return nil, fmt.Errorf("describing stream %s: empty response", s)
	}
	return out.StreamDescriptionSummary, nil
}

// waitActive polls the stream until it is ACTIVE and returns its summary. It fails when the
// stream does not exist or is being deleted, and when ctx ends (the error then wraps ctx.Err()
// and gives the last status seen).
func waitActive(ctx context.Context, api kinesisAPI, s kinesisapi.Stream, poll time.Duration) (*types.StreamDescriptionSummary, error) {
	last := "unknown"
	for {
		sum, err := describe(ctx, api, s)
		switch {
		case err == nil:
			last = string(sum.StreamStatus)
			switch sum.StreamStatus {
			case types.StreamStatusActive:
				return sum, nil
			case types.StreamStatusDeleting:
				return nil, fmt.Errorf("stream %s is being deleted", s)
			}
		case ctx.Err() != nil:
			// The call was cut short by the deadline: report that below.
		default:
			return nil, kinesisapi.NotFound(s, err)
		}
		if err := kinesisapi.Sleep(ctx, poll); err != nil {
			return nil, fmt.Errorf("stream %s is not ACTIVE yet (status %s): %w", s, last, err)
		}
	}
}

// waitGone polls the stream until DescribeStreamSummary says it does not exist.
func waitGone(ctx context.Context, api kinesisAPI, s kinesisapi.Stream, poll time.Duration) error {
	last := "unknown"
	for {
		sum, err := describe(ctx, api, s)
		switch {
		case err == nil:
			last = string(sum.StreamStatus)
		case kinesisapi.IsNotFound(err):
			return nil
		case ctx.Err() != nil:
		default:
			return err
		}
		if err := kinesisapi.Sleep(ctx, poll); err != nil {
			return fmt.Errorf("stream %s is not deleted yet (status %s): %w", s, last, err)
		}
	}
}

// createResult says what createStream did.
type createResult struct {
	existed bool
	summary *types.StreamDescriptionSummary
}

// createStream creates the stream with the given number of shards, or finds it already there,
// and waits until it is ACTIVE.
func createStream(ctx context.Context, api kinesisAPI, s kinesisapi.Stream, shards int32, poll time.Duration) (createResult, error) {
	if s.IsARN() {
		return createResult{}, fmt.Errorf("create-stream needs a stream name, not an ARN (%s)", s)
	}
	_, err := api.CreateStream(ctx, &kinesis.CreateStreamInput{
		StreamName: s.Name(),
		ShardCount: aws.Int32(shards),
	})
	var inUse *types.ResourceInUseException
	existed := errors.As(err, &inUse)
	if err != nil && !existed {
		return createResult{}, fmt.Errorf("creating stream %s: %w", s, err)
	}
	sum, err := waitActive(ctx, api, s, poll)
	if err != nil {
		return createResult{}, err
	}
	return createResult{existed: existed, summary: sum}, nil
}

// deleteStream deletes the stream and waits until it is gone. It returns false when the stream
// did not exist.
func deleteStream(ctx context.Context, api kinesisAPI, s kinesisapi.Stream, enforceConsumerDeletion bool, poll time.Duration) (bool, error) {
	in := &kinesis.DeleteStreamInput{StreamName: s.Name(), StreamARN: s.ARN()}
	if enforceConsumerDeletion {
		in.EnforceConsumerDeletion = aws.Bool(true)
	}
	_, err := api.DeleteStream(ctx, in)
	var inUse *types.ResourceInUseException
	switch {
	case kinesisapi.IsNotFound(err):
		return false, nil
	case errors.As(err, &inUse):
		// Still CREATING or UPDATING, or already DELETING: wait for it to go away only in the
		// last case, otherwise say why it cannot be deleted now.
		sum, derr := describe(ctx, api, s)
		if kinesisapi.IsNotFound(derr) {
			return true, nil
		}
		if derr != nil || sum.StreamStatus != types.StreamStatusDeleting {
			return false, fmt.Errorf("deleting stream %s: %w", s, err)
		}
	case err != nil:
		return false, fmt.Errorf("deleting stream %s: %w", s, err)
	}
	return true, waitGone(ctx, api, s, poll)
}

// countRecords reads the shard from TRIM_HORIZON to its tip and returns how many records it
// holds. It stops when a call returns no records and MillisBehindLatest is 0 (or absent), or
// when the shard is closed and fully read (no NextShardIterator). Calls on the shard are at
// least pace apart; a throttled call is retried after throttleBackoff; an expired iterator is
// renewed after the last record read.
func countRecords(ctx context.Context, api kinesisAPI, s kinesisapi.Stream, shardID string, pace time.Duration) (int64, error) {
	iterator := func(afterSeq string) (*string, error) {
		in := &kinesis.GetShardIteratorInput{
			StreamName:        s.Name(),
			StreamARN:         s.ARN(),
			ShardId:           aws.String(shardID),
			ShardIteratorType: types.ShardIteratorTypeTrimHorizon,
		}
		if afterSeq != "" {
			in.ShardIteratorType = types.ShardIteratorTypeAfterSequenceNumber
			in.StartingSequenceNumber = aws.String(afterSeq)
		}
		out, err := api.GetShardIterator(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("getting an iterator for shard %s of stream %s: %w", shardID, s, kinesisapi.NotFound(s, err))
		}
		return out.ShardIterator, nil
	}

	it, err := iterator("")
	if err != nil {
		return 0, err
	}
	var (
		n        int64
		lastSeq  string
		lastCall time.Time
	)
	for it != nil {
		if !lastCall.IsZero() {
			if err := kinesisapi.Sleep(ctx, pace-time.Since(lastCall)); err != nil {
				return n, err
			}
		}
		lastCall = time.Now()
		out, err := api.GetRecords(ctx, &kinesis.GetRecordsInput{
			ShardIterator: it,
			Limit:         aws.Int32(getRecordsLimit),
		})
		if err != nil {
			var (
				throttled *types.ProvisionedThroughputExceededException
				expired   *types.ExpiredIteratorException
			)
			switch {
			case errors.As(err, &throttled):
				if err := kinesisapi.Sleep(ctx, throttleBackoff); err != nil {
					return n, err
				}
				continue
			case errors.As(err, &expired):
				if it, err = iterator(lastSeq); err != nil {
					return n, err
				}
				continue
			}
			return n, fmt.Errorf("reading shard %s of stream %s: %w", shardID, s, kinesisapi.NotFound(s, err))
		}
		n += int64(len(out.Records))
		if k := len(out.Records); k > 0 && out.Records[k-1].SequenceNumber != nil {
			lastSeq = *out.Records[k-1].SequenceNumber
		}
		if len(out.Records) == 0 && aws.ToInt64(out.MillisBehindLatest) == 0 {
			break
		}
		it = out.NextShardIterator
	}
	return n, nil
}
