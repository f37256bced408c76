package input

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/benthos-kinesis/benthos-kinesis/checkpointer"
	"github.com/benthos-kinesis/benthos-kinesis/checkpointer/ack"
	"github.com/benthos-kinesis/benthos-kinesis/checkpointer/lease"
	"github.com/benthos-kinesis/benthos-kinesis/internal/kinesisapi"
)

// mono is the time on this process's monotonic clock, as the lease machine and the gate count it.
func mono() time.Duration { return time.Since(monoBase) }

// ownedConsumer is the consumer of one owned shard and its generation (the lease machine's
// count of the consumers it started for the shard).
type ownedConsumer struct {
	cons *shardConsumer
	gen  uint64
}

// coordinator is the I/O shell around the lease machine (checkpointer/lease): one goroutine
// (run) steps the machine with what happened and performs what it asks, without ever waiting on
// I/O itself. Around it:
//   - the heartbeat, on its own goroutine and timer, with its own per-call timeout: never
//     queued behind anything else;
//   - the table reads, one at a time, each stream's list and lease Query concurrently;
//   - the writes, performed by a bounded pool (dynamodb.max_in_flight), each with a per-call
//     timeout of a heartbeat period;
//   - one goroutine per shard consumer, and short-lived ones that stop and drain a consumer.
//
// Every one of them reports back through events and ends when run does.
type coordinator struct {
	conf    inputConfig
	log     *service.Logger
	metrics *inputMetrics
	kin     kinesisAPI
	table   *checkpointer.Table
	// beats is the table as the heartbeat reaches it: its own DynamoDB client, so that its
	// calls neither queue behind the pool's on one connection pool nor share its retry budget.
	beats    *checkpointer.Table
	workerID string
	deps     *consumerDeps
	machine  *lease.Machine

	heartbeatPeriod time.Duration
	writeTimeout    time.Duration
	counter         int64         // the heartbeat counter (the heartbeat goroutine's after start)
	firstBeat       time.Duration // send time of Connect's heartbeat

	events    chan lease.Event
	beaten    chan lease.Heartbeat // the heartbeat's results: never waits behind other events
	consumers map[lease.Key]ownedConsumer
	// hashRanges are the listed shards' hash key ranges, for the readers' KPL deaggregation.
	hashRanges map[lease.Key]hashRange
	queue      []lease.Write // writes waiting for a place in the pool
	phaseSeq   int           // readers started, to spread them over the idle grid's phases
	pool       chan lease.Write
	done       bool

	// crash, when set before ctx ends, makes run return without releasing anything: what
	// kill -9 leaves behind (tests only).
	crash atomic.Bool
	// ownedCount mirrors the number of shards owned, for readers outside the loop.
	ownedCount *atomic.Int64
}

func newCoordinator(conf inputConfig, res *service.Resources, metrics *inputMetrics, kin kinesisAPI, table, beats *checkpointer.Table, deps *consumerDeps) (*coordinator, error) {
	heartbeat := conf.leasePeriod / 3
	lc := lease.Config{
		Self: table.WorkerID(), LeasePeriod: conf.leasePeriod, HeartbeatPeriod: heartbeat,
		RebalancePeriod: conf.rebalancePeriod, StealGracePeriod: conf.stealGracePeriod, CommitPeriod: conf.commitPeriod,
		MaxMoves: conf.maxMoves, Seed: rand.Uint64(),
		// The heartbeat ticks the machine (heartbeats): the read and the commit go out in the
		// heartbeat's wake-up. Half a period of slack puts the read on the heartbeat's beat
		// within one period, whatever its phase; the commit may be up to a period early.
		ReadSlack: heartbeat / 2, CommitSlack: min(heartbeat, conf.commitPeriod/2),
	}
	for _, s := range conf.streams {
		lc.Streams = append(lc.Streams, lease.Stream{ID: s.id, Shards: s.shards})
	}
	switch {
	case conf.startTimestamp != nil:
		lc.Start, lc.StartTime = lease.StartAtTimestamp, *conf.startTimestamp
	case !conf.startFromOldest:
		lc.Start = lease.StartLatest
	}
	m, err := lease.NewMachine(lc, mono())
	if err != nil {
		return nil, err
	}
	return &coordinator{
		conf: conf, log: res.Logger(), metrics: metrics, kin: kin, table: table, beats: beats, workerID: table.WorkerID(), deps: deps,
		machine:         m,
		heartbeatPeriod: heartbeat,
		writeTimeout:    heartbeat,
		events:          make(chan lease.Event, 256),
		beaten:          make(chan lease.Heartbeat, 1),
		consumers:       map[lease.Key]ownedConsumer{},
		pool:            make(chan lease.Write),
	}, nil
}

