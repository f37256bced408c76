package input

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/benthos-kinesis/benthos-kinesis/checkpointer/ack"
	"github.com/benthos-kinesis/benthos-kinesis/internal/kinesisapi"
	"github.com/benthos-kinesis/benthos-kinesis/internal/kpl"
)

// delivery is one batch on its way to ReadBatch. ctx is its consumer's
// claim on the shard: once it ends (the consumer was stopped or its shard
// lost) the delivery is no longer this worker's to hand out, and it is
// abandoned instead. f is the consumer's record of the batch (nil for
// deliveries made by hand in tests).
type delivery struct {
	batch service.MessageBatch
	ctx   context.Context
	f     *flight
}

// flightState is where a delivered batch stands.
type flightState uint8

const (
	// flightOutstanding: on its way to the pipeline, in it, or waiting to
	// be replayed; drain waits for it.
	flightOutstanding flightState = iota
	// flightAbandoned: it will never be acknowledged: dropped before the
	// pipeline saw it, or left unanswered by a pipeline that stopped (see
	// handedOut). It no longer counts as outstanding, but it stays
	// unacknowledged in the tracker, so the checkpoint never moves past it
	// and the next reader of the shard reads it again.
	flightAbandoned
	// flightDone: acknowledged (or nacked without auto_replay_nacks).
	flightDone
)

// flight is one batch of a consumer from its delivery to its end. Its
// fields are guarded by s.mu.
type flight struct {
	s     *shardConsumer
	id    ack.BatchID
	state flightState

	// readCtx is the context of the ReadBatch that handed it to the
	// pipeline, until it is answered; expiry gives it up when that ends.
	readCtx    context.Context
	stopExpiry func() bool
}

// done acknowledges the batch: the pipeline is done with it. An abandoned
// batch that is acknowledged after all is acknowledged too: its records
// were processed.
func (f *flight) done() {
	if f == nil {
		return
	}
	s := f.s
	s.mu.Lock()
	defer s.mu.Unlock()
	f.answeredLocked()
	switch f.state {
	case flightOutstanding:
		s.outstanding--
	case flightAbandoned:
		s.abandoned--
	default:
		return
	}
	f.state = flightDone
	s.tracker.Ack(f.id)
	s.cond.Broadcast()
}

// abandon gives up on the batch: it will never be acknowledged.
func (f *flight) abandon() {
	if f == nil {
		return
	}
	f.s.mu.Lock()
	defer f.s.mu.Unlock()
	f.abandonLocked()
}

func (f *flight) abandonLocked() {
	if f.state != flightOutstanding {
		return
	}
	f.state = flightAbandoned
	f.s.outstanding--
	f.s.abandoned++
	f.s.cond.Broadcast()
}

// handedOut records that ReadBatch(readCtx) gave the batch to the
// pipeline. Benthos drops a batch ReadBatch returns as it stops (its input
// loop on a soft stop: it neither passes it on nor answers for it), and
// stops waiting for answers at a hard stop. So once the consumer has
// stopped (its shard is handed over, finished or released: the drain that
// follows must end) and readCtx has ended too (Benthos stopped reading),
// an unanswered batch is abandoned. While readCtx lives the drain waits
// for it, as the pipeline still has it.
func (f *flight) handedOut(readCtx context.Context) {
	if f == nil {
		return
	}
	s := f.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if f.state != flightOutstanding || readCtx.Done() == nil {
		return
	}
	f.readCtx = readCtx
	if s.inPipeline == nil {
		s.inPipeline = map[*flight]struct{}{}
	}
	s.inPipeline[f] = struct{}{}
	if s.claim != nil && s.claim.Err() != nil {
		f.expireWithReadLocked()
	}
}

// answered records that the pipeline answered for the batch.
func (f *flight) answered() {
	if f == nil {
		return
	}
	f.s.mu.Lock()
	defer f.s.mu.Unlock()
	f.answeredLocked()
}

func (f *flight) answeredLocked() {
	if f.readCtx == nil {
		return
	}
	delete(f.s.inPipeline, f)
	f.readCtx = nil
	if f.stopExpiry != nil {
		f.stopExpiry()
		f.stopExpiry = nil
	}
}

