package output

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/benthos-kinesis/benthos-kinesis/internal/kinesisfake"
)

// The fault matrix of issue 9 for the output, against the in-process fake:
// records at and over the size limits, bad keys, and failures of whole
// requests and of single records. Every record that can land lands, exactly
// once and in order per key; every one that cannot fails alone, saying why.

const mib = 1 << 20

// sizedMsg is a message whose data plus partition key is exactly size bytes;
// its data starts with "<tag>|" so the test can find it in the stream.
func sizedMsg(tag, key string, size int) *service.Message {
	data := make([]byte, size-len(key))
	copy(data, tag+"|")
	m := service.NewMessage(data)
	m.MetaSetMut("key", key)
	return m
}

// writeFake writes b with a hang guard: a writer that spins must fail the
// test, not the whole run.
func writeFake(t *testing.T, w *kinesisWriter, b service.MessageBatch) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := w.WriteBatch(ctx, b)
	if ctx.Err() != nil {
		t.Fatalf("WriteBatch still busy after a minute: %v", err)
	}
	return err
}

// landedTags returns, per partition key, the tags of the records that
// landed, in stream order, and how many records landed in all.
func landedTags(t *testing.T, srv *kinesisfake.Server, stream string) (map[string][]string, int) {
	t.Helper()
	recs, err := srv.Records(stream)
	if err != nil {
		t.Fatal(err)
	}
	perKey, n := map[string][]string{}, 0
	for _, shard := range recs {
		for _, r := range shard {
			tag, _, _ := bytes.Cut(r.Data, []byte("|"))
			perKey[r.PartitionKey] = append(perKey[r.PartitionKey], string(tag))
			n++
		}
	}
	return perKey, n
}

// A record over the 5 MiB PutRecords budget but within max_record_size goes
// alone through PutRecord, in its place in the batch: it lands, and so does
// every record around it, in order per key. Before the fix the writer looped
// forever on it.
func TestFakeRecordOverRequestBudgetGoesAlone(t *testing.T) {
	srv := kinesisfake.Start(t, kinesisfake.WithStream("big", 2),
		kinesisfake.WithMaxRecordSize(10*mib), kinesisfake.WithShardWriteLimits(100000, 100*mib))
	w := fakeWriter(t, srv, "big", `
max_record_size: 10485760
shard_limits: {records_per_second: 100000, bytes_per_second: 104857600}
`)
	b := service.MessageBatch{
		sizedMsg("a1", "A", 100),
		sizedMsg("b1", "B", 100),
		sizedMsg("a2", "A", 6*mib), // over the request budget
		sizedMsg("a3", "A", 100),
		sizedMsg("b2", "B", 10*mib), // exactly max_record_size
		sizedMsg("b3", "B", 100),
		sizedMsg("c1", "C", 5*mib), // exactly the request budget: PutRecords
	}
	if err := writeFake(t, w, b); err != nil {
		t.Fatal(err)
	}
	perKey, n := landedTags(t, srv, "big")
	if n != len(b) || fmt.Sprint(perKey["A"]) != "[a1 a2 a3]" || fmt.Sprint(perKey["B"]) != "[b1 b2 b3]" || fmt.Sprint(perKey["C"]) != "[c1]" {
		t.Fatalf("landed %d records: %v", n, perKey)
	}
	if st := srv.Stats(); st.Requests[kinesisfake.OpPutRecord] != 2 || st.MaxRequestBytes != 10*mib {
		t.Fatalf("%d PutRecord calls, largest request %d bytes; want 2 and 10 MiB", st.Requests[kinesisfake.OpPutRecord], st.MaxRequestBytes)
	}
}