func (c *coordinator) streamIDs() []string {
	ids := make([]string, len(c.conf.streams))
	for i, s := range c.conf.streams {
		ids[i] = s.id
	}
	return ids
}

// beat writes the next heartbeat, within a heartbeat period, and returns when it was sent.
func (c *coordinator) beat(ctx context.Context) (time.Duration, error) {
	sent := mono()
	ctx, cancel := context.WithTimeout(ctx, c.heartbeatPeriod)
	defer cancel()
	c.counter++
	return sent, c.beats.Heartbeat(ctx, c.counter, c.streamIDs())
}

// reportBeat hands a heartbeat's result to the loop without ever waiting: if the loop has not
// taken the previous one yet, the better of the two stays (a success over a failure, then the
// later send).
func (c *coordinator) reportBeat(hb lease.Heartbeat) {
	for {
		select {
		case c.beaten <- hb:
			return
		default:
		}
		select {
		case old := <-c.beaten:
			if old.Err == nil && (hb.Err != nil || old.Sent > hb.Sent) {
				hb = old
			}
		default:
		}
	}
}

// report hands an event to the loop, unless the loop has ended.
func (c *coordinator) report(ctx context.Context, ev lease.Event) {
	select {
	case c.events <- ev:
	case <-ctx.Done():
	}
}

// run is the loop. It returns once the machine has handed every shard back after ctx ended (or
// at once after a crash), with every goroutine it started stopped.
func (c *coordinator) run(ctx context.Context) {
	io, stopIO := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() {
		stopIO()
		wg.Wait()
	}()
	beatCtx, stopBeats := context.WithCancel(io)
	wg.Add(1)
	go func() {
		defer wg.Done()
		c.heartbeats(beatCtx)
	}()
	for range max(c.conf.maxWritesInFlight, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.writer(io)
		}()
	}
	c.step(io, &wg, lease.Heartbeat{Sent: c.firstBeat})

	timer := time.NewTimer(time.Until(monoBase.Add(c.machine.NextWake())))
	defer timer.Stop()
	stopping := ctx.Done()
	var giveUp <-chan time.Time
	for !c.done {
		var pool chan lease.Write
		var next lease.Write
		if len(c.queue) > 0 {
			pool, next = c.pool, c.queue[0]
		}
		select {
		case <-stopping:
			stopping = nil
			if c.crash.Load() {
				stopBeats()
				for _, oc := range c.consumers {
					oc.cons.stop()
				}
				return
			}
			// A bound on the whole shutdown: the drain (bounded by the machine) and the
			// release writes (each bounded by the write timeout, and retried a few times).
			t := time.NewTimer(c.conf.stealGracePeriod + 4*c.writeTimeout)
			defer t.Stop()
			giveUp = t.C
			c.step(io, &wg, lease.Shutdown{})
		case <-giveUp:
			c.log.Warnf("Shutdown: %d shard(s) not released in time; other instances take them once this one's heartbeat stops", len(c.consumers))
			c.done = true
		case hb := <-c.beaten:
			c.step(io, &wg, hb)
		case ev := <-c.events:
			if tr, ok := ev.(lease.TableRead); ok {
				c.noteHashRanges(tr)
			}
			c.step(io, &wg, ev)
		case <-timer.C:
			c.step(io, &wg, lease.Tick{})
		case pool <- next:
			c.queue = c.queue[1:]
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(max(time.Until(monoBase.Add(c.machine.NextWake())), time.Millisecond))
	}
	stopBeats()
	for _, oc := range c.consumers {
		oc.cons.stop()
	}
	wctx, cancel := context.WithTimeout(context.Background(), c.writeTimeout)
	defer cancel()
	if err := c.table.RemoveWorker(wctx); err != nil {
		c.log.Warnf("Removing this worker's heartbeat row: %v", err)
	}
}

