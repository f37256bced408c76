package lease

import (
	"cmp"
	"container/heap"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/benthos-kinesis/benthos-kinesis/checkpointer"
	"github.com/benthos-kinesis/benthos-kinesis/checkpointer/ack"
)

// The simulated world of the deterministic simulation (sim_test.go) and of the scenario scripts
// (script_test.go). It drives the shipped Machine, one per simulated worker, the way
// plugin/input's coordinator does: it performs each intent against a fake world and feeds the
// results back. The fake world is what the machine does not contain: streams that reshard and
// age out, a lease table with the conditional writes of checkpointer (including their
// read-back of a failed condition), calls that take time, lose their request or their answer
// and time out, consumers that deliver records to a pipeline that acknowledges them later, and
// workers that crash, freeze and are cut off from the table, each with its own drifting clock.
//
// Time is a number of milliseconds. Everything runs on one goroutine from an event queue, so a
// seed replays exactly. The invariants are checked at every delivery and every write.

// simConfig holds the protocol's periods (milliseconds) and the fault rates.
type simConfig struct {
	lease      int64 // lease_period
	rebalance  int64 // rebalance_period
	commit     int64 // commit_period
	grace      int64 // steal_grace_period
	work       int64 // how often consumers deliver and acknowledgements come in
	ackMax     int64 // a delivered batch is acknowledged within [0, ackMax]
	latency    int64 // each leg of a table call takes [0, latency]
	dispatch   int64 // a write goes out within [0, dispatch] of the machine asking for it
	retention  int64 // a closed shard ages out of ListShards this long after it closed
	maxMoves   int
	limit      int64 // checkpoint_limit, in records
	rateMax    int64 // records per second per shard: [1, rateMax]
	restartMin int64 // consumer restart back-off
	// Fault rates, per call: lost before it is applied, applied but the answer lost, a table
	// read that fails; and per consumer work turn, a failing GetRecords.
	lossReq, lossAns, lossRead, readErr float64
	// ignoreGate: consumers deliver whatever the gate says (the teeth test).
	ignoreGate bool
}

func defaultConfig() simConfig {
	return simConfig{
		lease: 9000, rebalance: 3000, commit: 1000, grace: 6000, work: 500, ackMax: 2000,
		latency: 100, dispatch: 300, retention: 60000, maxMoves: 2, limit: 1 << 40, rateMax: 5,
		restartMin: 500,
	}
}

func (c simConfig) heartbeat() int64 { return c.lease / 3 }

func (c simConfig) machine(self string, streams []string, seed uint64) Config {
	ms := time.Millisecond
	cfg := Config{
		Self: self, LeasePeriod: time.Duration(c.lease) * ms, HeartbeatPeriod: time.Duration(c.heartbeat()) * ms,
		RebalancePeriod: time.Duration(c.rebalance) * ms, StealGracePeriod: time.Duration(c.grace) * ms,
		CommitPeriod: time.Duration(c.commit) * ms, MaxMoves: c.maxMoves, Seed: seed,
		RestartMin: time.Duration(c.restartMin) * ms, RestartMax: 20 * time.Duration(c.restartMin) * ms,
	}
	// As plugin/input's coordinator configures it: its heartbeat ticks the machine (Tick{Beat}),
	// and the read and the commit may go out with it.
	cfg.ReadSlack = cfg.HeartbeatPeriod / 2
	cfg.CommitSlack = min(cfg.HeartbeatPeriod, cfg.CommitPeriod/2)
	for _, s := range streams {
		cfg.Streams = append(cfg.Streams, Stream{ID: s})
	}
	return cfg
}

func ms(t int64) string { return fmt.Sprintf("%.1fs", float64(t)/1000) }

// --- streams ----------------------------------------------------------------------------------

type simShard struct {
	key      Key
	parents  []string
	created  int64
	closedAt int64 // -1: open
	agedAt   int64 // -1: never
	rate     int64 // records per second
}

// written is the number of records in the shard at t (records 1..written).
func (s *simShard) written(t int64) int64 {
	end := t
	if s.closedAt >= 0 && s.closedAt < end {
		end = s.closedAt
	}
	if end <= s.created {
		return 0
	}
	return (end - s.created) * s.rate / 1000
}

// --- the table ---------------------------------------------------------------------------------

// row is a shard row. hasEpoch false: no Epoch attribute (a row written by the built-in input).
type row struct {
	owner     string
	epoch     int64
	hasEpoch  bool
	finished  bool
	handoffTo string
	handoffE  int64
	ckpt      int64 // the checkpoint: records 1..ckpt are done
	early     bool  // released with batches still unacknowledged (checks only)
}

func (r *row) lease(k Key) checkpointer.Lease {
	if r == nil {
		return checkpointer.Lease{Stream: k.Stream, Shard: k.Shard}
	}
	l := checkpointer.Lease{
		Stream: k.Stream, Shard: k.Shard, Exists: true, ClientID: r.owner, Epoch: r.epoch, HasEpoch: r.hasEpoch,
		Finished: r.finished, HandoffTo: r.handoffTo, HandoffEpoch: r.handoffE,
	}
	if r.ckpt > 0 {
		l.SequenceNumber = strconv.FormatInt(r.ckpt, 10)
	}
	return l
}

// change records how a row got an epoch: the checks use it.
type change struct {
	kind   string // claim, steal, retake, hand-over, force
	at     int64
	from   string
	hiThen int64 // highest record delivered in the epoch this change ended
}

// --- the event queue ---------------------------------------------------------------------------

type simEvent struct {
	at  int64
	seq uint64
	k   *worker // nil: the world's own
	fn  func()
}

