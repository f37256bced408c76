package balance

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
)

// The simulated world of the deterministic simulation (sim_test.go) and of the scenario scripts
// (script_test.go): streams that reshard, a lease table with the conditional writes of
// LEASES.md "Writes", and workers that drive Plan the way the input does (LEASES.md "Liveness",
// "Hand-off", "Resharding"). Time is a number of milliseconds; every worker has its own
// monotonic clock running at its own rate. Nothing here runs concurrently.

// simConfig holds the protocol's periods (milliseconds) and the fault rates.
type simConfig struct {
	lease     int64 // lease_period: an observer's time without a heartbeat change before "dead"
	heartbeat int64 // heartbeat_period
	margin    int64 // fence_margin: self-fencing after lease - margin without a heartbeat
	rebalance int64 // rebalance_period (lease read and plan), plus up to jitter
	jitter    int64
	work      int64 // the readers' cadence: deliveries, acks and checkpoints (commit_period)
	handoff   int64 // handoff_timeout
	ackMax    int64 // a delivered batch is acknowledged within [0, ackMax]
	// writeDelay: the planned writes go out within [0, writeDelay] after the lease read.
	writeDelay int64
	retention  int64 // a closed shard ages out of ListShards this long after it closed
	maxMoves   int
	// Fault rates, per request: lost before it is applied, applied but the answer lost, a
	// lease read that fails.
	lossReq, lossAns, lossRead float64
	// retakeAfterFence: a worker back from a fence re-takes its leases (epoch+1) before reading.
	retakeAfterFence bool
}

func defaultConfig() simConfig {
	return simConfig{
		lease: 9000, heartbeat: 3000, margin: 3000, rebalance: 3000, jitter: 1000,
		work: 1000, handoff: 6000, ackMax: 2000, writeDelay: 1000, retention: 60000, maxMoves: 2,
		retakeAfterFence: true,
	}
}

type skey = shardKey

func (k skey) String() string { return k.stream + "/" + k.id }

type simShard struct {
	key      skey
	parents  []string
	created  int64
	closedAt int64 // -1: open
	agedAt   int64 // -1: never (open)
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

// row is a shard row of the lease table. epoch 0 is "no Epoch attribute".
type row struct {
	owner     string
	epoch     int64
	finished  bool
	handoffTo string
	handoffE  int64
	ckpt      int64 // the checkpoint: records 1..ckpt are done
}

// change records how a row got an epoch: the checks use it.
type change struct {
	kind   string // claim, steal, handover, force
	at     int64
	from   string
	hiThen int64 // highest record delivered by the owner of the epoch this change ended
}

type simStats struct {
	events, deliveries, records                         int
	writes, rejected, lostRequests, lostAnswers, lostRd int
	claims, steals, requests, handovers, forces         int
	finishes, lost, adopted, fences, zombieRejected     int
	retakes, plans, checks                              int // checks: invariant checks made
	forcedOverlaps, splits, merges                      int
	crashes, pauses, longPauses, joins, cuts            int
}

func (a *simStats) add(b simStats) {
	a.events += b.events
	a.deliveries += b.deliveries
	a.records += b.records
	a.writes += b.writes
	a.rejected += b.rejected
	a.lostRequests += b.lostRequests
	a.lostAnswers += b.lostAnswers
	a.lostRd += b.lostRd
	a.claims += b.claims
	a.steals += b.steals
	a.requests += b.requests
	a.handovers += b.handovers
	a.forces += b.forces
	a.finishes += b.finishes
	a.lost += b.lost
	a.adopted += b.adopted
	a.fences += b.fences
	a.zombieRejected += b.zombieRejected
	a.forcedOverlaps += b.forcedOverlaps
	a.splits += b.splits
	a.merges += b.merges
	a.crashes += b.crashes
	a.pauses += b.pauses
	a.longPauses += b.longPauses
	a.joins += b.joins
	a.cuts += b.cuts
	a.retakes += b.retakes
	a.plans += b.plans
	a.checks += b.checks
}

type world struct {
	cfg     simConfig
	r       *rand.Rand
	now     int64
	streams []string
	shards  map[skey]*simShard
	order   []skey // creation order
	nextID  map[string]int
	rows    map[skey]*row
	hb      map[string]int64 // worker rows: id -> Heartbeat
	hbOrder []string
	workers []*worker
	byID    map[string]*worker

	// checks
	epochs     map[skey]int64
	changes    map[skey]map[int64]change
	hi         map[skey]int64 // highest record delivered by the owner of the current epoch, from its checkpoint on
	violations []string
	stats      simStats
	log        []string // nil unless logging
	logging    bool
}

func newWorld(cfg simConfig, seed uint64) *world {
	return &world{
		cfg:     cfg,
		r:       rand.New(rand.NewPCG(seed, 0x6b696e65)),
		shards:  map[skey]*simShard{},
		nextID:  map[string]int{},
		rows:    map[skey]*row{},
		hb:      map[string]int64{},
		byID:    map[string]*worker{},
		epochs:  map[skey]int64{},
		changes: map[skey]map[int64]change{},
		hi:      map[skey]int64{},
	}
}

func ms(t int64) string { return fmt.Sprintf("%.1fs", float64(t)/1000) }

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
	sh := &simShard{key: skey{stream, id}, parents: parents, created: w.now, closedAt: -1, agedAt: -1, rate: 1 + w.r.Int64N(5)}
	w.shards[sh.key] = sh
	w.order = append(w.order, sh.key)
	return sh
}

