package kinesisfake

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

func TestListShardsPagination(t *testing.T) {
	tests := []struct {
		shards, max int
		pages       []int
	}{
		{7, 3, []int{3, 3, 1}},
		{6, 3, []int{3, 3}},
		{1, 1, []int{1}},
		{25, 10, []int{10, 10, 5}},
		{5, 100, []int{5}},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%d shards by %d", tc.shards, tc.max), func(t *testing.T) {
			srv, c, _ := start(t, WithStream("s", tc.shards))
			var pages []int
			var ids []string
			in := &kinesis.ListShardsInput{StreamName: aws.String("s"), MaxResults: aws.Int32(int32(tc.max))}
			for {
				out, err := c.ListShards(context.Background(), in)
				if err != nil {
					t.Fatal(err)
				}
				pages = append(pages, len(out.Shards))
				for _, sh := range out.Shards {
					ids = append(ids, *sh.ShardId)
				}
				if out.NextToken == nil {
					break
				}
				in = &kinesis.ListShardsInput{NextToken: out.NextToken, MaxResults: aws.Int32(int32(tc.max))}
			}
			if fmt.Sprint(pages) != fmt.Sprint(tc.pages) {
				t.Fatalf("pages %v, want %v", pages, tc.pages)
			}
			want, _ := srv.ShardIDs("s")
			if fmt.Sprint(ids) != fmt.Sprint(want) {
				t.Fatalf("ids %v, want %v", ids, want)
			}
		})
	}
}

func TestListShardsErrors(t *testing.T) {
	_, c, clk := start(t, WithStream("s", 5))
	first, err := c.ListShards(context.Background(), &kinesis.ListShardsInput{StreamName: aws.String("s"), MaxResults: aws.Int32(2)})
	if err != nil {
		t.Fatal(err)
	}
	tok := first.NextToken
	tests := []struct {
		name    string
		in      *kinesis.ListShardsInput
		advance time.Duration
		code    string
		ids     string
	}{
		{name: "token and stream name", in: &kinesis.ListShardsInput{StreamName: aws.String("s"), NextToken: tok}, code: ErrInvalidArgument},
		{name: "garbage token", in: &kinesis.ListShardsInput{NextToken: aws.String("bm9wZQ==")}, code: ErrInvalidArgument},
		{name: "exclusive start", in: &kinesis.ListShardsInput{StreamName: aws.String("s"), ExclusiveStartShardId: aws.String("shardId-000000000002")}, ids: "[shardId-000000000003 shardId-000000000004]"},
		{name: "filter after shard", in: &kinesis.ListShardsInput{StreamName: aws.String("s"), ShardFilter: &types.ShardFilter{Type: types.ShardFilterTypeAfterShardId, ShardId: aws.String("shardId-000000000003")}}, ids: "[shardId-000000000004]"},
		{name: "filter at latest", in: &kinesis.ListShardsInput{StreamName: aws.String("s"), ShardFilter: &types.ShardFilter{Type: types.ShardFilterTypeAtLatest}, MaxResults: aws.Int32(2)}, ids: "[shardId-000000000000 shardId-000000000001]"},
		{name: "max results too big", in: &kinesis.ListShardsInput{StreamName: aws.String("s"), MaxResults: aws.Int32(10001)}, code: ErrValidation},
		{name: "unknown stream", in: &kinesis.ListShardsInput{StreamName: aws.String("nope")}, code: ErrResourceNotFound},
		{name: "by ARN", in: &kinesis.ListShardsInput{StreamARN: aws.String("arn:aws:kinesis:us-east-1:123456789012:stream/s"), ExclusiveStartShardId: aws.String("shardId-000000000003")}, ids: "[shardId-000000000004]"},
		{name: "token still valid", in: &kinesis.ListShardsInput{NextToken: tok}, advance: 299 * time.Second, ids: "[shardId-000000000002 shardId-000000000003 shardId-000000000004]"},
		{name: "token expired", in: &kinesis.ListShardsInput{NextToken: tok}, advance: 2 * time.Second, code: ErrExpiredNextToken},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk.Advance(tc.advance)
			out, err := c.ListShards(context.Background(), tc.in)
			wantErr(t, err, tc.code)
			if err != nil {
				return
			}
			var ids []string
			for _, sh := range out.Shards {
				ids = append(ids, *sh.ShardId)
			}
			if fmt.Sprint(ids) != tc.ids {
				t.Fatalf("ids %v, want %s", ids, tc.ids)
			}
		})
	}
}

