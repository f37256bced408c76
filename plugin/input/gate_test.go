package input

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
)

// A worker paused (SIGSTOP) past its fence deadline resumes with goroutines
// that were about to deliver; the fence timer may run after them. These
// tests stand in for that pause by putting the deadline in the past with the
// gate still open, which is what the resumed goroutines see.

func pastDeadlineGate() (*gate, *atomic.Int32) {
	g := newGate()
	var fences atomic.Int32
	g.onFence = func() {
		fences.Add(1)
		g.set(false)
	}
	g.extend(time.Now().Add(-time.Second))
	return g, &fences
}

func TestGateSendPastDeadlineFencesInsteadOfDelivering(t *testing.T) {
	g, fences := pastDeadlineGate()
	out := make(chan delivery, 1) // a ready reader: the send would succeed at once
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.send(ctx, out, delivery{ctx: ctx}) }()

	// The send must fence and then wait for the gate: nothing reaches out.
	waitFor(t, 10*time.Second, "the gate to fence", func() bool { return fences.Load() == 1 })
	select {
	case <-out:
		t.Fatal("delivered after the deadline passed")
	default:
	}
	// A heartbeat gets through again: the deadline moves and the gate opens.
	g.extend(time.Now().Add(time.Minute))
	g.set(true)
	if err := <-done; err != nil {
		t.Fatalf("send after the gate reopened: %v", err)
	}
	if len(out) != 1 {
		t.Fatal("the delivery did not go through once the gate reopened")
	}
	cancel()
}

func TestGateAdmit(t *testing.T) {
	for _, tc := range []struct {
		name      string
		past      bool // the deadline has passed when the delivery is taken
		lost      bool // the shard is lost while fenced (its consumer stopped)
		wantAdmit bool
	}{
		{name: "live", wantAdmit: true},
		{name: "past deadline, shard kept and gate reopened", past: true, wantAdmit: true},
		{name: "past deadline, shard lost meanwhile", past: true, lost: true, wantAdmit: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newGate()
			var fences atomic.Int32
			g.onFence = func() { fences.Add(1); g.set(false) }
			g.extend(time.Now().Add(time.Minute))
			if tc.past {
				g.extend(time.Now().Add(-time.Second))
			}
			consumerCtx, stopConsumer := context.WithCancel(context.Background())
			defer stopConsumer()
			got := make(chan bool, 1)
			go func() { got <- g.admit(context.Background(), delivery{ctx: consumerCtx}) }()
			if tc.past {
				waitFor(t, 10*time.Second, "the gate to fence", func() bool { return fences.Load() == 1 })
				// What the coordinator does after a pause: stop the
				// consumers of lost shards, then re-take and reopen.
				if tc.lost {
					stopConsumer()
				} else {
					g.extend(time.Now().Add(time.Minute))
					g.set(true)
				}
			}
			if admitted := <-got; admitted != tc.wantAdmit {
				t.Fatalf("admit = %v, want %v", admitted, tc.wantAdmit)
			}
			if !tc.past && fences.Load() != 0 {
				t.Fatal("a live gate fenced")
			}
		})
	}
}

func TestReadBatchHoldsADeliveryTakenPastTheDeadline(t *testing.T) {
	k := &kinesisInput{out: make(chan delivery), gate: newGate(), closed: make(chan struct{})}
	var fences atomic.Int32
	k.gate.onFence = func() { fences.Add(1); k.gate.set(false) }
	k.gate.extend(time.Now().Add(-time.Second))

	consumerCtx, stopConsumer := context.WithCancel(context.Background())
	stale := delivery{ctx: consumerCtx, batch: service.MessageBatch{service.NewMessage([]byte("stale"))}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type result struct {
		batch service.MessageBatch
		err   error
	}
	got := make(chan result, 1)
	go func() {
		b, _, err := k.ReadBatch(ctx)
		got <- result{b, err}
	}()
	k.out <- stale // taken by ReadBatch before anything shut the gate
	waitFor(t, 10*time.Second, "the gate to fence", func() bool { return fences.Load() >= 1 })
	stopConsumer() // the shard was taken over meanwhile

	// The stale batch is dropped; the next one, after the worker re-took
	// its other leases, goes through.
	k.gate.extend(time.Now().Add(time.Minute))
	k.gate.set(true)
	fresh := delivery{ctx: context.Background(), batch: service.MessageBatch{service.NewMessage([]byte("fresh"))}}
	k.out <- fresh
	r := <-got
	if r.err != nil {
		t.Fatal(r.err)
	}
	if b, _ := r.batch[0].AsBytes(); string(b) != "fresh" {
		t.Fatalf("ReadBatch returned %q, want the fresh batch", b)
	}
}

// Between a heartbeat that gets through and the re-take of the leases, the
// deadline is in the future but the gate is still shut: nothing may be
// admitted until the coordinator opens it.
//
// Before the fix: "admitted while the gate is shut" (admit checked only the
// deadline).
func TestGateAdmitsOnlyWhileOpenEvenBeforeTheDeadline(t *testing.T) {
	g := newGate()
	fences := countFences(g)
	g.set(false)                          // fenced
	g.extend(time.Now().Add(time.Minute)) // a heartbeat got through
	stopped, stop := context.WithCancel(context.Background())
	stop() // a reader that stops: admit cannot wait for the gate
	if g.admit(stopped, delivery{ctx: context.Background()}) {
		t.Fatal("admitted while the gate is shut")
	}
	got := make(chan bool, 1)
	go func() { got <- g.admit(context.Background(), delivery{ctx: context.Background()}) }()
	g.set(true) // the leases are re-taken
	if !<-got {
		t.Fatal("not admitted once the gate opened")
	}
	// Open but past the deadline: fence rather than admit.
	g.extend(time.Now().Add(-time.Second))
	if g.admit(stopped, delivery{ctx: context.Background()}) {
		t.Fatal("admitted past the deadline")
	}
	if fences.Load() != 1 {
		t.Fatalf("%d fences, want 1", fences.Load())
	}
	// And send waits for the gate too.
	g.extend(time.Now().Add(time.Minute))
	out := make(chan delivery, 1)
	if err := g.send(stopped, out, delivery{ctx: context.Background()}); err == nil || len(out) != 0 {
		t.Fatalf("send while shut: %v, %d sent", err, len(out))
	}
}

// The same through ReadBatch: a batch taken from a consumer while the gate
// is shut (its send raced the fence) is not returned before the gate
// opens, and is returned then.
//
// Before the fix: "ReadBatch returned "b" while the gate was shut".
func TestReadBatchWaitsForTheGateToOpenAfterAHeartbeat(t *testing.T) {
	k := bareInput()
	countFences(k.gate)
	k.gate.set(false)
	k.gate.extend(time.Now().Add(time.Minute))
	readCtx, cancelRead := context.WithCancel(context.Background())
	got := readAsync(readCtx, k)
	k.out <- delivery{ctx: context.Background(), batch: service.MessageBatch{service.NewMessage([]byte("b"))}} // taken
	cancelRead()
	if r := <-got; r.err == nil {
		t.Fatalf("ReadBatch returned %q while the gate was shut", batchText(r.batch))
	}
	k.gate.set(true)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	b, _, err := k.ReadBatch(ctx)
	if err != nil || batchText(b) != "b" {
		t.Fatalf("ReadBatch once the gate opened: %q, %v", batchText(b), err)
	}
}
