package testenv

import (
	"context"
	"errors"
	"net"
	"net/url"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

// These tests run against the emulators started by up.sh (`make emulators-up`).

func TestKinesaliteStream(t *testing.T) {
	t.Parallel()
	testStreamLifecycle(t, Kinesalite(t))
}

func TestKinesisMockStream(t *testing.T) {
	t.Parallel()
	testStreamLifecycle(t, KinesisMock(t))
}

// testStreamLifecycle creates a stream in a subtest, uses it, and checks that the subtest's
// cleanup deleted it.
func testStreamLifecycle(t *testing.T, c *kinesis.Client) {
	var name string
	t.Run("create", func(t *testing.T) {
		name = CreateStream(t, c, 2)
		ctx := t.Context()
		out, err := c.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(name)})
		if err != nil {
			t.Fatal(err)
		}
		if s := out.StreamDescriptionSummary; s.StreamStatus != types.StreamStatusActive || aws.ToInt32(s.OpenShardCount) != 2 {
			t.Fatalf("stream %s: status %s, %d open shards; want ACTIVE, 2", name, s.StreamStatus, aws.ToInt32(s.OpenShardCount))
		}
		put, err := c.PutRecord(ctx, &kinesis.PutRecordInput{
			StreamName:   aws.String(name),
			PartitionKey: aws.String("pk"),
			Data:         []byte("hello"),
		})
		if err != nil {
			t.Fatal(err)
		}
		it, err := c.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{
			StreamName:        aws.String(name),
			ShardId:           put.ShardId,
			ShardIteratorType: types.ShardIteratorTypeTrimHorizon,
		})
		if err != nil {
			t.Fatal(err)
		}
		recs, err := c.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it.ShardIterator})
		if err != nil {
			t.Fatal(err)
		}
		if len(recs.Records) != 1 || string(recs.Records[0].Data) != "hello" {
			t.Fatalf("GetRecords = %+v, want the one record put", recs.Records)
		}
	})
	if name == "" {
		return
	}
	assertGone(t, func(ctx context.Context) (string, error) {
		out, err := c.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(name)})
		var notFound *types.ResourceNotFoundException
		if errors.As(err, &notFound) {
			return "", nil
		}
		if err != nil {
			return "", err
		}
		return string(out.StreamDescriptionSummary.StreamStatus), nil
	})
}

func TestDynaliteTable(t *testing.T) {
	t.Parallel()
	c := DynamoDB(t)
	var name string
	t.Run("create", func(t *testing.T) {
		name = CreateTable(t, c)
		ctx := t.Context()
		out, err := c.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(name)})
		if err != nil {
			t.Fatal(err)
		}
		tb := out.Table
		if tb.TableStatus != ddbtypes.TableStatusActive || len(tb.KeySchema) != 2 ||
			aws.ToString(tb.KeySchema[0].AttributeName) != "StreamID" || tb.KeySchema[0].KeyType != ddbtypes.KeyTypeHash ||
			aws.ToString(tb.KeySchema[1].AttributeName) != "ShardID" || tb.KeySchema[1].KeyType != ddbtypes.KeyTypeRange {
			t.Fatalf("table %s: status %s, key schema %+v", name, tb.TableStatus, tb.KeySchema)
		}
		if tb.BillingModeSummary == nil || tb.BillingModeSummary.BillingMode != ddbtypes.BillingModePayPerRequest {
			t.Fatalf("table %s: billing mode %+v, want PAY_PER_REQUEST", name, tb.BillingModeSummary)
		}
		key := map[string]ddbtypes.AttributeValue{
			"StreamID": &ddbtypes.AttributeValueMemberS{Value: "s"},
			"ShardID":  &ddbtypes.AttributeValueMemberS{Value: "shardId-000000000000"},
		}
		item := map[string]ddbtypes.AttributeValue{"Checkpoint": &ddbtypes.AttributeValueMemberS{Value: "42"}}
		for k, v := range key {
			item[k] = v
		}
		if _, err := c.PutItem(ctx, &dynamodb.PutItemInput{
			TableName:           aws.String(name),
			Item:                item,
			ConditionExpression: aws.String("attribute_not_exists(StreamID)"),
		}); err != nil {
			t.Fatal(err)
		}
		got, err := c.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(name), Key: key, ConsistentRead: aws.Bool(true)})
		if err != nil {
			t.Fatal(err)
		}
		if v, ok := got.Item["Checkpoint"].(*ddbtypes.AttributeValueMemberS); !ok || v.Value != "42" {
			t.Fatalf("GetItem = %+v", got.Item)
		}
	})
	if name == "" {
		return
	}
	assertGone(t, func(ctx context.Context) (string, error) {
		out, err := c.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(name)})
		var notFound *ddbtypes.ResourceNotFoundException
		if errors.As(err, &notFound) {
			return "", nil
		}
		if err != nil {
			return "", err
		}
		return string(out.Table.TableStatus), nil
	})
}

// assertGone checks that a resource deleted by a cleanup is DELETING or gone, and polls until it
// is gone.
func assertGone(t *testing.T, status func(context.Context) (string, error)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	for {
		s, err := status(ctx)
		if err != nil {
			t.Fatalf("after cleanup: %v", err)
		}
		if s == "" {
			return
		}
		if s != "DELETING" {
			t.Fatalf("after cleanup the resource is %s, want DELETING or gone", s)
		}
		if err := sleep(ctx, pollInterval); err != nil {
			t.Fatalf("still DELETING: %v", err)
		}
	}
}

func TestWaitStreamActiveBounded(t *testing.T) {
	t.Parallel()
	c := Kinesalite(t)
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	err := WaitStreamActive(ctx, c, UniqueName(t, "missing"))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitStreamActive on a missing stream = %v, want a deadline error", err)
	}
}

func TestCheckIsCachedPerEndpoint(t *testing.T) {
	ep := KinesaliteEndpoint(t)
	if err := check(kinesalite, ep); err != nil {
		t.Fatal(err)
	}
	// Nothing listens on port 1: the check fails, and fails the same way the second time.
	bad := "http://127.0.0.1:1"
	err1 := check(kinesalite, bad)
	err2 := check(kinesalite, bad)
	if err1 == nil || err1 != err2 {
		t.Fatalf("check(%s) = %v then %v; want the same cached error", bad, err1, err2)
	}
}

// TestEmulatorsListenOnLoopbackOnly: kinesalite and kinesis-local have no host option; the
// loopback.js preload must keep them (and dynalite) off every other interface.
func TestEmulatorsListenOnLoopbackOnly(t *testing.T) {
	endpoints := []string{KinesaliteEndpoint(t), KinesisMockEndpoint(t), DynamoDBEndpoint(t)}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	var others []net.IP
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && !n.IP.IsLinkLocalUnicast() {
			others = append(others, n.IP)
		}
	}
	if len(others) == 0 {
		t.Skip("this machine has no non-loopback address to check")
	}
	for _, ep := range endpoints {
		u, err := url.Parse(ep)
		if err != nil {
			t.Fatal(err)
		}
		if h := u.Hostname(); h != "127.0.0.1" && h != "localhost" {
			continue // not a local emulator started by up.sh
		}
		for _, ip := range others {
			addr := net.JoinHostPort(ip.String(), u.Port())
			if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
				c.Close()
				t.Errorf("the emulator at %s also accepts connections on %s", ep, addr)
			}
		}
	}
}
