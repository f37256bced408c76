package output

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/redpanda-data/benthos/v4/public/service"

	_ "github.com/redpanda-data/benthos/v4/public/components/pure"

	"github.com/benthos-kinesis/benthos-kinesis/internal/testenv"
)

// readStream reads every shard of a stream, open and closed, from
// TRIM_HORIZON to its tip, and returns the records per shard in order.
func readStream(t *testing.T, c *kinesis.Client, stream string) map[string][]types.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out := map[string][]types.Record{}
	in := &kinesis.ListShardsInput{StreamName: aws.String(stream)}
	for {
		page, err := c.ListShards(ctx, in)
		if err != nil {
			t.Fatalf("list shards of %s: %v", stream, err)
		}
		for _, s := range page.Shards {
			out[*s.ShardId] = readShard(ctx, t, c, stream, *s.ShardId)
		}
		if page.NextToken == nil {
			break
		}
		in = &kinesis.ListShardsInput{NextToken: page.NextToken}
	}
	return out
}

func readShard(ctx context.Context, t *testing.T, c *kinesis.Client, stream, shard string) []types.Record {
	t.Helper()
	it, err := c.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{
		StreamName: aws.String(stream), ShardId: aws.String(shard), ShardIteratorType: types.ShardIteratorTypeTrimHorizon,
	})
	if err != nil {
		t.Fatalf("iterator of %s: %v", shard, err)
	}
	var recs []types.Record
	iter := it.ShardIterator
	for iter != nil {
		page, err := c.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter, Limit: aws.Int32(10000)})
		if err != nil {
			t.Fatalf("get records of %s: %v", shard, err)
		}
		recs = append(recs, page.Records...)
		if len(page.Records) == 0 && aws.ToInt64(page.MillisBehindLatest) == 0 {
			break
		}
		iter = page.NextShardIterator
	}
	return recs
}

// A real Benthos pipeline writes 50,000 records to kinesalite: every one
// lands exactly once, byte for byte, on the shard this output predicted, and
// in order per partition key.
func TestIntegrationPipelineExactlyOncePredictedShardOrdered(t *testing.T) {
	client := testenv.Kinesalite(t)
	stream := testenv.CreateStream(t, client, 4)

	env := service.NewEnvironment()
	if err := Register(env, "aws_kinesis"); err != nil {
		t.Fatal(err)
	}
	sb := env.NewStreamBuilder()
	if err := sb.SetLoggerYAML("level: WARN"); err != nil {
		t.Fatal(err)
	}
	if err := sb.AddOutputYAML(fmt.Sprintf(`
aws_kinesis:
  stream: %s
  partition_key: ${! meta("key") }
  endpoint: %s
  region: us-east-1
  credentials: {id: test, secret: test}
  max_in_flight: 16
`, stream, testenv.KinesaliteEndpoint(t))); err != nil {
		t.Fatal(err)
	}
	produce, err := sb.AddBatchProducerFunc()
	if err != nil {
		t.Fatal(err)
	}
	st, err := sb.Build()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	runErr := make(chan error, 1)
	go func() { runErr <- st.Run(ctx) }()

	const (
		producers = 8
		perBatch  = 250
		total     = 50000
		keys      = 400 // keys per producer: each key belongs to one producer
	)
	payload := func(n int) []byte {
		// Varied sizes and bytes, so that byte-for-byte means something.
		return []byte(fmt.Sprintf("%08d|%s", n, strings.Repeat(string(rune('a'+n%26)), n%300)))
	}
	keyOf := func(n int) string { p := n % producers; return fmt.Sprintf("p%d-k%d", p, (n/producers)%keys) }

	var wg sync.WaitGroup
	errs := make(chan error, producers)
	for p := 0; p < producers; p++ {
		wg.Add(1)
		go func(p int) {
			defer wg.Done()
			// Producer p owns records n with n%producers == p, sent in
			// increasing n, each batch acked before the next: so per key
			// the write order is increasing n.
			var batch service.MessageBatch
			for n := p; n < total; n += producers {
				m := service.NewMessage(payload(n))
				m.MetaSetMut("key", keyOf(n))
				batch = append(batch, m)
				if len(batch) == perBatch || n+producers >= total {
					if err := produce(ctx, batch); err != nil {
						errs <- fmt.Errorf("producer %d: %w", p, err)
						return
					}
					batch = nil
				}
			}
		}(p)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if err := st.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-runErr; err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}

	// Verify from the outside.
	shards := readStream(t, client, stream)
	var bounds []shardBounds
	lo, _ := client.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(stream)})
	for _, s := range lo.Shards {
		bounds = append(bounds, shardBounds{*s.ShardId, *s.HashKeyRange.StartingHashKey, *s.HashKeyRange.EndingHashKey})
	}
	m, err := newShardMap(bounds, testStates())
	if err != nil {
		t.Fatal(err)
	}
	seen := make([]int, total)
	lastPerKey := map[string]int{}
	for shard, recs := range shards {
		for _, r := range recs {
			n, err := strconv.Atoi(string(r.Data[:8]))
			if err != nil || n < 0 || n >= total {
				t.Fatalf("unexpected record %q on %s", r.Data[:min(len(r.Data), 20)], shard)
			}
			seen[n]++
			if string(r.Data) != string(payload(n)) {
				t.Fatalf("record %d: bytes differ", n)
			}
			k := aws.ToString(r.PartitionKey)
			if k != keyOf(n) {
				t.Fatalf("record %d: partition key %q, want %q", n, k, keyOf(n))
			}
			if want := m.lookup(partitionHash(k)).id; want != shard {
				t.Fatalf("record %d with key %q landed on %s, predicted %s", n, k, shard, want)
			}
			if last, ok := lastPerKey[k]; ok && last > n {
				t.Fatalf("key %q: record %d after record %d", k, n, last)
			}
			lastPerKey[k] = n
		}
	}
	for n, c := range seen {
		if c != 1 {
			t.Fatalf("record %d landed %d times", n, c)
		}
	}
}

// The output's full default config as the built-in prints it, with its
// stream foo, writes to kinesalite when the endpoint comes from the
// environment (AWS_ENDPOINT_URL): the YAML runs unchanged.
func TestIntegrationBuiltinDefaultConfigRuns(t *testing.T) {
	client := testenv.Kinesalite(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	testenv.EnsureStream(t, client, "foo", 1)
	before := len(readStream(t, client, "foo")["shardId-000000000000"])
	t.Setenv("AWS_ENDPOINT_URL", testenv.KinesaliteEndpoint(t))
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	t.Setenv("AWS_REGION", "us-east-1")

	ref := testenv.SharedReference(t, "builtin-aws_kinesis-output.yaml")
	env := service.NewEnvironment()
	if err := Register(env, "aws_kinesis"); err != nil {
		t.Fatal(err)
	}
	sb := env.NewStreamBuilder()
	if err := sb.SetYAML(ref + `
input:
  generate:
    count: 10
    interval: ""
    mapping: root = "ref-" + counter().string()
logger:
  level: WARN
`); err != nil {
		t.Fatal(err)
	}
	st, err := sb.Build()
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Run(ctx); err != nil {
		t.Fatal(err)
	}
	after := len(readStream(t, client, "foo")["shardId-000000000000"])
	if after-before != 10 {
		t.Fatalf("%d records landed, want 10", after-before)
	}
}
