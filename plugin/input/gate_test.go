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
