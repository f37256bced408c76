package input

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/benthos-kinesis/benthos-kinesis/checkpointer/ack"
	"github.com/benthos-kinesis/benthos-kinesis/internal/kinesisfake"
)

// Deliveries dropped before the pipeline saw them are abandoned: drain does
// not wait for them, the checkpoint never passes them, and allAcked says so.
// The regression tests here failed before abandoning existed, with the
// messages quoted in their comments (drain waited its whole bound).

const testShard = "shardId-000000000000"

// fakeShard is a one-shard stream "s" of an in-process Kinesis holding the
// records "0" to "n-1"; it returns a client and their sequence numbers.
func fakeShard(t *testing.T, n int) (kinesisAPI, []string) {
	t.Helper()
	srv := kinesisfake.Start(t, kinesisfake.WithStream("s", 1), kinesisfake.WithoutReadLimit())
	seqs := make([]string, n)
	for i := range seqs {
		_, seq, err := srv.Append("s", "k", []byte(fmt.Sprint(i)))
		if err != nil {
			t.Fatal(err)
		}
		seqs[i] = seq
	}
	return srv.Client(), seqs
}

// bareInput is an input without a coordinator: the test runs its consumers.
func bareInput() *kinesisInput {
	return &kinesisInput{out: make(chan delivery), gate: newGate(), closed: make(chan struct{})}
}

// countFences makes the gate's fence count and shut the gate, as the
// coordinator's does.
func countFences(g *gate) *atomic.Int32 {
	var fences atomic.Int32
	g.onFence = func() {
		fences.Add(1)
		g.set(false)
	}
	return &fences
}

// runConsumer starts a consumer of the fake shard that delivers to k.
func runConsumer(t *testing.T, client kinesisAPI, k *kinesisInput, policy service.BatchPolicy) *shardConsumer {
	t.Helper()
	fast := defaultPacing
	fast.minInterval, fast.idleWait = time.Millisecond, time.Millisecond
	res := service.MockResources()
	deps := &consumerDeps{out: k.out, gate: k.gate, limit: 100, policy: policy, res: res, metrics: newInputMetrics(res.Metrics())}
	cons := newShardConsumer("s", testShard, newShardReader(client, "s", testShard, startPosition{}, fast), ack.Position{}, deps)
	ctx, cancel := context.WithCancel(context.Background())
	cons.start(ctx, nil)
	t.Cleanup(func() {
		cons.stop()
		cancel()
	})
	return cons
}

func outstandingOf(s *shardConsumer) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.outstanding
}

// drainWithin is drain bounded by d, as the hand-over and the shutdown do.
func drainWithin(s *shardConsumer, d time.Duration) (ack.Position, bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return s.drain(ctx)
}

func batchText(b service.MessageBatch) string {
	s := ""
	for i, m := range b {
		data, _ := m.AsBytes()
		if i > 0 {
			s += ","
		}
		s += string(data)
	}
	return s
}

type readResult struct {
	batch service.MessageBatch
	ack   service.AckFunc
	err   error
}

func readAsync(ctx context.Context, in service.BatchInput) <-chan readResult {
	got := make(chan readResult, 1)
	go func() {
		b, a, err := in.ReadBatch(ctx)
		got <- readResult{b, a, err}
	}()
	return got
}

// A worker paused past its deadline: ReadBatch takes a batch, fences, and
// while it waits for the gate the shard is taken from the worker (the
// hand-over or the shutdown stops its consumer). ReadBatch drops the batch;
// drain must not wait for it.
//
// Before the fix: "drain after the batch was dropped: context deadline
// exceeded" (after the full bound).
func TestDrainReturnsWhenReadBatchDropsTheBatchOfAStoppedShard(t *testing.T) {
	client, _ := fakeShard(t, 1)
	k := bareInput()
	fences := countFences(k.gate)
	k.gate.extend(time.Now().Add(time.Minute))
	cons := runConsumer(t, client, k, service.BatchPolicy{})
	waitFor(t, 10*time.Second, "the consumer to offer its batch", func() bool { return outstandingOf(cons) == 1 })

	k.gate.extend(time.Now().Add(-time.Second)) // the pause outlived the deadline
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := readAsync(ctx, k)
	waitFor(t, 10*time.Second, "ReadBatch to take the batch and fence", func() bool { return fences.Load() >= 1 })

	cons.stop()
	if _, ok, err := drainWithin(cons, 5*time.Second); err != nil || ok {
		t.Fatalf("drain after the batch was dropped: (%v, %v), want no checkpoint and no error", ok, err)
	}
	if cons.allAcked() {
		t.Fatal("allAcked after a batch was dropped")
	}
	cancel()
	if r := <-got; r.err == nil {
		t.Fatalf("ReadBatch returned %q, a batch of a stopped consumer", batchText(r.batch))
	}
}

