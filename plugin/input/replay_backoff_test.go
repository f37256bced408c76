package input

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
)

// A batch the pipeline keeps rejecting is replayed after a growing,
// bounded wait, and a new batch of its shard waits behind it. (New: the
// replay queue did not exist before the fix.)
func TestReplayBacksOffAndHoldsItsShard(t *testing.T) {
	if replayDelay(1) != 0 {
		t.Fatalf("first replay after %v, want at once", replayDelay(1))
	}
	for n := 2; n < 40; n++ {
		if d := replayDelay(n); d < replayDelay(n-1) || d <= 0 || d > replayBackoffMax {
			t.Fatalf("replay %d after %v (previous %v)", n, d, replayDelay(n-1))
		}
	}
	client, seqs := fakeShard(t, 2)
	bi, k := registeredInput(t, true)
	cons := runConsumer(t, client, k, service.BatchPolicy{})
	b, ackFn := readText(t, bi)
	waitFor(t, 10*time.Second, "the consumer to offer its next batch", func() bool { return outstandingOf(cons) == 2 })
	for attempt := 1; attempt <= 4; attempt++ {
		if b != "0" {
			t.Fatalf("attempt %d read %q, want the replay of \"0\"", attempt, b)
		}
		nacked := time.Now()
		_ = ackFn(context.Background(), errRejected)
		b, ackFn = readText(t, bi)
		if waited := time.Since(nacked); waited < replayDelay(attempt) {
			t.Fatalf("replay %d after %v, want at least %v", attempt, waited, replayDelay(attempt))
		}
	}
	_ = ackFn(context.Background(), nil)
	if b, ackFn = readText(t, bi); b != "1" {
		t.Fatalf("read %q, want \"1\"", b)
	}
	_ = ackFn(context.Background(), nil)
	if pos, ok, err := drainWithin(cons, 5*time.Second); err != nil || !ok || pos.SequenceNumber() != seqs[1] {
		t.Fatalf("drained to %v (%v, %v), want %s", pos, ok, err, seqs[1])
	}

	// A reader waiting for a replay's time stops when its context ends.
	k.replays.push(delivery{ctx: context.Background(), batch: service.MessageBatch{service.NewMessage(nil)}}, 1, time.Now().Add(time.Hour))
	ctx, cancel := context.WithCancel(context.Background())
	got := readAsync(ctx, bi)
	cancel()
	if r := <-got; !errors.Is(r.err, context.Canceled) {
		t.Fatalf("ReadBatch waiting for a replay returned %v", r.err)
	}
}
