package input

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/benthos-kinesis/benthos-kinesis/checkpointer/ack"
)

// delivery is one batch on its way to ReadBatch, with the function Benthos
// calls once the pipeline is done with it. ctx is its consumer's: once it
// ends the shard is no longer this worker's to deliver.
type delivery struct {
	batch service.MessageBatch
	ack   service.AckFunc
	ctx   context.Context
}

// monoBase anchors the gate's deadlines on the monotonic clock, which keeps
// counting through a SIGSTOP or a suspended VM.
var monoBase = time.Now()

// gate pauses delivery while the worker is fenced (it could not heartbeat).
//
// The coordinator shuts it with a timer, but a timer is not enough: after a
// long pause (SIGSTOP, a frozen VM) the goroutines that were waiting to
// deliver can run before the timer does. So the gate also holds the
// deadline itself and every delivery checks the clock: past it, the worker
// fences on the spot.
type gate struct {
	mu     sync.Mutex
	open   bool
	opened chan struct{} // closed while open
	shut   chan struct{} // closed while shut

	until   atomic.Int64 // monotonic ns since monoBase until which delivery is safe; 0: no deadline yet
	onFence func()       // fences the worker (shuts the gate and tells the coordinator)
}

func newGate() *gate {
	g := &gate{open: true, opened: make(chan struct{}), shut: make(chan struct{})}
	close(g.opened)
	return g
}

func (g *gate) set(open bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if open == g.open {
		return
	}
	g.open = open
	if open {
		close(g.opened)
		g.shut = make(chan struct{})
	} else {
		close(g.shut)
		g.opened = make(chan struct{})
	}
}

// extend makes delivery safe until t.
func (g *gate) extend(t time.Time) { g.until.Store(int64(t.Sub(monoBase))) }

// live reports whether the deadline has not passed.
func (g *gate) live() bool {
	u := g.until.Load()
	return u == 0 || int64(time.Since(monoBase)) < u
}

// fence shuts the gate because the deadline has passed.
func (g *gate) fence() {
	if g.onFence != nil {
		g.onFence()
		return
	}
	g.set(false)
}

// channels returns the channel closed while the gate is open and the one
// closed while it is shut, as of now.
func (g *gate) channels() (opened, shut <-chan struct{}) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.opened, g.shut
}