type eventQueue []*simEvent

func (q eventQueue) Len() int { return len(q) }
func (q eventQueue) Less(i, j int) bool {
	if q[i].at != q[j].at {
		return q[i].at < q[j].at
	}
	return q[i].seq < q[j].seq
}
func (q eventQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *eventQueue) Push(x any)   { *q = append(*q, x.(*simEvent)) }
func (q *eventQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}

// --- the world -------------------------------------------------------------------------------

type simStats struct {
	events, steps, deliveries, records, checks                   int
	writes, refused, timeouts, lostRequests, lostAnswers, lostRd int
	claims, steals, requests, handovers, forces, retakes         int
	finishes, lost, received, fences, releases, readFailures     int
	forcedOverlaps, splits, merges                               int
	crashes, pauses, longPauses, joins, cuts, stops              int
}

func (a *simStats) add(b simStats) {
	a.events += b.events
	a.steps += b.steps
	a.deliveries += b.deliveries
	a.records += b.records
	a.checks += b.checks
	a.writes += b.writes
	a.refused += b.refused
	a.timeouts += b.timeouts
	a.lostRequests += b.lostRequests
	a.lostAnswers += b.lostAnswers
	a.lostRd += b.lostRd
	a.claims += b.claims
	a.steals += b.steals
	a.requests += b.requests
	a.handovers += b.handovers
	a.forces += b.forces
	a.retakes += b.retakes
	a.finishes += b.finishes
	a.lost += b.lost
	a.received += b.received
	a.fences += b.fences
	a.releases += b.releases
	a.readFailures += b.readFailures
	a.forcedOverlaps += b.forcedOverlaps
	a.splits += b.splits
	a.merges += b.merges
	a.crashes += b.crashes
	a.pauses += b.pauses
	a.longPauses += b.longPauses
	a.joins += b.joins
	a.cuts += b.cuts
	a.stops += b.stops
}

type world struct {
	cfg     simConfig
	r       *rand.Rand
	now     int64
	seq     uint64
	queue   eventQueue
	streams []string
	shards  map[Key]*simShard
	order   []Key
	nextID  map[string]int
	rows    map[Key]*row
	hb      map[string]int64 // worker rows: id -> Heartbeat
	hbOrder []string
	failing map[string]int64 // streams whose ListShards fails until then (deleted, access denied)
	workers []*worker
	byID    map[string]*worker

	// checks
	changes    map[Key]map[int64]change
	hi         map[Key]int64 // highest record delivered in the current epoch
	maxDone    map[Key]int64 // highest record delivered by anyone: a delivery must not start past it
	violations []string
	stats      simStats
	log        []string
	logging    bool
}

func newWorld(cfg simConfig, seed uint64) *world {
	return &world{
		cfg: cfg, r: rand.New(rand.NewPCG(seed, 0x6b696e65)),
		shards: map[Key]*simShard{}, nextID: map[string]int{}, rows: map[Key]*row{}, hb: map[string]int64{},
		byID: map[string]*worker{}, failing: map[string]int64{}, changes: map[Key]map[int64]change{}, hi: map[Key]int64{}, maxDone: map[Key]int64{},
	}
}

func (w *world) logf(format string, args ...any) {
	if w.logging {
		w.log = append(w.log, fmt.Sprintf("%7s ", ms(w.now))+fmt.Sprintf(format, args...))
	}
}

func (w *world) violate(format string, args ...any) {
	v := fmt.Sprintf("t=%s: ", ms(w.now)) + fmt.Sprintf(format, args...)
	w.violations = append(w.violations, v)
	w.logf("VIOLATION %s", fmt.Sprintf(format, args...))
}

func (w *world) schedule(at int64, k *worker, fn func()) {
	w.seq++
	heap.Push(&w.queue, &simEvent{at: max(at, w.now), seq: w.seq, k: k, fn: fn})
}

// runUntil runs every event due up to t and leaves the world at t.
func (w *world) runUntil(t int64) {
	for len(w.queue) > 0 && w.queue[0].at <= t {
		e := heap.Pop(&w.queue).(*simEvent)
		w.now = e.at
		if k := e.k; k != nil {
			if k.crashed {
				continue
			}
			if w.now < k.pausedUntil {
				// A frozen process does nothing: its turn comes when it thaws, in an order
				// of chance (a heartbeat's answer may come before the timer that fences).
				w.schedule(k.pausedUntil+w.r.Int64N(100), k, e.fn)
				continue
			}
		}
		w.stats.events++
		e.fn()
	}
	w.now = max(w.now, t)
}

// --- streams ---

func (w *world) addStream(name string, n int) {
	if !slices.Contains(w.streams, name) {
		w.streams = append(w.streams, name)
	}
	for range n {
		w.newShard(name)
	}
}

func (w *world) newShard(stream string, parents ...string) *simShard {
	id := fmt.Sprintf("shardId-%012d", w.nextID[stream])
	w.nextID[stream]++
	sh := &simShard{key: Key{stream, id}, parents: parents, created: w.now, closedAt: -1, agedAt: -1, rate: 1 + w.r.Int64N(w.cfg.rateMax)}
	w.shards[sh.key] = sh
	w.order = append(w.order, sh.key)
	return sh
}

func (w *world) listed(sh *simShard) bool {
	return sh != nil && sh.created <= w.now && (sh.agedAt < 0 || w.now < sh.agedAt)
}

func (w *world) openShard(stream, id string) (*simShard, error) {
	sh := w.shards[Key{stream, id}]
	switch {
	case sh == nil || !w.listed(sh):
		return nil, fmt.Errorf("no shard %s/%s", stream, id)
	case sh.closedAt >= 0:
		return nil, fmt.Errorf("shard %s/%s is closed", stream, id)
	}
	return sh, nil
}

