package input

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/benthos-kinesis/benthos-kinesis/checkpointer/ack"
)

// scriptedKinesis answers GetRecords from a script, one answer per call,
// and records each call's context; past the script, a call waits for its
// context to end.
type scriptedKinesis struct {
	kinesisAPI // nil: only the calls below are made
	answers    []func() (*kinesis.GetRecordsOutput, error)

	mu    sync.Mutex
	calls []context.Context
}

func (f *scriptedKinesis) GetShardIterator(context.Context, *kinesis.GetShardIteratorInput, ...func(*kinesis.Options)) (*kinesis.GetShardIteratorOutput, error) {
	return &kinesis.GetShardIteratorOutput{ShardIterator: aws.String("it")}, nil
}

func (f *scriptedKinesis) GetRecords(ctx context.Context, _ *kinesis.GetRecordsInput, _ ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error) {
	f.mu.Lock()
	f.calls = append(f.calls, ctx)
	n := len(f.calls)
	f.mu.Unlock()
	if n <= len(f.answers) {
		return f.answers[n-1]()
	}
	<-ctx.Done()
	return nil, ctx.Err()
}

func (f *scriptedKinesis) call(i int) context.Context {
	f.mu.Lock()
	defer f.mu.Unlock()
	if i < len(f.calls) {
		return f.calls[i]
	}
	return nil
}

var errBoom = errors.New("boom")

func failing() (*kinesis.GetRecordsOutput, error) { return nil, errBoom }

// restartable is a consumer of the scripted shard whose runs report their
// end on ended.
func restartable(t *testing.T, kin kinesisAPI, out chan delivery) (*shardConsumer, chan struct{}) {
	fast := defaultPacing
	fast.minInterval, fast.idleWait = time.Millisecond, time.Millisecond
	cons := newShardConsumer("s", testShard, newShardReader(kin, "s", testShard, startPosition{}, fast), ack.Position{}, testDeps(out, 100, service.BatchPolicy{}))
	t.Cleanup(cons.stop)
	return cons, make(chan struct{}, 4)
}

// The coordinator restarts a consumer whose run failed (a read error): the
// failed run's context must end, not leak one per restart.
//
// Before the fix: "timed out after 5s waiting for the first run's context
// to end".
func TestConsumerRestartEndsThePreviousRunsContext(t *testing.T) {
	kin := &scriptedKinesis{answers: []func() (*kinesis.GetRecordsOutput, error){failing}}
	cons, ended := restartable(t, kin, make(chan delivery))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	onEnd := func(*shardConsumer) { ended <- struct{}{} }
	cons.start(ctx, onEnd)
	<-ended
	if err := cons.endErr(); !errors.Is(err, errBoom) {
		t.Fatalf("first run ended with %v", err)
	}
	cons.start(ctx, onEnd) // what the coordinator does after its pause
	waitFor(t, 5*time.Second, "the second run to read", func() bool { return kin.call(1) != nil })
	waitFor(t, 5*time.Second, "the first run's context to end", func() bool { return kin.call(0).Err() != nil })
	if kin.call(1).Err() != nil {
		t.Fatal("the running run's context ended")
	}
	cons.stop()
	if kin.call(1).Err() == nil {
		t.Fatal("stop did not end the run")
	}
}

// A restart does not take from the pipeline what the earlier run delivered:
// the deliveries stay the consumer's (replayable, admissible) until it is
// stopped, and then they are released.
//
// Before the fix: "a delivery of an earlier run still claimed after stop"
// (stop ended only the last run's context).
func TestConsumerRestartKeepsEarlierDeliveriesUntilStopped(t *testing.T) {
	seq := "49590338271490256608559692538361571095921575989136588898"
	kin := &scriptedKinesis{answers: []func() (*kinesis.GetRecordsOutput, error){
		func() (*kinesis.GetRecordsOutput, error) {
			return &kinesis.GetRecordsOutput{
				Records:            []types.Record{{Data: []byte("0"), PartitionKey: aws.String("k"), SequenceNumber: aws.String(seq)}},
				NextShardIterator:  aws.String("it"),
				MillisBehindLatest: aws.Int64(0),
			}, nil
		},
		failing,
	}}
	out := make(chan delivery, 1)
	cons, ended := restartable(t, kin, out)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	onEnd := func(*shardConsumer) { ended <- struct{}{} }
	cons.start(ctx, onEnd)
	d := <-out
	<-ended
	cons.start(ctx, onEnd)
	waitFor(t, 5*time.Second, "the second run to read", func() bool { return kin.call(2) != nil })
	if d.ctx.Err() != nil {
		t.Fatal("a delivery of the failed run is no longer claimed after the restart")
	}
	cons.stop()
	if d.ctx.Err() == nil {
		t.Fatal("a delivery of an earlier run still claimed after stop")
	}
}

// The coordinator stops a consumer at once with cancel (halt), from its
// loop, and waits for the goroutine elsewhere: once cancel returns, nothing
// the consumer delivered may be handed out any more (a lost shard's
// batches must not pass a gate the coordinator opens next). A guard: it
// held before the fix too.
func TestConsumerCancelEndsTheClaimAtOnce(t *testing.T) {
	client, _ := fakeShard(t, 1)
	out := make(chan delivery, 1)
	fast := defaultPacing
	fast.minInterval, fast.idleWait = time.Millisecond, time.Millisecond
	cons := newShardConsumer("s", testShard, newShardReader(client, "s", testShard, startPosition{}, fast), ack.Position{}, testDeps(out, 100, service.BatchPolicy{}))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cons.start(ctx, nil)
	d := <-out
	cons.cancel()
	if d.ctx.Err() == nil {
		t.Fatal("a delivery still claimed after cancel returned")
	}
	cons.stop()
}