// Failures of the lone PutRecord are booked like those of a record of a
// PutRecords answer: a 500 and a throttle are retried; a record the stream
// refuses as too large (max_record_size set above the stream's) fails alone
// and says so, while the rest of the batch lands.
func TestFakeRecordOverRequestBudgetFailures(t *testing.T) {
	t.Run("500 and throttle are retried", func(t *testing.T) {
		srv := kinesisfake.Start(t, kinesisfake.WithStream("big", 1),
			kinesisfake.WithMaxRecordSize(10*mib), kinesisfake.WithShardWriteLimits(100000, 100*mib))
		w := fakeWriter(t, srv, "big", `
max_record_size: 10485760
shard_limits: {records_per_second: 100000, bytes_per_second: 104857600}
backoff: {initial_interval: 1ms, max_interval: 5ms, max_elapsed_time: 1m}
`)
		srv.FailNext(kinesisfake.OpPutRecord, 1, 500, kinesisfake.ErrInternalFailure, "")
		srv.FailNext(kinesisfake.OpPutRecord, 1, 400, kinesisfake.ErrProvisionedThroughput, "")
		b := service.MessageBatch{sizedMsg("a1", "A", 100), sizedMsg("a2", "A", 7*mib), sizedMsg("b1", "B", 100)}
		if err := writeFake(t, w, b); err != nil {
			t.Fatal(err)
		}
		if perKey, n := landedTags(t, srv, "big"); n != 3 || fmt.Sprint(perKey["A"]) != "[a1 a2]" {
			t.Fatalf("landed %d records: %v", n, perKey)
		}
		if st := srv.Stats(); st.Requests[kinesisfake.OpPutRecord] != 3 {
			t.Fatalf("%d PutRecord calls, want 3 (two failed, one landed)", st.Requests[kinesisfake.OpPutRecord])
		}
	})
	t.Run("the stream's own limit fails it alone", func(t *testing.T) {
		srv := kinesisfake.Start(t, kinesisfake.WithStream("small", 1), kinesisfake.WithShardWriteLimits(100000, 100*mib))
		w := fakeWriter(t, srv, "small", `
max_record_size: 10485760
shard_limits: {records_per_second: 100000, bytes_per_second: 104857600}
`)
		b := service.MessageBatch{sizedMsg("a1", "A", 100), sizedMsg("a2", "A", 6*mib), sizedMsg("a3", "A", 100)}
		idx := b.Index()
		failed := failedIndexes(t, idx, writeFake(t, w, b))
		if len(failed) != 1 || !strings.Contains(failed[1], "record of 6291456 bytes refused by PutRecord") ||
			!strings.Contains(failed[1], "ValidationException") {
			t.Fatalf("failed %v, want message 1 alone, saying the stream refused its size", failed)
		}
		if perKey, n := landedTags(t, srv, "small"); n != 2 || fmt.Sprint(perKey["A"]) != "[a1 a3]" {
			t.Fatalf("landed %d records: %v", n, perKey)
		}
	})
}

// The per-record limits with the defaults (1 MiB records): exactly the limit
// lands, one byte more fails alone saying why; an empty or 257-character
// partition key and an explicit hash key out of range fail alone too. An explicit hash key with
// leading zeros (which Kinesis refuses, for the whole request) goes out in canonical form.
func TestFakeBadRecordsFailAlone(t *testing.T) {
	srv := kinesisfake.Start(t, kinesisfake.WithStream("limits", 2), kinesisfake.WithShardWriteLimits(100000, 100*mib))
	w := connectedWriter(t, `
stream: limits
partition_key: ${! meta("key").or("") }
hash_key: ${! meta("hash").or("") }
shard_limits: {records_per_second: 100000, bytes_per_second: 104857600}
`, srv.Client())
	long := strings.Repeat("k", 257)
	b := service.MessageBatch{
		sizedMsg("ok1", "A", 100),
		sizedMsg("exact", "A", mib),
		sizedMsg("over", "A", mib+1),
		sizedMsg("nokey", "", 100),
		sizedMsg("longkey", long, 300),
		sizedMsg("badhash", "A", 100),
		sizedMsg("hash", "H", 100),
		sizedMsg("ok2", "A", 100),
		sizedMsg("zeros", "Z", 100),
	}
	b[5].MetaSetMut("hash", "340282366920938463463374607431768211456") // 2^128
	b[6].MetaSetMut("hash", "340282366920938463463374607431768211455") // 2^128-1
	b[8].MetaSetMut("hash", "0000340282366920938463463374607431768211455")
	idx := b.Index()
	failed := failedIndexes(t, idx, writeFake(t, w, b))
	want := map[int]string{
		2: "record of 1048577 bytes (data 1048576 + partition key 1) is over the max record size of 1048576 bytes (max_record_size)",
		3: "partition key is empty",
		4: "partition key has 257 characters (Kinesis allows at most 256)",
		5: "hash key \"340282366920938463463374607431768211456\": not a decimal integer between 0 and 2^128-1",
	}
	if len(failed) != len(want) {
		t.Fatalf("failed %v, want %v", failed, want)
	}
	for i, s := range want {
		if !strings.Contains(failed[i], s) {
			t.Errorf("message %d: error %q does not say %q", i, failed[i], s)
		}
	}
	perKey, n := landedTags(t, srv, "limits")
	if n != 5 || fmt.Sprint(perKey["A"]) != "[ok1 exact ok2]" || fmt.Sprint(perKey["H"]) != "[hash]" || fmt.Sprint(perKey["Z"]) != "[zeros]" {
		t.Fatalf("landed %d records: %v", n, perKey)
	}
	if st := srv.Stats(); len(st.Errors) != 0 {
		t.Fatalf("the fake refused requests: %v (bad records must never reach it)", st.Errors)
	}
}