func (w *world) closeShard(sh *simShard) {
	sh.closedAt = w.now
	sh.agedAt = w.now + w.cfg.retention
}

func (w *world) split(stream, id string) error {
	sh, err := w.openShard(stream, id)
	if err != nil {
		return err
	}
	w.closeShard(sh)
	a, b := w.newShard(stream, id), w.newShard(stream, id)
	w.stats.splits++
	w.logf("split %s -> %s %s", sh.key, a.key.Shard, b.key.Shard)
	return nil
}

func (w *world) merge(stream, id1, id2 string) error {
	s1, err := w.openShard(stream, id1)
	if err != nil {
		return err
	}
	s2, err := w.openShard(stream, id2)
	if err != nil {
		return err
	}
	if id1 == id2 {
		return fmt.Errorf("merge of %s with itself", id1)
	}
	w.closeShard(s1)
	w.closeShard(s2)
	c := w.newShard(stream, id1, id2)
	w.stats.merges++
	w.logf("merge %s + %s -> %s", s1.key, id2, c.key.Shard)
	return nil
}

// readable is the truth: listed, not finished, every parent finished or aged out.
func (w *world) readable(sh *simShard) bool {
	if !w.listed(sh) {
		return false
	}
	if r := w.rows[sh.key]; r != nil && r.finished {
		return false
	}
	for _, p := range sh.parents {
		ps := w.shards[Key{sh.key.Stream, p}]
		if w.listed(ps) && (w.rows[ps.key] == nil || !w.rows[ps.key].finished) {
			return false
		}
	}
	return true
}

// builtinRow writes a row as the built-in input does: an owner without a heartbeat row, no epoch.
func (w *world) builtinRow(k Key, owner string, ckpt int64) {
	w.rows[k] = &row{owner: owner, ckpt: ckpt}
	w.hi[k] = ckpt
	w.maxDone[k] = ckpt
}

// --- the table's writes (checkpointer's, condition for condition) ---

var (
	errCondition = errors.New("the conditional check failed")
	errTimeout   = errors.New("context deadline exceeded")
)

// setOwner is the effect of claim, steal, retake, hand-over and force.
func (w *world) setOwner(k Key, owner string, epoch int64, kind, from string) {
	r := w.rows[k]
	if r == nil {
		r = &row{}
		w.rows[k] = r
	}
	w.stats.checks++
	if epoch <= r.epoch {
		w.violate("epoch of %s goes from %d to %d", k, r.epoch, epoch)
	}
	if kind == "claim" && r.early {
		kind = "claim after a release that did not wait for every acknowledgement"
	}
	r.owner, r.epoch, r.hasEpoch, r.handoffTo, r.handoffE, r.early = owner, epoch, true, "", 0, false
	if w.changes[k] == nil {
		w.changes[k] = map[int64]change{}
	}
	w.changes[k][epoch] = change{kind: kind, at: w.now, from: from, hiThen: w.hi[k]}
	w.hi[k] = r.ckpt
}

func (w *world) setCkpt(k Key, pos int64, has bool) {
	if !has {
		return
	}
	r := w.rows[k]
	w.stats.checks++
	if pos < r.ckpt {
		w.violate("checkpoint of %s goes back from %d to %d", k, r.ckpt, pos)
	}
	r.ckpt = pos
}

