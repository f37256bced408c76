package input

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/benthos-kinesis/benthos-kinesis/checkpointer/ack"
	"github.com/benthos-kinesis/benthos-kinesis/internal/kinesisfake"
)

// behindReads stands between a reader and the in-process Kinesis fake (kinesisfake: no emulator
// injects faults, and kinesalite always answers MillisBehindLatest 0). It makes every answer
// that carries records report a backlog, as Kinesis does to a reader that is behind, so the
// consumer holds partial batches across calls; before the calls numbered in outageAt it makes
// the fake fail GetRecords with 500 InternalFailure more times than the SDK retries (an outage
// of a few seconds); and once every record was returned and an answer comes back empty it ends
// the shard (NextShardIterator absent), as a closed shard does.
type behindReads struct {
	kinesisAPI
	srv      *kinesisfake.Server
	total    int
	outageAt map[int]bool

	mu       sync.Mutex
	calls    int
	returned int // records 0..returned-1 were returned at least once
}

func (b *behindReads) GetRecords(ctx context.Context, in *kinesis.GetRecordsInput, opts ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error) {
	b.mu.Lock()
	b.calls++
	if b.outageAt[b.calls] {
		b.srv.FailNext(kinesisfake.OpGetRecords, sdkAttempts, 500, kinesisfake.ErrInternalFailure, "")
	}
	b.mu.Unlock()
	out, err := b.kinesisAPI.GetRecords(ctx, in, opts...)
	if err != nil {
		return out, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, r := range out.Records {
		i, err := strconv.Atoi(string(r.Data))
		if err != nil {
			return nil, err
		}
		b.returned = max(b.returned, i+1)
	}
	switch {
	case len(out.Records) > 0:
		out.MillisBehindLatest = aws.Int64(5000)
	case b.returned == b.total:
		out.NextShardIterator = nil
	}
	return out, nil
}

// sdkAttempts is the SDK's standard retryer's attempts per call.
const sdkAttempts = 3

// Issue 9, defect 1: GetRecords failing for longer than the SDK retries while the consumer held
// a partial batch. The consumer's run returned the error without delivering the batch, the
// coordinator restarted it with the same reader, which carried on after the records it had
// returned: they were never delivered, and later acknowledgements moved the checkpoint (and at
// the shard's end, its finish) past them. Every record must be delivered once, in order, and the
// checkpoint end on the last, whatever the batching policy.
//
// Before the fix: "records lost: 12 of 200 never delivered (first 0)" by count, 182 of 200 by
// period (no batching lost nothing: it delivers record by record).
func TestConsumerReadErrorWithAPartialBatchLosesNothing(t *testing.T) {
	const total = 200
	for _, c := range []struct {
		name   string
		policy service.BatchPolicy
	}{
		{"batches by count", service.BatchPolicy{Count: 10}},
		{"batches by period", service.BatchPolicy{Period: "50ms"}},
		{"batches by count and period", service.BatchPolicy{Count: 10, Period: "50ms"}},
		{"no batching", service.BatchPolicy{}},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv := kinesisfake.Start(t, kinesisfake.WithStream("s", 1), kinesisfake.WithoutReadLimit())
			var last string
			for i := range total {
				_, seq, err := srv.Append("s", "k", []byte(strconv.Itoa(i)))
				if err != nil {
					t.Fatal(err)
				}
				last = seq
			}
			// 7 records an answer: 29 answers carry records. Outages hit while a batch is
			// partial (calls 2, 9), right after the last record (30) and after a restart.
			kin := &behindReads{kinesisAPI: srv.Client(), srv: srv, total: total, outageAt: map[int]bool{2: true, 9: true, 10: true, 30: true}}
			fast := defaultPacing
			fast.minInterval, fast.idleWait = time.Millisecond, time.Millisecond
			reader := newShardReader(kin, "s", testShard, startPosition{}, fast)
			reader.limit = 7
			out := make(chan delivery, 64)
			cons := newShardConsumer("s", testShard, reader, ack.Position{}, testDeps(out, 1000, c.policy))
			t.Cleanup(cons.stop)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()

			ended := make(chan struct{}, 1)
			onEnd := func(*shardConsumer) { ended <- struct{}{} }
			cons.start(ctx, onEnd)
			var got []int
			failures := 0
			for done := false; !done; {
				select {
				case d := <-out:
					for _, m := range d.batch {
						b, _ := m.AsBytes()
						i, _ := strconv.Atoi(string(b))
						got = append(got, i)
					}
					d.f.done()
				case <-ended:
					err := cons.endErr()
					if errors.Is(err, errShardEnded) {
						done = true
						break
					}
					failures++
					if failures > 10 {
						t.Fatalf("run failed %d times, last: %v", failures, err)
					}
					cons.start(ctx, onEnd) // what the coordinator does after its back-off
				case <-ctx.Done():
					t.Fatalf("stuck after %d messages", len(got))
				}
			}
			for len(out) > 0 { // delivered before the end was reported
				d := <-out
				for _, m := range d.batch {
					b, _ := m.AsBytes()
					i, _ := strconv.Atoi(string(b))
					got = append(got, i)
				}
				d.f.done()
			}
			if failures == 0 {
				t.Fatal("no outage reached the consumer: the test proves nothing")
			}
			if err := deliveredOnceInOrder(got, total); err != nil {
				t.Fatal(err)
			}
			pos, ok, err := cons.drain(ctx)
			if err != nil || !ok || pos.SequenceNumber() != last {
				t.Fatalf("drained to %v (%v, %v), want the last record %s", pos, ok, err, last)
			}
			if !cons.allAcked() {
				t.Fatal("not every delivered batch acknowledged: the shard could not be finished")
			}
		})
	}
}

// deliveredOnceInOrder checks that got is 0..total-1.
func deliveredOnceInOrder(got []int, total int) error {
	seen := make([]int, total)
	for _, i := range got {
		if i < 0 || i >= total {
			return fmt.Errorf("record %d delivered, not written", i)
		}
		seen[i]++
	}
	var missing []int
	for i, n := range seen {
		if n == 0 {
			missing = append(missing, i)
		}
		if n > 1 {
			return fmt.Errorf("record %d delivered %d times", i, n)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("records lost: %d of %d never delivered (first %d)", len(missing), total, missing[0])
	}
	for j := 1; j < len(got); j++ {
		if got[j] < got[j-1] {
			return fmt.Errorf("record %d delivered after %d", got[j], got[j-1])
		}
	}
	return nil
}
