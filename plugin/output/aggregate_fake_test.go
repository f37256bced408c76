package output

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/benthos-kinesis/benthos-kinesis/internal/kinesisfake"
	"github.com/benthos-kinesis/benthos-kinesis/internal/kpl"
)

// Aggregation against the in-process fake, which stores what was put: the
// records are read back and deaggregated as a consumer would.

// landedUser is one user record read back from the stream.
type landedUser struct {
	shard, key, data string
	aggregated       bool // it came out of an aggregate
}

// readBack returns the stream's user records, shard by shard in stream
// order, deaggregating aggregates, and how many Kinesis records held them.
// It fails the test when a user record is on a shard whose range does not
// hold its hash key: a consumer that deaggregates would skip it there.
func readBack(t *testing.T, srv *kinesisfake.Server, stream string, w *kinesisWriter) (users []landedUser, records int) {
	t.Helper()
	recs, err := srv.Records(stream)
	if err != nil {
		t.Fatal(err)
	}
	m := w.shardMap.Load()
	for shard, rs := range recs {
		for _, r := range rs {
			records++
			if !kpl.IsAggregated(r.Data) {
				users = append(users, landedUser{shard: shard, key: r.PartitionKey, data: string(r.Data)})
				continue
			}
			us, err := kpl.Deaggregate(r.Data)
			if err != nil {
				t.Fatalf("shard %s: aggregate does not decode: %v", shard, err)
			}
			for _, u := range us {
				h, err := u.HashKey()
				if err != nil {
					t.Fatal(err)
				}
				if s := m.lookup(h); s == nil || s.id != shard {
					t.Fatalf("user record %q of key %q aggregated on shard %s, which does not own its hash key", u.Data[:12], u.PartitionKey, shard)
				}
				users = append(users, landedUser{shard: shard, key: u.PartitionKey, data: string(u.Data), aggregated: true})
			}
		}
	}
	return users, records
}

// tagOf is the "g|n" a test message's data starts with.
func tagOf(data string) string {
	g, rest, _ := strings.Cut(data, "|")
	n, _, _ := strings.Cut(rest, "|")
	return g + "|" + n
}

// checkOncePerKeyOrder checks that every message tagged "g|n" for g <
// batches and n < perBatch landed exactly once, and, when ordered, that the
// messages of one key and one batch landed in batch order (batches in flight
// together are not ordered among themselves).
func checkOncePerKeyOrder(t *testing.T, users []landedUser, batches, perBatch int, ordered bool) {
	t.Helper()
	seen := map[string]int{}
	last := map[string]int{} // key and batch -> last n
	for _, u := range users {
		var g, n int
		if _, err := fmt.Sscanf(tagOf(u.data), "%d|%d", &g, &n); err != nil || g >= batches || n >= perBatch {
			t.Fatalf("unexpected record %q", tagOf(u.data))
		}
		seen[tagOf(u.data)]++
		kb := u.key + "/" + fmt.Sprint(g)
		if prev, ok := last[kb]; ok && prev > n && ordered {
			t.Fatalf("key %s: message %d landed after %d of the same batch", u.key, n, prev)
		}
		last[kb] = n
	}
	for g := 0; g < batches; g++ {
		for n := 0; n < perBatch; n++ {
			if c := seen[fmt.Sprintf("%d|%d", g, n)]; c != 1 {
				t.Fatalf("message %d|%d landed %d times", g, n, c)
			}
		}
	}
}

