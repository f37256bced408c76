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
		dial: func(context.Context, connSettings, io.Writer) (conn, error) { return stubConn{kin: createOK{api}}, nil },
		poll: time.Millisecond,
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

// stubConn hands out fixed clients.
type stubConn struct {
	kin kinesisAPI
	dyn dynamoAPI
}

func (s stubConn) kinesis() kinesisAPI { return s.kin }
func (s stubConn) dynamodb() dynamoAPI { return s.dyn }

// TestSettings checks where the AWS settings come from: the sub-command's flags win over the
// kinesis command's; --endpoint is the old name of --kinesis-endpoint.
func TestSettings(t *testing.T) {
	all := []string{"--region", "eu-west-1", "--profile", "p", "--role", "arn:aws:iam::1:role/r", "--role-external-id", "x",
		"--kinesis-endpoint", "http://kin", "--dynamodb-endpoint", "http://ddb"}
	full := connSettings{region: "eu-west-1", profile: "p", role: "arn:aws:iam::1:role/r", roleExternalID: "x",
		kinesisEndpoint: "http://kin", dynamodbEndpoint: "http://ddb"}
	cases := []struct {
		name string
		args []string
		want connSettings
	}{
		{name: "none", args: []string{"kinesis", "shards"}, want: connSettings{}},
		{name: "sub-command", args: append([]string{"kinesis", "shards"}, all...), want: full},
		{name: "kinesis command", args: append(append([]string{"kinesis"}, all...), "shards"), want: full},
		{name: "leases sub-command", args: append([]string{"kinesis", "leases", "list", "--table", "t"}, all...), want: full},
		{name: "old --endpoint", args: []string{"kinesis", "shards", "--endpoint", "http://old"}, want: connSettings{kinesisEndpoint: "http://old"}},
		{
			name: "sub-command wins",
			args: []string{"kinesis", "--kinesis-endpoint", "http://kin", "--region", "eu-west-1", "shards", "--kinesis-endpoint", "http://sub"},
			want: connSettings{kinesisEndpoint: "http://sub", region: "eu-west-1"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got connSettings
			errStop := errors.New("stop")
			o := options{dial: func(_ context.Context, s connSettings, _ io.Writer) (conn, error) {
				got = s
				return nil, errStop
			}}
			if _, _, err := runCLI(t, newCommand(o), append(tc.args, "--stream", "s")...); !errors.Is(err, errStop) {
				t.Fatalf("error = %v", err)
			}
			if got != tc.want {
				t.Errorf("settings = %+v, want %+v", got, tc.want)
			}
		})
	}
}
