package lease

import (
	"cmp"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/benthos-kinesis/benthos-kinesis/checkpointer"
	"github.com/benthos-kinesis/benthos-kinesis/checkpointer/ack"
	"github.com/benthos-kinesis/benthos-kinesis/checkpointer/balance"
)

// Phase is what this worker is doing with a shard it owns.
type Phase uint8

const (
	// Starting: owned; recording where it starts (OpSetStart) before it is read.
	Starting Phase = iota + 1
	// Reading: owned and read (or waiting out a back-off after its consumer failed).
	Reading
	// HandingOver: another worker asked for it; the consumer is stopped, its batches are
	// drained, then the hand-over is written.
	HandingOver
	// Finishing: read to its end; the batches are drained, then it is marked finished.
	Finishing
	// Releasing: shutting down; the batches are drained, then the lease is released.
	Releasing
)

var phaseNames = [...]string{Starting: "starting", Reading: "reading", HandingOver: "handing-over", Finishing: "finishing", Releasing: "releasing"}

func (p Phase) String() string {
	if p > 0 && int(p) < len(phaseNames) {
		return phaseNames[p]
	}
	return fmt.Sprintf("Phase(%d)", uint8(p))
}

// shard is one owned shard.
type shard struct {
	key   Key
	phase Phase
	epoch int64
	gen   uint64 // the consumer's generation: reports of older ones are ignored
	// reading: a consumer runs (Reading); false while it waits out a back-off.
	reading   bool
	restartAt time.Duration
	failures  int
	// retake: held across a fence; re-taken (epoch+1) before delivering again. retakeRound is
	// the fence round of the last re-take sent: one of an older round does not count.
	retake      bool
	retakeRound uint64
	// draining: a StopReading with Drain was sent and not yet answered.
	draining bool
	taker    string // HandingOver
	// After the drain: the final checkpoint.
	// start is where the current consumer started (a re-read after a drain with nothing newly
	// acknowledged resumes there, not at the row's older checkpoint).
	start    Start
	drained  bool
	pos      ack.Position
	hasPos   bool
	allAcked bool
	timedOut bool
	// unknown: the last write for the shard got no answer; the next read sent after it says
	// what became of it.
	unknown Op
	retries int    // of the shutdown release
	why     string // of a release other than at shutdown
	// checkpointed: when the last checkpoint write was asked for. Checkpoints are asked for
	// stalest first, so that with more shards than the writes keep up with, every shard's gap
	// stays near one round rather than up to two (the order of a map).
	checkpointed time.Duration
}

// request is a hand-off this worker asked for: forced once StealGracePeriod has passed.
type request struct {
	owner string
	epoch int64
	at    time.Duration
}

// streamState is what the machine knows of one stream.
type streamState struct {
	cfg      Stream
	explicit map[string]bool
	listed   []ListedShard
	index    map[string]int // listed by id
	listedAt time.Duration
	hasList  bool
	relist   bool
	rows     map[string]checkpointer.Lease
	rowsSent time.Duration
	hasRows  bool
	// A failing stream (listing or lease reads) is read again after a back-off and left out of
	// planning meanwhile; the others go on.
	failing  bool
	failures int
	retryAt  time.Duration
}

// Machine is one worker's lease protocol. It is not safe for concurrent use: one goroutine
// (the shell's loop) steps it.
type Machine struct {
	cfg Config
	rng *rand.Rand
	now time.Duration
	out []Intent

	streams map[string]*streamState
	order   []string // stream ids as configured
	owned   map[Key]*shard
	ownedIn map[string]int
	waiting map[Key]bool // shards whose consumer waits out a back-off

	writes  map[uint64]Write
	busy    map[Key]uint64
	settled map[Key]time.Duration // when each shard's last write was answered
	nextID  uint64
	removal map[string]bool // worker rows being removed

	live      *liveness
	requested map[Key]request

	// Fencing.
	lastBeat    time.Duration // send time of the last successful heartbeat; hasBeat: there is one
	hasBeat     bool
	fenced      bool
	round       uint64        // bumped whenever the deadline passes: re-takes of older rounds do not count
	recoveredAt time.Duration // send time of the first heartbeat that succeeded after the fence
	recovered   bool
	announced   bool // the first unfence of the machine is not a recovery worth a Change

	reading       bool // a ReadTable is in flight
	beat          bool // the event being stepped is a Tick with Beat: early work allowed
	nextRead      time.Duration
	nextCommit    time.Duration
	lastRebalance time.Duration
	rebalanced    bool

	shutting bool
	done     bool
}

// NewMachine returns the machine of one worker, fenced until its first heartbeat succeeds and
// its first read of the table comes back. now is the worker's clock.
func NewMachine(cfg Config, now time.Duration) (*Machine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	m := &Machine{
		cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, 0x6c65617365)), now: now,
		streams: map[string]*streamState{}, owned: map[Key]*shard{}, ownedIn: map[string]int{}, waiting: map[Key]bool{},
		writes: map[uint64]Write{}, busy: map[Key]uint64{}, settled: map[Key]time.Duration{}, removal: map[string]bool{},
		live: newLiveness(cfg.Self, cfg.LeasePeriod, cfg.HeartbeatPeriod), requested: map[Key]request{},
		fenced: true, nextRead: now, nextCommit: now + cfg.CommitPeriod,
	}
	for _, s := range cfg.Streams {
		if _, dup := m.streams[s.ID]; dup {
			continue
		}
		st := &streamState{cfg: s, relist: true}
		if len(s.Shards) > 0 {
			st.explicit = map[string]bool{}
			for _, id := range s.Shards {
				st.explicit[id] = true
			}
		}
		m.streams[s.ID] = st
		m.order = append(m.order, s.ID)
	}
	return m, nil
}

