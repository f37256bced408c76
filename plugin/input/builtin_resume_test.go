package input

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/benthos-kinesis/benthos-kinesis/internal/testenv"
)

// A table written by the built-in input (rows of StreamID, ShardID,
// SequenceNumber, ClientID, LeaseTimeout only) is resumed after its
// sequence numbers: a shard released by the built-in at once, a shard still
// leased by a built-in client (which has no heartbeat row) after watching it
// for a lease period.
func TestIntegrationResumesFromBuiltinRows(t *testing.T) {
	kc := testenv.Kinesalite(t)
	dc := testenv.DynamoDB(t)
	stream := testenv.CreateStream(t, kc, 2)
	table := testenv.CreateTable(t, dc)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	// 100 records per shard, numbered by shard: shard i holds i*1000+j.
	lastSeq := map[string][]string{}
	for shard := 0; shard < 2; shard++ {
		shardID := "shardId-00000000000" + strconv.Itoa(shard)
		hashKey := []string{"0", "170141183460469231731687303715884105728"}[shard]
		for j := 0; j < 100; j++ {
			out, err := kc.PutRecord(ctx, &kinesis.PutRecordInput{
				StreamName: aws.String(stream), PartitionKey: aws.String("k"), ExplicitHashKey: aws.String(hashKey),
				Data: []byte(strconv.Itoa(shard*1000 + j)),
			})
			if err != nil || aws.ToString(out.ShardId) != shardID {
				t.Fatalf("put to %s: %v (%v)", shardID, err, out)
			}
			lastSeq[shardID] = append(lastSeq[shardID], aws.ToString(out.SequenceNumber))
		}
	}
	builtinRow := func(shard, seq string, leased bool) {
		item := map[string]dtypes.AttributeValue{
			"StreamID":       &dtypes.AttributeValueMemberS{Value: stream},
			"ShardID":        &dtypes.AttributeValueMemberS{Value: shard},
			"SequenceNumber": &dtypes.AttributeValueMemberS{Value: seq},
		}
		if leased {
			item["ClientID"] = &dtypes.AttributeValueMemberS{Value: "8c0b3c1e-5b7a-4c7e-9a55-2f0d5f3c9a11"}
			item["LeaseTimeout"] = &dtypes.AttributeValueMemberS{Value: time.Now().Add(30 * time.Second).Format(time.RFC3339Nano)}
		}
		if _, err := dc.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(table), Item: item}); err != nil {
			t.Fatal(err)
		}
	}
	// The built-in checkpointed shard 0 after record 39 and released it;
	// shard 1 after record 69, still leased by its (now dead) client.
	builtinRow("shardId-000000000000", lastSeq["shardId-000000000000"][39], false)
	builtinRow("shardId-000000000001", lastSeq["shardId-000000000001"][69], true)

	got := newReceived()
	startWorker(t, "a", workerYAML(t, stream, table), got)
	waitFor(t, time.Minute, "the records after both checkpoints", func() bool { d, _ := got.snapshot(); return d == 60+30 })
	got.mu.Lock()
	defer got.mu.Unlock()
	for n, c := range got.counts {
		shard, j := n/1000, n%1000
		if (shard == 0 && j <= 39) || (shard == 1 && j <= 69) {
			t.Errorf("record %d delivered again: it was before the built-in's checkpoint", n)
		}
		if c != 1 {
			t.Errorf("record %d delivered %d times", n, c)
		}
	}
}
