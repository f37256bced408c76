package output

import (
	"cmp"
	"container/heap"
	"context"
	"slices"
	"sync"
	"time"

	"github.com/benthos-kinesis/benthos-kinesis/internal/kpl"
)

// The records of every batch in flight wait in one queue per shard, and one
// dispatcher drains the queues into requests as each shard's budget allows,
// the way the KPL's per-shard limiter and collector do. Waiting for budget
// costs one timer for the whole output, however many records wait. A request
// starts once a shard's buckets hold most of a burst (or all that shard has
// queued) and takes what the other shards can send at that moment too, so
// requests stay large at the limit. Each WriteBatch waits for its own
// records' results only.
//
// Order: a batch's records for one shard form a lane, sent in batch order
// with at most one request of the lane in flight, so records of one key in a
// batch land in order unless one is retried, as when each batch sent its own
// requests one after the other. Lanes of different batches go concurrently,
// so a shard's throughput does not hang on the round trip. With
// order_per_key, a key's records are queued one at a time instead, each
// after the one before it is done.

// batchJob is one WriteBatch waiting for its records.
type batchJob struct {
	recs      []outRecord
	pending   int           // records not done yet
	done      chan struct{} // closed when pending reaches zero
	abandoned bool          // WriteBatch has returned (its context ended): drop the rest
}

// lane is one batch's fresh records for one shard, in batch order.
type lane struct {
	q    *shardQueue
	job  *batchJob
	recs []*outRecord
	head int  // recs[head:] wait
	busy bool // a request of the lane is in flight
}

func (l *lane) waiting() int { return len(l.recs) - l.head }

// shardQueue holds the records of one shard waiting to be sent.
type shardQueue struct {
	shard   *shardState // nil: records no open shard covers (mid-reshard), sent unpaced
	loose   recordFIFO  // free to go in any request: retries whose backoff ended, and order_per_key's records
	lanes   []*lane     // in arrival order
	retries retryHeap   // retries waiting out their backoff
	count   int         // records in loose and lanes
	bytes   int         // their size
	free    int         // lanes neither busy nor empty
}

func (q *shardQueue) idle() bool {
	return q.count == 0 && len(q.retries) == 0 && len(q.lanes) == 0
}

// dispatcher is the queues of one connection of the writer.
type dispatcher struct {
	w           *kinesisWriter
	maxInFlight int             // requests in flight at most (max_in_flight)
	wake        chan struct{}   // something changed: look again
	agg         *kpl.Aggregator // aggregation on: packs records as requests are filled (under mu)

	mu       sync.Mutex
	routed   *shardMap                   // the shard map the queues follow
	queues   map[*shardState]*shardQueue // with records or lanes; nil key: unmapped
	keys     map[string]*recordFIFO      // order_per_key: the records behind each key's queued one
	inFlight int
	seq      uint64
}

func newDispatcher(w *kinesisWriter) *dispatcher {
	d := &dispatcher{
		w:           w,
		maxInFlight: max(1, w.conf.maxInFlight),
		wake:        make(chan struct{}, 1),
		queues:      map[*shardState]*shardQueue{},
	}
	if w.conf.orderPerKey {
		d.keys = map[string]*recordFIFO{}
	}
	if w.conf.aggMaxSize > 0 {
		// The config checks keep the size above the KPL's minimum.
		d.agg, _ = kpl.NewAggregator(w.conf.aggMaxSize)
	}
	return d
}

func (d *dispatcher) signal() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// enqueue queues the records of job at indexes idx, in that order.
func (d *dispatcher) enqueue(job *batchJob, idx []int) {
	d.mu.Lock()
	d.followShardMap()
	job.pending = len(idx)
	for _, i := range idx {
		r := &job.recs[i]
		r.job, r.seq = job, d.seq
		d.seq++
		if d.keys != nil {
			if line, ok := d.keys[r.partitionKey]; ok {
				// An earlier record of the key is pending: this one waits
				// until it is done.
				if line == nil {
					line = &recordFIFO{}
					d.keys[r.partitionKey] = line
				}
				line.push(r)
				continue
			}
			d.keys[r.partitionKey] = nil
			d.pushLoose(r)
			continue
		}
		d.pushLane(r)
	}
	d.mu.Unlock()
	d.signal()
}

// pushLane appends r to its job's lane of r's shard. A job's records are
// queued together, so that lane is the queue's last one if it exists.
func (d *dispatcher) pushLane(r *outRecord) {
	q := d.queueFor(r)
	var l *lane
	if n := len(q.lanes); n > 0 && q.lanes[n-1].job == r.job {
		l = q.lanes[n-1]
	} else {
		l = &lane{q: q, job: r.job}
		q.lanes = append(q.lanes, l)
	}
	if l.waiting() == 0 && !l.busy {
		q.free++
	}
	l.recs = append(l.recs, r)
	q.count++
	q.bytes += r.size
}