// Config returns the configuration with its defaults filled in.
func (m *Machine) Config() Config { return m.cfg }

// DeliverUntil is the fencing deadline: the send time of the last successful heartbeat plus
// Config.FenceAfter. ok is false before the first heartbeat.
func (m *Machine) DeliverUntil() (at time.Duration, ok bool) {
	return m.lastBeat + m.cfg.FenceAfter(), m.hasBeat
}

// Fenced reports whether delivery is paused.
func (m *Machine) Fenced() bool { return m.fenced }

// Owned returns the number of shards owned, per stream.
func (m *Machine) Owned() map[string]int { return m.ownedIn }

// Phase returns the phase of a shard this worker owns, and its epoch; 0 when not owned.
func (m *Machine) Phase(k Key) (Phase, int64) {
	if s := m.owned[k]; s != nil {
		return s.phase, s.epoch
	}
	return 0, 0
}

// Keys returns the owned shards, sorted.
func (m *Machine) Keys() []Key {
	keys := make([]Key, 0, len(m.owned))
	for k := range m.owned {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, compareKeys)
	return keys
}

func compareKeys(a, b Key) int {
	if a.Stream != b.Stream {
		if a.Stream < b.Stream {
			return -1
		}
		return 1
	}
	switch {
	case a.Shard < b.Shard:
		return -1
	case a.Shard > b.Shard:
		return 1
	}
	return 0
}

// Step feeds one event at time now (the worker's monotonic clock) and returns what to do. The
// returned slice is the caller's.
func (m *Machine) Step(now time.Duration, ev Event) []Intent {
	if now > m.now {
		m.now = now
	}
	m.out = nil
	// The deadline is judged before anything else: after a pause, the first event may be a
	// heartbeat sent after the deadline had passed, and moving the deadline before fencing
	// would let the worker deliver shards taken from it meanwhile (found by the fault suite's
	// zombie scenario).
	m.fenceCheck()
	switch e := ev.(type) {
	case Tick:
		m.beat = e.Beat
	case Heartbeat:
		m.heartbeat(e)
	case TableRead:
		m.tableRead(e)
	case WriteDone:
		m.writeDone(e)
	case ReadingEnded:
		m.readingEnded(e)
	case Drained:
		m.drainedEv(e)
	case Progress:
		m.progress(e)
	case Shutdown:
		m.shutdown()
	default:
		panic(fmt.Sprintf("lease: unknown event %T", ev))
	}
	m.advance()
	m.beat = false
	out := m.out
	m.out = nil
	return out
}

// NextWake is the time by which the machine wants a Tick (if no other event comes first). It
// counts only what a Tick would act on, so that a shell that ticks at it never spins.
func (m *Machine) NextWake() time.Duration {
	next := m.now + m.cfg.HeartbeatPeriod
	consider := func(t time.Duration) {
		if t < next {
			next = t
		}
	}
	if at, ok := m.DeliverUntil(); ok && !m.fenced {
		consider(at)
	}
	if !m.reading && !m.done {
		consider(m.nextRead)
	}
	if !m.shutting && !m.fenced {
		consider(m.nextCommit)
		for k, r := range m.requested {
			if m.busy[k] == 0 && m.owned[k] == nil {
				consider(r.at + m.cfg.StealGracePeriod)
			}
		}
	}
	for k := range m.waiting {
		consider(m.owned[k].restartAt)
	}
	return max(next, m.now)
}

func (m *Machine) emit(i Intent) { m.out = append(m.out, i) }

func (m *Machine) change(c Change) { m.emit(c) }

func (m *Machine) write(w Write) {
	m.nextID++
	w.ID = m.nextID
	m.writes[w.ID] = w
	if w.Op != OpRemoveWorker {
		m.busy[w.Key] = w.ID
	}
	m.emit(w)
}

// backoff is the exponential back-off with equal jitter after n failures.
func (m *Machine) backoff(n int) time.Duration {
	d := m.cfg.RestartMin
	for i := 1; i < n && d < m.cfg.RestartMax; i++ {
		d *= 2
	}
	d = min(d, m.cfg.RestartMax)
	return d/2 + time.Duration(m.rng.Int64N(int64(d/2)+1))
}

// --- fencing -------------------------------------------------------------------------------

func (m *Machine) heartbeat(e Heartbeat) {
	if e.Err != nil {
		return
	}
	if !m.hasBeat || e.Sent > m.lastBeat {
		m.lastBeat, m.hasBeat = e.Sent, true
		at, _ := m.DeliverUntil()
		m.emit(DeliverUntil{At: at})
	}
	if m.fenced && !m.recovered && m.now < m.lastBeat+m.cfg.FenceAfter() {
		m.recovered, m.recoveredAt = true, e.Sent
		m.nextRead = m.now // re-read the table at once
	}
}