// expireWithReadLocked abandons the batch, unanswered, once readCtx ends.
func (f *flight) expireWithReadLocked() {
	if f.stopExpiry != nil {
		return
	}
	f.stopExpiry = context.AfterFunc(f.readCtx, func() {
		f.s.mu.Lock()
		defer f.s.mu.Unlock()
		if f.readCtx == nil {
			return // answered meanwhile
		}
		delete(f.s.inPipeline, f)
		f.readCtx, f.stopExpiry = nil, nil
		f.abandonLocked()
	})
}

// shard identifies the consumer of the batch, for keeping a shard's
// batches in order; nil for deliveries made by hand.
func (d delivery) shard() *shardConsumer {
	if d.f == nil {
		return nil
	}
	return d.f.s
}

// before reports whether d was delivered before e by the same consumer.
func (d delivery) before(e delivery) bool {
	return d.f != nil && e.f != nil && d.f.s == e.f.s && d.f.id < e.f.id
}

// Replays of nacked batches wait between attempts: the first goes again at
// once, later ones after a backoff, so that a batch the pipeline keeps
// rejecting does not spin (Benthos' own AutoRetryNacks waits too).
const (
	replayBackoffBase = 10 * time.Millisecond
	replayBackoffMax  = time.Second
)

// replayDelay is the wait before a batch handed out attempts times (and
// nacked each time) goes again.
func replayDelay(attempts int) time.Duration {
	if attempts <= 1 {
		return 0
	}
	return min(replayBackoffBase<<min(attempts-2, 16), replayBackoffMax)
}

// replayQueue holds the deliveries that go to ReadBatch again: nacked ones
// (auto_replay_nacks) and ones ReadBatch took but could not hand out before
// its context ended. They go before anything new from their shard, in
// shard order; each waits for its time, and for the earlier ones of its
// shard. A delivery whose consumer stops reading while it waits here is
// abandoned at once: the shard is no longer this worker's to replay, and
// drain must not wait for it. The zero value is ready to use.
type replayQueue struct {
	mu      sync.Mutex
	entries []*replayEntry
	changed chan struct{} // closed (and replaced) on every push
}

type replayEntry struct {
	d        delivery
	attempts int       // times handed out so far
	at       time.Time // not before
	stop     func() bool
}

// push queues d, handed out attempts times so far, to go again at (or
// after) at: before the later batches of its shard, after the rest.
func (q *replayQueue) push(d delivery, attempts int, at time.Time) {
	e := &replayEntry{d: d, attempts: attempts, at: at}
	q.mu.Lock()
	i := len(q.entries)
	for j, o := range q.entries {
		if d.before(o.d) {
			i = j
			break
		}
	}
	q.entries = slices.Insert(q.entries, i, e)
	// Under q.mu, which take holds when it removes the entry; if the
	// consumer has already stopped, this runs at once (in its own
	// goroutine, once q.mu is free) and finds the entry.
	e.stop = context.AfterFunc(d.ctx, func() {
		if q.remove(e) {
			d.f.abandon()
		}
	})
	q.signal()
	q.mu.Unlock()
}

// pushIfHeld queues d (new from its consumer) behind the batches of its
// shard that wait here, if any, and reports whether it did.
func (q *replayQueue) pushIfHeld(d delivery) bool {
	q.mu.Lock()
	held := false
	if s := d.shard(); s != nil {
		for _, o := range q.entries {
			if o.d.shard() == s {
				held = true
				break
			}
		}
	}
	q.mu.Unlock()
	if held {
		q.push(d, 0, time.Time{})
	}
	return held
}

// signal wakes the readers waiting for the queue; q.mu is held.
func (q *replayQueue) signal() {
	if q.changed != nil {
		close(q.changed)
		q.changed = nil
	}
}

func (q *replayQueue) remove(e *replayEntry) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	i := slices.Index(q.entries, e)
	if i < 0 {
		return false
	}
	q.entries = slices.Delete(q.entries, i, i+1)
	return true
}

