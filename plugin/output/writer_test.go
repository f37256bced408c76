package output

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"
	"github.com/redpanda-data/benthos/v4/public/service"
)

// scriptedKinesis is an in-process stand-in for the Kinesis API that fails
// chosen records or whole calls on purpose: no emulator can be told to fail a
// given record, so the partial-failure bookkeeping is checked against this.
type scriptedKinesis struct {
	mu sync.Mutex
	// recordFailures maps a partition key to the error codes its next
	// attempts get, in order; an empty list means success.
	recordFailures map[string][]string
	// callFailures are errors for the next whole calls, in order.
	callFailures []error
	attempts     map[string]int // per partition key
	calls        int
	onCall       func() // called with mu held, at each call
	// gate, when set, is called first at each call, without mu, with the
	// call's partition keys: a test can hold a call there.
	gate   func(keys []string)
	landed []string // partition keys, in order of success
}

func newScripted() *scriptedKinesis {
	return &scriptedKinesis{recordFailures: map[string][]string{}, attempts: map[string]int{}}
}

func (s *scriptedKinesis) DescribeStreamSummary(context.Context, *kinesis.DescribeStreamSummaryInput, ...func(*kinesis.Options)) (*kinesis.DescribeStreamSummaryOutput, error) {
	return &kinesis.DescribeStreamSummaryOutput{StreamDescriptionSummary: &types.StreamDescriptionSummary{StreamStatus: types.StreamStatusActive}}, nil
}

func (s *scriptedKinesis) ListShards(context.Context, *kinesis.ListShardsInput, ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error) {
	out := &kinesis.ListShardsOutput{}
	for _, b := range fourShards {
		out.Shards = append(out.Shards, types.Shard{
			ShardId:             aws.String(b.id),
			HashKeyRange:        &types.HashKeyRange{StartingHashKey: aws.String(b.startingHashKey), EndingHashKey: aws.String(b.endingHashKey)},
			SequenceNumberRange: &types.SequenceNumberRange{StartingSequenceNumber: aws.String("1")},
		})
	}
	return out, nil
}

func (s *scriptedKinesis) PutRecords(ctx context.Context, in *kinesis.PutRecordsInput, _ ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error) {
	if s.gate != nil {
		keys := make([]string, len(in.Records))
		for i, e := range in.Records {
			keys[i] = aws.ToString(e.PartitionKey)
		}
		s.gate(keys)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if s.onCall != nil {
		s.onCall()
	}
	if len(s.callFailures) > 0 {
		err := s.callFailures[0]
		s.callFailures = s.callFailures[1:]
		return nil, err
	}
	m, _ := newShardMap(fourShards, testStates())
	out := &kinesis.PutRecordsOutput{}
	for _, e := range in.Records {
		k := aws.ToString(e.PartitionKey)
		s.attempts[k]++
		if f := s.recordFailures[k]; len(f) > 0 {
			s.recordFailures[k] = f[1:]
			out.Records = append(out.Records, types.PutRecordsResultEntry{ErrorCode: aws.String(f[0]), ErrorMessage: aws.String("scripted " + f[0])})
			continue
		}
		s.landed = append(s.landed, k)
		out.Records = append(out.Records, types.PutRecordsResultEntry{ShardId: aws.String(m.lookup(partitionHash(k)).id), SequenceNumber: aws.String("1")})
	}
	return out, nil
}

// PutRecord is PutRecords of one record, failing the call with the record's
// scripted error code as Kinesis does.
func (s *scriptedKinesis) PutRecord(ctx context.Context, in *kinesis.PutRecordInput, _ ...func(*kinesis.Options)) (*kinesis.PutRecordOutput, error) {
	out, err := s.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: in.StreamName, Records: []types.PutRecordsRequestEntry{{
		Data: in.Data, PartitionKey: in.PartitionKey, ExplicitHashKey: in.ExplicitHashKey,
	}}})
	if err != nil {
		return nil, err
	}
	if res := out.Records[0]; res.ErrorCode != nil {
		return nil, apiError(*res.ErrorCode)
	}
	return &kinesis.PutRecordOutput{ShardId: out.Records[0].ShardId, SequenceNumber: out.Records[0].SequenceNumber}, nil
}

func newTestWriter(t *testing.T, extraYAML string, client kinesisAPI) *kinesisWriter {
	t.Helper()
	return connectedWriter(t, `
stream: test-stream
partition_key: ${! meta("key").or("") }
backoff:
  initial_interval: 1ms
  max_interval: 5ms
  max_elapsed_time: 10s
`+extraYAML, client)
}

func batchOf(keys ...string) service.MessageBatch {
	b := make(service.MessageBatch, len(keys))
	for i, k := range keys {
		b[i] = service.NewMessage([]byte("data-" + k))
		b[i].MetaSetMut("key", k)
	}
	return b
}