// apply performs one write on the table, as checkpointer.Table does: a failed condition reads
// the row back, and a row that already is what the write meant (an earlier attempt applied) is
// a success.
func (w *world) apply(me string, wr Write) (checkpointer.Lease, error) {
	k := wr.Key
	r := w.rows[k]
	var cur row
	if r != nil {
		cur = *r
	}
	pos, has := int64(0), wr.HasPos
	if has {
		n, err := strconv.ParseInt(wr.Pos.SequenceNumber(), 10, 64)
		if err != nil {
			panic(err)
		}
		pos = n
	}
	owned := r != nil && cur.owner == me && cur.epoch == wr.Epoch
	epochIs := func(e int64) bool { return cur.epoch == e } // absent counts as 0
	readBack := func(done bool) (checkpointer.Lease, error) {
		if done && r != nil {
			return r.lease(k), nil
		}
		return checkpointer.Lease{}, errCondition
	}
	switch wr.Op {
	case OpClaim, OpSteal, OpRetake:
		o := wr.Observed
		next := o.Epoch + 1
		var ok bool
		if !o.Exists {
			ok = r == nil
		} else {
			ok = r != nil && cur.owner == o.ClientID && cur.hasEpoch == o.HasEpoch && (!o.HasEpoch || cur.epoch == o.Epoch)
		}
		if !ok {
			return readBack(cur.owner == me && cur.hasEpoch && cur.epoch == next)
		}
		if cur.finished {
			w.violate("%s takes %s, which is finished", me, k)
		}
		w.setOwner(k, me, next, wr.Op.String(), o.ClientID)
	case OpForce:
		if r == nil || cur.owner != wr.Owner || !epochIs(wr.Epoch) || cur.handoffTo != me {
			return readBack(cur.owner == me && cur.epoch == wr.Epoch+1)
		}
		w.setOwner(k, me, wr.Epoch+1, "force", wr.Owner)
	case OpRequest:
		if r == nil || cur.owner != wr.Owner || !epochIs(wr.Epoch) || (cur.handoffTo != "" && cur.handoffTo != me) {
			return checkpointer.Lease{}, errCondition
		}
		r.handoffTo, r.handoffE = me, wr.Epoch
	case OpHandOver:
		if !owned || cur.handoffTo != wr.Taker {
			return readBack(cur.owner == wr.Taker && cur.epoch == wr.Epoch+1 && (!has || cur.ckpt == pos))
		}
		w.setCkpt(k, pos, has)
		// A hand-over after a drain that timed out gives the taker batches that were delivered
		// and never acknowledged: it may deliver them again (at-least-once), as after a force.
		kind := "hand-over"
		if c := w.byID[me].cons[k]; c != nil && c.pos > r.ckpt {
			kind = "hand-over after a timed-out drain"
		}
		w.setOwner(k, wr.Taker, wr.Epoch+1, kind, me)
	case OpFinish:
		if !owned {
			return readBack(cur.finished && cur.owner == "" && cur.epoch == wr.Epoch && (!has || cur.ckpt == pos))
		}
		w.setCkpt(k, pos, has)
		r.finished, r.owner, r.handoffTo, r.handoffE = true, "", "", 0
		w.stats.checks++
		if sh := w.shards[k]; sh.closedAt < 0 || r.ckpt != sh.written(sh.closedAt) {
			w.violate("%s finished at %d: closed %v, %d records", k, r.ckpt, sh.closedAt >= 0, sh.written(w.now))
		}
	case OpRelease:
		if !owned {
			return readBack(cur.owner == "" && !cur.finished && cur.epoch == wr.Epoch && (!has || cur.ckpt == pos))
		}
		w.setCkpt(k, pos, has)
		r.owner, r.handoffTo, r.handoffE = "", "", 0
		// A release after a drain that timed out (a bounded shutdown) leaves batches delivered
		// and never acknowledged: the next owner may deliver them again.
		if c := w.byID[me].cons[k]; c != nil && c.pos > r.ckpt {
			r.early = true
		}
	case OpCheckpoint:
		if !owned {
			return checkpointer.Lease{}, errCondition
		}
		w.setCkpt(k, pos, has)
	case OpSetStart:
		// The simulation reads every shard from its oldest record: nothing to record.
		if !owned {
			return checkpointer.Lease{}, errCondition
		}
	case OpRemoveWorker:
		if c, ok := w.hb[wr.Owner]; ok && c == wr.Counter {
			delete(w.hb, wr.Owner)
			w.hbOrder = slices.DeleteFunc(w.hbOrder, func(id string) bool { return id == wr.Owner })
		}
		return checkpointer.Lease{}, nil
	}
	return w.rows[k].lease(k), nil
}

// --- workers -----------------------------------------------------------------------------------

// simConsumer is one shard consumer of a worker: the shell's shardConsumer and the pipeline
// behind it.
type simConsumer struct {
	key       Key
	gen       uint64
	epoch     int64
	running   bool // its goroutine runs (reads and delivers)
	stopped   bool // stopped by the machine: delivers nothing more
	pos       int64
	acked     int64 // end of the acknowledged prefix
	committed int64
	batches   []simBatch
	draining  bool
	drainBy   int64 // world time the drain gives up; -1: no bound
	answers   int   // reads answered in this run
}

type simBatch struct{ upTo, ackAt int64 }

type worker struct {
	w           *world
	id          string
	drift       int64 // clock rate error, parts per million
	base        int64
	m           *Machine
	crashed     bool
	stopping    bool // shutting down gracefully
	pausedUntil int64
	cutUntil    int64
	counter     int64
	wakeTok     uint64
	gateOpen    bool
	until       int64 // fencing deadline on the worker's clock; hasUntil: set
	hasUntil    bool
	cons        map[Key]*simConsumer
	lose        map[string]int // injected faults: heartbeat, read, write, answer
}

func (w *world) addWorker(id string, drift int64) (*worker, error) {
	if w.byID[id] != nil {
		return nil, fmt.Errorf("worker %s exists", id)
	}
	k := &worker{w: w, id: id, drift: drift, base: w.r.Int64N(1 << 40), cons: map[Key]*simConsumer{}, lose: map[string]int{}}
	m, err := NewMachine(w.cfg.machine(id, w.streams, w.r.Uint64()), k.clock())
	if err != nil {
		return nil, err
	}
	k.m = m
	w.workers = append(w.workers, k)
	w.byID[id] = k
	w.stats.joins++
	w.logf("%s starts", id)
	// Connect: the first heartbeat, then the loop.
	k.heartbeat(func(sent time.Duration, err error) {
		if err != nil {
			k.logf("first heartbeat failed")
		}
		k.step(Heartbeat{Sent: sent, Err: err})
		k.scheduleHeartbeat()
		k.work()
	})
	return k, nil
}

func (k *worker) mono() int64 { return k.base + k.w.now + k.w.now*k.drift/1_000_000 }

func (k *worker) clock() time.Duration { return time.Duration(k.mono()) * time.Millisecond }

// after converts a duration on the worker's clock into the world time it ends at.
// Rounded up, so that a wake asked for later on the worker's clock is later in the world.
func (k *worker) after(d int64) int64 {
	return k.w.now + (d*1_000_000+1_000_000+k.drift-1)/(1_000_000+k.drift)
}

func (k *worker) logf(format string, args ...any) { k.w.logf(k.id+" "+format, args...) }

func (k *worker) running() bool { return !k.crashed && k.w.now >= k.pausedUntil }

