package input

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/benthos-kinesis/benthos-kinesis/checkpointer"
	"github.com/benthos-kinesis/benthos-kinesis/checkpointer/ack"
	"github.com/benthos-kinesis/benthos-kinesis/checkpointer/balance"
)

type shardKey struct{ stream, shard string }

// ownedShard is a shard this worker holds at epoch, and its consumer.
type ownedShard struct {
	key      shardKey
	epoch    int64
	cons     *shardConsumer
	handover bool // a hand-off or the shard's end is being settled
}

// observation is what one worker knows of another's heartbeat: the last
// counter it saw and when, on its own monotonic clock, it first saw it.
type observation struct {
	counter int64
	since   time.Time // when counter last changed
	first   time.Time // when this worker first saw the row
}

// event is what goroutines of the coordinator report to its loop.
type event struct {
	ended    *shardConsumer // a consumer's run returned
	settled  shardKey       // a hand-off or finish was written (or failed)
	err      error
	finished bool
}

// coordinator runs the lease protocol of docs/LEASES.md for one input: it
// heartbeats, judges the liveness of the others, plans with the balancer,
// makes the conditional writes, and starts and stops a consumer per owned
// shard. One goroutine (loop) owns all of its state; the goroutines it
// starts report back through events.
type coordinator struct {
	conf     inputConfig
	log      *service.Logger
	metrics  *inputMetrics
	kin      kinesisAPI
	table    *checkpointer.Table
	workerID string
	deps     *consumerDeps
	now      func() time.Time

	heartbeatPeriod time.Duration
	counter         int64
	lastBeat        time.Time   // when the last successful heartbeat was sent
	fenceTimer      *time.Timer // fires lease_period - heartbeat period after lastBeat
	fenced          atomic.Bool

	owned     map[shardKey]*ownedShard
	seen      map[string]*observation // workers by id
	missing   map[string]time.Time    // owners without a worker row: first seen missing
	requested map[shardKey]time.Time  // hand-offs this worker asked for
	listed    map[string][]types.Shard
	listedAt  time.Time
	relist    bool
	lastPlan  time.Time

	events chan event
	rng    *rand.Rand

	// crash, when set before ctx ends, makes run return without releasing
	// anything: what kill -9 leaves behind (tests only).
	crash atomic.Bool
	// ownedCount mirrors len(owned) for readers outside the loop.
	ownedCount *atomic.Int64
}

func newCoordinator(conf inputConfig, res *service.Resources, metrics *inputMetrics, kin kinesisAPI, table *checkpointer.Table, deps *consumerDeps) *coordinator {
	c := &coordinator{
		conf: conf, log: res.Logger(), metrics: metrics, kin: kin, table: table, workerID: table.WorkerID(), deps: deps,
		now:             time.Now,
		heartbeatPeriod: conf.leasePeriod / 3,
		owned:           map[shardKey]*ownedShard{},
		seen:            map[string]*observation{},
		missing:         map[string]time.Time{},
		requested:       map[shardKey]time.Time{},
		listed:          map[string][]types.Shard{},
		events:          make(chan event, 64),
		rng:             rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
	}
	deps.gate.onFence = c.fence
	return c
}

func (c *coordinator) streamIDs() []string {
	ids := make([]string, len(c.conf.streams))
	for i, s := range c.conf.streams {
		ids[i] = s.id
	}
	return ids
}

// beat writes the next heartbeat and records when it was sent if it
// succeeded: self-fencing counts from the send, the conservative end.
func (c *coordinator) beat(ctx context.Context) error {
	sent := c.now()
	if !c.deps.gate.live() {
		// The fence is due and its timer has not fired (the process was
		// paused): fence first, so that the cycle re-reads the table and
		// re-takes the leases before anything is delivered again.
		c.fence()
	}
	ctx, cancel := context.WithTimeout(ctx, c.heartbeatPeriod)
	defer cancel()
	c.counter++
	if err := c.table.Heartbeat(ctx, c.counter, c.streamIDs()); err != nil {
		return err
	}
	c.lastBeat = sent
	// Stop delivering before anyone can judge this worker dead: observers
	// wait a full lease period without a change from when they saw this
	// beat (after it was sent); this worker waits a heartbeat period less,
	// on a timer so that a slow or hanging call cannot delay it.
	c.deps.gate.extend(sent.Add(c.conf.leasePeriod - c.heartbeatPeriod))
	fenceIn := c.conf.leasePeriod - c.heartbeatPeriod - c.now().Sub(sent)
	if c.fenceTimer == nil {
		c.fenceTimer = time.AfterFunc(fenceIn, c.fence)
	} else {
		c.fenceTimer.Reset(fenceIn)
	}
	return nil
}

