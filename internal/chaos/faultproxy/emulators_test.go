package faultproxy

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	kinesistypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/benthos-kinesis/benthos-kinesis/internal/testenv"
)

// These tests drive the real SDK clients through a proxy to the real emulators; testenv skips
// them when an emulator is missing, and fails them under CI=true.

func TestForwardKinesis(t *testing.T) {
	p := start(t, Kinesis, testenv.KinesaliteEndpoint(t))
	c := kinesisVia(t, p)
	stream := testenv.CreateStream(t, c, 1) // CreateStream and DescribeStreamSummary, proxied

	before := p.Stats()
	if before.Forwarded < 2 {
		t.Fatalf("Stats after CreateStream = %+v, want Forwarded >= 2", before)
	}
	put, err := c.PutRecord(callCtx(t), &kinesis.PutRecordInput{
		StreamName: aws.String(stream), PartitionKey: aws.String("pk"), Data: []byte("hello"),
	})
	if err != nil {
		t.Fatalf("PutRecord: %v", err)
	}
	recs := readAll(t, c, stream, *put.ShardId)
	if len(recs) != 1 || string(recs[0].Data) != "hello" || *recs[0].PartitionKey != "pk" {
		t.Fatalf("records = %+v, want the one put", recs)
	}
	want := before
	want.Forwarded += 3 // PutRecord, GetShardIterator, GetRecords
	if got := p.Stats(); got != want {
		t.Fatalf("Stats = %+v, want %+v", got, want)
	}
}