// heartbeats writes the worker row every heartbeat period, on its own: nothing else the input
// does can delay it.
func (c *coordinator) heartbeats(ctx context.Context) {
	t := time.NewTicker(c.heartbeatPeriod)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		// The machine's read and commit join this wake-up (lease.Config.ReadSlack); if the loop
		// is busy it does them on its own schedule.
		select {
		case c.events <- lease.Tick{Beat: true}:
		default:
		}
		sent, err := c.beat(ctx)
		if err != nil && ctx.Err() == nil {
			c.log.Warnf("Heartbeat to dynamodb table %s failed: %v", c.table.Name(), err)
		}
		c.reportBeat(lease.Heartbeat{Sent: sent, Err: err})
	}
}

// step feeds one event to the machine and performs what it asks.
func (c *coordinator) step(io context.Context, wg *sync.WaitGroup, ev lease.Event) {
	intents := c.machine.Step(mono(), ev)
	for i := 0; i < len(intents); i++ {
		switch in := intents[i].(type) {
		case lease.ReadTable:
			wg.Add(1)
			go func() {
				defer wg.Done()
				c.report(io, c.readTable(io, in))
			}()
		case lease.Write:
			c.queue = append(c.queue, in)
		case lease.StartReading:
			c.startReading(io, wg, in)
		case lease.StopReading:
			c.stopReading(io, wg, in)
		case lease.CollectProgress:
			// Answered at once: its intents join this step's.
			intents = append(intents, c.machine.Step(mono(), c.progress())...)
		case lease.Committed:
			if oc, ok := c.consumers[in.Key]; ok && oc.gen == in.Gen {
				oc.cons.committed(in.Pos)
				c.metrics.checkpoints.Incr(1, in.Key.Stream, in.Key.Shard)
			}
		case lease.DeliverUntil:
			c.deps.gate.extend(monoBase.Add(in.At))
		case lease.Fence:
			c.deps.gate.set(false)
		case lease.Unfence:
			c.deps.gate.set(true)
		case lease.Change:
			c.logChange(in)
		case lease.Done:
			c.done = true
		}
	}
	// The gate mirrors the machine: a gate that shut itself on the clock while a heartbeat
	// that moved the deadline was on its way opens again (the machine never fenced).
	c.deps.gate.set(!c.machine.Fenced())
	c.setGauges()
}

// readTable reads the worker rows and the streams asked for, concurrently, each call bounded.
func (c *coordinator) readTable(ctx context.Context, in lease.ReadTable) lease.TableRead {
	ctx, cancel := context.WithTimeout(ctx, c.conf.leasePeriod)
	defer cancel()
	tr := lease.TableRead{Sent: mono()}
	list := map[string]bool{}
	for _, s := range in.List {
		list[s] = true
	}
	tr.Streams = make([]lease.StreamRead, len(in.Leases))
	var wg sync.WaitGroup
	wg.Add(1 + len(in.Leases))
	go func() {
		defer wg.Done()
		tr.Workers, tr.WorkersErr = c.table.Workers(ctx)
	}()
	for i, stream := range in.Leases {
		go func() {
			defer wg.Done()
			sr := lease.StreamRead{Stream: stream, Listing: list[stream]}
			if sr.Listing {
				sr.Listed, sr.ListErr = listedShards(ctx, c.kin, stream)
				if sr.ListErr != nil {
					tr.Streams[i] = sr
					return
				}
			}
			sr.Leases, sr.Err = c.table.Leases(ctx, stream)
			tr.Streams[i] = sr
		}()
	}
	wg.Wait()
	tr.Received = mono()
	return tr
}