// fence pauses all delivery: no heartbeat has succeeded for long enough
// that other workers may soon take this one's shards.
func (c *coordinator) fence() {
	if c.fenced.CompareAndSwap(false, true) {
		c.deps.gate.set(false)
		c.log.Errorf("No heartbeat reached dynamodb table %s for %v: delivery paused until one does",
			c.table.Name(), c.conf.leasePeriod-c.heartbeatPeriod)
	}
}

// run is the loop: a cycle every heartbeat period, checkpoints every commit
// period, and the events of consumers and hand-offs in between. On return
// every shard has been released.
func (c *coordinator) run(ctx context.Context) {
	beat := time.NewTicker(c.heartbeatPeriod)
	defer beat.Stop()
	commit := time.NewTicker(c.conf.commitPeriod)
	defer commit.Stop()
	c.cycle(ctx)
	for {
		select {
		case <-ctx.Done():
			if c.fenceTimer != nil {
				c.fenceTimer.Stop()
			}
			if c.crash.Load() {
				for _, o := range c.owned {
					o.cons.stop()
				}
				return
			}
			c.shutdown()
			return
		case <-beat.C:
			c.cycle(ctx)
		case <-commit.C:
			c.commit(ctx)
		case ev := <-c.events:
			c.handle(ctx, ev)
		}
	}
}

// cycle heartbeats, checks the fence, reads the table and acts on it.
func (c *coordinator) cycle(ctx context.Context) {
	if err := c.beat(ctx); err != nil && ctx.Err() == nil {
		c.log.Warnf("Heartbeat to dynamodb table %s failed: %v", c.table.Name(), err)
	}
	if err := c.observe(ctx); err != nil {
		if ctx.Err() == nil {
			c.log.Warnf("Reading the workers of dynamodb table %s: %v", c.table.Name(), err)
		}
		return
	}
	leases, err := c.readLeases(ctx)
	if err != nil {
		if ctx.Err() == nil {
			c.log.Warnf("Reading the leases of dynamodb table %s: %v", c.table.Name(), err)
		}
		return
	}
	c.reconcile(ctx, leases)
	if c.fenced.Load() && c.now().Sub(c.lastBeat) < c.conf.leasePeriod-c.heartbeatPeriod {
		// The heartbeat went through again and the leases are re-read. But
		// another worker may have judged this one dead just before, and be
		// about to steal at the epoch it read: re-take every lease (epoch
		// + 1) before delivering again, so that such a steal fails.
		if !c.retake(ctx, leases) {
			return
		}
		c.fenced.Store(false)
		c.deps.gate.set(true)
		c.log.Infof("Heartbeats reach dynamodb table %s again: delivery resumed", c.table.Name())
	}
	if !c.fenced.Load() {
		c.plan(ctx, leases)
	}
	c.forceOverdue(ctx, leases)
	c.setGauges()
}

// observe reads the worker rows and updates the liveness observations.
func (c *coordinator) observe(ctx context.Context) error {
	rows, err := c.table.Workers(ctx)
	if err != nil {
		return err
	}
	now := c.now()
	present := map[string]bool{}
	for _, w := range rows {
		present[w.ID] = true
		o, ok := c.seen[w.ID]
		switch {
		case !ok:
			c.seen[w.ID] = &observation{counter: w.Heartbeat, since: now, first: now}
		case o.counter != w.Heartbeat:
			o.counter, o.since = w.Heartbeat, now
		}
		delete(c.missing, w.ID)
	}
	for id, o := range c.seen {
		switch {
		case !present[id]:
			if id != c.workerID && now.Sub(o.since) >= c.conf.leasePeriod {
				// Judged dead already, and its row removed by an
				// observer: it stays dead, rather than get the grace
				// period of an owner never seen.
				c.missing[id] = now.Add(-c.conf.leasePeriod)
			}
			delete(c.seen, id)
		case id != c.workerID && now.Sub(o.since) >= 2*c.conf.leasePeriod:
			// Dead for a lease period past what anyone needs to count it
			// out: remove its row, so that a worker started later does
			// not have to watch it for a lease period first.
			if err := c.table.RemoveDeadWorker(ctx, id, o.counter); err != nil && ctx.Err() == nil {
				c.log.Warnf("Removing the row of dead worker %s: %v", id, err)
			}
		}
	}
	return nil
}