// call is one table call: the request travels, is applied (unless lost), and the answer comes
// back (unless lost) within the call's timeout, a heartbeat period; else the caller gets a
// timeout. apply runs at the moment the request reaches the table.
func (k *worker) call(what string, apply func() error, answer func(err error)) {
	w := k.w
	lat := func() int64 { return w.r.Int64N(w.cfg.latency + 1) }
	timeout := w.cfg.heartbeat()
	sentAt := w.now
	lostReq, lostAns := w.now < k.cutUntil, false
	switch {
	case lostReq:
	case k.lose[what] > 0:
		k.lose[what]--
		lostReq = true
	case what != "heartbeat" && what != "read" && k.lose["write"] > 0:
		k.lose["write"]--
		lostReq = true
	case what != "heartbeat" && what != "read" && k.lose["answer"] > 0:
		k.lose["answer"]--
		lostAns = true
	default:
		loss := w.cfg.lossRead
		if what != "read" {
			loss = w.cfg.lossReq
		}
		x := w.r.Float64()
		switch {
		case x < loss:
			lostReq = true
		case what != "read" && x < loss+w.cfg.lossAns:
			lostAns = true
		}
	}
	if lostReq {
		w.stats.lostRequests++
		w.schedule(sentAt+timeout, k, func() { w.stats.timeouts++; answer(errTimeout) })
		return
	}
	appliedAt := sentAt + lat()
	w.schedule(appliedAt, nil, func() {
		err := apply()
		if lostAns {
			w.stats.lostAnswers++
			w.schedule(sentAt+timeout, k, func() { w.stats.timeouts++; answer(errTimeout) })
			return
		}
		w.schedule(w.now+lat(), k, func() { answer(err) })
	})
}

// heartbeat writes the worker row and reports when it was sent.
func (k *worker) heartbeat(done func(time.Duration, error)) {
	sent := k.clock()
	k.counter++
	counter := k.counter
	k.call("heartbeat", func() error {
		if _, ok := k.w.hb[k.id]; !ok {
			k.w.hbOrder = append(k.w.hbOrder, k.id)
		}
		k.w.hb[k.id] = counter
		return nil
	}, func(err error) { done(sent, err) })
}

func (k *worker) scheduleHeartbeat() {
	k.w.schedule(k.after(k.w.cfg.heartbeat()), k, func() {
		k.step(Tick{Beat: true}) // the shell's heartbeat ticks the machine before it beats
		k.heartbeat(func(sent time.Duration, err error) {
			if err != nil {
				k.logf("heartbeat lost")
			}
			k.step(Heartbeat{Sent: sent, Err: err})
		})
		k.scheduleHeartbeat()
	})
}

// step feeds the machine one event and performs its intents, as the coordinator does.
func (k *worker) step(ev Event) {
	w := k.w
	w.stats.steps++
	intents := k.m.Step(k.clock(), ev)
	for i := 0; i < len(intents); i++ {
		switch in := intents[i].(type) {
		case ReadTable:
			k.readTable(in)
		case Write:
			k.dispatch(in)
		case StartReading:
			k.startReading(in)
		case StopReading:
			k.stopReading(in)
		case CollectProgress:
			intents = append(intents, k.m.Step(k.clock(), k.progress())...)
		case Committed:
			if c := k.cons[in.Key]; c != nil && c.gen == in.Gen {
				n, _ := strconv.ParseInt(in.Pos.SequenceNumber(), 10, 64)
				c.committed = max(c.committed, n)
			}
		case DeliverUntil:
			k.until, k.hasUntil = int64(in.At/time.Millisecond), true
		case Done:
			// The shell stops its heartbeat, then removes its row.
			k.crashed = true
			k.logf("stopped")
			k.call("write", func() error {
				delete(w.hb, k.id)
				w.hbOrder = slices.DeleteFunc(w.hbOrder, func(id string) bool { return id == k.id })
				return nil
			}, func(error) {})
		case Fence, Unfence:
		case Change:
			k.changed(in)
		}
	}
	k.gateOpen = !k.m.Fenced()
	// The next wake. A machine that asks to be woken at once after a Tick would make the shell
	// spin.
	k.wakeTok++
	tok := k.wakeTok
	wake := int64((k.m.NextWake() + time.Millisecond - 1) / time.Millisecond) // the world counts whole milliseconds
	if _, tick := ev.(Tick); tick && wake <= k.mono() {
		w.violate("%s: the machine asks for another Tick at once after a Tick (a busy loop)", k.id)
		wake = k.mono() + 1
	}
	w.schedule(k.after(max(wake-k.mono(), 0)), k, func() {
		if k.wakeTok == tok {
			k.step(Tick{})
		}
	})
}

func (k *worker) changed(c Change) {
	w := k.w
	switch c.Event {
	case Claimed:
		w.stats.claims++
	case Stolen:
		w.stats.steals++
	case Forced:
		w.stats.forces++
	case Requested:
		w.stats.requests++
	case HandedOver:
		w.stats.handovers++
	case Retaken:
		w.stats.retakes++
	case Lost:
		w.stats.lost++
	case Finished:
		w.stats.finishes++
	case Received:
		w.stats.received++
	case Fenced:
		w.stats.fences++
	case Released:
		w.stats.releases++
	case ReadFailed:
		w.stats.readFailures++
	}
	if !w.logging {
		return
	}
	s := string(c.Event)
	if c.Key.Shard != "" {
		s += " " + c.Key.String()
	} else if c.Key.Stream != "" {
		s += " " + c.Key.Stream
	}
	if c.From != "" && c.From != k.id {
		s += " from " + c.From
	}
	if c.To != "" && c.To != k.id {
		s += " to " + c.To
	}
	if c.Epoch != 0 {
		s += fmt.Sprintf(" epoch %d", c.Epoch)
	}
	if c.Reason != "" && c.Event != Fenced {
		s += ": " + c.Reason
	}
	k.logf("%s", s)
}

