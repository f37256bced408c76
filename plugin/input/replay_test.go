package input

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
)

// auto_replay_nacks is the input's own: a nacked batch goes through
// ReadBatch and its gate again. These tests read through what Register
// gives Benthos (registered). The regression tests failed before the fix,
// when Register wrapped the input with service.AutoRetryNacksBatchedToggled,
// with the messages quoted in their comments.

var errRejected = errors.New("rejected downstream")

// registeredInput is the input as Register builds it, with
// auto_replay_nacks as given; it is never connected: the test runs its
// consumers.
func registeredInput(t *testing.T, replay bool) (service.BatchInput, *kinesisInput) {
	t.Helper()
	pConf, err := Spec().ParseYAML(fmt.Sprintf(`
streams: [s]
region: us-east-1
credentials: {id: test, secret: test}
dynamodb: {table: t}
auto_replay_nacks: %v
`, replay), nil)
	if err != nil {
		t.Fatal(err)
	}
	in, err := newKinesisInputFromParsed(pConf, service.MockResources())
	if err != nil {
		t.Fatal(err)
	}
	bi, err := registered(pConf, in)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bi.Close(context.Background()) })
	return bi, in
}

func readText(t *testing.T, in service.BatchInput) (string, service.AckFunc) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, ackFn, err := in.ReadBatch(ctx)
	if err != nil {
		t.Fatalf("ReadBatch: %v", err)
	}
	return batchText(b), ackFn
}

// readNothing checks that ReadBatch has nothing to return for a while.
func readNothing(t *testing.T, in service.BatchInput, why string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if b, _, err := in.ReadBatch(ctx); err == nil {
		t.Fatalf("ReadBatch returned %q %s", batchText(b), why)
	}
}

// Before the fix: `ReadBatch returned "0" after the shard was lost`.
func TestNackedBatchOfALostShardIsNotReplayed(t *testing.T) {
	client, _ := fakeShard(t, 1)
	bi, k := registeredInput(t, true)
	cons := runConsumer(t, client, k, service.BatchPolicy{})
	if b, ackFn := readText(t, bi); b != "0" {
		t.Fatalf("read %q", b)
	} else {
		cons.stop() // the coordinator's lose
		cons.lost()
		_ = ackFn(context.Background(), errRejected)
	}
	readNothing(t, bi, "after the shard was lost")
	if _, _, err := drainWithin(cons, 5*time.Second); err != nil {
		t.Fatalf("drain: %v", err)
	}
	if cons.allAcked() {
		t.Fatal("allAcked after a lost shard")
	}
}

// Before the fix: `ReadBatch returned "0" while fenced`.
func TestNackedBatchIsNotReplayedWhileFenced(t *testing.T) {
	client, seqs := fakeShard(t, 1)
	bi, k := registeredInput(t, true)
	countFences(k.gate)
	cons := runConsumer(t, client, k, service.BatchPolicy{})
	_, ackFn := readText(t, bi)
	k.gate.set(false) // the fence timer
	_ = ackFn(context.Background(), errRejected)
	readNothing(t, bi, "while fenced")

	k.gate.extend(time.Now().Add(time.Minute)) // heartbeat through, leases re-taken
	k.gate.set(true)
	b, ackFn := readText(t, bi)
	if b != "0" {
		t.Fatalf("replayed %q", b)
	}
	_ = ackFn(context.Background(), nil)
	pos, ok, err := drainWithin(cons, 5*time.Second)
	if err != nil || !ok || pos.SequenceNumber() != seqs[0] {
		t.Fatalf("drained to %v (%v, %v), want %s", pos, ok, err, seqs[0])
	}
	if !cons.allAcked() {
		t.Fatal("not allAcked")
	}
}