func TestStreamLifecycle(t *testing.T) {
	srv, c, _ := start(t)
	ctx := context.Background()
	if _, err := c.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String("orders"), ShardCount: aws.Int32(3)}); err != nil {
		t.Fatal(err)
	}
	_, err := c.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String("orders"), ShardCount: aws.Int32(3)})
	wantErr(t, err, ErrResourceInUse)
	_, err = c.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String("bad name"), ShardCount: aws.Int32(1)})
	wantErr(t, err, ErrValidation)
	if _, err := c.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String("ondemand")}); err != nil {
		t.Fatal(err)
	}

	sum, err := c.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("orders")})
	if err != nil {
		t.Fatal(err)
	}
	d := sum.StreamDescriptionSummary
	if *d.StreamName != "orders" || d.StreamStatus != types.StreamStatusActive || *d.OpenShardCount != 3 ||
		*d.StreamARN != "arn:aws:kinesis:us-east-1:123456789012:stream/orders" || !d.StreamCreationTimestamp.Equal(t0) ||
		d.StreamModeDetails.StreamMode != types.StreamModeProvisioned {
		t.Fatalf("unexpected summary %+v", d)
	}
	od, err := c.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamARN: aws.String("arn:aws:kinesis:us-east-1:123456789012:stream/ondemand")})
	if err != nil {
		t.Fatal(err)
	}
	if *od.StreamDescriptionSummary.OpenShardCount != 4 || od.StreamDescriptionSummary.StreamModeDetails.StreamMode != types.StreamModeOnDemand {
		t.Fatalf("on-demand stream: %+v", od.StreamDescriptionSummary)
	}

	// DescribeStream paginates with Limit / ExclusiveStartShardId.
	var ids []string
	in := &kinesis.DescribeStreamInput{StreamName: aws.String("orders"), Limit: aws.Int32(2)}
	for {
		out, err := c.DescribeStream(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		for _, sh := range out.StreamDescription.Shards {
			ids = append(ids, *sh.ShardId)
		}
		if !*out.StreamDescription.HasMoreShards {
			break
		}
		in.ExclusiveStartShardId = aws.String(ids[len(ids)-1])
	}
	if fmt.Sprint(ids) != "[shardId-000000000000 shardId-000000000001 shardId-000000000002]" {
		t.Fatalf("DescribeStream shards %v", ids)
	}

	// ListStreams paginates.
	for _, n := range []string{"a1", "a2", "a3"} {
		if err := srv.CreateStream(n, 1); err != nil {
			t.Fatal(err)
		}
	}
	var names []string
	ls := &kinesis.ListStreamsInput{Limit: aws.Int32(2)}
	for {
		out, err := c.ListStreams(ctx, ls)
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, out.StreamNames...)
		if len(out.StreamSummaries) != len(out.StreamNames) {
			t.Fatalf("summaries %d names %d", len(out.StreamSummaries), len(out.StreamNames))
		}
		if !*out.HasMoreStreams {
			break
		}
		ls = &kinesis.ListStreamsInput{NextToken: out.NextToken, Limit: aws.Int32(2)}
	}
	if fmt.Sprint(names) != "[a1 a2 a3 ondemand orders]" {
		t.Fatalf("ListStreams %v", names)
	}

	if _, err := c.DeleteStream(ctx, &kinesis.DeleteStreamInput{StreamName: aws.String("orders")}); err != nil {
		t.Fatal(err)
	}
	_, err = c.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("orders")})
	wantErr(t, err, ErrResourceNotFound)
	_, err = putRecords(t, c, "orders", entries(1, constKey("k"), bytesOf(1)))
	wantErr(t, err, ErrResourceNotFound)
	_, err = c.DeleteStream(ctx, &kinesis.DeleteStreamInput{StreamName: aws.String("orders")})
	wantErr(t, err, ErrResourceNotFound)
}

func TestAPIRateLimits(t *testing.T) {
	_, c, clk := start(t, WithStream("s", 1), WithAPIRateLimits())
	ctx := context.Background()
	for i := 0; i < 20; i++ {
		if _, err := c.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("s")}); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	_, err := c.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("s")})
	wantErr(t, err, ErrLimitExceeded)
	for i := 0; i < 5; i++ {
		if _, err := c.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String("s"), ShardId: aws.String("shardId-000000000000"), ShardIteratorType: types.ShardIteratorTypeLatest}); err != nil {
			t.Fatal(err)
		}
	}
	_, err = c.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String("s"), ShardId: aws.String("shardId-000000000000"), ShardIteratorType: types.ShardIteratorTypeLatest})
	wantErr(t, err, ErrProvisionedThroughput)
	clk.Advance(time.Second)
	if _, err := c.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("s")}); err != nil {
		t.Fatal(err)
	}
}