// readTable reads the worker rows and the streams' shards and rows, all at one moment of the
// table.
func (k *worker) readTable(in ReadTable) {
	sent := k.clock()
	var tr TableRead
	k.call("read", func() error {
		w := k.w
		tr.Workers = nil
		for _, id := range w.hbOrder {
			tr.Workers = append(tr.Workers, checkpointer.WorkerRow{ID: id, Heartbeat: w.hb[id]})
		}
		for _, stream := range in.Leases {
			sr := StreamRead{Stream: stream, Listing: slices.Contains(in.List, stream)}
			if w.now < w.failing[stream] {
				sr.ListErr = fmt.Errorf("stream %s does not exist: ResourceNotFoundException", stream)
				sr.Listing = true
				tr.Streams = append(tr.Streams, sr)
				continue
			}
			for _, key := range w.order {
				sh := w.shards[key]
				if key.Stream != stream || !w.listed(sh) {
					continue
				}
				if sr.Listing {
					sr.Listed = append(sr.Listed, ListedShard{ID: key.Shard, Parents: sh.parents})
				}
				if r := w.rows[key]; r != nil {
					sr.Leases = append(sr.Leases, r.lease(key))
				}
			}
			// Rows of shards no longer listed stay in the table.
			for key, r := range w.rows {
				if key.Stream == stream && !w.listed(w.shards[key]) {
					sr.Leases = append(sr.Leases, r.lease(key))
				}
			}
			slices.SortFunc(sr.Leases, func(a, b checkpointer.Lease) int { return cmp.Compare(a.Shard, b.Shard) })
			tr.Streams = append(tr.Streams, sr)
		}
		return nil
	}, func(err error) {
		tr.Sent, tr.Received = sent, k.clock()
		if err != nil {
			k.w.stats.lostRd++
			k.logf("table read lost")
			tr = TableRead{Sent: sent, Received: k.clock(), WorkersErr: err}
			for _, s := range in.Leases {
				tr.Streams = append(tr.Streams, StreamRead{Stream: s, Listing: slices.Contains(in.List, s), ListErr: err, Err: err})
			}
		}
		k.step(tr)
	})
}

// dispatch sends a write a moment later (the pool's queue): a pause in between sends it late.
func (k *worker) dispatch(wr Write) {
	w := k.w
	w.schedule(w.now+w.r.Int64N(w.cfg.dispatch+1), k, func() {
		w.stats.writes++
		var row checkpointer.Lease
		k.call("write", func() error {
			var err error
			row, err = w.apply(k.id, wr)
			return err
		}, func(err error) {
			if errors.Is(err, errCondition) {
				w.stats.refused++
				if wr.Op == OpClaim || wr.Op == OpSteal || wr.Op == OpRetake || wr.Op == OpForce || wr.Op == OpRequest {
					err = fmt.Errorf("%v: %w", err, checkpointer.ErrClaimConflict)
				} else {
					err = fmt.Errorf("%v: %w", err, checkpointer.ErrLeaseLost)
				}
				if w.logging {
					k.logf("%s refused: the row says %s", wr, w.rows[wr.Key].lease(wr.Key))
				}
			} else if err != nil && w.logging {
				k.logf("%s: no answer", wr)
			}
			k.step(WriteDone{ID: wr.ID, Row: row, Err: err})
		})
	})
}

func (k *worker) startReading(in StartReading) {
	c := k.cons[in.Key]
	if c != nil && !c.stopped && c.running && !in.Resume {
		k.w.violate("%s starts a second consumer of %s (gen %d) while gen %d runs", k.id, in.Key, in.Gen, c.gen)
	}
	if !in.Resume || c == nil {
		start := int64(0)
		if in.Start.Kind == StartAfter {
			start, _ = strconv.ParseInt(in.Start.After.SequenceNumber(), 10, 64)
		}
		c = &simConsumer{key: in.Key, pos: start, acked: start, committed: start}
		k.cons[in.Key] = c
		if k.w.logging {
			k.logf("reads %s epoch %d after %d", in.Key, in.Epoch, start)
		}
	}
	c.gen, c.epoch, c.running, c.stopped, c.answers = in.Gen, in.Epoch, true, false, 0
}

func (k *worker) stopReading(in StopReading) {
	c := k.cons[in.Key]
	if c == nil || c.gen != in.Gen {
		if in.Drain {
			k.w.schedule(k.w.now, k, func() { k.step(Drained{Key: in.Key, Gen: in.Gen, AllAcked: true}) })
		}
		return
	}
	c.running, c.stopped = false, true
	if in.Drop {
		delete(k.cons, in.Key)
		return
	}
	if in.Drain {
		c.draining, c.drainBy = true, -1
		if in.Timeout > 0 {
			c.drainBy = k.after(int64(in.Timeout / time.Millisecond))
		}
	}
}

func (k *worker) progress() Progress {
	var p Progress
	for _, key := range sortedKeys(k.cons) {
		c := k.cons[key]
		if c.acked > c.committed {
			pos, _ := ack.ParseSequenceNumber(strconv.FormatInt(c.acked, 10))
			p.Positions = append(p.Positions, ShardPosition{Key: key, Gen: c.gen, Pos: pos})
		}
	}
	return p
}

// gateAllows is the gate of plugin/input: open, and the clock short of the fencing deadline.
func (k *worker) gateAllows() bool {
	if k.w.cfg.ignoreGate {
		return true
	}
	return k.gateOpen && k.hasUntil && k.mono() < k.until
}