// liveness says whether a worker is alive, dead, or still in its grace
// period (an owner without a worker row this worker has not watched for a
// lease period yet).
func (c *coordinator) liveness(id string, now time.Time) (alive, grace bool) {
	if id == c.workerID {
		return true, false
	}
	if o, ok := c.seen[id]; ok {
		return now.Sub(o.since) < c.conf.leasePeriod, false
	}
	first, ok := c.missing[id]
	if !ok {
		c.missing[id] = now
		return false, true
	}
	return false, now.Sub(first) < c.conf.leasePeriod
}

// readLeases lists the shards of every stream (cached for a rebalance
// period, or until a shard ended) and reads their rows.
func (c *coordinator) readLeases(ctx context.Context) (map[shardKey]checkpointer.Lease, error) {
	if c.relist || c.now().Sub(c.listedAt) >= c.conf.rebalancePeriod || len(c.listed) == 0 {
		for _, s := range c.conf.streams {
			shards, err := listShards(ctx, c.kin, s.id)
			if err != nil {
				return nil, err
			}
			c.listed[s.id] = shards
		}
		c.listedAt, c.relist = c.now(), false
	}
	leases := map[shardKey]checkpointer.Lease{}
	for _, s := range c.conf.streams {
		rows, err := c.table.Leases(ctx, s.id)
		if err != nil {
			return nil, err
		}
		for _, l := range rows {
			leases[shardKey{s.id, l.Shard}] = l
		}
	}
	return leases, nil
}

// listShards lists every shard of a stream, open and closed, every page.
func listShards(ctx context.Context, kin kinesisAPI, stream string) ([]types.Shard, error) {
	in := &kinesis.ListShardsInput{}
	if isARN(stream) {
		in.StreamARN = aws.String(stream)
	} else {
		in.StreamName = aws.String(stream)
	}
	var shards []types.Shard
	for {
		out, err := kin.ListShards(ctx, in)
		if err != nil {
			var nf *types.ResourceNotFoundException
			if errors.As(err, &nf) {
				return nil, fmt.Errorf("stream %s does not exist: %w", stream, err)
			}
			return nil, fmt.Errorf("list shards of %s: %w", stream, err)
		}
		shards = append(shards, out.Shards...)
		if out.NextToken == nil || *out.NextToken == "" {
			return shards, nil
		}
		in = &kinesis.ListShardsInput{NextToken: out.NextToken}
	}
}

// reconcile makes the running consumers match the table: a shard whose row
// no longer names this worker at its epoch is lost; a row that names this
// worker without a consumer (a hand-over to it, or a claim whose answer was
// lost) is adopted; a hand-off request starts a hand-over.
func (c *coordinator) reconcile(ctx context.Context, leases map[shardKey]checkpointer.Lease) {
	for key, o := range c.owned {
		l, ok := leases[key]
		if !ok || l.ClientID != c.workerID || l.Epoch != o.epoch {
			if !o.handover {
				c.lose(o, fmt.Sprintf("its row now says owner %q epoch %d", l.ClientID, l.Epoch))
			}
			continue
		}
		if l.HandoffTo != "" && l.HandoffTo != c.workerID && !o.handover {
			if alive, _ := c.liveness(l.HandoffTo, c.now()); !alive {
				continue // asked by a worker that has since died: keep reading
			}
			c.handOver(ctx, o, l.HandoffTo)
		}
	}
	for key, l := range leases {
		if l.ClientID != c.workerID || l.Finished || !l.HasEpoch {
			continue
		}
		if _, ok := c.owned[key]; ok {
			continue
		}
		if _, asked := c.requested[key]; asked {
			c.log.Infof("Shard %s of %s handed over to this worker at epoch %d", key.shard, key.stream, l.Epoch)
			c.metrics.handoffs.Incr(1, key.stream)
		}
		delete(c.requested, key)
		c.adopt(ctx, key, l)
	}
}