// take removes and returns the first entry due at now none of whose
// shard's earlier entries waits. Otherwise it returns how long until the
// first waiting entry is due (0: none waits) and a channel closed on the
// next push.
func (q *replayQueue) take(now time.Time) (*replayEntry, time.Duration, <-chan struct{}) {
	q.mu.Lock()
	var (
		waiting []*shardConsumer
		next    time.Duration
	)
	for i, e := range q.entries {
		s := e.d.shard()
		if slices.Contains(waiting, s) {
			continue
		}
		if wait := e.at.Sub(now); wait > 0 {
			waiting = append(waiting, s)
			if next == 0 || wait < next {
				next = wait
			}
			continue
		}
		q.entries = slices.Delete(q.entries, i, i+1)
		q.mu.Unlock()
		e.stop() // if it already ran, its remove failed: admit sees d.ctx ended
		return e, 0, nil
	}
	if q.changed == nil {
		q.changed = make(chan struct{})
	}
	changed := q.changed
	q.mu.Unlock()
	return nil, next, changed
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
	outstanding int                  // batches delivered and neither acknowledged nor abandoned
	abandoned   int                  // batches abandoned (never to be acknowledged)
	wasLost     bool                 // lost was called
	inPipeline  map[*flight]struct{} // handed out by ReadBatch and not answered yet

	hashRange   hashRange        // the shard's; user records of an aggregate outside it are skipped
	meta        *recordMeta      // used by the run goroutine only
	deaggregate bool             // split KPL aggregates into their user records
	users       []kpl.UserRecord // the run goroutine's buffer for split

	// cancel stops the consumer at once without waiting for its goroutine
	// (halt). Set by newShardConsumer, never changed: the coordinator may
	// call it directly.
	cancel context.CancelFunc

	// claim is the context of the deliveries: it spans the runs, and ends
	// when the consumer is halted, stopped or its shard lost (guarded by
	// mu, as are the fields below).
	claim     context.Context
	unclaim   context.CancelFunc
	cancelRun context.CancelFunc // ends the current run
	done      chan struct{}
	err       error // why run ended: errShardEnded, a read error, or a context error
}

func newShardConsumer(stream, shard string, reader *shardReader, resumeAfter ack.Position, c *consumerDeps) *shardConsumer {
	s := &shardConsumer{
		stream: stream, shard: shard, reader: reader,
		out: c.out, gate: c.gate, limit: c.limit, policy: c.policy, period: c.period, res: c.res, metrics: c.metrics,
		deaggregate: !c.raw,
		tracker:     ack.New(),
	}
	s.cond = sync.NewCond(&s.mu)
	s.cancel = s.halt
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
	// raw: deliver KPL aggregates as they are (deaggregate: false); the zero value splits them.
	raw bool
}