// delivering says whether the worker would deliver records of key now, were it scheduled: a
// frozen worker counts, since it delivers the moment it thaws unless its clock fences it.
func (k *worker) delivering(key Key) bool {
	c := k.cons[key]
	return !k.crashed && c != nil && c.running && !c.stopped && k.gateAllows()
}

// work is one turn of the consumers: acknowledgements, drains, shard ends, read errors and
// deliveries.
func (k *worker) work() {
	w := k.w
	w.schedule(k.after(w.cfg.work), k, k.work)
	for _, key := range sortedKeys(k.cons) {
		c := k.cons[key]
		for len(c.batches) > 0 && c.batches[0].ackAt <= w.now {
			c.acked = c.batches[0].upTo
			c.batches = c.batches[1:]
		}
		if c.draining && (len(c.batches) == 0 || (c.drainBy >= 0 && w.now >= c.drainBy)) {
			c.draining = false
			d := Drained{Key: key, Gen: c.gen, AllAcked: len(c.batches) == 0, TimedOut: len(c.batches) > 0}
			if c.acked > 0 {
				d.Pos, _ = ack.ParseSequenceNumber(strconv.FormatInt(c.acked, 10))
				d.HasPos = true
			}
			k.step(d)
			continue
		}
		if !c.running || c.stopped {
			continue
		}
		sh := w.shards[key]
		avail := sh.written(w.now)
		if !w.listed(sh) || w.now < w.failing[key.Stream] {
			c.running = false
			k.step(ReadingEnded{Key: key, Gen: c.gen, Err: errors.New("the stream or shard no longer exists")})
			continue
		}
		if sh.closedAt >= 0 && sh.closedAt <= w.now && c.pos == avail {
			c.running = false
			k.step(ReadingEnded{Key: key, Gen: c.gen, ShardEnd: true, Progressed: c.answers > 0})
			continue
		}
		if w.cfg.readErr > 0 && w.r.Float64() < w.cfg.readErr {
			c.running = false
			k.step(ReadingEnded{Key: key, Gen: c.gen, Err: errors.New("GetRecords: InternalFailure"), Progressed: c.answers > 0})
			continue
		}
		c.answers++
		upTo := min(avail, c.acked+w.cfg.limit)
		if upTo > c.pos && k.gateAllows() {
			w.deliver(k, c, upTo)
			c.batches = append(c.batches, simBatch{upTo: upTo, ackAt: w.now + w.r.Int64N(w.cfg.ackMax+1)})
			c.pos = upTo
		}
	}
}

