package output

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/benthos-kinesis/benthos-kinesis/internal/kinesisfake"
)

// These tests run against internal/kinesisfake, an in-process Kinesis
// endpoint that enforces the real per-shard write limits and per-request
// size limits: no local emulator throttles or checks request sizes, so the
// fake is the honest tool to show that the output stays within them.

func fakeWriter(t *testing.T, srv *kinesisfake.Server, stream, extraYAML string) *kinesisWriter {
	t.Helper()
	return connectedWriter(t, fmt.Sprintf("stream: %s\npartition_key: ${! meta(\"key\") }\n%s", stream, extraYAML), srv.Client())
}

// writeConcurrently writes total records of size bytes in batches of 500
// from several goroutines, as Benthos does with max_in_flight.
func writeConcurrently(t *testing.T, w *kinesisWriter, total, size, inFlight int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, inFlight)
	for g := 0; g < inFlight; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for start := g * 500; start < total; start += inFlight * 500 {
				b := make(service.MessageBatch, 0, 500)
				for n := start; n < min(start+500, total); n++ {
					data := make([]byte, size)
					copy(data, fmt.Sprintf("%09d", n))
					m := service.NewMessage(data)
					m.MetaSetMut("key", fmt.Sprintf("key-%d", n))
					b = append(b, m)
				}
				if err := w.WriteBatch(ctx, b); err != nil {
					errs <- err
					return
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func checkExactlyOnce(t *testing.T, srv *kinesisfake.Server, stream string, total int) {
	t.Helper()
	recs, err := srv.Records(stream)
	if err != nil {
		t.Fatal(err)
	}
	seen := make([]int, total)
	for _, shard := range recs {
		for _, r := range shard {
			var n int
			if _, err := fmt.Sscanf(string(r.Data[:9]), "%09d", &n); err != nil || n >= total {
				t.Fatalf("unexpected record %q", r.Data[:9])
			}
			seen[n]++
		}
	}
	for n, c := range seen {
		if c != 1 {
			t.Fatalf("record %d landed %d times", n, c)
		}
	}
}

func TestFakeLimitsOutputStaysUnderShardLimits(t *testing.T) {
	for _, c := range []struct {
		name        string
		total, size int
	}{
		{"record-bound: 4,000 records of 100 B", 4000, 100},
		{"byte-bound: 400 records of 10 KiB", 400, 10 << 10},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv := kinesisfake.Start(t, kinesisfake.WithStream("limits", 2))
			w := fakeWriter(t, srv, "limits", "")
			writeConcurrently(t, w, c.total, c.size, 4)
			checkExactlyOnce(t, srv, "limits", c.total)
			st := srv.Stats()
			for _, sh := range st.Shards {
				// The benchmark measures the real share (0% on a quiet
				// machine); under the race detector on a loaded 2-core CI
				// machine a delayed request can land in the next window.
				if float64(sh.ThrottledRecords) > 0.02*float64(sh.AcceptedRecords) {
					t.Errorf("%s: %d of %d records throttled (over 2%%)", sh.ShardID, sh.ThrottledRecords, sh.AcceptedRecords)
				}
				// The limiter keeps every one-second window of its own clock
				// under the limit (TestShardLimiterWindowOracle); requests in
				// transit can still cross the fake's window boundaries, so
				// allow two bursts (10%) of jitter, far below what an
				// unpaced writer offers (several times the limit).
				if sh.MaxOfferedRecordsPerSecond > 1100 || sh.MaxOfferedBytesPerSecond > (1<<20)*110/100 {
					t.Errorf("%s: offered %d records / %d bytes in one second, over the limit",
						sh.ShardID, sh.MaxOfferedRecordsPerSecond, sh.MaxOfferedBytesPerSecond)
				}
			}
			if st.MaxRequestRecords > 500 || st.MaxRequestBytes > 5<<20 {
				t.Errorf("largest request: %d records, %d bytes", st.MaxRequestRecords, st.MaxRequestBytes)
			}
		})
	}
}

