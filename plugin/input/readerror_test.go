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
// the fake fail the next fault.n GetRecords with fault's status and error code; and once every
// record was returned and an answer comes back empty it ends the shard (NextShardIterator
// absent), as a closed shard does.
type behindReads struct {
	kinesisAPI
	srv      *kinesisfake.Server
	total    int
	fault    readFault
	outageAt map[int]bool

	mu       sync.Mutex
	calls    int
	returned int // records 0..returned-1 were returned at least once
}

// readFault is what GetRecords answers during an outage: n calls fail with status and code.
type readFault struct {
	n      int
	status int
	code   string
}

func (b *behindReads) GetRecords(ctx context.Context, in *kinesis.GetRecordsInput, opts ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error) {
	b.mu.Lock()
	b.calls++
	if b.outageAt[b.calls] {
		b.srv.FailNext(kinesisfake.OpGetRecords, b.fault.n, b.fault.status, b.fault.code, "")
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

// readUntilShardEnd runs cons as the coordinator does (restarting a run that failed) until it
// reads its shard to the end, acknowledging every delivery at once; it returns the records
// delivered, in order, and how many runs failed.
func readUntilShardEnd(t *testing.T, ctx context.Context, cons *shardConsumer, out chan delivery) ([]int, int) {
	t.Helper()
	ended := make(chan struct{}, 1)
	onEnd := func(*shardConsumer) { ended <- struct{}{} }
	cons.start(ctx, onEnd)
	var got []int
	take := func(d delivery) {
		for _, m := range d.batch {
			b, _ := m.AsBytes()
			i, _ := strconv.Atoi(string(b))
			got = append(got, i)
		}
		d.f.done()
	}
	failures := 0
	for {
		select {
		case d := <-out:
			take(d)
		case <-ended:
			err := cons.endErr()
			if errors.Is(err, errShardEnded) {
				for len(out) > 0 { // delivered before the end was reported
					take(<-out)
				}
				return got, failures
			}
			failures++
			if failures > 20 {
				t.Fatalf("run failed %d times, last: %v", failures, err)
			}
			cons.start(ctx, onEnd) // what the coordinator does after its back-off
		case <-ctx.Done():
			t.Fatalf("stuck after %d messages", len(got))
		}
	}
}

// backlogConsumer is a consumer of a one-shard fake stream of total records ("0", "1", …)
// whose reader gets 7 records an answer, each answer reporting a backlog, and meets fault
// before the calls in outageAt. It returns the consumer, its delivery channel, and the last
// record's sequence number.
func backlogConsumer(t *testing.T, total int, policy service.BatchPolicy, fault readFault, outageAt ...int) (*shardConsumer, chan delivery, string, *kinesisfake.Server) {
	t.Helper()
	srv := kinesisfake.Start(t, kinesisfake.WithStream("s", 1), kinesisfake.WithoutReadLimit())
	var last string
	for i := range total {
		_, seq, err := srv.Append("s", "k", []byte(strconv.Itoa(i)))
		if err != nil {
			t.Fatal(err)
		}
		last = seq
	}
	at := map[int]bool{}
	for _, n := range outageAt {
		at[n] = true
	}
	kin := &behindReads{kinesisAPI: srv.Client(), srv: srv, total: total, fault: fault, outageAt: at}
	fast := defaultPacing
	fast.minInterval, fast.idleWait = time.Millisecond, time.Millisecond
	fast.throttleBase, fast.throttleMax = time.Millisecond, 2*time.Millisecond
	reader := newShardReader(kin, "s", testShard, startPosition{}, fast)
	reader.limit = 7
	out := make(chan delivery, 64)
	cons := newShardConsumer("s", testShard, reader, ack.Position{}, testDeps(out, 1000, policy))
	t.Cleanup(cons.stop)
	return cons, out, last, srv
}

// checkReadToTheEnd checks that got is every record once in order, and that the consumer may
// checkpoint the last one and finish the shard.
func checkReadToTheEnd(t *testing.T, ctx context.Context, cons *shardConsumer, got []int, total int, last string) {
	t.Helper()
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
}

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
	outage := readFault{n: sdkAttempts, status: 500, code: kinesisfake.ErrInternalFailure}
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
			// 29 answers carry records. Outages hit while a batch is partial (calls 2, 9),
			// at once after a restart (10), and right after the last record (30).
			cons, out, last, _ := backlogConsumer(t, total, c.policy, outage, 2, 9, 10, 30)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			got, failures := readUntilShardEnd(t, ctx, cons, out)
			if failures == 0 {
				t.Fatal("no outage reached the consumer: the test proves nothing")
			}
			checkReadToTheEnd(t, ctx, cons, got, total, last)
		})
	}
}

// Every GetRecords error a reader can meet, while a batch is partial and the reader behind:
// those the reader rides out in place (throttling, an expired iterator) and those that end the
// run, which the coordinator restarts (an outage beyond the SDK's retries, KMS keys disabled or
// denied, the stream or shard not found, access denied). Either way every record is delivered
// once, in order. Connection resets and timeouts are the fault suite's (TestChaosReadErrors):
// the fake answers every request it gets.
func TestConsumerReadErrorsLoseNothing(t *testing.T) {
	const total = 100
	for _, c := range []struct {
		fault readFault
		fails bool // the run ends (and is restarted); else the reader rides it out
	}{
		{readFault{sdkAttempts, 500, kinesisfake.ErrInternalFailure}, true},
		{readFault{sdkAttempts, 503, kinesisfake.ErrServiceUnavailable}, true},
		{readFault{sdkAttempts, 400, kinesisfake.ErrKMSThrottling}, false},
		{readFault{sdkAttempts, 400, kinesisfake.ErrProvisionedThroughput}, false},
		{readFault{1, 400, "KMSAccessDeniedException"}, true},
		{readFault{1, 400, "KMSDisabledException"}, true},
		{readFault{1, 400, "KMSNotFoundException"}, true},
		{readFault{1, 400, kinesisfake.ErrAccessDenied}, true},
		{readFault{1, 400, kinesisfake.ErrResourceNotFound}, true},
		{readFault{1, 400, kinesisfake.ErrExpiredIterator}, false},
	} {
		t.Run(c.fault.code, func(t *testing.T) {
			cons, out, last, srv := backlogConsumer(t, total, service.BatchPolicy{Count: 10}, c.fault, 2, 6)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			got, failures := readUntilShardEnd(t, ctx, cons, out)
			if n := srv.PendingFaults(); n != 0 {
				t.Fatalf("%d injected faults never reached the reader: the test proves nothing", n)
			}
			if c.fails && failures == 0 {
				t.Fatalf("%s did not end the run", c.fault.code)
			}
			if !c.fails && failures != 0 {
				t.Fatalf("%s ended the run %d times; the reader should ride it out", c.fault.code, failures)
			}
			checkReadToTheEnd(t, ctx, cons, got, total, last)
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
