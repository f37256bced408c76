package kinesisapi

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/benthos-kinesis/benthos-kinesis/internal/kinesisfake"
)

const account = "123456789012"

func arnOf(name string) string {
	return "arn:aws:kinesis:" + kinesisfake.Region + ":" + account + ":stream/" + name
}

func TestStream(t *testing.T) {
	cases := []struct {
		in    string
		isARN bool
	}{
		{"orders", false},
		{arnOf("orders"), true},
		{"arn:aws-cn:kinesis:cn-north-1:123456789012:stream/orders", true},
		{"arnold", false},        // a name that merely starts with "arn"
		{"my-arn:orders", false}, // "arn:" only counts at the start
		{"ARN:aws:kinesis", false},
		{"", false},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			s := Stream(tc.in)
			if s.IsARN() != tc.isARN {
				t.Fatalf("IsARN() = %v, want %v", s.IsARN(), tc.isARN)
			}
			name, arn := s.Name(), s.ARN()
			if (name == nil) == (arn == nil) {
				t.Fatalf("Name() %v and ARN() %v: want exactly one set", name, arn)
			}
			if got := aws.ToString(name) + aws.ToString(arn); got != tc.in {
				t.Fatalf("request names %q, want %q", got, tc.in)
			}
			if (arn != nil) != tc.isARN {
				t.Fatalf("ARN() set = %v for IsARN %v", arn != nil, tc.isARN)
			}
		})
	}
}

// recordingLister passes calls on to the fake's client, records every input
// and can inject a fault before a chosen call.
type recordingLister struct {
	api     *kinesis.Client
	srv     *kinesisfake.Server
	calls   []*kinesis.ListShardsInput
	failAt  int // 1-based call number to fail; 0 for none
	failTyp string
}

func (r *recordingLister) ListShards(ctx context.Context, in *kinesis.ListShardsInput, opts ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error) {
	r.calls = append(r.calls, in)
	if len(r.calls) == r.failAt {
		r.srv.FailNext(kinesisfake.OpListShards, 1, 400, r.failTyp, "")
	}
	return r.api.ListShards(ctx, in, opts...)
}

func TestListShards(t *testing.T) {
	cases := []struct {
		name     string
		shards   int
		stream   string // "" for the stream "s" by name
		pageSize int32
		calls    int
		failAt   int
		failTyp  string
		wantErr  string
		wantAs   func(error) bool
	}{
		{name: "one page, service page size", shards: 4, calls: 1},
		{name: "exact pages", shards: 6, pageSize: 3, calls: 2},
		{name: "last page short", shards: 7, pageSize: 3, calls: 3},
		{name: "page of one", shards: 3, pageSize: 1, calls: 3},
		{name: "by ARN over pages", shards: 5, stream: arnOf("s"), pageSize: 2, calls: 3},
		{
			name: "missing stream", shards: 2, stream: "nope", calls: 1,
			wantErr: "stream nope does not exist: ", wantAs: IsNotFound,
		},
		{
			name: "missing stream by ARN", shards: 2, stream: arnOf("nope"), calls: 1,
			wantErr: "stream " + arnOf("nope") + " does not exist: ", wantAs: IsNotFound,
		},
		{
			name: "failure on a later page", shards: 5, pageSize: 2, calls: 2,
			failAt: 2, failTyp: kinesisfake.ErrLimitExceeded,
			wantErr: "list shards of stream s: ",
			wantAs:  func(err error) bool { var le *types.LimitExceededException; return errors.As(err, &le) },
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := kinesisfake.Start(t, kinesisfake.WithAccountID(account), kinesisfake.WithStream("s", tc.shards))
			api := &recordingLister{
				api: srv.Client(func(o *kinesis.Options) { o.Retryer = aws.NopRetryer{} }),
				srv: srv, failAt: tc.failAt, failTyp: tc.failTyp,
			}
			stream := Stream(tc.stream)
			if stream == "" {
				stream = "s"
			}
			shards, err := ListShards(t.Context(), api, stream, tc.pageSize)
			if len(api.calls) != tc.calls {
				t.Errorf("%d ListShards calls, want %d", len(api.calls), tc.calls)
			}
			for i, in := range api.calls {
				named := aws.ToString(in.StreamName) + aws.ToString(in.StreamARN)
				if i == 0 && (named != string(stream) || in.NextToken != nil || (in.StreamARN != nil) != stream.IsARN()) {
					t.Errorf("call 1 names %q (ARN %v) with NextToken %v: want %q by its own field and no token", named, in.StreamARN != nil, in.NextToken, stream)
				}
				if i > 0 && (named != "" || in.NextToken == nil) {
					t.Errorf("call %d names %q with NextToken %v: want the token alone", i+1, named, in.NextToken)
				}
				if tc.pageSize > 0 && aws.ToInt32(in.MaxResults) != tc.pageSize {
					t.Errorf("call %d: MaxResults %v, want %d", i+1, in.MaxResults, tc.pageSize)
				}
			}
			if tc.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one starting %q", err, tc.wantErr)
				}
				if !tc.wantAs(err) {
					t.Fatalf("errors.As does not find the SDK's error type in %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want, _ := srv.ShardIDs("s")
			var got []string
			for _, sh := range shards {
				got = append(got, aws.ToString(sh.ShardId))
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("shards %v, want %v", got, want)
			}
		})
	}
}

func TestNotFound(t *testing.T) {
	rnf := &types.ResourceNotFoundException{Message: aws.String("Stream s under account 1 not found.")}
	other := errors.New("connection reset")
	cases := []struct {
		name    string
		err     error
		want    string // "" for nil
		notFind bool
	}{
		{name: "nil", err: nil},
		{name: "the SDK's error", err: rnf, want: "stream s does not exist: ResourceNotFoundException: Stream s under account 1 not found.", notFind: true},
		{name: "wrapped by the SDK's call", err: fmt.Errorf("operation ListShards: %w", rnf), want: "stream s does not exist: operation ListShards: ResourceNotFoundException: Stream s under account 1 not found.", notFind: true},
		{name: "another error unchanged", err: other, want: "connection reset"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := NotFound("s", tc.err)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("NotFound(nil) = %v", err)
				}
				return
			}
			if err == nil || err.Error() != tc.want {
				t.Fatalf("NotFound = %v, want %q", err, tc.want)
			}
			if IsNotFound(err) != tc.notFind {
				t.Fatalf("IsNotFound = %v, want %v", IsNotFound(err), tc.notFind)
			}
			var as *types.ResourceNotFoundException
			if tc.notFind && (!errors.As(err, &as) || as != rnf) {
				t.Fatalf("errors.As does not reach the SDK's error through %v", err)
			}
			if !tc.notFind && !errors.Is(err, tc.err) {
				t.Fatalf("%v does not wrap %v", err, tc.err)
			}
		})
	}
}

func TestSleep(t *testing.T) {
	done, cancel := context.WithCancel(context.Background())
	cancel()
	cases := []struct {
		name string
		ctx  context.Context
		d    time.Duration
		want error
	}{
		{name: "zero", ctx: context.Background(), d: 0},
		{name: "negative", ctx: context.Background(), d: -time.Second},
		{name: "short", ctx: context.Background(), d: time.Nanosecond},
		{name: "zero, done", ctx: done, d: 0, want: context.Canceled},
		{name: "long, done", ctx: done, d: time.Hour, want: context.Canceled},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := Sleep(tc.ctx, tc.d); !errors.Is(err, tc.want) || (err == nil) != (tc.want == nil) {
				t.Fatalf("Sleep = %v, want %v", err, tc.want)
			}
		})
	}
}