func (d *dispatcher) pushLoose(r *outRecord) {
	q := d.queueFor(r)
	q.loose.push(r)
	q.count++
	q.bytes += r.size
}

// abandon drops what is left of a job whose WriteBatch returned early: its
// queued records are never sent (Benthos will send the batch again).
func (d *dispatcher) abandon(job *batchJob) {
	d.mu.Lock()
	job.abandoned = true
	d.mu.Unlock()
	d.signal()
}

// queueFor routes r by the shard map the queues follow.
func (d *dispatcher) queueFor(r *outRecord) *shardQueue {
	var s *shardState
	if d.routed != nil {
		s = d.routed.lookup(r.hash)
	}
	r.shard = s
	q := d.queues[s]
	if q == nil {
		q = &shardQueue{shard: s}
		d.queues[s] = q
	}
	return q
}

// followShardMap moves the records queued for shards the latest map no
// longer has (closed by a reshard, or a gap now covered) to the shards that
// own their hash keys now, in queue order. Open shards keep their hash-key
// ranges, so no moved record lands behind a newer one.
func (d *dispatcher) followShardMap() {
	m := d.w.shardMap.Load()
	if m == d.routed {
		return
	}
	open := make(map[*shardState]bool, len(m.ranges))
	for _, r := range m.ranges {
		open[r.shard] = true
	}
	d.routed = m
	var loose, fresh []*outRecord
	for s, q := range d.queues {
		if s != nil && open[s] {
			continue
		}
		loose = append(loose, q.loose.drain()...)
		loose = append(loose, q.retries...)
		for _, l := range q.lanes {
			fresh = append(fresh, l.recs[l.head:]...)
			clear(l.recs[l.head:])
			l.recs = l.recs[:l.head]
		}
		q.retries, q.count, q.bytes, q.free = nil, 0, 0, 0
		// Busy lanes stay until their request is booked; the queue goes
		// once it is idle.
		q.lanes = slices.DeleteFunc(q.lanes, func(l *lane) bool { return !l.busy })
		if q.idle() {
			delete(d.queues, s)
		}
	}
	bySeq := func(a, b *outRecord) int { return cmp.Compare(a.seq, b.seq) }
	slices.SortFunc(loose, bySeq)
	slices.SortFunc(fresh, bySeq)
	now := d.w.now()
	for _, r := range loose {
		if r.notBefore.After(now) {
			heap.Push(&d.queueFor(r).retries, r)
			continue
		}
		d.pushLoose(r)
	}
	for _, r := range fresh {
		d.pushLane(r)
	}
}

// next chooses the next request to send, or says how long until one may be
// ready (zero: not before something else happens).
func (d *dispatcher) next(now time.Time) (*request, time.Duration) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.inFlight >= d.maxInFlight {
		return nil, 0
	}
	d.followShardMap()
	var (
		wait  time.Duration
		first *shardQueue
	)
	for s, q := range d.queues {
		for r := q.retries.popDue(now); r != nil; r = q.retries.popDue(now) {
			q.loose.push(r)
			q.count++
			q.bytes += r.size
		}
		d.dropAbandoned(q)
		if q.idle() {
			delete(d.queues, s)
			continue
		}
		if q.loose.len() == 0 && q.free == 0 {
			// Nothing to send before a backoff ends or a request is booked.
			if len(q.retries) > 0 {
				wait = minWait(wait, q.retries.nextDue().Sub(now))
			}
			continue
		}
		if first == nil {
			// A request starts once a shard can send most of a burst, or
			// all it has: sending as soon as one record fits would make
			// requests of a record or two at the shard limit.
			if dl := q.limiterWait(now, d.w.conf.aggMaxSize); dl > 0 {
				wait = minWait(wait, dl)
				continue
			}
			first = q
		}
	}
	if first == nil {
		return nil, wait
	}
	req := &request{}
	refused := d.fillFrom(req, first, now)
	for _, q := range d.queues {
		if req.full() {
			break
		}
		if q != first {
			d.fillFrom(req, q, now)
		}
	}
	if len(req.recs) == 0 {
		// The shard's budget went to nothing sendable: look again when
		// its limiter says.
		return nil, max(refused, time.Millisecond)
	}
	d.inFlight++
	return req, 0
}

// dropAbandoned drops the records of abandoned jobs that wait at the heads
// of q, so they neither count nor block.
func (d *dispatcher) dropAbandoned(q *shardQueue) {
	for r := q.loose.peek(); r != nil && r.job.abandoned; r = q.loose.peek() {
		q.loose.pop()
		q.count--
		q.bytes -= r.size
		d.release(r)
	}
	q.lanes = slices.DeleteFunc(q.lanes, func(l *lane) bool {
		if l.busy || (l.waiting() > 0 && !l.job.abandoned) {
			return false
		}
		if l.waiting() > 0 {
			q.free--
			for _, r := range l.recs[l.head:] {
				q.count--
				q.bytes -= r.size
			}
		}
		return true
	})
}