// retake bumps the epoch of every lease this worker still holds, with a
// write conditional on its own row; a lease it cannot re-take is lost. It
// returns false when the table could not be reached (stay fenced).
func (c *coordinator) retake(ctx context.Context, leases map[shardKey]checkpointer.Lease) bool {
	for key, o := range c.owned {
		if o.handover {
			continue
		}
		observed := leases[key]
		l, err := c.table.Claim(ctx, key.stream, key.shard, observed)
		switch {
		case err == nil:
			o.epoch = l.Epoch
		case errors.Is(err, checkpointer.ErrClaimConflict):
			c.lose(o, "it was taken while this worker could not heartbeat")
		default:
			if ctx.Err() == nil {
				c.log.Warnf("Re-taking shard %s of %s after a fence: %v", key.shard, key.stream, err)
			}
			return false
		}
	}
	return true
}

// plan asks the balancer what to take and takes it.
func (c *coordinator) plan(ctx context.Context, leases map[shardKey]checkpointer.Lease) {
	now := c.now()
	// Free shards and dead workers' shards are taken up to the fair share at
	// once (a survivor must not take minutes to pick up a dead worker's
	// hundreds of shards); max_moves_per_rebalance bounds only the hand-off
	// requests to live workers, the moves that disturb them.
	snap := balance.Snapshot{Self: c.workerID, MaxMoves: 1 << 20, Seed: c.rng.Uint64()}
	owners := map[string]bool{}
	for _, s := range c.conf.streams {
		explicit := map[string]bool{}
		for _, id := range s.shards {
			explicit[id] = true
		}
		for _, sh := range c.listed[s.id] {
			id := aws.ToString(sh.ShardId)
			if len(explicit) > 0 && !explicit[id] {
				continue
			}
			l := leases[shardKey{s.id, id}]
			b := balance.Shard{Stream: s.id, ID: id, Owner: l.ClientID, Epoch: l.Epoch, Finished: l.Finished, HandoffTo: l.HandoffTo}
			if p := aws.ToString(sh.ParentShardId); p != "" {
				b.Parents = append(b.Parents, p)
			}
			if p := aws.ToString(sh.AdjacentParentShardId); p != "" {
				b.Parents = append(b.Parents, p)
			}
			snap.Shards = append(snap.Shards, b)
			if l.ClientID != "" {
				owners[l.ClientID] = true
			}
		}
	}
	for id := range c.seen {
		owners[id] = true
	}
	for id := range c.missing {
		if !owners[id] {
			delete(c.missing, id) // owns nothing any more
		}
	}
	for id := range owners {
		switch alive, grace := c.liveness(id, now); {
		case alive:
			snap.Workers = append(snap.Workers, id)
			if o := c.seen[id]; o != nil && now.Sub(o.first) < c.conf.leasePeriod {
				snap.Young = append(snap.Young, id)
			}
		case grace:
			snap.Grace = append(snap.Grace, id)
		}
	}
	rebalance := now.Sub(c.lastPlan) >= c.conf.rebalancePeriod
	requests := 0
	for _, a := range balance.Plan(snap) {
		key := shardKey{a.Stream, a.Shard}
		switch a.Kind {
		case balance.Claim, balance.Steal:
			observed := leases[key]
			observed.Stream, observed.Shard = a.Stream, a.Shard
			l, err := c.table.Claim(ctx, a.Stream, a.Shard, observed)
			if err != nil {
				if !errors.Is(err, checkpointer.ErrClaimConflict) && ctx.Err() == nil {
					c.log.Warnf("Claiming shard %s of %s: %v", a.Shard, a.Stream, err)
				}
				continue
			}
			if a.Kind == balance.Steal {
				c.log.Infof("Took shard %s of %s from %s, whose heartbeat stopped", a.Shard, a.Stream, a.From)
			} else {
				c.log.Debugf("Claimed shard %s of %s", a.Shard, a.Stream)
			}
			c.metrics.takes.Incr(1, a.Stream)
			c.adopt(ctx, key, l)
		case balance.RequestHandoff:
			if !rebalance || requests >= c.conf.maxMoves {
				continue
			}
			requests++
			if err := c.table.RequestHandoff(ctx, a.Stream, a.Shard, a.From, a.Epoch); err != nil {
				if !errors.Is(err, checkpointer.ErrClaimConflict) && ctx.Err() == nil {
					c.log.Warnf("Asking %s for shard %s of %s: %v", a.From, a.Shard, a.Stream, err)
				}
				continue
			}
			c.log.Infof("Asked %s to hand over shard %s of %s", a.From, a.Shard, a.Stream)
			c.requested[key] = now
		}
	}
	if rebalance {
		c.lastPlan = now
	}
	c.setGauges()
}