// writer performs writes from the pool, one at a time, each within the write timeout.
func (c *coordinator) writer(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case w := <-c.pool:
			wctx, cancel := context.WithTimeout(ctx, c.writeTimeout)
			row, err := c.perform(wctx, w)
			cancel()
			c.report(ctx, lease.WriteDone{ID: w.ID, Row: row, Err: err})
		}
	}
}

// perform makes one write of the lease table.
func (c *coordinator) perform(ctx context.Context, w lease.Write) (checkpointer.Lease, error) {
	k := w.Key
	seq, sub := positionAttrs(w.Pos, w.HasPos)
	switch w.Op {
	case lease.OpClaim, lease.OpSteal, lease.OpRetake:
		return c.table.Claim(ctx, k.Stream, k.Shard, w.Observed)
	case lease.OpForce:
		return c.table.ForceHandoff(ctx, k.Stream, k.Shard, w.Owner, w.Epoch)
	case lease.OpRequest:
		return checkpointer.Lease{}, c.table.RequestHandoff(ctx, k.Stream, k.Shard, w.Owner, w.Epoch)
	case lease.OpHandOver:
		return checkpointer.Lease{}, c.table.HandOver(ctx, k.Stream, k.Shard, w.Epoch, w.Taker, seq, sub)
	case lease.OpFinish:
		return checkpointer.Lease{}, c.table.Finish(ctx, k.Stream, k.Shard, w.Epoch, seq, sub)
	case lease.OpRelease:
		return checkpointer.Lease{}, c.table.Release(ctx, k.Stream, k.Shard, w.Epoch, seq, sub)
	case lease.OpCheckpoint:
		return c.table.Checkpoint(ctx, k.Stream, k.Shard, w.Epoch, seq, sub)
	case lease.OpSetStart:
		return c.table.SetStart(ctx, k.Stream, k.Shard, w.Epoch, time.Now())
	case lease.OpRemoveWorker:
		return checkpointer.Lease{}, c.table.RemoveDeadWorker(ctx, w.Owner, w.Counter)
	}
	return checkpointer.Lease{}, fmt.Errorf("unknown lease write %v", w.Op)
}

// startReading starts (or, with Resume, restarts) the consumer of a shard.
func (c *coordinator) startReading(io context.Context, wg *sync.WaitGroup, in lease.StartReading) {
	oc, ok := c.consumers[in.Key]
	if !in.Resume || !ok {
		if ok {
			oc.cons.stop() // stopped already: this only waits for its goroutine
		}
		start := startPosition{}
		var resume ack.Position
		switch in.Start.Kind {
		case lease.StartAfter:
			start.afterSequence, resume = in.Start.After.SequenceNumber(), in.Start.After
			_, start.insideAggregate = in.Start.After.SubSequence()
		case lease.StartAtTimestamp:
			at := in.Start.At
			start.atTimestamp = &at
		case lease.StartLatest:
			start.latest = true
		}
		reader := newShardReader(c.kin, in.Key.Stream, in.Key.Shard, start, c.conf.pace)
		reader.limit = c.conf.pollLimit
		reader.pace.phase = c.idlePhase()
		reader.onThrottle = func() { c.metrics.throttles.Incr(1, in.Key.Stream, in.Key.Shard) }
		oc.cons = newShardConsumer(in.Key.Stream, in.Key.Shard, reader, resume, c.deps)
		oc.cons.hashRange = c.hashRanges[in.Key]
		c.log.With("stream", in.Key.Stream, "shard", in.Key.Shard, "epoch", in.Epoch).
			Debugf("Reading shard %s of %s from %s", in.Key.Shard, in.Key.Stream, describeStart(in.Start))
	}
	oc.gen = in.Gen
	c.consumers[in.Key] = oc
	before := oc.cons.reader.answers
	wg.Add(1)
	oc.cons.start(io, func(s *shardConsumer) {
		defer wg.Done()
		err := s.endErr()
		c.report(io, lease.ReadingEnded{
			Key: in.Key, Gen: in.Gen, ShardEnd: errors.Is(err, errShardEnded), Err: err,
			Progressed: s.reader.answers > before,
		})
	})
}

