package opscli

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
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

// streamRef names a stream: by ARN when the user passed one, else by name.
type streamRef string

func (s streamRef) isARN() bool { return strings.HasPrefix(string(s), "arn:") }

// name and arn return the values for the StreamName and StreamARN fields of a request: one of
// them is nil.
func (s streamRef) name() *string {
	if s.isARN() {
		return nil
	}
	return aws.String(string(s))
}

func (s streamRef) arn() *string {
	if s.isARN() {
		return aws.String(string(s))
	}
	return nil
}

// notFound wraps a ResourceNotFoundException about the stream as "stream NAME does not exist".
// Other errors are returned as they are.
func notFound(s streamRef, err error) error {
	var rnf *types.ResourceNotFoundException
	if errors.As(err, &rnf) {
		return fmt.Errorf("stream %s does not exist: %w", s, err)
	}
	return err
}

func isNotFound(err error) bool {
	var rnf *types.ResourceNotFoundException
	return errors.As(err, &rnf)
}

// describe returns the stream's summary.
func describe(ctx context.Context, api kinesisAPI, s streamRef) (*types.StreamDescriptionSummary, error) {
	out, err := api.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{
		StreamName: s.name(),
		StreamARN:  s.arn(),
	})
	if err != nil {
		return nil, err
	}
	if out.StreamDescriptionSummary == nil {
		return nil, fmt.Errorf("describing stream %s: empty response", s)
	}
	return out.StreamDescriptionSummary, nil
}

// sleep waits d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// waitActive polls the stream until it is ACTIVE and returns its summary. It fails when the
// stream does not exist or is being deleted, and when ctx ends (the error then wraps ctx.Err()
// and gives the last status seen).
func waitActive(ctx context.Context, api kinesisAPI, s streamRef, poll time.Duration) (*types.StreamDescriptionSummary, error) {
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
			return nil, notFound(s, err)
		}
		if err := sleep(ctx, poll); err != nil {
			return nil, fmt.Errorf("stream %s is not ACTIVE yet (status %s): %w", s, last, err)
		}
	}
}

// waitGone polls the stream until DescribeStreamSummary says it does not exist.
func waitGone(ctx context.Context, api kinesisAPI, s streamRef, poll time.Duration) error {
	last := "unknown"
	for {
		sum, err := describe(ctx, api, s)
		switch {
		case err == nil:
			last = string(sum.StreamStatus)
		case isNotFound(err):
			return nil
		case ctx.Err() != nil:
		default:
			return err
		}
		if err := sleep(ctx, poll); err != nil {
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
func createStream(ctx context.Context, api kinesisAPI, s streamRef, shards int32, poll time.Duration) (createResult, error) {
	if s.isARN() {
		return createResult{}, fmt.Errorf("create-stream needs a stream name, not an ARN (%s)", s)
	}
	_, err := api.CreateStream(ctx, &kinesis.CreateStreamInput{
		StreamName: s.name(),
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
func deleteStream(ctx context.Context, api kinesisAPI, s streamRef, enforceConsumerDeletion bool, poll time.Duration) (bool, error) {
	in := &kinesis.DeleteStreamInput{StreamName: s.name(), StreamARN: s.arn()}
	if enforceConsumerDeletion {
		in.EnforceConsumerDeletion = aws.Bool(true)
	}
	_, err := api.DeleteStream(ctx, in)
	var inUse *types.ResourceInUseException
	switch {
	case isNotFound(err):
		return false, nil
	case errors.As(err, &inUse):
		// Still CREATING or UPDATING, or already DELETING: wait for it to go away only in the
		// last case, otherwise say why it cannot be deleted now.
		sum, derr := describe(ctx, api, s)
		if isNotFound(derr) {
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

// listShards returns every shard of the stream, following NextToken. Only the first call names
// the stream: the service rejects a NextToken together with a StreamName or StreamARN.
// pageSize 0 leaves MaxResults to the service.
func listShards(ctx context.Context, api kinesisAPI, s streamRef, pageSize int32) ([]types.Shard, error) {
	in := &kinesis.ListShardsInput{StreamName: s.name(), StreamARN: s.arn()}
	if pageSize > 0 {
		in.MaxResults = aws.Int32(pageSize)
	}
	var shards []types.Shard
	for {
		out, err := api.ListShards(ctx, in)
		if err != nil {
			if isNotFound(err) {
				return nil, notFound(s, err)
			}
			return nil, fmt.Errorf("listing the shards of stream %s: %w", s, err)
		}
		shards = append(shards, out.Shards...)
		if out.NextToken == nil || *out.NextToken == "" {
			return shards, nil
		}
		in = &kinesis.ListShardsInput{NextToken: out.NextToken, MaxResults: in.MaxResults}
	}
}

// countRecords reads the shard from TRIM_HORIZON to its tip and returns how many records it
// holds. It stops when a call returns no records and MillisBehindLatest is 0 (or absent), or
// when the shard is closed and fully read (no NextShardIterator). Calls on the shard are at
// least pace apart; a throttled call is retried after throttleBackoff; an expired iterator is
// renewed after the last record read.
func countRecords(ctx context.Context, api kinesisAPI, s streamRef, shardID string, pace time.Duration) (int64, error) {
	iterator := func(afterSeq string) (*string, error) {
		in := &kinesis.GetShardIteratorInput{
			StreamName:        s.name(),
			StreamARN:         s.arn(),
			ShardId:           aws.String(shardID),
			ShardIteratorType: types.ShardIteratorTypeTrimHorizon,
		}
		if afterSeq != "" {
			in.ShardIteratorType = types.ShardIteratorTypeAfterSequenceNumber
			in.StartingSequenceNumber = aws.String(afterSeq)
		}
		out, err := api.GetShardIterator(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("getting an iterator for shard %s of stream %s: %w", shardID, s, notFound(s, err))
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
			if err := sleep(ctx, pace-time.Since(lastCall)); err != nil {
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
				if err := sleep(ctx, throttleBackoff); err != nil {
					return n, err
				}
				continue
			case errors.As(err, &expired):
				if it, err = iterator(lastSeq); err != nil {
					return n, err
				}
				continue
			}
			return n, fmt.Errorf("reading shard %s of stream %s: %w", shardID, s, notFound(s, err))
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