// forceOverdue takes the shards whose owner did not hand them over within
// steal_grace_period of this worker's asking.
func (c *coordinator) forceOverdue(ctx context.Context, leases map[shardKey]checkpointer.Lease) {
	now := c.now()
	for key, at := range c.requested {
		l := leases[key]
		if l.HandoffTo != c.workerID || l.ClientID == "" || l.ClientID == c.workerID {
			delete(c.requested, key) // superseded: someone else asked, or it moved
			continue
		}
		if now.Sub(at) < c.conf.handoffTimeout {
			continue
		}
		got, err := c.table.ForceHandoff(ctx, key.stream, key.shard, l.ClientID, l.Epoch)
		delete(c.requested, key)
		if err != nil {
			if !errors.Is(err, checkpointer.ErrClaimConflict) && ctx.Err() == nil {
				c.log.Warnf("Forcing the hand-off of shard %s of %s: %v", key.shard, key.stream, err)
			}
			continue
		}
		c.log.Warnf("Shard %s of %s taken from %s, which did not hand it over within %v (records it delivered and did not checkpoint are read again)",
			key.shard, key.stream, l.ClientID, c.conf.handoffTimeout)
		c.metrics.takes.Incr(1, key.stream)
		c.adopt(ctx, key, got)
	}
}

// adopt starts reading a shard this worker now owns at l.Epoch, after the
// row's checkpoint.
func (c *coordinator) adopt(ctx context.Context, key shardKey, l checkpointer.Lease) {
	start := startPosition{latest: !c.conf.startFromOldest, atTimestamp: c.conf.startTimestamp}
	switch {
	case l.SequenceNumber != "":
	case c.isChild(key):
		start = startPosition{} // children from their oldest record, whatever the config says
	case !l.StartAt.IsZero():
		start = startPosition{atTimestamp: &l.StartAt} // where the first owner started
	case start.latest && start.atTimestamp == nil:
		// The tip moves: record where this first owner starts, so that a
		// later owner (before any checkpoint) starts there too rather than
		// at a later tip, skipping what came between.
		got, err := c.table.SetStart(ctx, key.stream, key.shard, l.Epoch, c.now())
		if err != nil {
			if ctx.Err() == nil {
				c.log.Warnf("Recording the start of shard %s of %s: %v", key.shard, key.stream, err)
			}
			return // not read: a lost lease, or the next cycle adopts it again
		}
		l = got
		if l.SequenceNumber == "" {
			start = startPosition{atTimestamp: &l.StartAt}
		}
	}
	var resume ack.Position
	if l.SequenceNumber != "" {
		start = startPosition{afterSequence: l.SequenceNumber}
		if p, err := ack.ParseSequenceNumber(l.SequenceNumber); err == nil {
			resume = p
		}
	}
	reader := newShardReader(c.kin, key.stream, key.shard, start, c.conf.pace)
	reader.limit = c.conf.pollLimit
	reader.onThrottle = func() { c.metrics.throttles.Incr(1, key.stream, key.shard) }
	o := &ownedShard{key: key, epoch: l.Epoch, cons: newShardConsumer(key.stream, key.shard, reader, resume, c.deps)}
	c.owned[key] = o
	o.cons.start(ctx, c.consumerEnded(ctx))
	c.log.Infof("Reading shard %s of %s (epoch %d, after %q)", key.shard, key.stream, l.Epoch, l.SequenceNumber)
}