// writeBatches writes batches of perBatch messages made by msg, all in
// flight at once, and returns each WriteBatch's error.
func writeBatches(t *testing.T, w *kinesisWriter, batches, perBatch int, msg func(g, n int) *service.Message) []service.MessageBatch {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	all := make([]service.MessageBatch, batches)
	var wg sync.WaitGroup
	errs := make([]error, batches)
	for g := range all {
		all[g] = make(service.MessageBatch, perBatch)
		for n := range all[g] {
			all[g][n] = msg(g, n)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[g] = w.WriteBatch(ctx, all[g])
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		t.Fatal("writing took over a minute")
	}
	for g, err := range errs {
		if err != nil {
			t.Fatalf("batch %d: %v", g, err)
		}
	}
	return all
}

// taggedMsg is a message of size bytes of data starting "g|n|", of key.
func taggedMsg(g, n, size int, key string) *service.Message {
	data := []byte(fmt.Sprintf("%d|%d|", g, n))
	data = append(data, make([]byte, max(0, size-len(data)))...)
	m := service.NewMessage(data)
	m.MetaSetMut("key", key)
	return m
}

func TestFakeAggregationLandsOnceInOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	hashKeys := make([]string, 6) // spread over the ring, so over the shards
	for i := range hashKeys {
		hashKeys[i] = kpl.HashKey{Hi: rng.Uint64(), Lo: rng.Uint64()}.String()
	}
	sizes := []int{20, 100, 2000, 60000, 700} // 60,000 B cannot share a 51,200 B aggregate
	for _, c := range []struct {
		name              string
		aggregation       bool
		batches, perBatch int
		perRecord         int // at least this many messages per Kinesis record (aggregation on)
		msg               func(g, n int) *service.Message
	}{
		{"off: one Kinesis record per message", false, 8, 250, 1, func(g, n int) *service.Message {
			return taggedMsg(g, n, 100, fmt.Sprintf("k%d", n%40))
		}},
		{"100 B", true, 8, 500, 10, func(g, n int) *service.Message {
			return taggedMsg(g, n, 100, fmt.Sprintf("k%d", n%40))
		}},
		// A fifth go bare, each splitting the aggregates of its lane.
		{"mixed sizes", true, 4, 60, 1, func(g, n int) *service.Message {
			return taggedMsg(g, n, sizes[n%len(sizes)], fmt.Sprintf("k%d", n%7))
		}},
		{"explicit hash keys", true, 6, 300, 10, func(g, n int) *service.Message {
			if n%3 == 0 {
				// The hash key decides the shard: order holds per hash key,
				// so the partition key names it.
				m := taggedMsg(g, n, 100, fmt.Sprintf("h%d", n%len(hashKeys)))
				m.MetaSetMut("hash", hashKeys[n%len(hashKeys)])
				return m
			}
			return taggedMsg(g, n, 100, fmt.Sprintf("k%d", n%20))
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv := kinesisfake.Start(t, kinesisfake.WithStream("agg", 4))
			w := fakeWriter(t, srv, "agg", fmt.Sprintf("hash_key: ${! meta(\"hash\").or(\"\") }\naggregation: {enabled: %v}\n", c.aggregation))
			writeBatches(t, w, c.batches, c.perBatch, c.msg)
			users, records := readBack(t, srv, "agg", w)
			checkOncePerKeyOrder(t, users, c.batches, c.perBatch, true)
			aggregated := 0
			for _, u := range users {
				if u.aggregated {
					aggregated++
				}
			}
			total := c.batches * c.perBatch
			switch {
			case !c.aggregation && (aggregated > 0 || records != total):
				t.Fatalf("aggregation off: %d messages in %d records, %d aggregated", total, records, aggregated)
			case c.aggregation && (records*c.perRecord > total || aggregated == 0):
				t.Fatalf("%d messages in %d records: hardly aggregated", total, records)
			}
			t.Logf("%d messages in %d Kinesis records", total, records)
			for _, sh := range srv.Stats().Shards {
				if sh.ThrottledRecords > 0 {
					t.Logf("%s: %d records throttled (retried)", sh.ShardID, sh.ThrottledRecords)
				}
			}
		})
	}
}

// A per-record failure of an aggregate is each of its messages' failure: for
// good, every one of them fails with the reason and the rest land; retried,
// they go again together and land once.
func TestFakeAggregateFailures(t *testing.T) {
	for _, c := range []struct {
		name        string
		code        string
		faults      int
		failing     bool // the messages fail for good
		orderPerKey bool
	}{
		{"fails for good", "KMSAccessDeniedException", 1, true, false},
		{"retried: internal failure", kinesisfake.ErrInternalFailure, 3, false, false},
		{"retried: throttled", kinesisfake.ErrProvisionedThroughput, 2, false, false},
		{"retried with order_per_key", kinesisfake.ErrInternalFailure, 3, false, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			// Limits lifted: with a shard's budget short, a retried aggregate
			// is split as the budget allows, and its parts may go in requests
			// in flight together (retried messages are not ordered without
			// order_per_key), which this test would take for a separation.
			srv := kinesisfake.Start(t, kinesisfake.WithStream("faults", 2), kinesisfake.WithShardWriteLimits(100000, 100*mib))
			w := fakeWriter(t, srv, "faults", fmt.Sprintf("aggregation: {enabled: true}\norder_per_key: %v\n%sbackoff: {initial_interval: 1ms, max_interval: 5ms, max_elapsed_time: 1m}\n", c.orderPerKey, lifted))
			var (
				mu      sync.Mutex
				faulted [][]string // the tags of each aggregate failed
			)
			srv.SetRecordFault(func(r kinesisfake.RecordInfo) string {
				mu.Lock()
				defer mu.Unlock()
				if len(faulted) == c.faults || !kpl.IsAggregated(r.Data) {
					return ""
				}
				us, err := kpl.Deaggregate(r.Data)
				if err != nil {
					return ""
				}
				var tags []string
				for _, u := range us {
					tags = append(tags, tagOf(string(u.Data)))
				}
				faulted = append(faulted, tags)
				return c.code
			})
			b := make(service.MessageBatch, 400)
			for n := range b {
				b[n] = taggedMsg(0, n, 100, fmt.Sprintf("k%d", n%10))
			}
			idx := b.Index()
			failed := failedIndexes(t, idx, writeFake(t, w, b))
			mu.Lock()
			defer mu.Unlock()
			if len(faulted) != c.faults {
				t.Fatalf("%d aggregates failed by the fault, want %d", len(faulted), c.faults)
			}
			users, _ := readBack(t, srv, "faults", w)
			if !c.failing {
				if len(failed) > 0 {
					t.Fatalf("messages failed: %v", failed)
				}
				// Without order_per_key a retried message may land after
				// later ones of its key.
				checkOncePerKeyOrder(t, users, 1, len(b), c.orderPerKey)
				// Each failed aggregate's messages went again together: one
				// after the other in one aggregate.
				where := map[string]int{}
				for i, u := range users {
					where[tagOf(u.data)] = i
				}
				for _, tags := range faulted {
					for j, tag := range tags[1:] {
						if where[tag] != where[tags[0]]+j+1 || users[where[tag]].shard != users[where[tags[0]]].shard {
							t.Fatalf("message %s of a failed aggregate landed apart from %s", tag, tags[0])
						}
					}
				}
				return
			}
			want := map[string]bool{}
			for _, tag := range faulted[0] {
				want[tag] = true
			}
			if len(failed) != len(want) {
				t.Fatalf("%d messages failed, want the %d of the failed aggregate", len(failed), len(want))
			}
			for i, err := range failed {
				if !want[fmt.Sprintf("0|%d", i)] {
					t.Fatalf("message %d failed but was not in the failed aggregate: %s", i, err)
				}
				if !strings.Contains(err, fmt.Sprintf("aggregated record of %d messages", len(want))) || !strings.Contains(err, c.code) {
					t.Fatalf("message %d: error %q does not say why", i, err)
				}
			}
			if len(users) != len(b)-len(want) {
				t.Fatalf("%d messages landed, want %d", len(users), len(b)-len(want))
			}
			for _, u := range users {
				if want[tagOf(u.data)] {
					t.Fatalf("message %s of the failed aggregate landed", tagOf(u.data))
				}
			}
		})
	}
}