func TestForwardDynamoDB(t *testing.T) {
	p := start(t, DynamoDB, testenv.DynamoDBEndpoint(t))
	c := dynamoVia(t, p)
	table := testenv.CreateTable(t, c)

	before := p.Stats()
	key := map[string]ddbtypes.AttributeValue{
		"StreamID": &ddbtypes.AttributeValueMemberS{Value: "stream"},
		"ShardID":  &ddbtypes.AttributeValueMemberS{Value: "shardId-000000000000"},
	}
	item := map[string]ddbtypes.AttributeValue{
		"StreamID": key["StreamID"], "ShardID": key["ShardID"],
		"Owner": &ddbtypes.AttributeValueMemberS{Value: "reader-1"},
	}
	if _, err := c.PutItem(callCtx(t), &dynamodb.PutItemInput{TableName: aws.String(table), Item: item}); err != nil {
		t.Fatalf("PutItem: %v", err)
	}
	out, err := c.GetItem(callCtx(t), &dynamodb.GetItemInput{
		TableName: aws.String(table), Key: key, ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		t.Fatalf("GetItem: %v", err)
	}
	if owner, ok := out.Item["Owner"].(*ddbtypes.AttributeValueMemberS); !ok || owner.Value != "reader-1" {
		t.Fatalf("GetItem item = %#v, want Owner reader-1", out.Item)
	}
	want := before
	want.Forwarded += 2
	if got := p.Stats(); got != want {
		t.Fatalf("Stats = %+v, want %+v", got, want)
	}
}

// readAll reads a shard from TRIM_HORIZON with one GetRecords call.
func readAll(t *testing.T, c *kinesis.Client, stream, shard string) []kinesistypes.Record {
	t.Helper()
	it, err := c.GetShardIterator(callCtx(t), &kinesis.GetShardIteratorInput{
		StreamName: aws.String(stream), ShardId: aws.String(shard),
		ShardIteratorType: kinesistypes.ShardIteratorTypeTrimHorizon,
	})
	if err != nil {
		t.Fatalf("GetShardIterator: %v", err)
	}
	out, err := c.GetRecords(callCtx(t), &kinesis.GetRecordsInput{ShardIterator: it.ShardIterator})
	if err != nil {
		t.Fatalf("GetRecords: %v", err)
	}
	return out.Records
}

// TestInjectedErrors checks that the SDK parses each faked answer as the real one: type, code,
// status, request ID, and how its standard retryer classifies it. The calls name resources that
// do not exist: were one forwarded by mistake, the emulator's ResourceNotFound or
// InvalidArgument would fail the check.
func TestInjectedErrors(t *testing.T) {
	isThrottle := func(err error) bool {
		return retry.IsErrorThrottles(retry.DefaultThrottles).IsErrorThrottle(err) == aws.TrueTernary
	}
	isRetryable := func(err error) bool {
		return retry.IsErrorRetryables(retry.DefaultRetryables).IsErrorRetryable(err) == aws.TrueTernary
	}
	assertServerError := func(t *testing.T, i int, err error) {
		code, _ := apiError(t, err)
		status := httpStatus(t, err)
		wantStatus, wantCode := 500, codeInternal
		if i%2 == 1 {
			wantStatus, wantCode = 503, codeUnavailable
		}
		if status != wantStatus || code != wantCode {
			t.Errorf("call %d: status %d code %s, want %d %s (%v)", i, status, code, wantStatus, wantCode, err)
		}
		if !isRetryable(err) {
			t.Errorf("call %d: the SDK does not retry %v", i, err)
		}
	}
	assertRejected := func(t *testing.T, _ int, err error) {
		code, msg := apiError(t, err)
		if code != codeUnrecognized || msg != msgUnrecognized || httpStatus(t, err) != 400 {
			t.Errorf("error %v, want 400 %s %q", err, codeUnrecognized, msgUnrecognized)
		}
	}
	wantReset := func(t *testing.T, _ int, err error) { assertReset(t, err) }

	cases := []struct {
		name    string
		service Service
		faults  Faults
		check   func(t *testing.T, i int, err error)
		count   func(Stats) int
	}{
		{"kinesis throttle", Kinesis, Faults{ThrottleRate: 1}, func(t *testing.T, i int, err error) {
			var pte *kinesistypes.ProvisionedThroughputExceededException
			if !errors.As(err, &pte) {
				t.Fatalf("error %v (%T) is not a ProvisionedThroughputExceededException", err, err)
			}
			if _, msg := apiError(t, err); msg != kinesisThroughput+injectedSuffix || httpStatus(t, err) != 400 {
				t.Errorf("error %v, want 400 with message %q", err, kinesisThroughput+injectedSuffix)
			}
			if !isThrottle(err) {
				t.Errorf("the SDK does not see %v as throttling", err)
			}
		}, func(s Stats) int { return s.Throttled }},
		{"dynamodb throttle", DynamoDB, Faults{ThrottleRate: 1}, func(t *testing.T, i int, err error) {
			var pte *ddbtypes.ProvisionedThroughputExceededException
			var te *ddbtypes.ThrottlingException
			code, _ := apiError(t, err)
			if i%2 == 0 && !errors.As(err, &pte) || i%2 == 1 && (code != codeThrottling || !errors.As(err, &te)) {
				t.Fatalf("call %d: error %v (%T), want ProvisionedThroughputExceeded then Throttling", i, err, err)
			}
			if httpStatus(t, err) != 400 || !isThrottle(err) {
				t.Errorf("call %d: error %v is not a 400 throttle", i, err)
			}
		}, func(s Stats) int { return s.Throttled }},
		{"kinesis server errors", Kinesis, Faults{ServerErrorRate: 1}, assertServerError, func(s Stats) int { return s.ServerErrors }},
		{"dynamodb server errors", DynamoDB, Faults{ServerErrorRate: 1}, assertServerError, func(s Stats) int { return s.ServerErrors }},
		{"kinesis rejected credentials", Kinesis, Faults{RejectCredentials: true, ThrottleRate: 1}, assertRejected, func(s Stats) int { return s.Rejected }},
		{"dynamodb rejected credentials", DynamoDB, Faults{RejectCredentials: true}, assertRejected, func(s Stats) int { return s.Rejected }},
		{"kinesis reset", Kinesis, Faults{ResetRate: 1}, wantReset, func(s Stats) int { return s.Resets }},
		{"dynamodb reset", DynamoDB, Faults{ResetRate: 1}, wantReset, func(s Stats) int { return s.Resets }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var p *Proxy
			var call func(ctx context.Context) error
			if tc.service == Kinesis {
				p = start(t, Kinesis, testenv.KinesaliteEndpoint(t))
				c := kinesisVia(t, p)
				call = func(ctx context.Context) error {
					_, err := c.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: aws.String("AAAAAAAAAAAAAAAA")})
					return err
				}
			} else {
				p = start(t, DynamoDB, testenv.DynamoDBEndpoint(t))
				c := dynamoVia(t, p)
				call = func(ctx context.Context) error {
					_, err := c.GetItem(ctx, &dynamodb.GetItemInput{
						TableName: aws.String("no-such-table"),
						Key:       map[string]ddbtypes.AttributeValue{"StreamID": &ddbtypes.AttributeValueMemberS{Value: "s"}},
					})
					return err
				}
			}
			p.SetFaults(tc.faults)
			const calls = 4
			for i := range calls {
				ctx := callCtx(t)
				err := call(ctx)
				if ctx.Err() != nil {
					t.Fatalf("call %d hung until its deadline: %v", i, err)
				}
				if err == nil {
					t.Fatalf("call %d succeeded", i)
				}
				tc.check(t, i, err)
			}
			st := p.Stats()
			if tc.count(st) != calls || st.Forwarded != 0 {
				t.Fatalf("Stats = %+v, want %d of the fault and nothing forwarded", st, calls)
			}
		})
	}
}