// isChild says whether a shard has a parent still listed by the stream: it
// was born of a split or merge that the stream still remembers.
func (c *coordinator) isChild(key shardKey) bool {
	listed := map[string]bool{}
	var parents []string
	for _, sh := range c.listed[key.stream] {
		id := aws.ToString(sh.ShardId)
		listed[id] = true
		if id == key.shard {
			parents = []string{aws.ToString(sh.ParentShardId), aws.ToString(sh.AdjacentParentShardId)}
		}
	}
	for _, p := range parents {
		if p != "" && listed[p] {
			return true
		}
	}
	return false
}

func (c *coordinator) consumerEnded(ctx context.Context) func(*shardConsumer) {
	return func(s *shardConsumer) {
		select {
		case c.events <- event{ended: s}:
		case <-ctx.Done():
		}
	}
}

// lose stops a shard that is no longer this worker's: nothing it delivered
// and did not checkpoint will ever be checkpointed by it.
func (c *coordinator) lose(o *ownedShard, why string) {
	o.cons.stop()
	o.cons.lost()
	delete(c.owned, o.key)
	c.metrics.lost.Incr(1, o.key.stream)
	c.log.Warnf("Lost shard %s of %s: %s", o.key.shard, o.key.stream, why)
}

// handOver stops reading a shard another worker asked for, waits for its
// acknowledgements (bounded by steal_grace_period) and writes the final
// checkpoint with the new owner, in a goroutine that reports back.
func (c *coordinator) handOver(ctx context.Context, o *ownedShard, taker string) {
	o.handover = true
	o.cons.stop()
	c.log.Infof("Handing shard %s of %s over to %s", o.key.shard, o.key.stream, taker)
	go func() {
		dctx, cancel := context.WithTimeout(ctx, c.conf.handoffTimeout)
		defer cancel()
		pos, ok, err := o.cons.drain(dctx)
		if err == nil {
			seq, sub := positionAttrs(pos, ok)
			err = c.table.HandOver(ctx, o.key.stream, o.key.shard, o.epoch, taker, seq, sub)
		}
		select {
		case c.events <- event{settled: o.key, err: err}:
		case <-ctx.Done():
		}
	}()
}

// positionAttrs turns a tracker position into the row's attributes; no
// position writes none (the row keeps its checkpoint).
func positionAttrs(pos ack.Position, ok bool) (string, *uint64) {
	if !ok || pos.IsZero() {
		return "", nil
	}
	if sub, has := pos.SubSequence(); has {
		return pos.SequenceNumber(), &sub
	}
	return pos.SequenceNumber(), nil
}

// handle acts on what a consumer or a hand-over reports.
func (c *coordinator) handle(ctx context.Context, ev event) {
	switch {
	case ev.ended != nil:
		o, ok := c.owned[shardKey{ev.ended.stream, ev.ended.shard}]
		if !ok || o.cons != ev.ended || o.handover {
			return // already stopped on purpose
		}
		if errors.Is(ev.err, errRestart) {
			o.cons.start(ctx, c.consumerEnded(ctx))
			return
		}
		switch err := ev.ended.endErr(); {
		case errors.Is(err, errShardEnded):
			c.finish(ctx, o)
		case ctx.Err() != nil:
		default:
			c.log.Errorf("Reading shard %s of %s: %v (retrying in %v)", o.key.shard, o.key.stream, err, c.conf.pace.throttleMax)
			go func() {
				// Restart after a pause, from where the reader was.
				if sleepCtx(ctx, c.conf.pace.throttleMax) == nil {
					select {
					case c.events <- event{ended: ev.ended, err: errRestart}:
					case <-ctx.Done():
					}
				}
			}()
		}
	default:
		o, ok := c.owned[ev.settled]
		if !ok {
			return
		}
		delete(c.owned, ev.settled)
		if ev.err != nil {
			o.cons.lost()
			c.log.Warnf("Hand-over or finish of shard %s of %s did not complete: %v", ev.settled.shard, ev.settled.stream, ev.err)
			return
		}
		if ev.finished {
			c.log.Infof("Shard %s of %s read to its end and finished", ev.settled.shard, ev.settled.stream)
			c.relist = true
			return
		}
		c.metrics.handoffs.Incr(1, ev.settled.stream)
		c.log.Infof("Handed shard %s of %s over", ev.settled.shard, ev.settled.stream)
	}
	c.setGauges()
}