// Per-record InternalFailure and ProvisionedThroughputExceededException mixed
// in one PutRecords answer, then whole-request 500s: every record lands
// exactly once.
func TestFakeRetriedFailuresLand(t *testing.T) {
	t.Run("mixed per-record failures in one answer", func(t *testing.T) {
		srv := kinesisfake.Start(t, kinesisfake.WithStream("mixed", 2), kinesisfake.WithShardWriteLimits(100000, 100*mib))
		w := fakeWriter(t, srv, "mixed", `
shard_limits: {records_per_second: 100000, bytes_per_second: 104857600}
backoff: {initial_interval: 1ms, max_interval: 5ms, max_elapsed_time: 1m}
`)
		// The first 40 records offered fail, alternately with each code.
		var offered atomic.Int64
		srv.SetRecordFault(func(r kinesisfake.RecordInfo) string {
			switch n := offered.Add(1); {
			case n > 40:
				return ""
			case n%2 == 0:
				return kinesisfake.ErrInternalFailure
			default:
				return kinesisfake.ErrProvisionedThroughput
			}
		})
		writeConcurrently(t, w, 2000, 100, 4)
		checkExactlyOnce(t, srv, "mixed", 2000)
		if st := srv.Stats().Stream("mixed"); st.FailedRecords != 40 {
			t.Fatalf("%d records failed by the fault, want 40", st.FailedRecords)
		}
	})
	t.Run("whole-request 500s", func(t *testing.T) {
		srv := kinesisfake.Start(t, kinesisfake.WithStream("fivehundred", 2), kinesisfake.WithShardWriteLimits(100000, 100*mib))
		w := fakeWriter(t, srv, "fivehundred", `
shard_limits: {records_per_second: 100000, bytes_per_second: 104857600}
backoff: {initial_interval: 1ms, max_interval: 5ms, max_elapsed_time: 1m}
`)
		srv.FailNext(kinesisfake.OpPutRecords, 3, 500, kinesisfake.ErrInternalFailure, "")
		srv.FailNext(kinesisfake.OpPutRecords, 2, 503, kinesisfake.ErrServiceUnavailable, "")
		writeConcurrently(t, w, 1000, 100, 1)
		checkExactlyOnce(t, srv, "fivehundred", 1000)
		if st := srv.Stats(); st.ErrorsByOp[kinesisfake.OpPutRecords] != 5 {
			t.Fatalf("%d PutRecords calls failed, want the 5 injected", st.ErrorsByOp[kinesisfake.OpPutRecords])
		}
	})
}

// With order_per_key, per-record failures of every kind, and batches of the
// same keys in flight at once, each key's records land in the order they
// were written.
func TestFakeOrderPerKeyUnderFailures(t *testing.T) {
	srv := kinesisfake.Start(t, kinesisfake.WithStream("ordered", 3), kinesisfake.WithShardWriteLimits(100000, 100*mib))
	w := fakeWriter(t, srv, "ordered", `
order_per_key: true
shard_limits: {records_per_second: 100000, bytes_per_second: 104857600}
backoff: {initial_interval: 1ms, max_interval: 5ms, max_elapsed_time: 1m}
`)
	var offered atomic.Int64
	srv.SetRecordFault(func(kinesisfake.RecordInfo) string {
		switch offered.Add(1) % 7 {
		case 0:
			return kinesisfake.ErrInternalFailure
		case 3:
			return kinesisfake.ErrProvisionedThroughput
		}
		return ""
	})
	const keys, perBatch, batches = 10, 50, 8
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	errs := make(chan error, batches)
	for g := 0; g < batches; g++ {
		// Batch g holds records n = g*perBatch+i, of key n%keys; all the
		// batches are in flight together.
		b := make(service.MessageBatch, perBatch)
		for i := range b {
			n := g*perBatch + i
			b[i] = service.NewMessage([]byte(fmt.Sprintf("%d|%d", g, n)))
			b[i].MetaSetMut("key", fmt.Sprintf("k%d", n%keys))
		}
		go func() { errs <- w.WriteBatch(ctx, b) }()
	}
	for g := 0; g < batches; g++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	perKey, n := landedTags(t, srv, "ordered")
	if n != batches*perBatch {
		t.Fatalf("%d records landed, want %d", n, batches*perBatch)
	}
	// Each key's records of one batch land in batch order; the batches'
	// order among themselves is the order they reached the output, which
	// the goroutines above do not fix.
	recs, _ := srv.Records("ordered")
	last := map[string]map[string]int{} // key -> batch -> last n
	for _, shard := range recs {
		for _, r := range shard {
			var g, n int
			if _, err := fmt.Sscanf(string(r.Data), "%d|%d", &g, &n); err != nil {
				t.Fatal(err)
			}
			byBatch := last[r.PartitionKey]
			if byBatch == nil {
				byBatch = map[string]int{}
				last[r.PartitionKey] = byBatch
			}
			gk := fmt.Sprint(g)
			if prev, ok := byBatch[gk]; ok && prev > n {
				t.Fatalf("key %s: record %d after %d of the same batch", r.PartitionKey, n, prev)
			}
			byBatch[gk] = n
		}
	}
	if st := srv.Stats().Stream("ordered"); st.FailedRecords == 0 {
		t.Fatalf("no record failed: the test did not test retries (%v)", perKey)
	}
}