func (w *world) listed(sh *simShard) bool {
	return sh != nil && sh.created <= w.now && (sh.agedAt < 0 || w.now < sh.agedAt)
}

func (w *world) openShard(stream, id string) (*simShard, error) {
	sh := w.shards[skey{stream, id}]
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

// split closes a shard; two children appear with it as parent.
func (w *world) split(stream, id string) ([]string, error) {
	sh, err := w.openShard(stream, id)
	if err != nil {
		return nil, err
	}
	w.closeShard(sh)
	a, b := w.newShard(stream, id), w.newShard(stream, id)
	w.stats.splits++
	w.logf("split %s -> %s %s", sh.key, a.key.id, b.key.id)
	return []string{a.key.id, b.key.id}, nil
}

// merge closes two shards; one child appears with both as parents.
func (w *world) merge(stream, id1, id2 string) (string, error) {
	s1, err := w.openShard(stream, id1)
	if err != nil {
		return "", err
	}
	s2, err := w.openShard(stream, id2)
	if err != nil {
		return "", err
	}
	if id1 == id2 {
		return "", fmt.Errorf("merge of %s with itself", id1)
	}
	w.closeShard(s1)
	w.closeShard(s2)
	c := w.newShard(stream, id1, id2)
	w.stats.merges++
	w.logf("merge %s + %s -> %s", s1.key, id2, c.key.id)
	return c.key.id, nil
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
		ps := w.shards[skey{sh.key.stream, p}]
		if w.listed(ps) && (w.rows[ps.key] == nil || !w.rows[ps.key].finished) {
			return false
		}
	}
	return true
}

// --- the table's conditional writes (LEASES.md "Writes") ---

func (w *world) rowOf(k skey) row {
	if r := w.rows[k]; r != nil {
		return *r
	}
	return row{}
}

// setOwner is the effect of claim, steal, hand over and force: a new owner, the epoch bumped,
// the request removed.
func (w *world) setOwner(k skey, owner string, epoch int64, kind, from string) {
	r := w.rows[k]
	if r == nil {
		r = &row{}
		w.rows[k] = r
	}
	w.stats.checks++
	if epoch <= r.epoch || epoch <= w.epochs[k] {
		w.violate("epoch of %s goes from %d to %d", k, max(r.epoch, w.epochs[k]), epoch)
	}
	r.owner, r.epoch, r.handoffTo, r.handoffE = owner, epoch, "", 0
	w.epochs[k] = epoch
	if w.changes[k] == nil {
		w.changes[k] = map[int64]change{}
	}
	w.changes[k][epoch] = change{kind: kind, at: w.now, from: from, hiThen: w.hi[k]}
	w.hi[k] = r.ckpt
}

// take: claim a free shard (from "") or a dead owner's: ClientID = from AND epoch as observed.
func (w *world) take(k skey, me, from string, e int64, kind string) bool {
	r := w.rowOf(k)
	if r.owner != from || r.epoch != e {
		return false
	}
	w.stats.checks++
	if r.finished {
		w.violate("%s takes %s, which is finished", me, k)
	}
	w.setOwner(k, me, e+1, kind, from)
	return true
}

// owned is the condition of the owner's writes: ClientID = me AND Epoch = mine.
func (w *world) owned(k skey, me string, e int64) bool {
	r := w.rowOf(k)
	return r.owner == me && r.epoch == e
}

func (w *world) checkpoint(k skey, me string, e, ckpt int64) bool {
	if !w.owned(k, me, e) {
		return false
	}
	w.rows[k].ckpt = ckpt
	return true
}

func (w *world) finish(k skey, me string, e, ckpt int64) bool {
	if !w.owned(k, me, e) {
		return false
	}
	r := w.rows[k]
	r.finished, r.ckpt, r.owner = true, ckpt, ""
	w.stats.checks++
	if sh := w.shards[k]; sh.closedAt < 0 || ckpt != sh.written(sh.closedAt) {
		w.violate("%s finished at %d: closed %v, %d records", k, ckpt, sh.closedAt >= 0, sh.written(w.now))
	}
	return true
}