// noteHashRanges keeps the hash key ranges of the shards a table read listed.
func (c *coordinator) noteHashRanges(tr lease.TableRead) {
	for _, sr := range tr.Streams {
		if sr.ListErr != nil {
			continue
		}
		for _, sh := range sr.Listed {
			if len(sh.Parents) == 0 {
				// Only a shard born of a reshard can receive an aggregate made for another
				// layout: a producer with a stale map aims at the parent's range. The others
				// need no check (and no MD5 per user record).
				continue
			}
			r, err := parseHashRange(sh.StartingHashKey, sh.EndingHashKey)
			if err != nil {
				continue // no range: every user record is kept
			}
			if c.hashRanges == nil {
				c.hashRanges = map[lease.Key]hashRange{}
			}
			c.hashRanges[lease.Key{Stream: sr.Stream, Shard: sh.ID}] = r
		}
	}
}

// idleGroup is the most readers whose calls at the tip share a wake-up: enough that an idle
// input of up to that many shards wakes once a second, few enough that a worker of a thousand
// idle shards does not make a thousand calls, on as many connections, at one instant.
const idleGroup = 64

// idlePhase is the phase of the idle grid (see pacing.idleAt) for the next reader started: the
// readers take the ceil(readers/idleGroup) phases, spaced evenly, in turn.
func (c *coordinator) idlePhase() time.Duration {
	slots := len(c.consumers)/idleGroup + 1
	c.phaseSeq++
	return time.Duration(c.phaseSeq%slots) * c.conf.pace.idleWait / time.Duration(slots)
}

func describeStart(s lease.Start) string {
	switch s.Kind {
	case lease.StartAfter:
		return "after " + s.After.String()
	case lease.StartAtTimestamp:
		return "the first record at or after " + s.At.UTC().Format(time.RFC3339Nano)
	case lease.StartLatest:
		return "the tip"
	}
	return "the oldest record"
}

// stopReading stops a consumer at once (no batch is delivered after this returns) and, in the
// background, waits for its goroutine and drains or drops it.
func (c *coordinator) stopReading(io context.Context, wg *sync.WaitGroup, in lease.StopReading) {
	oc, ok := c.consumers[in.Key]
	if !ok || oc.gen != in.Gen {
		if in.Drain {
			c.report(io, lease.Drained{Key: in.Key, Gen: in.Gen, AllAcked: true})
		}
		return
	}
	cons := oc.cons
	// A consumer that read its shard to the end delivers nothing more: its last batches, on
	// their way to ReadBatch or waiting to be replayed, must still reach the pipeline, so it
	// is drained without being stopped (stopping abandons them, and the shard could not be
	// finished).
	settleOnly := in.Drain && !in.Drop && cons.ended()
	if !settleOnly {
		cons.cancel()
	}
	if in.Drop {
		delete(c.consumers, in.Key)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		if !settleOnly {
			cons.stop()
		}
		if in.Drop {
			cons.lost()
			return
		}
		if !in.Drain {
			return
		}
		dctx, cancel := io, context.CancelFunc(func() {})
		if in.Timeout > 0 {
			dctx, cancel = context.WithTimeout(io, in.Timeout)
		}
		pos, has, err := cons.drain(dctx)
		cancel()
		if io.Err() != nil {
			return
		}
		c.report(io, lease.Drained{Key: in.Key, Gen: in.Gen, Pos: pos, HasPos: has, AllAcked: cons.allAcked(), TimedOut: err != nil})
	}()
}

