package awsdefs

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/benthos-kinesis/benthos-kinesis/checkpointer"
	"github.com/benthos-kinesis/benthos-kinesis/internal/testenv"
)

// itemSize is an item's size as DynamoDB bills it: per attribute, the name's length plus the
// value's (a string's UTF-8 length; a number's about one byte per two significant digits plus
// one; a boolean 1; a string set the sum of its strings).
func itemSize(item map[string]types.AttributeValue) int {
	n := 0
	for name, v := range item {
		n += len(name)
		switch v := v.(type) {
		case *types.AttributeValueMemberS:
			n += len(v.Value)
		case *types.AttributeValueMemberN:
			digits := strings.TrimLeft(strings.NewReplacer("-", "", ".", "").Replace(v.Value), "0")
			n += (len(digits)+1)/2 + 1
		case *types.AttributeValueMemberBOOL:
			n++
		case *types.AttributeValueMemberSS:
			for _, s := range v.Value {
				n += len(s)
			}
		default:
			n += 100 // not written by the input; counted high so that the test notices
		}
	}
	return n
}

// Sizes docs/AWS.md computes the read cost from: a checkpointed shard row of a stream named with
// 20 characters, KPL sub-sequence included, is at most 220 bytes (18 rows to a 4 KB read unit);
// a worker row, with the longest worker name (checkpointer.MaxWorkerNameBytes), at most 300.
// A row that grows (a new attribute, a longer worker id) must update the cost figures.
func TestLeaseRowSizes(t *testing.T) {
	const (
		maxShardRow  = 220
		maxWorkerRow = 300
	)
	db := testenv.DynamoDB(t)
	name := testenv.CreateTable(t, db)
	worker := strings.Repeat("f", 16) // the input's worker ids: 8 random bytes in hex
	// The default name is "<hostname>:<pid>" (at most 64 + 1 + 7 bytes); a longer given one is cut.
	workerName := strings.Repeat("n", checkpointer.MaxWorkerNameBytes)
	tbl, err := checkpointer.New(db, name, worker, checkpointer.WithLeasePeriod(3500*time.Millisecond), checkpointer.WithWorkerName(workerName))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	stream := strings.Repeat("s", 20)
	shard := "shardId-000000000123"
	l, err := tbl.Claim(ctx, stream, shard, checkpointer.Lease{Stream: stream, Shard: shard})
	if err != nil {
		t.Fatal(err)
	}
	// Sequence numbers are decimal strings of up to 128 digits; 56 is what Kinesis writes today.
	seq := "49" + strings.Repeat("6", 54)
	sub := uint64(12)
	if _, err := tbl.Checkpoint(ctx, stream, shard, l.Epoch, seq, &sub); err != nil {
		t.Fatal(err)
	}
	if err := tbl.Heartbeat(ctx, 123456, []string{stream}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		what         string
		stream, key  string
		max          int
		wantAttrsMin int
	}{
		{what: "shard row", stream: stream, key: shard, max: maxShardRow, wantAttrsMin: 7},
		{what: "worker row", stream: checkpointer.WorkersPartition, key: worker, max: maxWorkerRow, wantAttrsMin: 6},
	} {
		out, err := db.GetItem(ctx, &dynamodb.GetItemInput{
			TableName: aws.String(name),
			Key: map[string]types.AttributeValue{
				checkpointer.AttrStreamID: &types.AttributeValueMemberS{Value: tc.stream},
				checkpointer.AttrShardID:  &types.AttributeValueMemberS{Value: tc.key},
			},
			ConsistentRead: aws.Bool(true),
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Item) < tc.wantAttrsMin {
			t.Fatalf("%s has %d attributes, want at least %d: %v", tc.what, len(out.Item), tc.wantAttrsMin, out.Item)
		}
		size := itemSize(out.Item)
		t.Logf("%s: %d bytes", tc.what, size)
		if size > tc.max {
			t.Errorf("%s is %d bytes, over the %d docs/AWS.md assumes: update its cost figures and this bound", tc.what, size, tc.max)
		}
	}
}