// start runs the consumer until ctx ends, the shard ends or reading fails,
// then calls ended (if set). It may be started again once done is closed:
// the reader and the tracker carry on where they were, and so do the
// deliveries of the earlier runs (a restart after a read error does not
// take them from the pipeline, nor their replays).
func (s *shardConsumer) start(ctx context.Context, ended func(*shardConsumer)) {
	s.mu.Lock()
	if s.cancelRun != nil {
		s.cancelRun() // the previous run's (it has ended: its context only)
	}
	if s.claim == nil || s.claim.Err() != nil {
		s.claim, s.unclaim = context.WithCancel(ctx)
	}
	runCtx, cancelRun := context.WithCancel(s.claim)
	stopAfter := context.AfterFunc(ctx, cancelRun) // in case ctx is not the claim's parent
	cancel := func() {
		stopAfter()
		cancelRun()
	}
	s.cancelRun = cancel
	done := make(chan struct{})
	s.done = done
	s.mu.Unlock()
	go func() {
		err := s.run(runCtx)
		cancel()
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

// stop stops reading and waits for the goroutine to exit. It ends the
// consumer's claim on its deliveries: those the pipeline does not have
// (waiting for ReadBatch, held by the gate, or waiting to be replayed) are
// abandoned, and so are those it has once the ReadBatch that handed them
// out has ended (see handedOut). Batches the pipeline has may still be
// acknowledged after it.
func (s *shardConsumer) stop() {
	s.halt()
	s.mu.Lock()
	done := s.done
	s.mu.Unlock()
	if done != nil {
		<-done
	}
}

// ended reports whether the consumer's last run has returned (it read its shard to the end, or
// failed) and none runs now.
func (s *shardConsumer) ended() bool {
	s.mu.Lock()
	done := s.done
	s.mu.Unlock()
	if done == nil {
		return true
	}
	select {
	case <-done:
		return true
	default:
		return false
	}
}

// halt is stop without the wait for the goroutine: once it returns, the
// consumer delivers nothing more (what it sent is abandoned when ReadBatch
// takes it, or where it waits).
func (s *shardConsumer) halt() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.unclaimLocked()
	s.cond.Broadcast() // wake a reader waiting for acks
}

func (s *shardConsumer) run(ctx context.Context) error {
	// undelivered is the first record the reader returned that was not handed out yet (in a
	// partial batch, or after the one being delivered). A run that ends before handing it out
	// rewinds the reader to it: the next run reads it again. Without that, a restart after a
	// read error carried on after the records of the partial batch, and later acknowledgements
	// moved the checkpoint past them (issue 9: ~3 % of a run lost while the reader was behind).
	var undelivered string
	defer func() {
		if undelivered != "" {
			s.reader.rewind(undelivered)
		}
	}()
	// floor: what was delivered already (or the checkpoint, at first). Reading may start before
	// it: after a rewind, or at the aggregate a checkpoint is inside of; what is not after it is
	// skipped.
	s.mu.Lock()
	floor := s.tracker.Last()
	s.mu.Unlock()
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
			return nil // the batch policy's processors dropped them all
		}
		return s.deliver(ctx, batch, pendingPos)
	}
	seqAt := func(recs []types.Record, i int) string {
		if i < len(recs) {
			return aws.ToString(recs[i].SequenceNumber)
		}
		return ""
	}
	for {
		// A timed batch must not wait for the reader's idle pause.
		if batcher != nil && len(pending) > 0 && s.period > 0 {
			if left := s.period - time.Since(firstAdded); left <= 0 {
				if err := flush(); err != nil {
					return err
				}
				undelivered = ""
			} else if left < s.reader.plannedDelay() {
				if err := kinesisapi.Sleep(ctx, left); err != nil {
					return err
				}
				if err := flush(); err != nil {
					return err
				}
				undelivered = ""
			}
		}
		f, err := s.reader.next(ctx)
		if errors.Is(err, errShardEnded) {
			if ferr := flush(); ferr != nil {
				return ferr
			}
			undelivered = ""
			return errShardEnded
		}
		if err != nil {
			return err
		}
		s.metrics.read(s.stream, s.shard, f)
		if undelivered == "" {
			undelivered = seqAt(f.records, 0)
		}
		meta := s.metaFor(f)
		for i := range f.records {
			rec := &f.records[i]
			seq := aws.ToString(rec.SequenceNumber)
			users, aggErr := s.split(rec)
			n := 1 // a plain record (or an aggregate that does not parse) is one message
			if users != nil {
				n = len(users) // an aggregate of no user records gives none
			}
			for j := range n {
				// The last user record of an aggregate stands for the whole record: a
				// checkpoint there resumes after the record, not inside it.
				sub := ack.WholeRecord
				if users != nil && j < n-1 {
					sub = uint64(j)
				}
				pos, err := ack.ParsePosition(seq, sub)
				if err != nil {
					return err
				}
				if pos.Compare(floor) <= 0 {
					continue // delivered before a rewind, or before the checkpoint inside an aggregate
				}
				if users != nil && !s.hashRange.holds(&users[j]) {
					// A producer aggregated it for this shard before a reshard; the KPL puts
					// the user records that do not belong again, to their own shard.
					s.metrics.kplOutOfRange.Incr(1, s.stream, s.shard)
					continue
				}
				var msg *service.Message
				if users != nil {
					msg = meta.userMessage(rec, &users[j], j)
				} else {
					msg = meta.message(rec)
					if aggErr != nil {
						msg.MetaSetMut("kinesis_kpl_error", aggErr.Error())
					}
				}
				// Where the next run starts if this one ends after msg is handed out.
				next := seqAt(f.records, i+1)
				if j < n-1 {
					next = seq
				}
				if batcher == nil {
					if err := s.deliver(ctx, service.MessageBatch{msg}, pos); err != nil {
						return err
					}
					undelivered = next
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
					undelivered = next
				}
			}
		}
		// Caught up with the shard: a partial batch would otherwise wait
		// (without a batching period, for ever) for records to come.
		if f.millisBehind == 0 {
			if err := flush(); err != nil {
				return err
			}
			undelivered = ""
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
	if err != nil {
		s.mu.Unlock()
		return err
	}
	f := &flight{s: s, id: id}
	s.outstanding++
	claim := s.claim
	s.mu.Unlock()
	// ReadBatch answers for it from here: it acknowledges it once the
	// pipeline is done with it (a nack too, without auto_replay_nacks: the
	// batch is dropped, as the built-in does), replays it on a nack, or
	// abandons it.
	if err := s.gate.send(ctx, s.out, delivery{batch: batch, ctx: claim, f: f}); err != nil {
		f.abandon()
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

// drain waits until every delivered batch is acknowledged or abandoned, or
// ctx ends, and returns the checkpoint then (valid: whether there is one).
// The checkpoint never passes an abandoned batch: allAcked tells whether
// there is one.
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

// allAcked reports whether every delivered batch was acknowledged: none is
// outstanding and none was abandoned, so the checkpoint covers all that was
// delivered (for a shard read to its end: it may be marked finished). False
// after lost.
func (s *shardConsumer) allAcked() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.outstanding == 0 && s.tracker.InFlight() == 0 && !s.wasLost
}

// lost forgets every unacknowledged batch: the shard is someone else's now
// and its checkpoint must never be written by this worker again. It ends
// the consumer's claim on its deliveries, as stop does.
func (s *shardConsumer) lost() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.unclaimLocked()
	s.wasLost = true
	s.tracker.Reset()
	s.cond.Broadcast()
}

// unclaimLocked ends the claim on the deliveries (and the run).
func (s *shardConsumer) unclaimLocked() {
	if s.unclaim != nil {
		s.unclaim()
	}
	for f := range s.inPipeline {
		f.expireWithReadLocked()
	}
}

// split returns the user records of a KPL aggregated record, or nil for a plain one (or with
// deaggregation off). An aggregate that does not parse (wrong checksum, bad protobuf) is passed
// through as one plain record, as the KCL does: err says why, and it is counted.
func (s *shardConsumer) split(rec *types.Record) (users []kpl.UserRecord, err error) {
	if !s.deaggregate || !kpl.IsAggregated(rec.Data) {
		return nil, nil
	}
	s.users, err = kpl.AppendDeaggregate(s.users[:0], rec.Data)
	if err != nil {
		s.metrics.kplMalformed.Incr(1, s.stream, s.shard)
		return nil, fmt.Errorf("KPL aggregate passed through as one record: %w", err)
	}
	if s.users == nil {
		s.users = []kpl.UserRecord{}
	}
	return s.users, nil
}

// hashRange is a shard's hash key range; the zero value (unknown) holds every key.
type hashRange struct {
	known      bool
	start, end kpl.HashKey
}

func parseHashRange(start, end string) (hashRange, error) {
	s, err := kpl.ParseHashKey(start)
	if err != nil {
		return hashRange{}, fmt.Errorf("starting hash key %q: %w", start, err)
	}
	e, err := kpl.ParseHashKey(end)
	if err != nil {
		return hashRange{}, fmt.Errorf("ending hash key %q: %w", end, err)
	}
	// The whole key space needs no check (and no MD5 per user record).
	if s == (kpl.HashKey{}) && e == (kpl.HashKey{Hi: ^uint64(0), Lo: ^uint64(0)}) {
		return hashRange{}, nil
	}
	return hashRange{known: true, start: s, end: e}, nil
}

// holds reports whether u's effective hash key (its explicit hash key, else its partition
// key's MD5) is in the range. A key that does not parse is kept: delivering it loses nothing.
func (r hashRange) holds(u *kpl.UserRecord) bool {
	if !r.known {
		return true
	}
	h, err := u.HashKey()
	if err != nil {
		return true
	}
	return !h.Less(r.start) && !r.end.Less(h)
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
	return m.build(rec, rec.Data, aws.ToString(rec.PartitionKey))
}

// build makes a message of data with rec's metadata and partitionKey.
func (m *recordMeta) build(rec *types.Record, data []byte, partitionKey any) *service.Message {
	msg := service.NewMessage(data)
	msg.MetaSetMut("kinesis_stream", m.stream)
	msg.MetaSetMut("kinesis_shard", m.shard)
	msg.MetaSetMut("kinesis_partition_key", partitionKey)
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

// userMessage makes a Benthos message of user record u, number sub of the KPL aggregate rec:
// the record's metadata with the user record's own keys and its sub-sequence number.
func (m *recordMeta) userMessage(rec *types.Record, u *kpl.UserRecord, sub int) *service.Message {
	msg := m.build(rec, u.Data, u.PartitionKey)
	msg.MetaSetMut("kinesis_sub_sequence_number", strconv.Itoa(sub))
	if u.ExplicitHashKey != "" {
		msg.MetaSetMut("kinesis_explicit_hash_key", u.ExplicitHashKey)
	}
	return msg
}