func (w *world) request(k skey, me, owner string, e int64) bool {
	r := w.rowOf(k)
	if r.owner != owner || r.epoch != e || (r.handoffTo != "" && r.handoffTo != me) {
		return false
	}
	w.rows[k].handoffTo, w.rows[k].handoffE = me, e
	return true
}

func (w *world) handOver(k skey, me string, e int64, taker string, ckpt int64) bool {
	if !w.owned(k, me, e) || w.rows[k].handoffTo != taker {
		return false
	}
	w.rows[k].ckpt = ckpt
	w.setOwner(k, taker, e+1, "handover", me)
	return true
}

func (w *world) force(k skey, me, owner string, e int64) bool {
	r := w.rowOf(k)
	if r.owner != owner || r.epoch != e || r.handoffTo != me {
		return false
	}
	w.setOwner(k, me, e+1, "force", owner)
	return true
}

// builtinRow writes a row as the built-in input does: an owner without a heartbeat row, no epoch.
func (w *world) builtinRow(k skey, owner string, ckpt int64) {
	w.rows[k] = &row{owner: owner, ckpt: ckpt}
	w.hi[k] = ckpt
}

// --- workers ---

type sighting struct {
	counter int64
	since   int64 // observer's clock: when this counter (or the absence of a row) was first seen
	row     bool
}

type batch struct{ upTo, ackAt int64 }

type lease struct {
	epoch, pos, acked, ckpt int64
	batches                 []batch
	stopping                bool // a hand-off was asked for: reading stopped, acks awaited
	retaking                bool // back from a fence: not read until re-taken
	to                      string
	stopAt                  int64
}

type request struct {
	owner        string
	epoch, since int64
}

type worker struct {
	w           *world
	id          string
	drift       int64 // clock rate error, parts per million
	base        int64
	src         *rand.PCG
	r           *rand.Rand
	crashed     bool
	pausedUntil int64
	resumed     bool
	zombie      bool // a checkpoint write prepared before the pause goes out first on resume
	hbAt        int64
	readAt      int64
	workAt      int64
	actAt       int64    // when the pending writes go out; never: none
	pending     []Action // planned at the last lease read
	lastHB      int64    // own clock: when the last heartbeat that succeeded was sent; -1: none
	fenced      bool
	started     bool // unfenced once: the first heartbeat and read are not worth a log line
	hbSince     bool // a heartbeat succeeded since the fence
	seen        map[string]*sighting
	judged      map[string]string // as of the last plan, for the log
	leases      map[skey]*lease
	reqs        map[skey]*request
	lose        map[string]int // injected faults: heartbeat, read, write, answer
	cutUntil    int64          // cut off from the table (every request lost) until then
}

func (w *world) addWorker(id string, drift int64) (*worker, error) {
	if w.byID[id] != nil {
		return nil, fmt.Errorf("worker %s exists", id)
	}
	src := rand.NewPCG(w.r.Uint64(), w.r.Uint64())
	k := &worker{
		w: w, id: id, drift: drift, base: w.r.Int64N(1 << 40), src: src, r: rand.New(src),
		hbAt: w.now, readAt: w.now, workAt: w.now, actAt: never, lastHB: -1, fenced: true,
		resumed: true, seen: map[string]*sighting{}, leases: map[skey]*lease{},
		reqs: map[skey]*request{}, lose: map[string]int{},
	}
	w.workers = append(w.workers, k)
	w.byID[id] = k
	w.stats.joins++
	w.logf("%s starts", id)
	return k, nil
}

func (k *worker) mono() int64 { return k.base + k.w.now + k.w.now*k.drift/1_000_000 }

// after converts a duration on the worker's clock into the world time it ends at.
func (k *worker) after(d int64) int64 { return k.w.now + d*1_000_000/(1_000_000+k.drift) }

func (k *worker) logf(format string, args ...any) { k.w.logf(k.id+" "+format, args...) }

func (k *worker) running() bool { return !k.crashed && k.w.now >= k.pausedUntil }

// send decides the fate of one request: applied, and whether the answer comes back.
func (k *worker) send(what string) (applied, answered bool) {
	w := k.w
	if what != "heartbeat" {
		w.stats.writes++
	}
	if w.now < k.cutUntil {
		w.stats.lostRequests++
		return false, false
	}
	if k.lose[what] > 0 || (what != "heartbeat" && k.lose["write"] > 0) {
		if k.lose[what] > 0 {
			k.lose[what]--
		} else {
			k.lose["write"]--
		}
		w.stats.lostRequests++
		return false, false
	}
	if what != "heartbeat" && k.lose["answer"] > 0 {
		k.lose["answer"]--
		w.stats.lostAnswers++
		return true, false
	}
	x := w.r.Float64()
	switch {
	case x < w.cfg.lossReq:
		w.stats.lostRequests++
		return false, false
	case x < w.cfg.lossReq+w.cfg.lossAns:
		w.stats.lostAnswers++
		return true, false
	}
	return true, true
}