// TestOperationsFilter checks that faults hit only the named operations, by name or target.
func TestOperationsFilter(t *testing.T) {
	t.Run("kinesis GetRecords", func(t *testing.T) {
		t.Parallel()
		stream := testenv.CreateStream(t, testenv.Kinesalite(t), 1)
		for _, ops := range [][]string{{"GetRecords"}, {"Kinesis_20131202.GetRecords", "DynamoDB_20120810.GetItem"}} {
			p := start(t, Kinesis, testenv.KinesaliteEndpoint(t))
			c := kinesisVia(t, p)
			p.SetFaults(Faults{ThrottleRate: 1, Operations: ops})
			put, err := c.PutRecord(callCtx(t), &kinesis.PutRecordInput{
				StreamName: aws.String(stream), PartitionKey: aws.String("pk"), Data: []byte("x"),
			})
			if err != nil {
				t.Fatalf("%v: PutRecord: %v", ops, err)
			}
			it, err := c.GetShardIterator(callCtx(t), &kinesis.GetShardIteratorInput{
				StreamName: aws.String(stream), ShardId: put.ShardId,
				ShardIteratorType: kinesistypes.ShardIteratorTypeTrimHorizon,
			})
			if err != nil {
				t.Fatalf("%v: GetShardIterator: %v", ops, err)
			}
			_, err = c.GetRecords(callCtx(t), &kinesis.GetRecordsInput{ShardIterator: it.ShardIterator})
			var pte *kinesistypes.ProvisionedThroughputExceededException
			if !errors.As(err, &pte) {
				t.Fatalf("%v: GetRecords error = %v, want ProvisionedThroughputExceededException", ops, err)
			}
			if got, want := p.Stats(), (Stats{Forwarded: 2, Throttled: 1}); got != want {
				t.Fatalf("%v: Stats = %+v, want %+v", ops, got, want)
			}
		}
	})
	t.Run("dynamodb UpdateItem", func(t *testing.T) {
		t.Parallel()
		table := testenv.CreateTable(t, testenv.DynamoDB(t))
		p := start(t, DynamoDB, testenv.DynamoDBEndpoint(t))
		c := dynamoVia(t, p)
		p.SetFaults(Faults{ServerErrorRate: 1, Operations: []string{"UpdateItem"}})
		key := map[string]ddbtypes.AttributeValue{
			"StreamID": &ddbtypes.AttributeValueMemberS{Value: "s"},
			"ShardID":  &ddbtypes.AttributeValueMemberS{Value: "shardId-0"},
		}
		if _, err := c.PutItem(callCtx(t), &dynamodb.PutItemInput{TableName: aws.String(table), Item: key}); err != nil {
			t.Fatalf("PutItem: %v", err)
		}
		if _, err := c.GetItem(callCtx(t), &dynamodb.GetItemInput{TableName: aws.String(table), Key: key}); err != nil {
			t.Fatalf("GetItem: %v", err)
		}
		_, err := c.UpdateItem(callCtx(t), &dynamodb.UpdateItemInput{
			TableName: aws.String(table), Key: key,
			UpdateExpression:          aws.String("SET Checkpoint = :c"),
			ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{":c": &ddbtypes.AttributeValueMemberS{Value: "1"}},
		})
		if err == nil || httpStatus(t, err) != 500 {
			t.Fatalf("UpdateItem error = %v, want a 500", err)
		}
		if got, want := p.Stats(), (Stats{Forwarded: 2, ServerErrors: 1}); got != want {
			t.Fatalf("Stats = %+v, want %+v", got, want)
		}
	})
}

// TestPartition checks the black hole on a Kinesis stream: a call with a deadline times out,
// a held call is reset when the partition lifts and never reaches the emulator, and calls go
// through again afterwards.
func TestPartition(t *testing.T) {
	stream := testenv.CreateStream(t, testenv.Kinesalite(t), 1)
	p := start(t, Kinesis, testenv.KinesaliteEndpoint(t))
	ev := events(p)
	c := kinesisVia(t, p)
	describe := func(ctx context.Context) error {
		_, err := c.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(stream)})
		return err
	}
	if err := describe(callCtx(t)); err != nil { // leaves an idle connection to the proxy
		t.Fatalf("before the partition: %v", err)
	}

	p.Partition(true)
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	if err := describe(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("during the partition: error = %v, want context.DeadlineExceeded", err)
	}
	await(t, ev, eventHeld)

	// A client with a fresh connection and no deadline: held until the partition lifts.
	fresh := kinesisVia(t, p)
	errc := make(chan error, 1)
	go func() {
		_, err := fresh.PutRecord(t.Context(), &kinesis.PutRecordInput{
			StreamName: aws.String(stream), PartitionKey: aws.String("pk"), Data: []byte("late"),
		})
		errc <- err
	}()
	await(t, ev, eventHeld)
	p.Partition(false)
	select {
	case err := <-errc:
		assertReset(t, err)
	case <-time.After(callTimeout):
		t.Fatal("the held PutRecord did not end when the partition lifted")
	}

	if err := describe(callCtx(t)); err != nil {
		t.Fatalf("after the partition: %v", err)
	}
	if recs := readAll(t, testenv.Kinesalite(t), stream, "shardId-000000000000"); len(recs) != 0 {
		t.Fatalf("the held PutRecord reached the stream: %+v", recs)
	}
	if got, want := p.Stats(), (Stats{Forwarded: 2, Held: 2}); got != want {
		t.Fatalf("Stats = %+v, want %+v", got, want)
	}
}