// fenceCheck fences once the deadline has passed: every lease held is re-taken before the worker
// delivers again. A deadline that passes again while fenced (a pause after the heartbeat came
// back) starts the recovery over: re-takes applied before it count for nothing, since others
// may have judged this worker dead since.
func (m *Machine) fenceCheck() {
	at, ok := m.DeliverUntil()
	if (ok && m.now < at) || (m.fenced && !m.recovered) {
		return
	}
	m.round++
	m.recovered = false
	for _, s := range m.owned {
		if s.phase == Reading || s.phase == Starting {
			s.retake = true
		}
	}
	if m.fenced {
		return
	}
	m.fenced = true
	reason := fmt.Sprintf("no heartbeat reached the table for %v", m.cfg.FenceAfter())
	m.emit(Fence{Reason: reason})
	m.change(Change{Event: Fenced, Reason: reason})
}

// unfenceCheck lifts the fence once a heartbeat went through, a read sent after it came back,
// and every lease held has been re-taken.
func (m *Machine) unfenceCheck() {
	if !m.fenced || !m.recovered || m.shutting {
		return
	}
	if at, _ := m.DeliverUntil(); m.now >= at {
		return
	}
	if !m.live.valid || m.live.at < m.recoveredAt {
		return
	}
	for _, s := range m.owned {
		if s.retake {
			return
		}
	}
	m.fenced = false
	m.emit(Unfence{})
	if m.announced {
		m.change(Change{Event: Unfenced, Reason: "heartbeats reach the table again"})
	}
	m.announced = true
}

// --- time ----------------------------------------------------------------------------------

// advance does what is due at m.now.
func (m *Machine) advance() {
	m.fenceCheck()
	if m.recovered && m.fenced && !m.shutting {
		m.retakes()
	}
	m.unfenceCheck()
	readAt, commitAt := m.nextRead, m.nextCommit
	if m.beat {
		readAt, commitAt = readAt-m.cfg.ReadSlack, commitAt-m.cfg.CommitSlack
	}
	if !m.reading && m.now >= readAt && !m.done {
		m.readTable()
	}
	if !m.shutting && !m.fenced && m.now >= commitAt {
		m.nextCommit = m.now + m.cfg.CommitPeriod
		m.emit(CollectProgress{})
	}
	if !m.fenced && !m.shutting {
		m.forceOverdue()
	}
	if len(m.waiting) > 0 {
		var due []Key
		for k := range m.waiting {
			if m.now >= m.owned[k].restartAt {
				due = append(due, k)
			}
		}
		slices.SortFunc(due, compareKeys)
		for _, k := range due {
			delete(m.waiting, k)
			if s := m.owned[k]; s.phase == Reading && !s.reading {
				m.startReading(s, true, Start{})
			}
		}
	}
	if m.shutting && !m.done && len(m.owned) == 0 && len(m.busy) == 0 {
		m.done = true
		m.emit(Done{})
	}
}

func (m *Machine) readTable() {
	var r ReadTable
	for _, id := range m.order {
		st := m.streams[id]
		if st.failing && m.now < st.retryAt {
			continue
		}
		if st.relist || !st.hasList || m.now-st.listedAt >= m.cfg.RebalancePeriod || st.failing {
			r.List = append(r.List, id)
		}
		r.Leases = append(r.Leases, id)
	}
	m.reading = true
	m.emit(r)
}

// --- the table read ------------------------------------------------------------------------