// fenceCheck: no heartbeat succeeded for lease - margin: stop delivering.
func (k *worker) fenceCheck() {
	if !k.fenced && (k.lastHB < 0 || k.mono()-k.lastHB > k.w.cfg.lease-k.w.cfg.margin) {
		k.fenced, k.hbSince = true, false
		k.w.stats.fences++
		k.logf("fenced: no heartbeat for %s", ms(k.mono()-k.lastHB))
	}
}

// delivering says whether the worker would deliver records of key now, were it scheduled: it
// holds the lease, is neither handing it off nor re-taking it, and its own clock does not fence
// it. A paused worker counts: it delivers again the moment it resumes, unless fenced by then.
func (k *worker) delivering(key skey) bool {
	l := k.leases[key]
	return l != nil && !l.stopping && !l.retaking && !k.crashed && !k.fencedNow()
}

// fencedNow: fenced, or about to be at the worker's next step (its clock is past the deadline).
func (k *worker) fencedNow() bool {
	return k.fenced || k.lastHB < 0 || k.mono()-k.lastHB > k.w.cfg.lease-k.w.cfg.margin
}

func (k *worker) heartbeat() {
	k.hbAt = k.after(k.w.cfg.heartbeat)
	sent := k.mono()
	applied, answered := k.send("heartbeat")
	if applied {
		if _, ok := k.w.hb[k.id]; !ok {
			k.w.hbOrder = append(k.w.hbOrder, k.id)
		}
		k.w.hb[k.id]++
	}
	if !applied || !answered {
		k.logf("heartbeat lost")
		return
	}
	k.lastHB = sent
	if k.fenced && !k.hbSince {
		k.hbSince = true
		k.readAt = k.w.now // re-read the leases at once
	}
}

