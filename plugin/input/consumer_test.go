package input

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/benthos-kinesis/benthos-kinesis/checkpointer/ack"
	"github.com/benthos-kinesis/benthos-kinesis/internal/kinesisfake"
)

func testDeps(out chan delivery, limit int, policy service.BatchPolicy) *consumerDeps {
	res := service.MockResources()
	return &consumerDeps{out: out, gate: newGate(), limit: limit, policy: policy, res: res, metrics: newInputMetrics(res.Metrics())}
}

// One shard of 3,000 records read by a consumer whose batches are acked in
// random order: never more than checkpoint_limit messages unacknowledged,
// every record delivered once in order, and the checkpoint ends on the last.
func TestConsumerLimitAndCheckpoint(t *testing.T) {
	srv := kinesisfake.Start(t, kinesisfake.WithStream("s", 1), kinesisfake.WithoutReadLimit())
	var last string
	for i := 0; i < 3000; i++ {
		_, seq, err := srv.Append("s", "k", []byte(fmt.Sprint(i)))
		if err != nil {
			t.Fatal(err)
		}
		last = seq
	}
	fast := defaultPacing
	fast.minInterval, fast.idleWait = time.Millisecond, time.Millisecond
	for _, c := range []struct {
		name   string
		policy service.BatchPolicy
		limit  int
	}{
		{"one message per batch", service.BatchPolicy{}, 16},
		{"batches of 100", service.BatchPolicy{Count: 100}, 300},
		{"lock-step", service.BatchPolicy{}, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			out := make(chan delivery)
			reader := newShardReader(srv.Client(), "s", "shardId-000000000000", startPosition{}, fast)
			cons := newShardConsumer("s", "shardId-000000000000", reader, ack.Position{}, testDeps(out, c.limit, c.policy))
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			cons.start(ctx, nil)
			rng := rand.New(rand.NewPCG(7, 7))
			type heldBatch struct {
				d     delivery
				first int // index of its first message
			}
			var held []heldBatch
			next := 0
			// The gap between the oldest unacknowledged message and the
			// newest delivered one is what checkpoint_limit bounds.
			gap := func() int {
				oldest := next
				for _, h := range held {
					oldest = min(oldest, h.first)
				}
				return next - oldest
			}
			for next < 3000 {
				select {
				case d := <-out:
					held = append(held, heldBatch{d, next})
					for _, m := range d.batch {
						b, _ := m.AsBytes()
						if string(b) != fmt.Sprint(next) {
							t.Fatalf("message %d is %q", next, b)
						}
						next++
					}
					if g := gap(); g > c.limit && g > len(d.batch) {
						t.Fatalf("%d messages past the oldest unacknowledged one, limit %d", g, c.limit)
					}
				case <-ctx.Done():
					t.Fatalf("stuck after %d messages", next)
				}
				// Ack random held batches, out of order; all of them once
				// the consumer may be waiting for room.
				full := gap() >= c.limit
				for len(held) > 0 && (full || rng.IntN(3) == 0) {
					i := rng.IntN(len(held))
					held[i].d.f.done()
					held = append(held[:i], held[i+1:]...)
				}
			}
			for _, h := range held {
				h.d.f.done()
			}
			pos, ok, err := cons.drain(ctx)
			if err != nil || !ok || pos.SequenceNumber() != last {
				t.Fatalf("drained to %v (%v, %v), want the last record %s", pos, ok, err, last)
			}
			cons.stop()
			if err := cons.endErr(); !errors.Is(err, context.Canceled) {
				t.Fatalf("consumer ended with %v", err)
			}
		})
	}
}