// failedIndexes lists the messages a BatchError names, with their errors.
func failedIndexes(t *testing.T, idx *service.Indexer, err error) map[int]string {
	t.Helper()
	got := map[int]string{}
	if err == nil {
		return got
	}
	var bErr *service.BatchError
	if !errors.As(err, &bErr) {
		t.Fatalf("error %v is not a batch error", err)
	}
	bErr.WalkMessagesIndexedBy(idx, func(i int, _ *service.Message, err error) bool {
		if err != nil {
			got[i] = err.Error()
		}
		return true
	})
	return got
}

func TestWriteBatchRetriesOnlyFailedRecords(t *testing.T) {
	k := newScripted()
	k.recordFailures["throttled"] = []string{"ProvisionedThroughputExceededException", "ProvisionedThroughputExceededException"}
	k.recordFailures["internal"] = []string{"InternalFailure"}
	k.recordFailures["kms"] = []string{"KMSAccessDeniedException"}
	w := newTestWriter(t, "", k)

	b := batchOf("ok1", "throttled", "internal", "kms", "ok2")
	idx := b.Index()
	failed := failedIndexes(t, idx, w.WriteBatch(context.Background(), b))
	if len(failed) != 1 || !strings.Contains(failed[3], "KMSAccessDeniedException") {
		t.Fatalf("failed messages %v, want only message 3 with its KMS error", failed)
	}
	wantAttempts := map[string]int{"ok1": 1, "ok2": 1, "throttled": 3, "internal": 2, "kms": 1}
	for key, want := range wantAttempts {
		if k.attempts[key] != want {
			t.Errorf("%s sent %d times, want %d", key, k.attempts[key], want)
		}
	}
	if len(k.landed) != 4 {
		t.Errorf("landed %v, want 4 records", k.landed)
	}
}

func TestWriteBatchBadRecordsFailAlone(t *testing.T) {
	k := newScripted()
	w := newTestWriter(t, `
max_record_size: 100
hash_key: ${! meta("hash").or("") }
`, k)
	b := batchOf("good", "", "big", strings.Repeat("x", 257), "badhash", "explicit")
	b[2].SetBytes(make([]byte, 100)) // 100 + len("big") > 100
	b[4].MetaSetMut("hash", "340282366920938463463374607431768211456")
	b[5].MetaSetMut("hash", "0")
	idx := b.Index()
	failed := failedIndexes(t, idx, w.WriteBatch(context.Background(), b))
	want := map[int]string{
		1: "partition key is empty",
		2: "over the max record size of 100 bytes (max_record_size)",
		3: "partition key has 257 characters",
		4: "hash key \"340282366920938463463374607431768211456\"",
	}
	if len(failed) != len(want) {
		t.Fatalf("failed %v, want %v", failed, want)
	}
	for i, s := range want {
		if !strings.Contains(failed[i], s) {
			t.Errorf("message %d error %q does not say %q", i, failed[i], s)
		}
	}
	// On two shards: their order in the request is not the batch's.
	if slices.Sort(k.landed); fmt.Sprint(k.landed) != "[explicit good]" {
		t.Errorf("landed %v, want good and explicit", k.landed)
	}
}

func apiError(code string) error {
	return &smithy.GenericAPIError{Code: code, Message: "scripted " + code}
}

func TestWriteBatchWholeRequestErrors(t *testing.T) {
	t.Run("transient errors are retried after a backoff", func(t *testing.T) {
		k := newScripted()
		k.callFailures = []error{apiError("InternalFailure"), errors.New("connection reset by peer"), apiError("LimitExceededException")}
		w := newTestWriter(t, "", k)
		if err := w.WriteBatch(context.Background(), batchOf("a", "b")); err != nil {
			t.Fatal(err)
		}
		if k.calls != 4 || len(k.landed) != 2 {
			t.Fatalf("%d calls, landed %v; want 4 calls and both records", k.calls, k.landed)
		}
	})
	t.Run("a failed call is retried only after a pause", func(t *testing.T) {
		k := newScripted()
		k.callFailures = []error{apiError("InternalFailure"), apiError("ServiceUnavailable")}
		w := writerFromYAML(t, `
stream: test-stream
partition_key: ${! meta("key").or("") }
backoff: {initial_interval: 100ms, max_interval: 1s, max_elapsed_time: 1m}
`, k)
		// Simulated time: every wait of the writer passes at once, so the
		// clock at each call says how long the writer waited before it.
		clock := simulate(w)
		var calledAt []time.Time
		k.onCall = func() { calledAt = append(calledAt, clock.Now()) }
		connect(t, w)
		if err := w.WriteBatch(context.Background(), batchOf("a")); err != nil {
			t.Fatal(err)
		}
		// After call 1 failed, the writer waited at least the jittered
		// initial interval (100ms ± 50%) before call 2; after call 2, at
		// least the jittered doubled interval before call 3.
		if len(calledAt) != 3 || calledAt[1].Sub(calledAt[0]) < 50*time.Millisecond || calledAt[2].Sub(calledAt[1]) < 100*time.Millisecond {
			t.Fatalf("calls at %v", calledAt)
		}
	})
	t.Run("a missing stream fails every record, naming the stream", func(t *testing.T) {
		k := newScripted()
		k.callFailures = []error{apiError("ResourceNotFoundException")}
		w := newTestWriter(t, "", k)
		b := batchOf("a", "b")
		idx := b.Index()
		failed := failedIndexes(t, idx, w.WriteBatch(context.Background(), b))
		if len(failed) != 2 || !strings.Contains(failed[0], "stream test-stream does not exist") {
			t.Fatalf("failed %v, want both messages failed naming the stream", failed)
		}
		if k.calls != 1 {
			t.Fatalf("%d calls, want 1: a missing stream is not retried", k.calls)
		}
	})
	t.Run("max_retries bounds the attempts", func(t *testing.T) {
		k := newScripted()
		k.recordFailures["a"] = []string{"InternalFailure", "InternalFailure", "InternalFailure", "InternalFailure"}
		w := newTestWriter(t, "max_retries: 2\n", k)
		b := batchOf("a", "b")
		idx := b.Index()
		failed := failedIndexes(t, idx, w.WriteBatch(context.Background(), b))
		if len(failed) != 1 || !strings.Contains(failed[0], "gave up after 3 attempts (max_retries 2)") {
			t.Fatalf("failed %v, want message 0 to give up after 3 attempts", failed)
		}
		if k.attempts["a"] != 3 {
			t.Fatalf("a sent %d times, want 3", k.attempts["a"])
		}
	})
	t.Run("cancellation stops the retries", func(t *testing.T) {
		k := newScripted()
		k.recordFailures["a"] = []string{"InternalFailure"}
		w := newTestWriter(t, "backoff: {initial_interval: 1h, max_interval: 1h, max_elapsed_time: 2h}\n", k)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- w.WriteBatch(ctx, batchOf("a")) }()
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("WriteBatch returned %v, want context.Canceled", err)
		}
	})
}

