package output

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/benthos-kinesis/benthos-kinesis/internal/kinesisapi"
)

// kinesisWriter is the aws_kinesis output: a service.BatchOutput.
type kinesisWriter struct {
	conf    writerConfig
	log     *service.Logger
	metrics writerMetrics
	now     func() time.Time
	after   func(d time.Duration) <-chan time.Time // the dispatcher's waits (simulated in tests)

	// newClient builds the client at Connect (replaced in tests).
	newClient func() kinesisAPI

	mu     sync.Mutex // guards connecting and closing
	client kinesisAPI // set by the first Connect, before shardMap

	// run is the current connection: nil before Connect and after Close.
	run atomic.Pointer[writerRun]

	// shardMap is nil until connected; its Store publishes client too.
	shardMap atomic.Pointer[shardMap]

	statesMu sync.Mutex // guards states
	states   map[string]*shardState

	refreshNow chan struct{}
}

func newKinesisWriter(conf writerConfig, res *service.Resources, newClient func() kinesisAPI) *kinesisWriter {
	return &kinesisWriter{
		conf:       conf,
		log:        res.Logger(),
		metrics:    newWriterMetrics(res.Metrics()),
		now:        time.Now,
		after:      time.After,
		newClient:  newClient,
		states:     map[string]*shardState{},
		refreshNow: make(chan struct{}, 1),
	}
}

// streamRef names the stream in a request: by ARN when the user gave one, by
// name otherwise (some emulators reject ARNs).
func (w *kinesisWriter) streamRef() (name, arn *string) {
	s := kinesisapi.Stream(w.conf.stream)
	return s.Name(), s.ARN()
}

// writerRun is one connection of the writer: its queues, and the goroutines
// that refresh the shard map, dispatch and send.
type writerRun struct {
	ctx    context.Context
	cancel context.CancelFunc
	d      *dispatcher
	wg     sync.WaitGroup
}

// Connect checks that the stream exists and is writable, loads its shard map
// and starts the refresher and the dispatcher.
func (w *kinesisWriter) Connect(ctx context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.run.Load() != nil {
		return nil
	}
	if w.client == nil {
		w.client = w.newClient()
	}
	name, arn := w.streamRef()
	sum, err := w.client.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: name, StreamARN: arn})
	if err != nil {
		return w.describeError(err)
	}
	switch status := sum.StreamDescriptionSummary.StreamStatus; status {
	case types.StreamStatusActive, types.StreamStatusUpdating:
	default:
		return fmt.Errorf("stream %s is %s, not ACTIVE", w.conf.stream, status)
	}
	m, err := w.loadShardMap(ctx)
	if err != nil {
		return err
	}
	w.shardMap.Store(m)

	run := &writerRun{d: newDispatcher(w)}
	run.ctx, run.cancel = context.WithCancel(context.Background())
	run.wg.Add(2)
	go func() {
		defer run.wg.Done()
		w.refreshLoop(run.ctx)
	}()
	go func() {
		defer run.wg.Done()
		run.d.run(run.ctx, &run.wg)
	}()
	w.run.Store(run)
	w.log.Infof("Writing to Kinesis stream %s (%d open shards)", w.conf.stream, len(m.ranges))
	return nil
}

func (w *kinesisWriter) describeError(err error) error {
	if kinesisapi.IsNotFound(err) {
		return kinesisapi.NotFound(kinesisapi.Stream(w.conf.stream), err)
	}
	return fmt.Errorf("describe stream %s: %w", w.conf.stream, err)
}

// Close stops the refresher, the dispatcher and the requests in flight; the
// WriteBatch calls still waiting return service.ErrNotConnected.
func (w *kinesisWriter) Close(ctx context.Context) error {
	w.mu.Lock()
	run := w.run.Swap(nil)
	w.mu.Unlock()
	if run == nil {
		return nil
	}
	run.cancel()
	stopped := make(chan struct{})
	go func() {
		run.wg.Wait()
		close(stopped)
	}()
	select {
	case <-stopped:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// sleepCtx waits d (at least a millisecond) or until ctx is done.
func sleepCtx(ctx context.Context, d time.Duration) error {
	return kinesisapi.Sleep(ctx, max(d, time.Millisecond))
}