// resume runs once when a pause ends: a zombie's write prepared before the pause goes out
// before anything else.
func (k *worker) resume() {
	k.resumed = true
	k.logf("resumes")
	if !k.zombie {
		return
	}
	k.zombie = false
	keys := sortedKeys(k.leases)
	if len(keys) == 0 {
		return
	}
	key := keys[0]
	l := k.leases[key]
	applied, answered := k.send("write")
	ok := applied && k.w.checkpoint(key, k.id, l.epoch, l.acked)
	if !answered {
		return
	}
	if !ok {
		r := k.w.rowOf(key)
		k.w.stats.zombieRejected++
		k.logf("checkpoint %s epoch %d rejected: owner %s epoch %d", key, l.epoch, orNone(r.owner), r.epoch)
		k.drop(key, "")
		return
	}
	l.ckpt = l.acked
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func (k *worker) drop(key skey, why string) {
	delete(k.leases, key)
	if why != "" {
		k.w.stats.lost++
		k.logf("%s", why)
	}
}

// read is the lease read and plan of one rebalance cycle.
func (k *worker) read() {
	w, cfg := k.w, k.w.cfg
	k.readAt = k.after(cfg.rebalance + k.r.Int64N(cfg.jitter+1))
	k.fenceCheck()
	if w.now < k.cutUntil || k.lose["read"] > 0 || w.r.Float64() < cfg.lossRead {
		if k.lose["read"] > 0 {
			k.lose["read"]--
		}
		w.stats.lostRd++
		k.logf("lease read lost")
		return
	}
	now := k.mono()
	listed := k.observe(k.seen)

	// Reconcile the leases held with the table.
	for _, key := range sortedKeys(k.leases) {
		l := k.leases[key]
		r := w.rowOf(key)
		w.stats.checks++
		switch {
		case l.epoch > r.epoch:
			w.violate("%s holds %s at epoch %d, the row says %d", k.id, key, l.epoch, r.epoch)
		case l.retaking && r.owner == k.id && r.epoch == l.epoch+1 && w.changes[key][r.epoch].kind == "retake":
			l.epoch++ // the retake whose answer was lost
			l.retaking, l.stopping = false, false
			k.logf("retook %s epoch %d", key, l.epoch)
		case !w.listed(w.shards[key]):
			k.drop(key, fmt.Sprintf("drops %s: no longer listed", key))
		case r.owner != k.id || r.epoch != l.epoch:
			k.drop(key, fmt.Sprintf("lost %s: owner %s epoch %d", key, orNone(r.owner), r.epoch))
		case r.handoffTo != "" && r.handoffTo != k.id && !l.stopping:
			k.stop(key, l, r.handoffTo)
		}
	}
	for _, sh := range listed {
		if r := w.rows[sh.key]; r != nil && r.owner == k.id && !r.finished && k.leases[sh.key] == nil {
			k.leases[sh.key] = &lease{epoch: r.epoch, pos: r.ckpt, acked: r.ckpt, ckpt: r.ckpt}
			w.stats.adopted++
			k.logf("adopts %s epoch %d at %d", sh.key, r.epoch, r.ckpt)
		}
	}
	if k.fenced {
		if !k.hbSince || now-k.lastHB > cfg.lease-cfg.margin {
			return
		}
		k.fenced = false
		if k.started {
			k.logf("unfenced")
		}
		k.started = true
		if cfg.retakeAfterFence {
			for _, l := range k.leases {
				l.retaking = true
			}
		}
	}
	k.retake()

	// Hand-off requests: time them on this clock, force the ones that waited too long.
	for _, sh := range listed {
		if r := w.rows[sh.key]; r != nil && r.handoffTo == k.id && r.owner != "" && r.owner != k.id {
			if q := k.reqs[sh.key]; q == nil || q.owner != r.owner || q.epoch != r.epoch {
				k.reqs[sh.key] = &request{owner: r.owner, epoch: r.epoch, since: now}
			}
		}
	}
	for _, key := range sortedKeys(k.reqs) {
		q := k.reqs[key]
		if r := w.rowOf(key); r.handoffTo != k.id || r.owner != q.owner || r.epoch != q.epoch || !w.listed(w.shards[key]) {
			delete(k.reqs, key)
			continue
		}
		if now-q.since < cfg.handoff {
			continue
		}
		delete(k.reqs, key)
		k.pending = append(k.pending, Action{Kind: force, Stream: key.stream, Shard: key.id, From: q.owner, Epoch: q.epoch})
	}

	s := k.snapshot(listed, k.r.Uint64())
	judged := map[string]string{}
	for _, id := range s.Workers {
		judged[id] = "alive"
	}
	for _, id := range s.Grace {
		judged[id] = "in grace"
	}
	if k.judged != nil && w.logging {
		for _, id := range sortedIDs(k.seen) {
			j := cmp.Or(judged[id], "dead")
			if id == k.id || j == cmp.Or(k.judged[id], "dead") {
				continue
			}
			switch {
			case j != "dead":
				k.logf("sees %s %s", id, j)
			case k.seen[id].row:
				k.logf("sees %s dead: heartbeat unchanged for %s", id, ms(now-k.seen[id].since))
			default:
				k.logf("sees %s dead: no worker row for %s", id, ms(now-k.seen[id].since))
			}
		}
	}
	k.judged = judged
	plan := Plan(s)
	if err := checkPlan(s, plan); err != nil {
		w.violate("%s: %v", k.id, err)
	}
	w.stats.plans++
	w.stats.checks += 1 + len(plan)
	for _, a := range plan {
		if sg := k.seen[a.From]; a.Kind == Steal && (sg == nil || now-sg.since < cfg.lease) {
			w.violate("%s plans %v before it has watched %s for a lease period", k.id, a, a.From)
		}
	}
	k.pending = append(k.pending, plan...)
	if len(k.pending) > 0 {
		k.actAt = w.now + k.r.Int64N(cfg.writeDelay+1)
	}
}

// act makes the writes planned at the last lease read, a moment later: other workers may have
// written in between, and a pause may fall in between (the writes then go out late).
func (k *worker) act() {
	w := k.w
	k.actAt = never
	pending := k.pending
	k.pending = nil
	for _, a := range pending {
		key := skey{a.Stream, a.Shard}
		applied, answered := k.send("write")
		var ok bool
		switch a.Kind {
		case force:
			ok = applied && w.force(key, k.id, a.From, a.Epoch)
			if ok {
				w.stats.forces++
			}
		case Claim, Steal:
			ok = applied && w.take(key, k.id, a.From, a.Epoch, a.Kind.String())
			if ok && a.Kind == Claim {
				w.stats.claims++
			} else if ok {
				w.stats.steals++
			}
		case RequestHandoff:
			ok = applied && w.request(key, k.id, a.From, a.Epoch)
			if ok {
				w.stats.requests++
			}
		}
		what := a.Kind.String()
		if a.Kind == force {
			what = "force"
		}
		k.outcome(what, key, a.From, a.Epoch, ok, answered)
		if ok && answered && a.Kind == RequestHandoff {
			k.reqs[key] = &request{owner: a.From, epoch: a.Epoch, since: k.mono()}
		}
	}
}

// force is the worker's own kind of write for a hand-off that waited too long.
const force Kind = 100

const never = int64(1) << 62

// retake re-takes every lease held after a fence, before reading any again: a conditional
// write on the worker's own row (ClientID = me AND Epoch = mine; Epoch+1), the same write as a
// steal from a dead owner. An observer that judged this worker dead before its heartbeat came
// back may still be about to steal on that stale judgement: its write, conditioned on the old
// epoch, now fails. Without this (LEASES.md says only "until a heartbeat succeeds and it has
// re-read its leases"), the worker reads the shard again while the late steal takes it: two
// readers (TestSimulationFindsRecoveryRace).
func (k *worker) retake() {
	w := k.w
	for _, key := range sortedKeys(k.leases) {
		l := k.leases[key]
		if !l.retaking {
			continue
		}
		applied, answered := k.send("write")
		ok := applied && w.take(key, k.id, k.id, l.epoch, "retake")
		switch {
		case !answered:
			// Unknown: not read until a lease read shows the row.
			k.logf("retake %s: no answer", key)
		case !ok:
			r := w.rowOf(key)
			w.stats.rejected++
			k.drop(key, fmt.Sprintf("retake %s epoch %d rejected: owner %s epoch %d", key, l.epoch, orNone(r.owner), r.epoch))
		default:
			w.stats.retakes++
			k.logf("retakes %s epoch %d->%d", key, l.epoch, l.epoch+1)
			l.epoch++
			l.retaking = false
			l.stopping = false // the write removed any request: the taker asks again
		}
	}
}

// outcome handles the answer to a taker's write (claim, steal, force, request).
func (k *worker) outcome(what string, key skey, from string, e int64, ok, answered bool) {
	w := k.w
	desc := what + " " + key.String()
	if from != "" {
		desc += " from " + from
	}
	switch {
	case !answered:
		k.logf("%s: no answer", desc)
	case !ok:
		w.stats.rejected++
		r := w.rowOf(key)
		k.logf("%s epoch %d rejected: owner %s epoch %d", desc, e, orNone(r.owner), r.epoch)
	case what == "request":
		k.logf("%s epoch %d", desc, e)
	default:
		r := w.rowOf(key)
		k.leases[key] = &lease{epoch: r.epoch, pos: r.ckpt, acked: r.ckpt, ckpt: r.ckpt}
		delete(k.reqs, key)
		k.logf("%s epoch %d->%d, reads after %d", desc, e, r.epoch, r.ckpt)
	}
}

// snapshot is what the worker passes to Plan.
func (k *worker) snapshot(listed []*simShard, seed uint64) Snapshot {
	w := k.w
	now := k.mono()
	s := Snapshot{Self: k.id, MaxMoves: w.cfg.maxMoves, Seed: seed}
	for _, id := range sortedIDs(k.seen) {
		if sg := k.seen[id]; now-sg.since < w.cfg.lease {
			if sg.row {
				s.Workers = append(s.Workers, id)
			} else {
				s.Grace = append(s.Grace, id)
			}
		}
	}
	for _, sh := range listed {
		r := w.rowOf(sh.key)
		s.Shards = append(s.Shards, Shard{
			Stream: sh.key.stream, ID: sh.key.id, Parents: sh.parents,
			Owner: r.owner, Epoch: r.epoch, Finished: r.finished, HandoffTo: r.handoffTo,
		})
	}
	return s
}

// observe is the liveness part of a lease read: it notes in seen every heartbeat counter that
// changed and every owner without a worker row, at the time of the worker's clock, and returns
// the listed shards.
func (k *worker) observe(seen map[string]*sighting) []*simShard {
	w, now := k.w, k.mono()
	for _, id := range w.hbOrder {
		c := w.hb[id]
		if s := seen[id]; s == nil || !s.row || s.counter != c {
			seen[id] = &sighting{counter: c, since: now, row: true}
		}
	}
	var listed []*simShard
	for _, key := range w.order {
		if sh := w.shards[key]; w.listed(sh) {
			listed = append(listed, sh)
			if r := w.rows[key]; r != nil && r.owner != "" && seen[r.owner] == nil {
				seen[r.owner] = &sighting{since: now} // an owner without a worker row
			}
		}
	}
	return listed
}

// peek is the snapshot the worker would plan on were it to read the table now; nothing changes.
func (k *worker) peek(seed uint64) Snapshot {
	saved := k.seen
	k.seen = map[string]*sighting{}
	for id, sg := range saved {
		c := *sg
		k.seen[id] = &c
	}
	s := k.snapshot(k.observe(k.seen), seed)
	k.seen = saved
	return s
}

func (k *worker) stop(key skey, l *lease, to string) {
	l.stopping, l.to, l.stopAt = true, to, k.mono()
	k.logf("stops %s for %s at %d, %d unacknowledged", key, to, l.pos, l.pos-l.acked)
}

// work is one turn of the readers: acknowledgements, deliveries, checkpoints, hand-overs and
// finishes.
func (k *worker) work() {
	w, cfg := k.w, k.w.cfg
	k.workAt = k.after(cfg.work)
	k.fenceCheck()
	if k.fenced {
		return
	}
	for _, key := range sortedKeys(k.leases) {
		l := k.leases[key]
		sh := w.shards[key]
		for len(l.batches) > 0 && l.batches[0].ackAt <= w.now {
			l.acked = l.batches[0].upTo
			l.batches = l.batches[1:]
		}
		if l.retaking {
			continue
		}
		if l.stopping {
			if l.acked == l.pos || k.mono()-l.stopAt >= cfg.handoff {
				applied, answered := k.send("write")
				ok := applied && w.handOver(key, k.id, l.epoch, l.to, l.acked)
				if ok {
					w.stats.handovers++
				}
				switch {
				case !answered:
					k.logf("hand over %s to %s: no answer", key, l.to)
				case ok:
					k.logf("hands over %s to %s at %d, epoch %d->%d", key, l.to, l.acked, l.epoch, l.epoch+1)
					k.drop(key, "")
				default:
					r := w.rowOf(key)
					w.stats.rejected++
					k.drop(key, fmt.Sprintf("hand over %s to %s rejected: owner %s epoch %d", key, l.to, orNone(r.owner), r.epoch))
				}
			}
			continue
		}
		avail := sh.written(w.now)
		if sh.closedAt >= 0 && sh.closedAt <= w.now && l.pos == avail && l.acked == l.pos {
			applied, answered := k.send("write")
			ok := applied && w.finish(key, k.id, l.epoch, l.acked)
			switch {
			case !answered:
				k.logf("finish %s: no answer", key)
			case ok:
				w.stats.finishes++
				k.logf("finishes %s at %d", key, l.acked)
				k.drop(key, "")
			default:
				r := w.rowOf(key)
				w.stats.rejected++
				k.drop(key, fmt.Sprintf("finish %s rejected: owner %s epoch %d", key, orNone(r.owner), r.epoch))
			}
			continue
		}
		if avail > l.pos {
			w.deliver(k, key, l, avail)
			l.batches = append(l.batches, batch{upTo: avail, ackAt: w.now + w.r.Int64N(cfg.ackMax+1)})
			l.pos = avail
		}
		if l.acked > l.ckpt {
			applied, answered := k.send("write")
			ok := applied && w.checkpoint(key, k.id, l.epoch, l.acked)
			switch {
			case !answered:
			case !ok:
				r := w.rowOf(key)
				w.stats.rejected++
				k.drop(key, fmt.Sprintf("checkpoint %s epoch %d rejected: owner %s epoch %d", key, l.epoch, orNone(r.owner), r.epoch))
			default:
				l.ckpt = l.acked
				if r := w.rowOf(key); r.handoffTo != "" && r.handoffTo != k.id {
					k.stop(key, l, r.handoffTo)
				}
			}
		}
	}
}

// deliver: k delivers records (l.pos, upTo] of key. The invariants of delivery are checked here.
func (w *world) deliver(k *worker, key skey, l *lease, upTo int64) {
	w.stats.deliveries++
	w.stats.records += int(upTo - l.pos)
	w.stats.checks += 1 + len(w.workers) + len(w.shards[key].parents)
	r := w.rowOf(key)
	if r.owner == k.id && r.epoch == l.epoch {
		// The owner of the current epoch: after a graceful move (a hand-over, a claim of a
		// free shard) it must not deliver again what the previous owner delivered in its
		// epoch; after a steal or a force it may (at-least-once), and so may a worker that
		// re-took its own lease, lost the answer and dropped its unacknowledged batches.
		if ch, ok := w.changes[key][l.epoch]; ok && l.pos < ch.hiThen && ch.kind != "steal" && ch.kind != "force" && ch.kind != "retake" {
			w.violate("%s redelivers %s from %d after a %s (delivered up to %d before)", k.id, key, l.pos+1, ch.kind, ch.hiThen)
		}
		w.hi[key] = max(w.hi[key], upTo)
	} else {
		// A stale owner still delivering: only allowed for a short while after a forced hand-off.
		ch := w.changes[key][l.epoch+1]
		if ch.kind == "force" && ch.from == k.id && w.now-ch.at <= w.cfg.lease {
			w.stats.forcedOverlaps++
		} else {
			w.violate("%s delivers %s at epoch %d but the row says owner %s epoch %d (epoch %d: %s from %s at %s)",
				k.id, key, l.epoch, orNone(r.owner), r.epoch, l.epoch+1, ch.kind, ch.from, ms(ch.at))
		}
	}
	for _, o := range w.workers {
		if o == k || !o.delivering(key) {
			continue
		}
		ol := o.leases[key]
		stale, cur := o, k
		if ol.epoch > l.epoch {
			stale, cur = k, o
		}
		ch := w.changes[key][stale.leases[key].epoch+1]
		if ch.kind == "force" && ch.from == stale.id && w.now-ch.at <= w.cfg.lease {
			continue
		}
		w.violate("%s and %s both deliver %s (epochs %d and %d)", cur.id, stale.id, key, cur.leases[key].epoch, stale.leases[key].epoch)
	}
	sh := w.shards[key]
	for _, p := range sh.parents {
		ps := w.shards[skey{key.stream, p}]
		if w.listed(ps) && !w.rowOf(ps.key).finished {
			w.violate("%s reads child %s before its parent %s finished", k.id, key, p)
		}
	}
}

// --- the event loop ---

// next returns the worker with the earliest timer and which timer (0 heartbeat, 1 read, 2 work,
// 3 the writes planned).
func (w *world) next() (*worker, int, int64) {
	var best *worker
	which, at := 0, int64(-1)
	for _, k := range w.workers {
		if k.crashed {
			continue
		}
		for i, t := range [4]int64{k.hbAt, k.readAt, k.workAt, k.actAt} {
			if best == nil || t < at {
				best, which, at = k, i, t
			}
		}
	}
	return best, which, at
}

// runUntil advances the world to t, running every worker event due before or at t.
func (w *world) runUntil(t int64) {
	for {
		k, which, at := w.next()
		if k == nil || at > t {
			break
		}
		w.now = at
		w.stats.events++
		if at < k.pausedUntil {
			k.hbAt, k.readAt, k.workAt = max(k.hbAt, k.pausedUntil), max(k.readAt, k.pausedUntil), max(k.workAt, k.pausedUntil)
			if k.actAt != never {
				k.actAt = max(k.actAt, k.pausedUntil)
			}
			continue
		}
		if !k.resumed {
			k.resume()
		}
		// The fence is a matter of the worker's clock: it holds from the moment the deadline
		// passes, whatever the worker was doing (or not doing: paused) then.
		k.fenceCheck()
		switch which {
		case 0:
			k.heartbeat()
		case 1:
			k.read()
		case 2:
			k.work()
		case 3:
			k.act()
		}
	}
	w.now = max(w.now, t)
}

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

// pause freezes a worker for d (its clock runs on). zombie: a checkpoint write prepared before
// the pause goes out first when it resumes.
func (w *world) pause(id string, d int64, zombie bool) error {
	k := w.byID[id]
	if k == nil || k.crashed || w.now < k.pausedUntil {
		return fmt.Errorf("no running worker %s", id)
	}
	k.pausedUntil, k.resumed, k.zombie = w.now+d, false, zombie && len(k.leases) > 0
	w.stats.pauses++
	if d > w.cfg.lease {
		w.stats.longPauses++
	}
	w.logf("%s pauses for %s", id, ms(d))
	return nil
}

// cut cuts a worker off from the table for d: every request it makes is lost, while its
// readers go on (Kinesis still answers). Self-fencing is what stops them.
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

func (w *world) running() []*worker {
	var out []*worker
	for _, k := range w.workers {
		if k.running() {
			out = append(out, k)
		}
	}
	return out
}

// stable reports whether the fleet is at rest: every running worker unfenced, no shard closed
// but unfinished, every readable shard owned by a running worker that reads it, no pending
// request, and every running worker at floor or ceil. Otherwise it says why not.
func (w *world) stable() (bool, string) {
	w.stats.checks++
	run := w.running()
	if len(run) == 0 || len(run) != countIf(w.workers, func(k *worker) bool { return !k.crashed }) {
		return false, "a worker is paused"
	}
	load := map[string]int{}
	byID := map[string]*worker{}
	for _, k := range run {
		if k.fencedNow() {
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
		r := w.rowOf(key)
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
		if l := k.leases[key]; l == nil || l.epoch != r.epoch || l.stopping || l.retaking {
			return false, fmt.Sprintf("%s: %s does not read it", key, k.id)
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

// ownersNow is a fingerprint of the owners, to see that a stable fleet stays still. (Epochs
// may move without an owner changing: a worker that fenced itself re-takes its own leases.)
func (w *world) ownersNow() string {
	var b strings.Builder
	for _, key := range w.order {
		fmt.Fprintf(&b, "%s=%s ", key, w.rowOf(key).owner)
	}
	return b.String()
}

func sortedKeys[V any](m map[skey]V) []skey {
	keys := make([]skey, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b skey) int {
		if c := cmp.Compare(a.stream, b.stream); c != 0 {
			return c
		}
		return cmp.Compare(a.id, b.id)
	})
	return keys
}

func sortedIDs[V any](m map[string]V) []string {
	ids := make([]string, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}