// send hands d to out once the gate is open, and gives up the send if the
// gate shuts while it waits for a reader: a fenced worker delivers nothing.
func (g *gate) send(ctx context.Context, out chan<- delivery, d delivery) error {
	for {
		opened, shut := g.channels()
		select {
		case <-opened:
		case <-ctx.Done():
			return ctx.Err()
		}
		if !g.live() {
			g.fence()
			continue
		}
		select {
		case out <- d:
			return nil
		case <-shut:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// admit decides whether a delivery taken from out may go to the pipeline:
// the send and the take can both happen after a pause that outlived the
// deadline, before anything shut the gate. It waits while the worker is
// fenced and reports false if the delivery's shard was lost meanwhile (its
// records are read again by the new owner from the checkpoint) or ctx ended.
func (g *gate) admit(ctx context.Context, d delivery) bool {
	if g.live() {
		return true
	}
	for !g.live() {
		g.fence()
		opened, _ := g.channels()
		select {
		case <-opened:
		case <-d.ctx.Done():
			return false
		case <-ctx.Done():
			return false
		}
	}
	// The coordinator stops the consumers of lost shards before it opens
	// the gate again.
	return d.ctx.Err() == nil
}

// shardConsumer reads one owned shard and delivers its records in batches,
// at most checkpoint_limit messages unacknowledged. Its tracker says how far
// the shard may be checkpointed. The coordinator starts and stops it; one
// goroutine runs it.
type shardConsumer struct {
	stream, shard string
	reader        *shardReader
	out           chan<- delivery
	gate          *gate
	limit         int
	policy        service.BatchPolicy
	period        time.Duration // the batching policy's period, 0 if none
	res           *service.Resources
	metrics       *inputMetrics

	mu          sync.Mutex
	cond        *sync.Cond // signalled on every ack
	tracker     *ack.Tracker
	outstanding int // batches handed to ReadBatch and not yet acknowledged

	meta *recordMeta // used by the run goroutine only

	cancel context.CancelFunc
	done   chan struct{}
	err    error // why run ended (guarded by mu): errShardEnded, a read error, or a context error
}

func newShardConsumer(stream, shard string, reader *shardReader, resumeAfter ack.Position, c *consumerDeps) *shardConsumer {
	s := &shardConsumer{
		stream: stream, shard: shard, reader: reader,
		out: c.out, gate: c.gate, limit: c.limit, policy: c.policy, period: c.period, res: c.res, metrics: c.metrics,
		tracker: ack.New(),
	}
	s.cond = sync.NewCond(&s.mu)
	s.tracker.Resume(resumeAfter)
	return s
}

// consumerDeps are what every consumer of an input shares.
type consumerDeps struct {
	out     chan<- delivery
	gate    *gate
	limit   int
	policy  service.BatchPolicy
	period  time.Duration
	res     *service.Resources
	metrics *inputMetrics
}

// start runs the consumer until ctx ends, the shard ends or reading fails,
// then calls ended (if set). It may be started again once done is closed:
// the reader and the tracker carry on where they were.
func (s *shardConsumer) start(ctx context.Context, ended func(*shardConsumer)) {
	ctx, s.cancel = context.WithCancel(ctx)
	done := make(chan struct{})
	s.done = done
	go func() {
		err := s.run(ctx)
		s.mu.Lock()
		s.err = err
		s.cond.Broadcast()
		s.mu.Unlock()
		close(done)
		if ended != nil {
			ended(s) // after done: whoever waits in stop is not blocked by it
		}
	}()
}

// stop stops reading and waits for the goroutine to exit. Delivered batches
// may still be acknowledged after it.
func (s *shardConsumer) stop() {
	s.cancel()
	s.mu.Lock()
	s.cond.Broadcast() // wake a reader waiting for acks
	s.mu.Unlock()
	<-s.done
}

func (s *shardConsumer) run(ctx context.Context) error {
	var batcher *service.Batcher
	if !s.policy.IsNoop() {
		b, err := s.policy.NewBatcher(s.res)
		if err != nil {
			return err
		}
		batcher = b
		defer func() { _ = batcher.Close(context.Background()) }()
	}
	var (
		pending    []*service.Message // in the batcher, with their positions
		pendingPos ack.Position
		firstAdded time.Time
	)
	flush := func() error {
		if batcher == nil || len(pending) == 0 {
			return nil
		}
		batch, err := batcher.Flush(ctx)
		if err != nil {
			return err
		}
		pending = pending[:0]
		if len(batch) == 0 {
			return nil
		}
		return s.deliver(ctx, batch, pendingPos)
	}
	for {
		// A timed batch must not wait for the reader's idle pause.
		if batcher != nil && len(pending) > 0 && s.period > 0 {
			if left := s.period - time.Since(firstAdded); left <= 0 {
				if err := flush(); err != nil {
					return err
				}
			} else if left < s.reader.plannedDelay() {
				if err := sleepCtx(ctx, left); err != nil {
					return err
				}
				if err := flush(); err != nil {
					return err
				}
			}
		}
		f, err := s.reader.next(ctx)
		if errors.Is(err, errShardEnded) {
			if ferr := flush(); ferr != nil {
				return ferr
			}
			return errShardEnded
		}
		if err != nil {
			return err
		}
		s.metrics.read(s.stream, s.shard, f)
		meta := s.metaFor(f)
		for i := range f.records {
			rec := &f.records[i]
			pos, err := ack.ParseSequenceNumber(aws.ToString(rec.SequenceNumber))
			if err != nil {
				return err
			}
			msg := meta.message(rec)
			if batcher == nil {
				if err := s.deliver(ctx, service.MessageBatch{msg}, pos); err != nil {
					return err
				}
				continue
			}
			if len(pending) == 0 {
				firstAdded = time.Now()
			}
			pending = append(pending, msg)
			pendingPos = pos
			if batcher.Add(msg) {
				if err := flush(); err != nil {
					return err
				}
			}
		}
		// Caught up with the shard: a partial batch would otherwise wait
		// (without a batching period, for ever) for records to come.
		if f.millisBehind == 0 {
			if err := flush(); err != nil {
				return err
			}
		}
	}
}

// deliver hands one batch, ending at pos, to ReadBatch once the shard has
// room under checkpoint_limit and the worker is not fenced.
func (s *shardConsumer) deliver(ctx context.Context, batch service.MessageBatch, pos ack.Position) error {
	s.mu.Lock()
	for s.tracker.InFlight() > 0 && s.tracker.InFlight()+len(batch) > s.limit && ctx.Err() == nil {
		s.cond.Wait()
	}
	if err := ctx.Err(); err != nil {
		s.mu.Unlock()
		return err
	}
	id, err := s.tracker.Deliver(pos, len(batch))
	s.mu.Unlock()
	if err != nil {
		return err
	}
	d := delivery{batch: batch, ctx: ctx, ack: func(context.Context, error) error {
		// With auto_replay_nacks (the default) a nack never reaches here:
		// the batch is replayed until it succeeds. Without it, a nacked
		// batch is dropped, as the built-in does, so it counts as done.
		s.mu.Lock()
		if s.tracker.Ack(id) {
			s.outstanding--
		}
		s.cond.Broadcast()
		s.mu.Unlock()
		return nil
	}}
	s.mu.Lock()
	s.outstanding++
	s.mu.Unlock()
	if err := s.gate.send(ctx, s.out, d); err != nil {
		s.mu.Lock()
		s.outstanding--
		s.mu.Unlock()
		return err
	}
	return nil
}

// endErr is why the last run ended.
func (s *shardConsumer) endErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// committable returns the checkpoint to write, if it moved.
func (s *shardConsumer) committable() (ack.Position, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tracker.Committable()
}

func (s *shardConsumer) committed(pos ack.Position) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tracker.Committed(pos)
}

// drain waits until every batch handed to ReadBatch is acknowledged, or ctx
// ends, and returns the checkpoint then (valid: whether there is one).
func (s *shardConsumer) drain(ctx context.Context) (ack.Position, bool, error) {
	stopWaking := context.AfterFunc(ctx, func() {
		s.mu.Lock()
		s.cond.Broadcast()
		s.mu.Unlock()
	})
	defer stopWaking()
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.outstanding > 0 && ctx.Err() == nil {
		s.cond.Wait()
	}
	pos, ok := s.tracker.Checkpoint()
	return pos, ok, ctx.Err()
}

// lost forgets every unacknowledged batch: the shard is someone else's now
// and its checkpoint must never be written by this worker again.
func (s *shardConsumer) lost() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tracker.Reset()
	s.cond.Broadcast()
}

// recordMeta holds the metadata values shared by the records of one
// GetRecords answer, boxed once: MetaSetMut takes any, and boxing a string
// allocates.
type recordMeta struct {
	stream, shard, millisBehind any
	lastArrival                 time.Time
	lastArrivalV                any
}

// metaFor prepares the shared metadata of one answer.
func (s *shardConsumer) metaFor(f fetched) *recordMeta {
	if s.meta == nil {
		s.meta = &recordMeta{stream: s.stream, shard: s.shard}
	}
	s.meta.millisBehind = strconv.FormatInt(f.millisBehind, 10)
	return s.meta
}

// message makes a Benthos message of a record, with the built-in's
// metadata and more.
func (m *recordMeta) message(rec *types.Record) *service.Message {
	msg := service.NewMessage(rec.Data)
	msg.MetaSetMut("kinesis_stream", m.stream)
	msg.MetaSetMut("kinesis_shard", m.shard)
	msg.MetaSetMut("kinesis_partition_key", aws.ToString(rec.PartitionKey))
	msg.MetaSetMut("kinesis_sequence_number", aws.ToString(rec.SequenceNumber))
	if ts := rec.ApproximateArrivalTimestamp; ts != nil {
		// Records of one PutRecords share their arrival time.
		if !ts.Equal(m.lastArrival) || m.lastArrivalV == nil {
			m.lastArrival, m.lastArrivalV = *ts, ts.UTC().Format(time.RFC3339Nano)
		}
		msg.MetaSetMut("kinesis_arrival_timestamp", m.lastArrivalV)
	}
	msg.MetaSetMut("kinesis_millis_behind", m.millisBehind)
	return msg
}

// allAcked reports whether every delivered batch was acknowledged. (Placeholder until the
// abandoned-delivery fix lands: no batch is abandoned yet.)
func (s *shardConsumer) allAcked() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tracker.InFlight() == 0
}