// staleFirstListing answers the first ListShards with one shard covering the
// whole ring, as if the stream had been split since: every aggregate is
// predicted for that shard and lands on whichever real shard owns its first
// record's hash key.
type staleFirstListing struct {
	kinesisAPI
	listed atomic.Bool
}

func (s *staleFirstListing) ListShards(ctx context.Context, in *kinesis.ListShardsInput, opts ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error) {
	if s.listed.Swap(true) {
		return s.kinesisAPI.ListShards(ctx, in, opts...)
	}
	return &kinesis.ListShardsOutput{Shards: []types.Shard{{
		ShardId:             aws.String("shardId-000000000099"),
		HashKeyRange:        &types.HashKeyRange{StartingHashKey: aws.String("0"), EndingHashKey: aws.String("340282366920938463463374607431768211455")},
		SequenceNumberRange: &types.SequenceNumberRange{StartingSequenceNumber: aws.String("1")},
	}}}, nil
}

// After a reshard the output learns where its aggregates landed and puts
// again, bare, the messages the landing shard does not own: a consumer that
// skips those (the KCL, this project's input) reads every message once.
func TestFakeAggregateOnAnotherShardAfterReshard(t *testing.T) {
	srv := kinesisfake.Start(t, kinesisfake.WithStream("split", 4))
	w := connectedWriter(t, "stream: split\npartition_key: ${! meta(\"key\") }\naggregation: {enabled: true}\n",
		&staleFirstListing{kinesisAPI: srv.Client()})
	if openShards(w) != 1 {
		t.Fatalf("%d open shards at first, want the stale 1", openShards(w))
	}
	b := make(service.MessageBatch, 400)
	for n := range b {
		b[n] = taggedMsg(0, n, 100, fmt.Sprintf("k%d", n%40))
	}
	if err := writeFake(t, w, b); err != nil {
		t.Fatal(err)
	}
	if openShards(w) != 4 {
		t.Fatalf("%d open shards after writing, want the real 4", openShards(w))
	}
	recs, err := srv.Records("split")
	if err != nil {
		t.Fatal(err)
	}
	m := w.shardMap.Load()
	var users []landedUser
	skipped := 0
	for shard, rs := range recs {
		start, end, _ := m.rangeOf(shard)
		for _, r := range rs {
			if !kpl.IsAggregated(r.Data) {
				users = append(users, landedUser{shard: shard, key: r.PartitionKey, data: string(r.Data)})
				continue
			}
			us, err := kpl.Deaggregate(r.Data)
			if err != nil {
				t.Fatal(err)
			}
			for _, u := range us {
				h := partitionHash(u.PartitionKey)
				if h.Less(start) || end.Less(h) {
					skipped++ // as the KCL does
					continue
				}
				users = append(users, landedUser{shard: shard, key: u.PartitionKey, data: string(u.Data), aggregated: true})
			}
		}
	}
	checkOncePerKeyOrder(t, users, 1, len(b), false)
	if skipped == 0 {
		t.Fatal("no aggregate landed on a shard that does not own all its messages: the test tested nothing")
	}
}
