package opscli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

// stubAPI is a scripted kinesisAPI: each method pops its next answer and records its input.
// It is used from one goroutine only.
type stubAPI struct {
	kinesisAPI // nil: an unscripted method panics

	getRecords []func(*kinesis.GetRecordsInput) (*kinesis.GetRecordsOutput, error)
	recordsIn  []*kinesis.GetRecordsInput

	iteratorIn []*kinesis.GetShardIteratorInput

	describe []func() (*kinesis.DescribeStreamSummaryOutput, error)
}

func (s *stubAPI) GetShardIterator(_ context.Context, in *kinesis.GetShardIteratorInput, _ ...func(*kinesis.Options)) (*kinesis.GetShardIteratorOutput, error) {
	s.iteratorIn = append(s.iteratorIn, in)
	return &kinesis.GetShardIteratorOutput{ShardIterator: aws.String(fmt.Sprintf("it-%d", len(s.iteratorIn)))}, nil
}

func (s *stubAPI) GetRecords(_ context.Context, in *kinesis.GetRecordsInput, _ ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error) {
	s.recordsIn = append(s.recordsIn, in)
	f := s.getRecords[0]
	s.getRecords = s.getRecords[1:]
	return f(in)
}

func (s *stubAPI) DescribeStreamSummary(context.Context, *kinesis.DescribeStreamSummaryInput, ...func(*kinesis.Options)) (*kinesis.DescribeStreamSummaryOutput, error) {
	f := s.describe[0]
	if len(s.describe) > 1 {
		s.describe = s.describe[1:]
	}
	return f()
}

func records(n int, firstSeq int, millisBehind int64, next *string) func(*kinesis.GetRecordsInput) (*kinesis.GetRecordsOutput, error) {
	return func(*kinesis.GetRecordsInput) (*kinesis.GetRecordsOutput, error) {
		out := &kinesis.GetRecordsOutput{MillisBehindLatest: aws.Int64(millisBehind), NextShardIterator: next}
		for i := range n {
			out.Records = append(out.Records, types.Record{SequenceNumber: aws.String(fmt.Sprint(firstSeq + i))})
		}
		return out, nil
	}
}

func fail(err error) func(*kinesis.GetRecordsInput) (*kinesis.GetRecordsOutput, error) {
	return func(*kinesis.GetRecordsInput) (*kinesis.GetRecordsOutput, error) { return nil, err }
}

func TestCountRecords(t *testing.T) {
	next := aws.String("next")
	cases := []struct {
		name      string
		calls     []func(*kinesis.GetRecordsInput) (*kinesis.GetRecordsOutput, error)
		want      int64
		wantErr   string
		iterators []string // types of the GetShardIterator calls
	}{
		{
			name:      "open shard, stops at the tip",
			calls:     []func(*kinesis.GetRecordsInput) (*kinesis.GetRecordsOutput, error){records(3, 1, 0, next), records(0, 0, 0, next)},
			want:      3,
			iterators: []string{"TRIM_HORIZON"},
		},
		{
			name: "empty but behind: keeps going",
			calls: []func(*kinesis.GetRecordsInput) (*kinesis.GetRecordsOutput, error){
				records(0, 0, 5000, next), records(0, 0, 4000, next), records(2, 1, 0, next), records(0, 0, 0, next),
			},
			want:      2,
			iterators: []string{"TRIM_HORIZON"},
		},
		{
			name:      "closed shard, stops without a next iterator",
			calls:     []func(*kinesis.GetRecordsInput) (*kinesis.GetRecordsOutput, error){records(4, 1, 100, next), records(0, 0, 100, nil)},
			want:      4,
			iterators: []string{"TRIM_HORIZON"},
		},
		{
			name: "throttled and expired",
			calls: []func(*kinesis.GetRecordsInput) (*kinesis.GetRecordsOutput, error){
				fail(&types.ProvisionedThroughputExceededException{Message: aws.String("slow down")}),
				records(3, 1, 10, next),
				fail(&types.ExpiredIteratorException{Message: aws.String("expired")}),
				records(2, 4, 0, next),
				records(0, 0, 0, next),
			},
			want:      5,
			iterators: []string{"TRIM_HORIZON", "AFTER_SEQUENCE_NUMBER:3"},
		},
		{
			name:      "stream deleted",
			calls:     []func(*kinesis.GetRecordsInput) (*kinesis.GetRecordsOutput, error){fail(&types.ResourceNotFoundException{Message: aws.String("gone")})},
			wantErr:   "reading shard shardId-000000000000 of stream s: stream s does not exist: ResourceNotFoundException: gone",
			iterators: []string{"TRIM_HORIZON"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			api := &stubAPI{getRecords: tc.calls}
			n, err := countRecords(t.Context(), api, "s", shardID(0), 0)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("error = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if n != tc.want {
				t.Errorf("count = %d, want %d", n, tc.want)
			}
			if len(api.getRecords) != 0 {
				t.Errorf("%d scripted GetRecords calls left", len(api.getRecords))
			}
			var its []string
			for _, in := range api.iteratorIn {
				it := string(in.ShardIteratorType)
				if in.StartingSequenceNumber != nil {
					it += ":" + *in.StartingSequenceNumber
				}
				its = append(its, it)
				if aws.ToString(in.StreamName) != "s" || aws.ToString(in.ShardId) != shardID(0) {
					t.Errorf("GetShardIterator %+v", in)
				}
			}
			if strings.Join(its, " ") != strings.Join(tc.iterators, " ") {
				t.Errorf("iterators %v, want %v", its, tc.iterators)
			}
			for _, in := range api.recordsIn {
				if aws.ToInt32(in.Limit) != getRecordsLimit {
					t.Errorf("GetRecords Limit %v", in.Limit)
				}
			}
		})
	}
}

