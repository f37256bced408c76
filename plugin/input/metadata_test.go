package input

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/benthos-kinesis/benthos-kinesis/internal/testenv"
)

// Every message carries the built-in's metadata and ours, with the values
// of the record it came from.
func TestIntegrationMetadata(t *testing.T) {
	kc := testenv.Kinesalite(t)
	stream := testenv.CreateStream(t, kc, 1)
	table := testenv.CreateTable(t, testenv.DynamoDB(t))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	put, err := kc.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String(stream), PartitionKey: aws.String("user-7"), Data: []byte("42")})
	if err != nil {
		t.Fatal(err)
	}
	before := time.Now().Add(-time.Minute)

	in := testInput(t, workerYAML(t, stream, table), nil, true)
	defer func() { _ = in.Close(context.Background()) }()
	batch, ackFn, err := in.ReadBatch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ackFn(ctx, nil) }()
	if len(batch) != 1 {
		t.Fatalf("batch of %d messages", len(batch))
	}
	m := batch[0]
	for key, want := range map[string]string{
		"kinesis_stream":          stream,
		"kinesis_shard":           "shardId-000000000000",
		"kinesis_partition_key":   "user-7",
		"kinesis_sequence_number": aws.ToString(put.SequenceNumber),
	} {
		if got, _ := m.MetaGet(key); got != want {
			t.Errorf("%s = %q, want %q", key, got, want)
		}
	}
	arrival, _ := m.MetaGet("kinesis_arrival_timestamp")
	if ts, err := time.Parse(time.RFC3339Nano, arrival); err != nil || ts.Before(before) {
		t.Errorf("kinesis_arrival_timestamp = %q (%v)", arrival, err)
	}
	lag, _ := m.MetaGet("kinesis_millis_behind")
	if _, err := strconv.ParseInt(lag, 10, 64); err != nil {
		t.Errorf("kinesis_millis_behind = %q", lag)
	}
}
