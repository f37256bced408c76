package lease

import (
	"time"

	"github.com/benthos-kinesis/benthos-kinesis/checkpointer"
)

// sighting is what this worker knows of another's heartbeat: the last counter it saw, when
// (on its own clock) it first saw that counter, and when it first saw the worker at all.
type sighting struct {
	counter int64
	since   time.Duration
	first   time.Duration
}

// liveness judges the other workers (docs/LEASES.md "Liveness") from the worker rows, on this
// worker's clock and as of the send time of the last worker-row read.
//
// A worker is dead once its counter has stood still for `still` since the answer that showed
// its last change: the lease period less three quarters of a heartbeat period. That is safe: the
// heartbeat behind the change was sent before that answer came back, and the worker fences
// itself a lease period less a heartbeat after sending it, so by the time it is judged dead it
// has been fenced for at least a quarter of a heartbeat (room for clock rates that differ). And
// it is prompt: counting a whole lease period from the answer, and judging at reads sent a
// heartbeat apart, declared a death one heartbeat late (the third read after the last change
// falls short by its own latency; found by BenchmarkInputLeasePeriod: failover 9-10 s with a
// 6 s lease).
type liveness struct {
	lease   time.Duration
	still   time.Duration
	self    string
	seen    map[string]*sighting
	missing map[string]time.Duration // owners without a worker row: since when (never-seen grace)
	at      time.Duration            // the send time of the read the judgement is as of
	valid   bool                     // a worker read has succeeded
}

func newLiveness(self string, lease, heartbeat time.Duration) *liveness {
	return &liveness{lease: lease, still: lease - heartbeat*3/4, self: self, seen: map[string]*sighting{}, missing: map[string]time.Duration{}}
}

// observe takes in the worker rows of a read sent at sent whose answer came at received. It
// returns the workers whose rows may be removed: still for two lease periods, with their
// counters.
//
// A counter that changed counts from received: the heartbeat behind it may have been written
// any time before the answer, so counting from the send could judge a live worker dead early.
// A counter that did not change is known unchanged only as of sent: the judgement is as of
// then, never as of some later time at which the worker may have beaten again.
func (l *liveness) observe(sent, received time.Duration, rows []checkpointer.WorkerRow) map[string]int64 {
	if sent < l.at {
		return nil // an older read than the one already judged on
	}
	l.at, l.valid = sent, true
	present := make(map[string]bool, len(rows))
	for _, w := range rows {
		present[w.ID] = true
		s, ok := l.seen[w.ID]
		switch {
		case !ok:
			l.seen[w.ID] = &sighting{counter: w.Heartbeat, since: received, first: received}
		case s.counter != w.Heartbeat:
			s.counter, s.since = w.Heartbeat, received
		}
		delete(l.missing, w.ID)
	}
	var remove map[string]int64
	for id, s := range l.seen {
		switch {
		case !present[id]:
			if id != l.self && sent-s.since >= l.still {
				// Judged dead already, and its row removed by an observer: it stays dead
				// rather than get the grace period of an owner never seen.
				l.missing[id] = sent - l.lease
			}
			delete(l.seen, id)
		case id != l.self && sent-s.since >= 2*l.lease:
			// Dead for a lease period past what anyone needs to count it out: its row can
			// go, so that a worker started later need not watch it for a lease period.
			if remove == nil {
				remove = map[string]int64{}
			}
			remove[id] = s.counter
		}
	}
	return remove
}

// judge says whether a worker is alive, and whether it is in its grace period (an owner without
// a worker row this worker has not watched for a lease period yet). The first call for an owner
// never seen starts its grace period.
func (l *liveness) judge(id string) (alive, grace bool) {
	if id == l.self {
		return true, false
	}
	if s, ok := l.seen[id]; ok {
		return l.at-s.since < l.still, false
	}
	first, ok := l.missing[id]
	if !ok {
		l.missing[id] = l.at
		return false, true
	}
	return false, l.at-first < l.lease
}

// alive is judge without the grace period: only a worker with a beating row is alive.
func (l *liveness) alive(id string) bool {
	a, _ := l.judge(id)
	return a
}

// young says whether a live worker was first seen less than a lease period ago: it cannot judge
// anyone dead yet.
func (l *liveness) young(id string) bool {
	s, ok := l.seen[id]
	return ok && id != l.self && l.at-s.first < l.lease
}

// forget drops the grace period of owners that own nothing any more.
func (l *liveness) forget(owners map[string]bool) {
	for id := range l.missing {
		if !owners[id] {
			delete(l.missing, id)
		}
	}
}