var errRestart = errors.New("restart")

// finish waits for every acknowledgement of a shard read to its end, then
// marks it finished, so that its children can be read.
func (c *coordinator) finish(ctx context.Context, o *ownedShard) {
	o.handover = true
	go func() {
		pos, ok, err := o.cons.drain(ctx)
		if err == nil {
			seq, sub := positionAttrs(pos, ok)
			err = c.table.Finish(ctx, o.key.stream, o.key.shard, o.epoch, seq, sub)
		}
		select {
		case c.events <- event{settled: o.key, err: err, finished: true}:
		case <-ctx.Done():
		}
	}()
}

// commit writes the checkpoints that moved.
func (c *coordinator) commit(ctx context.Context) {
	for key, o := range c.owned {
		if o.handover {
			continue
		}
		pos, ok := o.cons.committable()
		if !ok {
			continue
		}
		seq, sub := positionAttrs(pos, true)
		l, err := c.table.Checkpoint(ctx, key.stream, key.shard, o.epoch, seq, sub)
		if err != nil {
			if errors.Is(err, checkpointer.ErrLeaseLost) {
				c.lose(o, "its checkpoint write was refused")
			} else if ctx.Err() == nil {
				c.log.Warnf("Checkpointing shard %s of %s: %v", key.shard, key.stream, err)
			}
			continue
		}
		o.cons.committed(pos)
		c.metrics.checkpoints.Incr(1, key.stream, key.shard)
		if l.HandoffTo != "" && l.HandoffTo != c.workerID {
			c.handOver(ctx, o, l.HandoffTo)
		}
	}
}

func (c *coordinator) setGauges() {
	if c.ownedCount != nil {
		c.ownedCount.Store(int64(len(c.owned)))
	}
	counts := map[string]int64{}
	for _, s := range c.conf.streams {
		counts[s.id] = 0
	}
	for key := range c.owned {
		counts[key.stream]++
	}
	for stream, n := range counts {
		c.metrics.ownedShards.Set(n, stream)
	}
}

// shutdown stops every consumer, waits (bounded) for the acknowledgements
// of what they delivered, writes the final checkpoints and releases the
// leases, so that the other workers take the shards at once.
func (c *coordinator) shutdown() {
	// The wait for acknowledgements is bounded by steal_grace_period, and
	// ends before this worker (no longer heartbeating) fences itself and
	// the others take its shards. The writes get their own deadline: a wait
	// that used up the bound must not leave every lease held and the
	// heartbeat row behind.
	bound := min(c.conf.handoffTimeout, c.conf.leasePeriod-c.heartbeatPeriod-c.now().Sub(c.lastBeat))
	wait, cancelWait := context.WithTimeout(context.Background(), max(bound, 0))
	defer cancelWait()
	write := func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.Background(), c.heartbeatPeriod)
	}
	for _, o := range c.owned {
		o.cons.stop()
	}
	// Shards being handed over or finished too: their goroutines stopped
	// with the loop's context and will write nothing more. Released here,
	// the next owner reads them after their checkpoint (if such a write did
	// go through, the release fails on its epoch: ErrLeaseLost).
	for key, o := range c.owned {
		pos, ok, err := o.cons.drain(wait)
		if err != nil {
			c.log.Warnf("Shard %s of %s: not every delivered batch was acknowledged before shutdown; they will be read again", key.shard, key.stream)
		}
		seq, sub := positionAttrs(pos, ok)
		ctx, cancel := write()
		err = c.table.Release(ctx, key.stream, key.shard, o.epoch, seq, sub)
		cancel()
		if err != nil && !errors.Is(err, checkpointer.ErrLeaseLost) {
			c.log.Warnf("Releasing shard %s of %s: %v", key.shard, key.stream, err)
		}
	}
	ctx, cancel := write()
	defer cancel()
	if err := c.table.RemoveWorker(ctx); err != nil {
		c.log.Warnf("Removing this worker's heartbeat row: %v", err)
	}
}