func (m *Machine) tableRead(e TableRead) {
	m.reading = false
	m.nextRead = max(m.now, e.Sent+m.cfg.HeartbeatPeriod)
	if e.WorkersErr == nil {
		remove := m.live.observe(e.Sent, e.Received, e.Workers)
		ids := make([]string, 0, len(remove))
		for id := range remove {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		for _, id := range ids {
			if !m.removal[id] {
				m.removal[id] = true
				m.write(Write{Op: OpRemoveWorker, Owner: id, Counter: remove[id]})
			}
		}
	}
	var fresh []string
	for _, sr := range e.Streams {
		st := m.streams[sr.Stream]
		if st == nil {
			continue
		}
		var err error
		switch {
		case sr.Listing && sr.ListErr != nil:
			err = sr.ListErr
		case sr.Err != nil:
			err = sr.Err
		}
		if err != nil {
			st.failures++
			st.retryAt = m.now + m.backoff(st.failures)
			if !st.failing || st.failures <= 3 || st.failures%10 == 0 {
				m.change(Change{Event: StreamFailed, Key: Key{Stream: sr.Stream}, Reason: err.Error()})
			}
			st.failing = true
			continue
		}
		st.failing, st.failures = false, 0
		if sr.Listing {
			st.listed, st.listedAt, st.hasList, st.relist = sr.Listed, e.Sent, true, false
			st.index = make(map[string]int, len(sr.Listed))
			for i, sh := range sr.Listed {
				st.index[sh.ID] = i
			}
		}
		if !st.hasList {
			continue
		}
		st.rows = make(map[string]checkpointer.Lease, len(sr.Leases))
		for _, l := range sr.Leases {
			st.rows[l.Shard] = l
		}
		st.rowsSent, st.hasRows = e.Sent, true
		fresh = append(fresh, sr.Stream)
	}
	for _, id := range fresh {
		m.reconcile(id, e.Sent)
	}
	if e.WorkersErr == nil && !m.fenced && !m.shutting {
		m.plan()
	}
}

// row returns the shard's row as last read (Exists false: no row).
func (m *Machine) row(k Key) checkpointer.Lease {
	if st := m.streams[k.Stream]; st != nil {
		if l, ok := st.rows[k.Shard]; ok {
			return l
		}
	}
	return checkpointer.Lease{Stream: k.Stream, Shard: k.Shard}
}

// listed reports whether the shard is among the stream's listed shards (and among its explicit
// shards when the configuration names them).
func (st *streamState) isListed(id string) bool {
	if st.explicit != nil && !st.explicit[id] {
		return false
	}
	_, ok := st.index[id]
	return ok
}

// reconcile makes what this worker holds of one stream match the rows read at sent.
func (m *Machine) reconcile(stream string, sent time.Duration) {
	st := m.streams[stream]
	for _, k := range m.Keys() {
		s := m.owned[k]
		if k.Stream != stream || m.ownershipBusy(k) || sent < m.settled[k] {
			continue
		}
		l := m.row(k)
		ours := l.Exists && l.ClientID == m.cfg.Self && l.Epoch == s.epoch
		if s.unknown != 0 {
			m.resolve(s, l)
			continue
		}
		if !ours {
			m.lose(s, fmt.Sprintf("its row now says %s", l))
			continue
		}
		if !st.isListed(k.Shard) {
			// Aged out of the stream: nothing is left to read, and nobody can take it.
			m.forget(s)
			m.change(Change{Event: Lost, Key: k, From: m.cfg.Self, Epoch: s.epoch, Reason: "the stream no longer lists it (aged out)"})
			continue
		}
		if l.HandoffTo != "" && l.HandoffTo != m.cfg.Self {
			m.asked(s, l.HandoffTo)
		}
	}
	for _, sh := range st.listed {
		k := Key{stream, sh.ID}
		if !st.isListed(sh.ID) {
			continue
		}
		l := m.row(k)
		if l.HandoffTo == m.cfg.Self && l.ClientID != "" && l.ClientID != m.cfg.Self {
			if r, ok := m.requested[k]; !ok || r.owner != l.ClientID || r.epoch != l.Epoch {
				m.requested[k] = request{owner: l.ClientID, epoch: l.Epoch, at: sent}
			}
		} else if _, ok := m.requested[k]; ok && m.busy[k] == 0 && sent >= m.settled[k] {
			delete(m.requested, k)
		}
		if l.ClientID != m.cfg.Self || l.Finished || !l.HasEpoch || m.owned[k] != nil || m.busy[k] != 0 || sent < m.settled[k] {
			continue
		}
		// Ours without a consumer: a hand-over to this worker, or a take whose answer was lost.
		event := Received
		reason := "the row names this worker"
		if _, asked := m.requested[k]; asked {
			reason = "handed over on request"
		}
		delete(m.requested, k)
		m.change(Change{Event: event, Key: k, To: m.cfg.Self, Epoch: l.Epoch, Reason: reason})
		m.acquire(l)
	}
}

// resolve settles a shard whose last write got no answer, from a row read after it.
func (m *Machine) resolve(s *shard, l checkpointer.Lease) {
	op := s.unknown
	s.unknown = 0
	ours := l.Exists && l.ClientID == m.cfg.Self && l.Epoch == s.epoch
	switch op {
	case OpRetake:
		switch {
		case l.ClientID == m.cfg.Self && l.Epoch == s.epoch+1:
			s.epoch = l.Epoch
			s.retake = s.retake && s.retakeRound != m.round
			m.change(Change{Event: Retaken, Key: s.key, To: m.cfg.Self, Epoch: s.epoch})
		case ours:
			// Not applied: advance retakes it again.
		default:
			m.lose(s, fmt.Sprintf("its row now says %s", l))
		}
	case OpHandOver:
		if ours && l.HandoffTo == s.taker {
			m.writeHandOver(s)
		} else if l.ClientID == s.taker && l.Epoch == s.epoch+1 {
			m.handedOver(s)
		} else {
			m.lose(s, fmt.Sprintf("its row now says %s", l))
		}
	case OpFinish:
		switch {
		case ours:
			m.write(Write{Op: OpFinish, Key: s.key, Epoch: s.epoch, Pos: s.pos, HasPos: s.hasPos})
		case l.Finished && l.Epoch == s.epoch:
			m.finished(s)
		default:
			m.lose(s, fmt.Sprintf("its row now says %s", l))
		}
	case OpRelease:
		switch {
		case ours:
			m.writeRelease(s)
		case !l.Exists || l.ClientID == "":
			m.released(s)
		default:
			m.lose(s, fmt.Sprintf("its row now says %s", l))
		}
	case OpSetStart:
		if ours {
			m.startOrRecord(s, l)
		} else {
			m.lose(s, fmt.Sprintf("its row now says %s", l))
		}
	default:
		if !ours {
			m.lose(s, fmt.Sprintf("its row now says %s", l))
		}
	}
}

// --- taking and reading --------------------------------------------------------------------

// acquire makes a shard owned at l.Epoch and starts reading it (or records its start first).
func (m *Machine) acquire(l checkpointer.Lease) {
	k := Key{l.Stream, l.Shard}
	if m.owned[k] != nil {
		return // never two consumers of one shard
	}
	s := &shard{key: k, phase: Starting, epoch: l.Epoch, retake: m.fenced}
	m.owned[k] = s
	m.ownedIn[k.Stream]++
	if m.shutting {
		s.phase = Releasing
		m.writeRelease(s)
		return
	}
	m.startOrRecord(s, l)
}

// startOrRecord starts reading a shard after its row's checkpoint, or where it starts when it
// has none; a shard read from the tip records the tip first, so that a later owner starts there
// too rather than at a later tip (skipping what came between).
func (m *Machine) startOrRecord(s *shard, l checkpointer.Lease) {
	start, record := m.startFor(s.key, l)
	if record {
		s.phase = Starting
		m.write(Write{Op: OpSetStart, Key: s.key, Epoch: s.epoch})
		return
	}
	s.phase = Reading
	m.startReading(s, false, start)
}

// startFor is where a new consumer of k starts, given its row; record: the start must first be
// recorded (OpSetStart).
func (m *Machine) startFor(k Key, l checkpointer.Lease) (Start, bool) {
	switch {
	case l.SequenceNumber != "":
		sub := ack.WholeRecord
		if l.SubSequence != nil {
			sub = *l.SubSequence
		}
		if p, err := ack.ParsePosition(l.SequenceNumber, sub); err == nil {
			return Start{Kind: StartAfter, After: p}, false
		}
		return Start{Kind: StartOldest}, false // an unparsable checkpoint: read it all again
	case m.isChild(k):
		return Start{Kind: StartOldest}, false // children from their oldest record, always
	case !l.StartAt.IsZero():
		return Start{Kind: StartAtTimestamp, At: l.StartAt}, false
	case m.cfg.Start == StartLatest:
		return Start{}, true
	case m.cfg.Start == StartAtTimestamp:
		return Start{Kind: StartAtTimestamp, At: m.cfg.StartTime}, false
	}
	return Start{Kind: StartOldest}, false
}

// isChild says whether a shard has a parent still listed by the stream.
func (m *Machine) isChild(k Key) bool {
	st := m.streams[k.Stream]
	i, ok := st.index[k.Shard]
	if !ok {
		return false
	}
	for _, p := range st.listed[i].Parents {
		if _, listed := st.index[p]; listed && p != "" {
			return true
		}
	}
	return false
}

func (m *Machine) startReading(s *shard, resume bool, start Start) {
	if !resume {
		s.start = start
	}
	s.gen++
	s.reading = true
	m.emit(StartReading{Key: s.key, Epoch: s.epoch, Gen: s.gen, Start: start, Resume: resume})
}

// readingEnded: the consumer stopped by itself.
func (m *Machine) readingEnded(e ReadingEnded) {
	s := m.owned[e.Key]
	if s == nil || s.gen != e.Gen || s.phase != Reading || !s.reading {
		return
	}
	s.reading = false
	if e.ShardEnd {
		s.phase = Finishing
		m.drain(s, m.cfg.StealGracePeriod)
		return
	}
	if e.Progressed {
		s.failures = 0
	}
	s.failures++
	wait := m.backoff(s.failures)
	s.restartAt = m.now + wait
	m.waiting[s.key] = true
	reason := "stopped"
	if e.Err != nil {
		reason = e.Err.Error()
	}
	m.change(Change{Event: ReadFailed, Key: s.key, Epoch: s.epoch, Reason: fmt.Sprintf("%s (attempt %d, again in %v)", reason, s.failures, wait.Round(time.Millisecond))})
}

func (m *Machine) drain(s *shard, timeout time.Duration) {
	s.draining, s.drained = true, false
	m.emit(StopReading{Key: s.key, Gen: s.gen, Drain: true, Timeout: timeout})
}

// drainedEv: the consumer's batches are settled (or the wait timed out).
func (m *Machine) drainedEv(e Drained) {
	s := m.owned[e.Key]
	if s == nil || s.gen != e.Gen || !s.draining {
		return
	}
	s.draining, s.drained = false, true
	s.pos, s.hasPos, s.allAcked, s.timedOut = e.Pos, e.HasPos, e.AllAcked, e.TimedOut
	if m.busy[s.key] == 0 && s.unknown == 0 {
		m.afterDrain(s)
	}
}

// afterDrain writes what ends a drained shard's phase: the hand-over, the finish or the
// release. It runs once the drain is answered and no write of the shard is in flight.
func (m *Machine) afterDrain(s *shard) {
	s.drained = false
	switch s.phase {
	case HandingOver:
		if m.live.alive(s.taker) {
			m.writeHandOver(s)
			return
		}
		// The worker that asked has died or left meanwhile: give the shard back to the fleet
		// with this checkpoint rather than to a dead worker.
		s.phase, s.why = Releasing, fmt.Sprintf("%s, which asked for it, is gone", s.taker)
		m.writeRelease(s)
	case Finishing:
		switch {
		case s.allAcked:
			m.write(Write{Op: OpFinish, Key: s.key, Epoch: s.epoch, Pos: s.pos, HasPos: s.hasPos})
		case m.shutting:
			s.phase = Releasing
			m.writeRelease(s)
		case s.timedOut:
			m.drain(s, m.cfg.StealGracePeriod) // batches still in flight: keep waiting
		default:
			// Settled, but some batches never reached the pipeline: read them again from the
			// checkpoint before the shard can be finished.
			s.phase = Reading
			start := m.startAfterDrain(s)
			m.emit(StopReading{Key: s.key, Gen: s.gen, Drop: true})
			m.change(Change{Event: ReadFailed, Key: s.key, Epoch: s.epoch, Reason: "read to its end, but some batches never reached the pipeline: reading again from the checkpoint"})
			m.startReading(s, false, start)
		}
	case Releasing:
		m.writeRelease(s)
	}
}

// startAfterDrain is where a new consumer resumes after a drained one.
func (m *Machine) startAfterDrain(s *shard) Start {
	if s.hasPos {
		return Start{Kind: StartAfter, After: s.pos}
	}
	if s.start.Kind == StartAfter {
		return s.start // nothing acknowledged since it started after this
	}
	start, record := m.startFor(s.key, m.row(s.key))
	if record {
		return Start{Kind: StartOldest}
	}
	return start
}

// --- hand-offs -----------------------------------------------------------------------------

// ownershipBusy says whether a write that may change the shard's owner or epoch is in flight
// (a checkpoint changes neither: a read sent before its answer still tells who owns the shard).
func (m *Machine) ownershipBusy(k Key) bool {
	id := m.busy[k]
	return id != 0 && m.writes[id].Op != OpCheckpoint
}

// asked acts on a hand-off request seen on an owned shard's row: hand the shard over to a live
// requester; re-take the lease of a dead one's, which clears the request (or nobody else could
// ask for the shard).
func (m *Machine) asked(s *shard, taker string) {
	if s.phase != Reading || m.fenced || m.shutting {
		return
	}
	if alive, grace := m.live.judge(taker); alive || grace {
		m.handOverIfAsked(s, taker)
	} else if m.busy[s.key] == 0 {
		m.retake(s)
	}
}

// handOverIfAsked starts the hand-over of a shard another worker asked for, if that worker is
// alive: a request from a dead worker is ignored (the shard would wait a lease period unread).
func (m *Machine) handOverIfAsked(s *shard, taker string) {
	if s.phase != Reading || m.fenced || m.shutting || !m.live.alive(taker) {
		return
	}
	s.phase, s.taker = HandingOver, taker
	s.reading = false
	// The taker forces the shard StealGracePeriod after its request, which this worker sees up
	// to a heartbeat period later: end the wait before that, so that a hand-over with the best
	// checkpoint there is wins over the force.
	m.drain(s, max(m.cfg.StealGracePeriod-m.cfg.HeartbeatPeriod, m.cfg.StealGracePeriod/2))
}

func (m *Machine) writeHandOver(s *shard) {
	m.write(Write{Op: OpHandOver, Key: s.key, Epoch: s.epoch, Taker: s.taker, Pos: s.pos, HasPos: s.hasPos})
}

func (m *Machine) writeRelease(s *shard) {
	m.write(Write{Op: OpRelease, Key: s.key, Epoch: s.epoch, Pos: s.pos, HasPos: s.hasPos})
}

// forceOverdue takes the shards whose owner did not hand them over within StealGracePeriod of
// this worker's asking.
func (m *Machine) forceOverdue() {
	keys := make([]Key, 0, len(m.requested))
	for k := range m.requested {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, compareKeys)
	for _, k := range keys {
		r := m.requested[k]
		if m.now-r.at < m.cfg.StealGracePeriod || m.busy[k] != 0 || m.owned[k] != nil {
			continue
		}
		l := m.row(k)
		if l.ClientID != r.owner || l.Epoch != r.epoch || l.HandoffTo != m.cfg.Self {
			delete(m.requested, k)
			continue
		}
		m.write(Write{Op: OpForce, Key: k, Owner: r.owner, Epoch: r.epoch})
	}
}

// --- retakes -------------------------------------------------------------------------------

func (m *Machine) retakes() {
	for _, k := range m.Keys() {
		s := m.owned[k]
		if !s.retake || m.busy[k] != 0 || s.unknown != 0 {
			continue
		}
		if s.phase != Reading && s.phase != Starting {
			s.retake = false // handing over, finishing, releasing: it delivers nothing more
			continue
		}
		m.retake(s)
	}
}

// retake writes a claim of the shard's own row: epoch+1, any hand-off request removed.
func (m *Machine) retake(s *shard) {
	observed := m.row(s.key)
	observed.Exists, observed.Stream, observed.Shard = true, s.key.Stream, s.key.Shard
	observed.ClientID, observed.Epoch, observed.HasEpoch = m.cfg.Self, s.epoch, true
	s.retakeRound = m.round
	m.write(Write{Op: OpRetake, Key: s.key, Observed: observed, Epoch: s.epoch})
}

// --- write results -------------------------------------------------------------------------

type outcome uint8

const (
	applied outcome = iota
	refused
	unanswered
)

func classify(err error) outcome {
	switch {
	case err == nil:
		return applied
	case errors.Is(err, checkpointer.ErrClaimConflict), errors.Is(err, checkpointer.ErrLeaseLost):
		return refused
	}
	return unanswered
}

func (m *Machine) writeDone(e WriteDone) {
	w, ok := m.writes[e.ID]
	if !ok {
		return
	}
	delete(m.writes, e.ID)
	if w.Op == OpRemoveWorker {
		delete(m.removal, w.Owner)
		return
	}
	if m.busy[w.Key] == e.ID {
		delete(m.busy, w.Key)
	}
	if w.Op != OpCheckpoint {
		m.settled[w.Key] = m.now
	}
	m.writeResult(w, e)
	// A drain that ended while this write was in flight goes on now.
	if s := m.owned[w.Key]; s != nil && s.drained && m.busy[w.Key] == 0 && s.unknown == 0 {
		m.afterDrain(s)
	}
}

// writeResult acts on the answer to one write of a shard.
func (m *Machine) writeResult(w Write, e WriteDone) {
	res := classify(e.Err)
	s := m.owned[w.Key]
	switch w.Op {
	case OpClaim, OpSteal, OpForce:
		if res != applied || s != nil {
			return
		}
		delete(m.requested, w.Key)
		ev := map[Op]ChangeEvent{OpClaim: Claimed, OpSteal: Stolen, OpForce: Forced}[w.Op]
		from := w.Owner
		if w.Op != OpForce {
			from = w.Observed.ClientID
		}
		reason := ""
		switch w.Op {
		case OpSteal:
			reason = "its owner's heartbeat stopped"
		case OpForce:
			reason = fmt.Sprintf("not handed over within %v of the request", m.cfg.StealGracePeriod)
		}
		m.change(Change{Event: ev, Key: w.Key, From: from, To: m.cfg.Self, Epoch: e.Row.Epoch, Reason: reason})
		m.acquire(e.Row)
	case OpRequest:
		if res == applied {
			m.requested[w.Key] = request{owner: w.Owner, epoch: w.Epoch, at: m.now}
			m.change(Change{Event: Requested, Key: w.Key, From: w.Owner, To: m.cfg.Self, Epoch: w.Epoch})
		}
	case OpRetake:
		if s == nil || s.epoch != w.Epoch {
			return
		}
		switch res {
		case applied:
			s.epoch = e.Row.Epoch
			s.retake = s.retake && s.retakeRound != m.round // one of an older round: re-take again
			m.change(Change{Event: Retaken, Key: s.key, To: m.cfg.Self, Epoch: s.epoch})
		case refused:
			m.lose(s, "it was taken while this worker could not heartbeat")
		default:
			s.unknown = OpRetake
		}
	case OpCheckpoint:
		if s == nil || s.epoch != w.Epoch {
			return
		}
		switch res {
		case applied:
			m.emit(Committed{Key: s.key, Gen: s.gen, Pos: w.Pos})
			if e.Row.HandoffTo != "" && e.Row.HandoffTo != m.cfg.Self {
				m.asked(s, e.Row.HandoffTo)
			}
		case refused:
			m.lose(s, "its checkpoint write was refused")
			return
		}

	case OpSetStart:
		if s == nil || s.epoch != w.Epoch || s.phase != Starting {
			return
		}
		switch res {
		case applied:
			start, record := m.startFor(s.key, e.Row)
			if record { // the row has neither checkpoint nor start: cannot happen once written
				start = Start{Kind: StartOldest}
			}
			s.phase = Reading
			m.startReading(s, false, start)
		case refused:
			m.lose(s, "recording its start was refused")
		default:
			s.unknown = OpSetStart
		}
	case OpHandOver, OpFinish, OpRelease:
		if s == nil || s.epoch != w.Epoch {
			return
		}
		switch {
		case res == unanswered && w.Op == OpRelease && s.retries < 3:
			s.retries++
			m.writeRelease(s)
		case res == unanswered:
			s.unknown = w.Op
		case res == refused:
			m.lose(s, fmt.Sprintf("its %s was refused", w.Op))
		case w.Op == OpHandOver:
			m.handedOver(s)
		case w.Op == OpFinish:
			m.finished(s)
		default:
			m.released(s)
		}
	}
}

// --- giving shards up ----------------------------------------------------------------------

// forget removes an owned shard; its consumer (stopped already, or now) drops what it has not
// had acknowledged.
func (m *Machine) forget(s *shard) {
	m.emit(StopReading{Key: s.key, Gen: s.gen, Drop: true})
	delete(m.owned, s.key)
	delete(m.waiting, s.key)
	if m.ownedIn[s.key.Stream]--; m.ownedIn[s.key.Stream] <= 0 {
		delete(m.ownedIn, s.key.Stream)
	}
}

func (m *Machine) lose(s *shard, why string) {
	m.forget(s)
	l := m.row(s.key)
	m.change(Change{Event: Lost, Key: s.key, From: m.cfg.Self, To: l.ClientID, Epoch: s.epoch, Reason: why})
}

func (m *Machine) handedOver(s *shard) {
	m.forget(s)
	m.change(Change{Event: HandedOver, Key: s.key, From: m.cfg.Self, To: s.taker, Epoch: s.epoch + 1, Reason: "asked for it"})
}

func (m *Machine) finished(s *shard) {
	m.forget(s)
	if st := m.streams[s.key.Stream]; st != nil {
		st.relist = true // its children become readable
	}
	m.nextRead = m.now
	m.change(Change{Event: Finished, Key: s.key, From: m.cfg.Self, Epoch: s.epoch, Reason: "read to its end, every record acknowledged"})
}

func (m *Machine) released(s *shard) {
	m.forget(s)
	m.change(Change{Event: Released, Key: s.key, From: m.cfg.Self, Epoch: s.epoch, Reason: cmp.Or(s.why, "shutdown")})
}

// --- checkpoints ---------------------------------------------------------------------------

func (m *Machine) progress(e Progress) {
	if m.fenced || m.shutting {
		return
	}
	due := make([]ShardPosition, 0, len(e.Positions))
	for _, p := range e.Positions {
		s := m.owned[p.Key]
		if s == nil || s.gen != p.Gen || s.phase != Reading || s.retake || m.busy[p.Key] != 0 || s.unknown != 0 || p.Pos.IsZero() {
			continue
		}
		due = append(due, p)
	}
	slices.SortFunc(due, func(a, b ShardPosition) int {
		return cmp.Or(cmp.Compare(m.owned[a.Key].checkpointed, m.owned[b.Key].checkpointed), compareKeys(a.Key, b.Key))
	})
	for _, p := range due {
		s := m.owned[p.Key]
		s.checkpointed = m.now
		m.write(Write{Op: OpCheckpoint, Key: s.key, Epoch: s.epoch, Pos: p.Pos, HasPos: true})
	}
}

// --- shutdown ------------------------------------------------------------------------------

func (m *Machine) shutdown() {
	if m.shutting {
		return
	}
	m.shutting = true
	bound := m.cfg.StealGracePeriod
	if at, ok := m.DeliverUntil(); ok {
		// End the wait before this worker, no longer heartbeating, fences: the releases must
		// land before the others would take the shards anyway.
		bound = max(min(bound, at-m.now), 0)
	}
	for _, k := range m.Keys() {
		s := m.owned[k]
		switch s.phase {
		case Reading:
			s.phase = Releasing
			if m.busy[k] == 0 || s.reading {
				s.reading = false
				m.drain(s, bound)
			}
		case Starting:
			s.phase = Releasing
			if m.busy[k] == 0 && s.unknown == 0 {
				m.writeRelease(s)
			}
		}
	}
}

// --- planning ------------------------------------------------------------------------------

// plan asks the balancer what to take and asks for it.
func (m *Machine) plan() {
	snap := balance.Snapshot{Self: m.cfg.Self, MaxMoves: 1 << 20, Seed: m.rng.Uint64()}
	owners := map[string]bool{}
	for _, id := range m.order {
		st := m.streams[id]
		if st.failing || !st.hasList || !st.hasRows {
			continue // a failing stream is left alone: the others go on
		}
		for _, sh := range st.listed {
			if !st.isListed(sh.ID) {
				continue
			}
			k := Key{id, sh.ID}
			l := m.row(k)
			b := balance.Shard{Stream: id, ID: sh.ID, Parents: sh.Parents, Owner: l.ClientID, Epoch: l.Epoch, Finished: l.Finished, HandoffTo: l.HandoffTo}
			if wid := m.busy[k]; wid != 0 {
				// A write in flight counts as done: a claim as this worker's, a request as
				// made.
				switch m.writes[wid].Op {
				case OpClaim, OpSteal, OpForce:
					b.Owner, b.HandoffTo = m.cfg.Self, ""
				case OpRequest:
					b.HandoffTo = m.cfg.Self
				}
			}
			if s := m.owned[k]; s != nil && (s.phase == HandingOver) {
				b.HandoffTo = s.taker
			}
			snap.Shards = append(snap.Shards, b)
			if l.ClientID != "" {
				owners[l.ClientID] = true
			}
			if l.HandoffTo != "" {
				owners[l.HandoffTo] = true // a requester's grace period must run out too
			}
		}
	}
	for id := range m.live.seen {
		owners[id] = true
	}
	m.live.forget(owners)
	ids := make([]string, 0, len(owners))
	for id := range owners {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		switch alive, grace := m.live.judge(id); {
		case alive:
			snap.Workers = append(snap.Workers, id)
			if m.live.young(id) {
				snap.Young = append(snap.Young, id)
			}
		case grace:
			snap.Grace = append(snap.Grace, id)
		}
	}
	rebalance := !m.rebalanced || m.now-m.lastRebalance >= m.cfg.RebalancePeriod
	requests := 0
	for _, a := range balance.Plan(snap) {
		k := Key{a.Stream, a.Shard}
		if m.busy[k] != 0 || m.owned[k] != nil {
			continue
		}
		observed := m.row(k)
		observed.Stream, observed.Shard = a.Stream, a.Shard
		switch a.Kind {
		case balance.Claim:
			m.write(Write{Op: OpClaim, Key: k, Observed: observed})
		case balance.Steal:
			m.write(Write{Op: OpSteal, Key: k, Observed: observed, Owner: a.From})
		case balance.RequestHandoff:
			if !rebalance || requests >= m.cfg.MaxMoves {
				continue
			}
			requests++
			m.write(Write{Op: OpRequest, Key: k, Owner: a.From, Epoch: a.Epoch})
		}
	}
	if rebalance {
		m.lastRebalance, m.rebalanced = m.now, true
	}
}