// deliver: k delivers records (c.pos, upTo] of the consumer's shard. The invariants of delivery
// are checked here.
func (w *world) deliver(k *worker, c *simConsumer, upTo int64) {
	key := c.key
	// The epoch the worker holds: the machine's (a retake moves it under a running consumer).
	if _, e := k.m.Phase(key); e != 0 {
		c.epoch = e
	}
	w.stats.deliveries++
	w.stats.records += int(upTo - c.pos)
	w.stats.checks += 3 + len(w.workers) + len(w.shards[key].parents)
	r := w.rows[key]
	var cur row
	if r != nil {
		cur = *r
	}
	if c.pos > w.maxDone[key] {
		w.violate("%s delivers %s from %d: records %d..%d were never delivered", k.id, key, c.pos+1, w.maxDone[key]+1, c.pos)
	}
	w.maxDone[key] = max(w.maxDone[key], upTo)
	if cur.owner == k.id && cur.epoch == c.epoch+1 && w.changes[key][cur.epoch].kind == "retake" {
		// Its own re-take (clearing a dead worker's request) applied, its answer on the way:
		// the same owner, one epoch on.
		c.epoch = cur.epoch
	}
	if cur.owner == k.id && cur.epoch == c.epoch {
		// The owner of the current epoch: after a graceful move (a hand-over, a claim of a free
		// shard) it must not deliver again what the previous owner delivered; after a steal, a
		// force or a retake it may (at-least-once).
		if ch, ok := w.changes[key][c.epoch]; ok && c.pos < ch.hiThen && (ch.kind == "hand-over" || ch.kind == "claim") {
			w.violate("%s redelivers %s from %d after a %s (delivered up to %d before)", k.id, key, c.pos+1, ch.kind, ch.hiThen)
		}
		w.hi[key] = max(w.hi[key], upTo)
	} else {
		// A stale owner still delivering: only allowed for a short while after a forced hand-off.
		ch := w.changes[key][c.epoch+1]
		if ch.kind == "force" && ch.from == k.id && w.now-ch.at <= w.cfg.lease {
			w.stats.forcedOverlaps++
		} else {
			w.violate("%s delivers %s at epoch %d but the row says owner %s epoch %d (epoch %d: %s from %s at %s)",
				k.id, key, c.epoch, orNone(cur.owner), cur.epoch, c.epoch+1, ch.kind, ch.from, ms(ch.at))
		}
	}
	for _, o := range w.workers {
		if o == k || !o.delivering(key) {
			continue
		}
		oc := o.cons[key]
		if _, e := o.m.Phase(key); e != 0 {
			oc.epoch = e
		}
		stale, fresh := o, k
		staleEpoch := oc.epoch
		if oc.epoch > c.epoch {
			stale, fresh, staleEpoch = k, o, c.epoch
		}
		ch := w.changes[key][staleEpoch+1]
		if ch.kind == "force" && ch.from == stale.id && w.now-ch.at <= w.cfg.lease {
			continue
		}
		w.violate("%s and %s both deliver %s (epochs %d and %d)", fresh.id, stale.id, key, max(oc.epoch, c.epoch), staleEpoch)
	}
	for _, p := range w.shards[key].parents {
		ps := w.shards[Key{key.Stream, p}]
		if w.listed(ps) && (w.rows[ps.key] == nil || !w.rows[ps.key].finished) {
			w.violate("%s reads child %s before its parent %s finished", k.id, key, p)
		}
	}
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// --- faults ------------------------------------------------------------------------------------

func (w *world) crash(id string) error {
	k := w.byID[id]
	if k == nil || k.crashed {
		return fmt.Errorf("no running worker %s", id)
	}
	k.crashed = true
	w.stats.crashes++
	w.logf("%s crashes", id)
	return nil
}

// pause freezes a worker for d (its clock runs on).
func (w *world) pause(id string, d int64) error {
	k := w.byID[id]
	if k == nil || k.crashed || w.now < k.pausedUntil {
		return fmt.Errorf("no running worker %s", id)
	}
	k.pausedUntil = w.now + d
	w.stats.pauses++
	if d > w.cfg.lease {
		w.stats.longPauses++
	}
	w.logf("%s pauses for %s", id, ms(d))
	return nil
}

// cut cuts a worker off from the table for d: every call it makes is lost, while its consumers
// go on (Kinesis still answers). Self-fencing is what stops them.
func (w *world) cut(id string, d int64) error {
	k := w.byID[id]
	if k == nil || k.crashed {
		return fmt.Errorf("no running worker %s", id)
	}
	k.cutUntil = w.now + d
	w.stats.cuts++
	w.logf("%s is cut off from the table for %s", id, ms(d))
	return nil
}

// failStream makes the stream's ListShards and GetRecords fail for d (it was deleted, or access
// to it denied): the worker's other streams must go on.
func (w *world) failStream(stream string, d int64) error {
	if !slices.Contains(w.streams, stream) {
		return fmt.Errorf("no stream %s", stream)
	}
	w.failing[stream] = w.now + d
	w.logf("stream %s fails for %s", stream, ms(d))
	return nil
}

// stop shuts a worker down gracefully (SIGTERM): its machine releases what it holds, then the
// shell removes its worker row. A shutdown that outlasts the shell's bound ends as a crash.
func (w *world) stop(id string) error {
	k := w.byID[id]
	if k == nil || k.crashed || k.stopping {
		return fmt.Errorf("no running worker %s", id)
	}
	k.stopping = true
	w.stats.stops++
	w.logf("%s stops", id)
	k.step(Shutdown{})
	w.schedule(w.now+w.cfg.grace+4*w.cfg.heartbeat(), k, func() {
		k.logf("gives up its shutdown")
		k.crashed = true
	})
	return nil
}

// running returns the workers that run and are not shutting down.
func (w *world) running() []*worker {
	var out []*worker
	for _, k := range w.workers {
		if k.running() && !k.stopping {
			out = append(out, k)
		}
	}
	return out
}

// stable reports whether the fleet is at rest: every running worker unfenced, no shard closed
// but unfinished, every readable shard read by the running worker that owns it, no pending
// request, and every running worker at floor or ceil. Otherwise it says why not.
func (w *world) stable() (bool, string) {
	w.stats.checks++
	run := w.running()
	if len(run) == 0 || len(run) != countIf(w.workers, func(k *worker) bool { return !k.crashed && !k.stopping }) {
		return false, "a worker is paused"
	}
	for _, k := range w.workers {
		if k.stopping && !k.crashed {
			return false, k.id + " is shutting down"
		}
	}
	load := map[string]int{}
	byID := map[string]*worker{}
	for _, k := range run {
		if k.m.Fenced() || !k.gateAllows() {
			return false, k.id + " is fenced"
		}
		if w.now < k.cutUntil {
			return false, k.id + " is cut off from the table"
		}
		byID[k.id] = k
		load[k.id] = 0
	}
	n := 0
	for _, key := range w.order {
		sh := w.shards[key]
		if !w.listed(sh) {
			continue
		}
		var r row
		if p := w.rows[key]; p != nil {
			r = *p
		}
		if sh.closedAt >= 0 && !r.finished {
			return false, key.String() + " is closed, not finished"
		}
		if !w.readable(sh) {
			continue
		}
		n++
		k := byID[r.owner]
		if k == nil {
			return false, fmt.Sprintf("%s owned by %s, not a running worker", key, orNone(r.owner))
		}
		if ph, e := k.m.Phase(key); ph != Reading || e != r.epoch || k.cons[key] == nil || !k.cons[key].running {
			return false, fmt.Sprintf("%s: %s does not read it (%v)", key, k.id, ph)
		}
		if r.handoffTo != "" {
			return false, fmt.Sprintf("%s: a request by %s is pending", key, r.handoffTo)
		}
		load[r.owner]++
	}
	floor, ceil := n/len(run), (n+len(run)-1)/len(run)
	for _, k := range run {
		if load[k.id] < floor || load[k.id] > ceil {
			return false, fmt.Sprintf("%s holds %d, fair is %d..%d", k.id, load[k.id], floor, ceil)
		}
	}
	return true, ""
}

func countIf[T any](s []T, f func(T) bool) int {
	n := 0
	for _, x := range s {
		if f(x) {
			n++
		}
	}
	return n
}

// ownersNow is a fingerprint of the owners, to see that a stable fleet stays still.
func (w *world) ownersNow() string {
	var b strings.Builder
	for _, key := range w.order {
		owner := ""
		if r := w.rows[key]; r != nil {
			owner = r.owner
		}
		fmt.Fprintf(&b, "%s=%s ", key, owner)
	}
	return b.String()
}

func sortedKeys[V any](m map[Key]V) []Key {
	keys := make([]Key, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, compareKeys)
	return keys
}