// Benthos' input loop (AsyncReader, v4.78.0) drops a batch ReadBatch
// returns once a soft stop is signalled: it neither passes it on nor calls
// its ack func, then waits for the acks of what it did pass on and calls
// Close. Close stops the consumers and drains them: the dropped batch must
// not hold the drain.
//
// Before the fix: "drain after Benthos dropped the batch: context deadline
// exceeded".
func TestDrainReturnsWhenBenthosDropsABatchOnSoftStop(t *testing.T) {
	client, _ := fakeShard(t, 1)
	k := bareInput()
	cons := runConsumer(t, client, k, service.BatchPolicy{})
	readCtx, softStop := context.WithCancel(context.Background())
	b, _, err := k.ReadBatch(readCtx)
	if err != nil {
		t.Fatal(err)
	}
	if batchText(b) != "0" {
		t.Fatalf("read %q", batchText(b))
	}
	softStop() // and the batch goes nowhere

	cons.stop() // Close
	if _, ok, err := drainWithin(cons, 5*time.Second); err != nil || ok {
		t.Fatalf("drain after Benthos dropped the batch: (%v, %v), want no checkpoint and no error", ok, err)
	}
	if cons.allAcked() {
		t.Fatal("allAcked with a batch never acknowledged")
	}
}

// The other side of a soft stop: a batch the pipeline already had is
// acknowledged after ReadBatch's context ended (Benthos waits for those
// acks before Close). It counts: the checkpoint covers it. (A guard: it
// passed before the fix, but for allAcked, which is new.)
func TestBatchAckedAfterSoftStopMovesTheCheckpoint(t *testing.T) {
	client, seqs := fakeShard(t, 1)
	k := bareInput()
	cons := runConsumer(t, client, k, service.BatchPolicy{})
	readCtx, softStop := context.WithCancel(context.Background())
	_, ackFn, err := k.ReadBatch(readCtx)
	if err != nil {
		t.Fatal(err)
	}
	softStop()
	if err := ackFn(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	cons.stop()
	pos, ok, err := drainWithin(cons, 5*time.Second)
	if err != nil || !ok || pos.SequenceNumber() != seqs[0] {
		t.Fatalf("drained to %v (%v, %v), want %s", pos, ok, err, seqs[0])
	}
	if !cons.allAcked() {
		t.Fatal("not allAcked though the only batch was acknowledged")
	}
}

// ReadBatch took a batch and waits for the gate (the worker is fenced)
// when its context ends: Benthos stops reading (soft stop), then Close
// stops the consumers. The batch was never returned; it must not stay
// outstanding.
//
// Before the fix: "drain after ReadBatch gave the batch up: context
// deadline exceeded".
func TestDrainReturnsWhenReadBatchGivesUpABatchAsItStops(t *testing.T) {
	client, _ := fakeShard(t, 1)
	k := bareInput()
	fences := countFences(k.gate)
	k.gate.extend(time.Now().Add(time.Minute))
	cons := runConsumer(t, client, k, service.BatchPolicy{})
	waitFor(t, 10*time.Second, "the consumer to offer its batch", func() bool { return outstandingOf(cons) == 1 })
	k.gate.extend(time.Now().Add(-time.Second))
	readCtx, softStop := context.WithCancel(context.Background())
	got := readAsync(readCtx, k)
	waitFor(t, 10*time.Second, "ReadBatch to take the batch and fence", func() bool { return fences.Load() >= 1 })
	softStop()
	if r := <-got; r.err == nil {
		t.Fatalf("ReadBatch returned %q while fenced", batchText(r.batch))
	}

	cons.stop() // Close
	if _, ok, err := drainWithin(cons, 5*time.Second); err != nil || ok {
		t.Fatalf("drain after ReadBatch gave the batch up: (%v, %v), want no checkpoint and no error", ok, err)
	}
	if cons.allAcked() {
		t.Fatal("allAcked with a batch never handed out")
	}
}

// The same, but the caller reads again and the shard is still the
// worker's: the batch ReadBatch gave up is handed out then, not lost (lost,
// it would hold the shard's checkpoint for good).
//
// Before the fix: "ReadBatch after the gate reopened: context deadline
// exceeded" (the batch was gone; nothing else to read).
func TestReadBatchHandsOutLaterABatchItGaveUpAsItsContextEnded(t *testing.T) {
	client, seqs := fakeShard(t, 1)
	k := bareInput()
	fences := countFences(k.gate)
	k.gate.extend(time.Now().Add(time.Minute))
	cons := runConsumer(t, client, k, service.BatchPolicy{})
	waitFor(t, 10*time.Second, "the consumer to offer its batch", func() bool { return outstandingOf(cons) == 1 })
	k.gate.extend(time.Now().Add(-time.Second))
	readCtx, cancelRead := context.WithCancel(context.Background())
	got := readAsync(readCtx, k)
	waitFor(t, 10*time.Second, "ReadBatch to take the batch and fence", func() bool { return fences.Load() >= 1 })
	cancelRead()
	if r := <-got; r.err == nil {
		t.Fatalf("ReadBatch returned %q while fenced", batchText(r.batch))
	}

	k.gate.extend(time.Now().Add(time.Minute)) // the leases are re-taken
	k.gate.set(true)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	b, ackFn, err := k.ReadBatch(ctx)
	if err != nil {
		t.Fatalf("ReadBatch after the gate reopened: %v", err)
	}
	if batchText(b) != "0" {
		t.Fatalf("read %q, want the batch given up", batchText(b))
	}
	_ = ackFn(ctx, nil)
	pos, ok, err := drainWithin(cons, 5*time.Second)
	if err != nil || !ok || pos.SequenceNumber() != seqs[0] {
		t.Fatalf("drained to %v (%v, %v), want %s", pos, ok, err, seqs[0])
	}
	if !cons.allAcked() {
		t.Fatal("not allAcked")
	}
}

// A hand-over while the pipeline runs waits for the batches the pipeline
// has (graceful: the checkpoint covers them and the taker reads nothing
// twice); if Benthos stops reading meanwhile (soft stop), the batches it
// leaves unanswered are given up and the drain ends.
//
// Before the fix: "drained to 4917...0001 (true, context deadline
// exceeded)": the drain waited its whole bound for the unanswered batch.
func TestHandOverWaitsForThePipelineUntilBenthosStops(t *testing.T) {
	client, seqs := fakeShard(t, 2)
	k := bareInput()
	cons := runConsumer(t, client, k, service.BatchPolicy{})
	readCtx, softStop := context.WithCancel(context.Background())
	defer softStop()
	_, ack0, err := k.ReadBatch(readCtx)
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = k.ReadBatch(readCtx)
	if err != nil {
		t.Fatal(err)
	}
	cons.stop() // the hand-over
	if _, _, err := drainWithin(cons, 200*time.Millisecond); err == nil {
		t.Fatal("drain did not wait for the batches in the pipeline")
	}
	_ = ack0(context.Background(), nil)
	softStop() // the second batch is never answered
	pos, ok, err := drainWithin(cons, 5*time.Second)
	if err != nil || !ok || pos.SequenceNumber() != seqs[0] {
		t.Fatalf("drained to %v (%v, %v), want %s", pos, ok, err, seqs[0])
	}
	if cons.allAcked() {
		t.Fatal("allAcked with a batch never answered")
	}
}

// The coordinator's cancel stops a consumer at once: once it returns, not
// even the batch ReadBatch has just taken from it (its send completed) is
// handed out; it is abandoned, the drain ends, and allAcked says so. A
// lost shard relies on this; a consumer that read its shard to the end is
// drained without cancel, so that its last batch still goes. A guard: it
// held before this change's follow-ups, and an admit that let such a batch
// through (as a draft of this change did) fails it.
func TestReadBatchDropsABatchTakenBeforeItsConsumerWasCancelled(t *testing.T) {
	client, _ := fakeShard(t, 1)
	k := bareInput()
	res := service.MockResources()
	taken := make(chan delivery) // what ReadBatch receives, intercepted
	fast := defaultPacing
	fast.minInterval, fast.idleWait = time.Millisecond, time.Millisecond
	deps := &consumerDeps{out: taken, gate: k.gate, limit: 100, res: res, metrics: newInputMetrics(res.Metrics())}
	cons := newShardConsumer("s", testShard, newShardReader(client, "s", testShard, startPosition{}, fast), ack.Position{}, deps)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cons.start(ctx, nil)
	d := <-taken  // the send completed: ReadBatch has it
	cons.cancel() // the coordinator stops the consumer (a lost shard)
	readCtx, cancelRead := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancelRead()
	got := readAsync(readCtx, k)
	k.out <- d // ReadBatch goes on to admit it
	if r := <-got; r.err == nil {
		t.Fatalf("ReadBatch handed out %q after its consumer was cancelled", batchText(r.batch))
	}
	cons.stop()
	if _, ok, err := drainWithin(cons, 5*time.Second); err != nil || ok {
		t.Fatalf("drain: (%v, %v), want no checkpoint and no error", ok, err)
	}
	if cons.allAcked() {
		t.Fatal("allAcked with a batch never handed out")
	}
}