// progress is every consumer's committable checkpoint.
func (c *coordinator) progress() lease.Progress {
	var p lease.Progress
	for k, oc := range c.consumers {
		if pos, ok := oc.cons.committable(); ok {
			p.Positions = append(p.Positions, lease.ShardPosition{Key: k, Gen: oc.gen, Pos: pos})
		}
	}
	return p
}

// positionAttrs turns a tracker position into the row's attributes; no position writes none (the
// row keeps its checkpoint).
func positionAttrs(pos ack.Position, ok bool) (string, *uint64) {
	if !ok || pos.IsZero() {
		return "", nil
	}
	if sub, has := pos.SubSequence(); has {
		return pos.SequenceNumber(), &sub
	}
	return pos.SequenceNumber(), nil
}

// logChange logs one lease change once, with structured keys (the fault suite's verifier reads
// "event"), and counts it.
func (c *coordinator) logChange(ch lease.Change) {
	log := c.log.With("event", string(ch.Event))
	if ch.Key.Stream != "" {
		log = log.With("stream", ch.Key.Stream)
	}
	if ch.Key.Shard != "" {
		log = log.With("shard", ch.Key.Shard)
	}
	if ch.From != "" {
		log = log.With("from", ch.From)
	}
	if ch.To != "" {
		log = log.With("to", ch.To)
	}
	if ch.Epoch != 0 {
		log = log.With("epoch", ch.Epoch)
	}
	if ch.Reason != "" {
		log = log.With("reason", ch.Reason)
	}
	what := fmt.Sprintf("Lease %s: shard %s of %s", ch.Event, ch.Key.Shard, ch.Key.Stream)
	switch ch.Event {
	case lease.Fenced:
		log.Errorf("Delivery paused: %s", ch.Reason)
	case lease.Unfenced:
		log.Infof("Delivery resumed: %s", ch.Reason)
	case lease.StreamFailed:
		log.Warnf("Reading stream %s: %s", ch.Key.Stream, ch.Reason)
	case lease.ReadFailed:
		log.Warnf("Reading shard %s of %s: %s", ch.Key.Shard, ch.Key.Stream, ch.Reason)
	case lease.Lost, lease.Forced:
		log.Warnf("%s (%s)", what, ch.Reason)
	default:
		log.Infof("%s", what)
	}
	switch ch.Event {
	case lease.Claimed, lease.Stolen, lease.Forced:
		c.metrics.takes.Incr(1, ch.Key.Stream)
	case lease.HandedOver:
		c.metrics.handoffs.Incr(1, ch.Key.Stream)
	case lease.Lost:
		c.metrics.lost.Incr(1, ch.Key.Stream)
	}
}

func (c *coordinator) setGauges() {
	owned := c.machine.Owned()
	var total int64
	for _, s := range c.conf.streams {
		n := int64(owned[s.id])
		total += n
		c.metrics.ownedShards.Set(n, s.id)
	}
	if c.ownedCount != nil {
		c.ownedCount.Store(total)
	}
}

// listedShards is every shard of the stream as the lease machine takes it:
// ids and parents.
func listedShards(ctx context.Context, kin kinesisAPI, stream string) ([]lease.ListedShard, error) {
	shards, err := kinesisapi.ListShards(ctx, kin, kinesisapi.Stream(stream), 0)
	if err != nil {
		return nil, err
	}
	listed := make([]lease.ListedShard, len(shards))
	for i, sh := range shards {
		listed[i].ID = aws.ToString(sh.ShardId)
		if r := sh.HashKeyRange; r != nil {
			listed[i].StartingHashKey, listed[i].EndingHashKey = aws.ToString(r.StartingHashKey), aws.ToString(r.EndingHashKey)
		}
		for _, p := range []*string{sh.ParentShardId, sh.AdjacentParentShardId} {
			if id := aws.ToString(p); id != "" {
				listed[i].Parents = append(listed[i].Parents, id)
			}
		}
	}
	return listed, nil
}