// startFill is the share of a shard's burst that starts a request: a
// request that waited for the whole burst would lose what the bucket cannot
// hold for as long as the dispatcher wakes late.
const startFill = 0.9

// limiterWait is how long until q's shard can send startFill of a burst, or
// all q holds if that is less. With aggregation (aggMax > 0) what q holds
// makes about one Kinesis record per aggMax bytes.
func (q *shardQueue) limiterWait(now time.Time, aggMax int) time.Duration {
	if q.shard == nil || q.shard.limiter == nil {
		return 0
	}
	n := q.count
	if aggMax > 0 {
		n = min(n, (q.bytes+aggMax-1)/aggMax)
	}
	return q.shard.limiter.waitFor(now, n, q.bytes, startFill)
}

// fillFrom fills req from q, aggregating when that is on and q is a shard's:
// records no open shard covers go as they are, since nothing says they share
// a shard.
func (d *dispatcher) fillFrom(req *request, q *shardQueue, now time.Time) time.Duration {
	if d.agg != nil && q.shard != nil && q.shard.limiter != nil {
		return d.fillAggregated(req, q, now)
	}
	return d.fill(req, q, now)
}

// fill moves records of q into req, its loose records first, then its free
// lanes in order, while they fit and the shard's limiter admits them. It
// returns the limiter's wait when it refused a record.
func (d *dispatcher) fill(req *request, q *shardQueue, now time.Time) (refused time.Duration) {
	take := func(r *outRecord) (ok, stop bool) {
		if !req.fits(r) {
			// A record too large to share the request waits for one of its
			// own; anything else means the request is full.
			return false, r.size <= maxRequestBytes
		}
		if q.shard != nil && q.shard.limiter != nil {
			if ok, wait := q.shard.limiter.take(now, r.size); !ok {
				refused = wait
				return false, true
			}
		}
		req.add(q, r)
		q.count--
		q.bytes -= r.size
		return true, req.alone
	}
	for r := q.loose.peek(); r != nil; r = q.loose.peek() {
		if r.job.abandoned {
			q.loose.pop()
			q.count--
			q.bytes -= r.size
			d.release(r)
			continue
		}
		ok, stop := take(r)
		if ok {
			q.loose.pop()
		}
		if stop {
			return refused
		}
		if !ok {
			break
		}
	}
	for _, l := range q.lanes {
		if l.busy || l.waiting() == 0 || l.job.abandoned {
			continue
		}
		took, stop := false, false
		for l.waiting() > 0 {
			var ok bool
			if ok, stop = take(l.recs[l.head]); !ok {
				break
			}
			l.recs[l.head] = nil
			l.head++
			took = true
			if stop {
				break
			}
		}
		if took {
			l.busy = true
			q.free--
			req.lanes = append(req.lanes, l)
		}
		if stop {
			break
		}
	}
	return refused
}

// finish books a record as done (landed, or failed for good) and lets the
// next record of its key go.
func (d *dispatcher) finish(r *outRecord) {
	r.done = true
	if job := r.job; !job.abandoned {
		job.pending--
		if job.pending == 0 {
			close(job.done)
		}
	}
	d.release(r)
}

// release queues the record after r of r's key, when order_per_key holds
// them back.
func (d *dispatcher) release(r *outRecord) {
	if d.keys == nil {
		return
	}
	line := d.keys[r.partitionKey]
	for line != nil && line.len() > 0 {
		next := line.pop()
		if next.job.abandoned {
			continue
		}
		d.pushLoose(next)
		return
	}
	delete(d.keys, r.partitionKey)
}

// requeue puts a record that will be retried back in its shard's queue, to
// wait out its backoff.
func (d *dispatcher) requeue(r *outRecord) {
	if r.job.abandoned {
		d.release(r)
		return
	}
	heap.Push(&d.queueFor(r).retries, r)
}

// booked frees the lanes of a request whose records are all booked.
func (d *dispatcher) booked(req *request) {
	d.inFlight--
	for _, l := range req.lanes {
		l.busy = false
		if l.waiting() > 0 {
			l.q.free++
		}
	}
}

// run sends requests as the queues and the shards' budgets allow, until ctx
// ends.
func (d *dispatcher) run(ctx context.Context, senders *sync.WaitGroup) {
	for {
		req, wait := d.next(d.w.now())
		if req != nil {
			senders.Add(1)
			go func() {
				defer senders.Done()
				d.w.send(ctx, d, req)
			}()
			continue
		}
		var timer <-chan time.Time
		if wait > 0 {
			timer = d.w.after(wait)
		}
		select {
		case <-ctx.Done():
			return
		case <-d.wake:
		case <-timer:
		}
	}
}