// A hand-over stops the consumer while a nacked batch waits to be
// replayed: it is abandoned, and the hand-over does not wait for it.
//
// Before the fix: "drain: context deadline exceeded".
func TestHandOverDoesNotWaitForAReplay(t *testing.T) {
	client, _ := fakeShard(t, 1)
	bi, k := registeredInput(t, true)
	cons := runConsumer(t, client, k, service.BatchPolicy{})
	_, ackFn := readText(t, bi)
	_ = ackFn(context.Background(), errRejected)
	cons.stop()
	if _, ok, err := drainWithin(cons, 5*time.Second); err != nil || ok {
		t.Fatalf("drain: (%v, %v), want no checkpoint and no error", ok, err)
	}
	if cons.allAcked() {
		t.Fatal("allAcked with a batch never acknowledged")
	}
	readNothing(t, bi, "after the hand-over")
}

// Replays of one shard go in shard order, whatever the order of the nacks.
//
// Before the fix: `replayed "1" then "0", want "0" then "1"`.
func TestReplaysKeepShardOrder(t *testing.T) {
	client, seqs := fakeShard(t, 3)
	bi, k := registeredInput(t, true)
	cons := runConsumer(t, client, k, service.BatchPolicy{})
	acks := map[string]service.AckFunc{}
	for range 3 {
		b, ackFn := readText(t, bi)
		acks[b] = ackFn
	}
	_ = acks["1"](context.Background(), errRejected)
	_ = acks["0"](context.Background(), errRejected)
	first, ack0 := readText(t, bi)
	second, ack1 := readText(t, bi)
	if first != "0" || second != "1" {
		t.Fatalf("replayed %q then %q, want \"0\" then \"1\"", first, second)
	}
	for _, a := range []service.AckFunc{ack0, ack1, acks["2"]} {
		_ = a(context.Background(), nil)
	}
	pos, ok, err := drainWithin(cons, 5*time.Second)
	if err != nil || !ok || pos.SequenceNumber() != seqs[2] {
		t.Fatalf("drained to %v (%v, %v), want %s", pos, ok, err, seqs[2])
	}
	if !cons.allAcked() {
		t.Fatal("not allAcked")
	}
}

// A batch error naming some messages replays only those; the replay is of
// the messages as they were read, whatever the pipeline did to them. (A
// guard: Benthos' wrapper did the same, and this test passed with it.)
func TestReplayOfABatchErrorSendsOnlyTheFailedMessages(t *testing.T) {
	client, seqs := fakeShard(t, 3)
	bi, k := registeredInput(t, true)
	cons := runConsumer(t, client, k, service.BatchPolicy{Count: 3})
	ctx := context.Background()
	b, ackFn, err := bi.ReadBatch(ctx)
	if err != nil || batchText(b) != "0,1,2" {
		t.Fatalf("read %q, %v", batchText(b), err)
	}
	b[1].SetBytes([]byte("changed by the pipeline"))
	_ = ackFn(ctx, service.NewBatchError(b, errRejected).Failed(1, errRejected))
	replay, ackFn := readText(t, bi)
	if replay != "1" {
		t.Fatalf("replayed %q, want \"1\"", replay)
	}
	_ = ackFn(ctx, nil)
	if pos, ok, err := drainWithin(cons, 5*time.Second); err != nil || !ok || pos.SequenceNumber() != seqs[2] {
		t.Fatalf("drained to %v (%v, %v), want %s", pos, ok, err, seqs[2])
	}
}

// Without auto_replay_nacks a nacked batch counts as done, as the built-in
// does. (A guard: it passed before the fix, but for allAcked, which is new.)
func TestNackWithoutReplayCountsAsDone(t *testing.T) {
	client, seqs := fakeShard(t, 1)
	bi, k := registeredInput(t, false)
	cons := runConsumer(t, client, k, service.BatchPolicy{})
	_, ackFn := readText(t, bi)
	_ = ackFn(context.Background(), errRejected)
	readNothing(t, bi, "after a nack without auto_replay_nacks")
	if pos, ok, err := drainWithin(cons, 5*time.Second); err != nil || !ok || pos.SequenceNumber() != seqs[0] {
		t.Fatalf("drained to %v (%v, %v), want %s", pos, ok, err, seqs[0])
	}
	if !cons.allAcked() {
		t.Fatal("not allAcked")
	}
}