func TestFakeLimitsRequestsPackedUnder5MiB(t *testing.T) {
	// Shard limits lifted on both sides, so that only the request limits bind.
	srv := kinesisfake.Start(t, kinesisfake.WithStream("big", 2), kinesisfake.WithShardWriteLimits(100000, 100<<20))
	w := fakeWriter(t, srv, "big", "shard_limits: {records_per_second: 100000, bytes_per_second: 104857600}\n")
	writeConcurrently(t, w, 40, 900<<10, 1) // 40 records of 900 KiB in one batch: 36 MB
	checkExactlyOnce(t, srv, "big", 40)
	st := srv.Stats()
	if st.MaxRequestBytes > 5<<20 || st.MaxRequestRecords > 500 {
		t.Fatalf("largest request: %d records, %d bytes, over the PutRecords limits", st.MaxRequestRecords, st.MaxRequestBytes)
	}
	if st.Errors["ValidationException"]+st.Errors["InvalidArgumentException"] != 0 {
		t.Fatalf("requests refused: %v", st.Errors)
	}
}

// Another producer writes to the same shard, so Kinesis throttles this
// output even though it keeps to its own limit: every record still lands
// exactly once, through per-record retries.
func TestFakeLimitsSharedShardBacksOff(t *testing.T) {
	srv := kinesisfake.Start(t, kinesisfake.WithStream("shared", 1))
	w := fakeWriter(t, srv, "shared", "backoff: {initial_interval: 50ms, max_interval: 500ms, max_elapsed_time: 1m}\n")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	other := srv.Client(func(o *kinesis.Options) { o.Retryer = aws.NopRetryer{} })
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		// 500 records every 500ms, for at most 10 s: half the shard, or more.
		defer wg.Done()
		tick := time.NewTicker(500 * time.Millisecond)
		defer tick.Stop()
		for i := 0; i < 20; i++ {
			entries := make([]types.PutRecordsRequestEntry, 500)
			for j := range entries {
				entries[j] = types.PutRecordsRequestEntry{Data: []byte("other"), PartitionKey: aws.String("other")}
			}
			_, _ = other.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String("shared"), Records: entries})
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	writeConcurrently(t, w, 3000, 100, 2)
	cancel()
	wg.Wait()

	recs, err := srv.Records("shared")
	if err != nil {
		t.Fatal(err)
	}
	ours := make([]int, 3000)
	for _, shard := range recs {
		for _, r := range shard {
			if string(r.Data) == "other" {
				continue
			}
			var n int
			if _, err := fmt.Sscanf(string(r.Data[:9]), "%09d", &n); err != nil {
				t.Fatal(err)
			}
			ours[n]++
		}
	}
	for n, c := range ours {
		if c != 1 {
			t.Fatalf("record %d landed %d times", n, c)
		}
	}
	st := srv.Stats()
	if st.Shards[0].ThrottledRecords == 0 {
		t.Fatal("nothing was throttled: the test did not share the shard")
	}
}

// At the shard limit, waiting for budget must not fragment the requests:
// every batch in flight shares one queue per shard, drained most of a burst at
// a time (4 shards × 45 records), where each batch used to poll on its own
// and send a handful of records per request.
func TestFakeLimitsFullRequestsAtTheLimit(t *testing.T) {
	srv := kinesisfake.Start(t, kinesisfake.WithStream("full", 4))
	w := fakeWriter(t, srv, "full", "")
	writeConcurrently(t, w, 8000, 100, 8)
	checkExactlyOnce(t, srv, "full", 8000)
	st := srv.Stats()
	requests := st.Requests[kinesisfake.OpPutRecords]
	var offered int64
	for _, sh := range st.Shards {
		offered += sh.AcceptedRecords + sh.ThrottledRecords
	}
	// The first requests and the last are smaller; the rest carry about
	// 180 records.
	if mean := float64(offered) / float64(requests); mean < 100 {
		t.Fatalf("%d records in %d requests: %.1f per request, want at least 100", offered, requests, mean)
	}
}
