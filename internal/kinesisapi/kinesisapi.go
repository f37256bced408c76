// Package kinesisapi holds the small helpers that every caller of the Kinesis
// API in this module needs, written once: addressing a stream by name or by
// ARN (Stream), listing every shard of a stream across ListShards pages
// (ListShards), turning the SDK's *types.ResourceNotFoundException into
// "stream X does not exist" without hiding it from errors.As (NotFound), and
// waiting that ends with its context (Sleep).
package kinesisapi

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

// Stream is a stream as the user gave it: an ARN when it starts with "arn:",
// else a name. Requests name it by the field that matches, because kinesalite
// rejects ARNs while a cross-account ARN cannot be given as a name.
type Stream string

// IsARN says whether the stream is given by ARN.
func (s Stream) IsARN() bool { return strings.HasPrefix(string(s), "arn:") }

// Name is the value of a request's StreamName field: nil for an ARN.
func (s Stream) Name() *string {
	if s.IsARN() {
		return nil
	}
	return aws.String(string(s))
}

// ARN is the value of a request's StreamARN field: nil for a name.
func (s Stream) ARN() *string {
	if s.IsARN() {
		return aws.String(string(s))
	}
	return nil
}

// String is the stream as given, for messages and labels.
func (s Stream) String() string { return string(s) }

// IsNotFound says whether err is or wraps a *types.ResourceNotFoundException.
func IsNotFound(err error) bool {
	var rnf *types.ResourceNotFoundException
	return errors.As(err, &rnf)
}

// NotFound wraps a *types.ResourceNotFoundException as "stream S does not
// exist: ..." (still matched by errors.As); any other error, and nil, is
// returned as it is.
func NotFound(s Stream, err error) error {
	if IsNotFound(err) {
		return fmt.Errorf("stream %s does not exist: %w", s, err)
	}
	return err
}

// ShardLister is the part of the Kinesis client that ListShards needs.
type ShardLister interface {
	ListShards(ctx context.Context, in *kinesis.ListShardsInput, opts ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error)
}

// ListShards returns every shard of the stream, open and closed, following
// NextToken. Only the first call names the stream: the service rejects a
// NextToken together with a StreamName or StreamARN. pageSize 0 leaves
// MaxResults to the service. A missing stream gives NotFound's error.
func ListShards(ctx context.Context, api ShardLister, s Stream, pageSize int32) ([]types.Shard, error) {
	in := &kinesis.ListShardsInput{StreamName: s.Name(), StreamARN: s.ARN()}
	if pageSize > 0 {
		in.MaxResults = aws.Int32(pageSize)
	}
	var shards []types.Shard
	for {
		out, err := api.ListShards(ctx, in)
		if err != nil {
			if IsNotFound(err) {
				return nil, NotFound(s, err)
			}
			return nil, fmt.Errorf("list shards of stream %s: %w", s, err)
		}
		shards = append(shards, out.Shards...)
		if aws.ToString(out.NextToken) == "" {
			return shards, nil
		}
		in = &kinesis.ListShardsInput{NextToken: out.NextToken, MaxResults: in.MaxResults}
	}
}

// Sleep waits d or until ctx is done, and returns ctx.Err() in the latter
// case. A d of zero or less does not wait, but still reports a done ctx, so
// that a loop of Sleep calls always notices its cancellation.
func Sleep(ctx context.Context, d time.Duration) error {
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
