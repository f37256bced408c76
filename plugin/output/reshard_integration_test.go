package output

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/benthos-kinesis/benthos-kinesis/internal/testenv"
)

// Resharding while writing, on kinesis-local (the emulator that implements
// UpdateShardCount): every record lands exactly once, and once the output
// has refreshed its shard map, records land on the shards it predicts.
func TestIntegrationUpdateShardCountWhileWriting(t *testing.T) {
	client := testenv.KinesisMock(t)
	stream := testenv.CreateStream(t, client, 2)
	w := connectedWriter(t, fmt.Sprintf(`
stream: %s
partition_key: ${! meta("key") }
shard_refresh_period: 1h
`, stream), client)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	next := 0
	write := func(n int) (first int) {
		first = next
		b := make(service.MessageBatch, n)
		for i := range b {
			b[i] = service.NewMessage([]byte(fmt.Sprintf("%06d", next)))
			b[i].MetaSetMut("key", "key-"+strconv.Itoa(next%97))
			next++
		}
		if err := w.WriteBatch(ctx, b); err != nil {
			t.Fatalf("write records %d..%d: %v", first, next-1, err)
		}
		return first
	}

	write(200)
	if _, err := client.UpdateShardCount(ctx, &kinesis.UpdateShardCountInput{
		StreamName: aws.String(stream), TargetShardCount: aws.Int32(4), ScalingType: types.ScalingTypeUniformScaling,
	}); err != nil {
		t.Fatal(err)
	}
	// Keep writing while the stream is UPDATING and after, until the output
	// has seen the new shards: Kinesis reports a shard other than predicted,
	// and that triggers the refresh.
	deadline := time.Now().Add(time.Minute)
	for openShards(w) != 4 {
		if time.Now().After(deadline) {
			t.Fatalf("the shard map still has %d shards after a minute of writing", openShards(w))
		}
		write(20)
	}
	if err := testenv.WaitStreamActive(ctx, client, stream); err != nil {
		t.Fatal(err)
	}
	afterRefresh := write(200)

	m := w.shardMap.Load()
	seen := make([]int, next)
	for shard, recs := range readStream(t, client, stream) {
		for _, r := range recs {
			n, err := strconv.Atoi(strings.TrimSpace(string(r.Data)))
			if err != nil || n >= next {
				t.Fatalf("unexpected record %q", r.Data)
			}
			seen[n]++
			if n >= afterRefresh {
				if want := m.lookup(partitionHash(*r.PartitionKey)).id; want != shard {
					t.Errorf("record %d landed on %s, predicted %s", n, shard, want)
				}
			}
		}
	}
	for n, c := range seen {
		if c != 1 {
			t.Fatalf("record %d landed %d times", n, c)
		}
	}
}

func openShards(w *kinesisWriter) int {
	return len(w.shardMap.Load().ranges)
}