// TestWaitTimeout checks that create-stream gives up after --timeout with the last status.
func TestWaitTimeout(t *testing.T) {
	api := &stubAPI{describe: []func() (*kinesis.DescribeStreamSummaryOutput, error){
		func() (*kinesis.DescribeStreamSummaryOutput, error) {
			return &kinesis.DescribeStreamSummaryOutput{StreamDescriptionSummary: &types.StreamDescriptionSummary{
				StreamStatus: types.StreamStatusCreating,
			}}, nil
		},
	}}
	o := options{
		newAPI: func(context.Context, connSettings, io.Writer) (kinesisAPI, error) { return createOK{api}, nil },
		poll:   time.Millisecond,
	}
	_, _, err := runCLI(t, newCommand(o), "kinesis", "create-stream", "--stream", "s", "--shards", "1", "--timeout", "50ms")
	if err == nil || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "stream s is not ACTIVE yet (status CREATING)") {
		t.Fatalf("error = %v, want a deadline error giving the status", err)
	}
}

// createOK adds a CreateStream that succeeds to a stub.
type createOK struct{ *stubAPI }

func (createOK) CreateStream(context.Context, *kinesis.CreateStreamInput, ...func(*kinesis.Options)) (*kinesis.CreateStreamOutput, error) {
	return &kinesis.CreateStreamOutput{}, nil
}

// TestSettings checks where --endpoint and --region come from.
func TestSettings(t *testing.T) {
	cases := []struct {
		name string
		env  string // KINESIS_ENDPOINT
		args []string
		want connSettings
	}{
		{name: "none", want: connSettings{}},
		{name: "environment", env: "http://env", want: connSettings{endpoint: "http://env"}},
		{name: "sub-command", env: "http://env", args: []string{"kinesis", "shards", "--endpoint", "http://sub", "--region", "eu-west-1"}, want: connSettings{"http://sub", "eu-west-1"}},
		{name: "kinesis command", env: "http://env", args: []string{"kinesis", "--endpoint", "http://kin", "--region", "eu-west-1", "shards"}, want: connSettings{"http://kin", "eu-west-1"}},
		{name: "sub-command wins", args: []string{"kinesis", "--endpoint", "http://kin", "--region", "eu-west-1", "shards", "--endpoint", "http://sub"}, want: connSettings{"http://sub", "eu-west-1"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(envEndpoint, tc.env)
			var got connSettings
			errStop := errors.New("stop")
			o := options{newAPI: func(_ context.Context, s connSettings, _ io.Writer) (kinesisAPI, error) {
				got = s
				return nil, errStop
			}}
			args := tc.args
			if args == nil {
				args = []string{"kinesis", "shards"}
			}
			if _, _, err := runCLI(t, newCommand(o), append(args, "--stream", "s")...); !errors.Is(err, errStop) {
				t.Fatalf("error = %v", err)
			}
			if got != tc.want {
				t.Errorf("settings = %+v, want %+v", got, tc.want)
			}
		})
	}
}