func TestWriteBatchOrderPerKeyUnderRetries(t *testing.T) {
	k := newScripted()
	k.recordFailures["A"] = []string{"ProvisionedThroughputExceededException", "InternalFailure"}
	w := newTestWriter(t, "order_per_key: true\n", k)
	b := make(service.MessageBatch, 0, 6)
	for i, key := range []string{"A", "B", "A", "A", "B", "C"} {
		m := service.NewMessage([]byte(fmt.Sprintf("%s-%d", key, i)))
		m.MetaSetMut("key", key)
		b = append(b, m)
	}
	if err := w.WriteBatch(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	// Scripted failures are per key, so the first A fails twice; no later A
	// may land before it.
	firstA := -1
	for i, key := range k.landed {
		if key == "A" && firstA < 0 {
			firstA = i
		}
	}
	countA := 0
	for _, key := range k.landed[:firstA] {
		if key == "A" {
			countA++
		}
	}
	if len(k.landed) != 6 || countA != 0 {
		t.Fatalf("landed %v", k.landed)
	}
}

// A batch whose context ends while its records wait returns at once, and
// its records still queued are never sent: Benthos sends the batch again.
func TestWriteBatchCancelledRecordsAreNeverSent(t *testing.T) {
	k := newScripted()
	held, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	k.gate = func([]string) {
		once.Do(func() {
			close(held)
			<-release
		})
	}
	w := writerFromYAML(t, `
stream: test-stream
partition_key: ${! meta("key") }
shard_limits: {records_per_second: 1, bytes_per_second: 1000000}
`, k)
	simulate(w) // the limiter's waits pass at once
	connect(t, w)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.WriteBatch(ctx, msgs("a a a")) }()
	<-held // a:0 is in flight; a:1 and a:2 wait behind it in the batch's lane
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("WriteBatch returned %v, want context.Canceled", err)
	}
	close(release)
	if err := w.WriteBatch(context.Background(), msgs("h")); err != nil {
		t.Fatal(err)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	// a:0 (released) and h:0 go to different shards at once: either may land first.
	landed := slices.Sorted(slices.Values(k.landed))
	if fmt.Sprint(landed) != "[a h]" {
		t.Fatalf("landed %v, want a:0 and h:0 only", k.landed)
	}
}

// Batches in flight for one shard do not wait for each other's requests: a
// shard's throughput does not hang on the round trip.
func TestWriteBatchBatchesShareAShardConcurrently(t *testing.T) {
	k := newScripted()
	firstCall, secondCall := make(chan struct{}), make(chan struct{})
	k.gate = func(keys []string) {
		if keys[0] == "a" {
			// The first batch's call returns only once the second
			// batch's call, to the same shard, has been made.
			close(firstCall)
			select {
			case <-secondCall:
			case <-time.After(time.Minute): // a hang guard, not a measure
				t.Error("the second batch's call never came while the first was in flight")
			}
			return
		}
		close(secondCall)
	}
	w := newTestWriter(t, "", k)
	first := make(chan error, 1)
	go func() { first <- w.WriteBatch(context.Background(), msgs("a a")) }()
	<-firstCall
	if err := w.WriteBatch(context.Background(), msgs("h h")); err != nil {
		t.Fatal(err)
	}
	if err := <-first; err != nil {
		t.Fatal(err)
	}
}
