package ack

import (
	"errors"
	"fmt"
)

// ErrOutOfOrder is returned (wrapped) by [Tracker.Deliver] for a batch whose position is not
// after the previous batch's (or after the start given to [Tracker.Resume]).
var ErrOutOfOrder = errors.New("batch delivered out of shard order")

// ErrInvalidBatch is returned (wrapped) by [Tracker.Deliver] for a batch with the zero Position
// or with fewer than one message.
var ErrInvalidBatch = errors.New("invalid batch")

// BatchID identifies a delivered batch within one [Tracker]. IDs increase with every delivery
// and are never reused, not even after [Tracker.Reset], so an acknowledgement that arrives after
// a reset cannot touch a later batch. The zero BatchID is never issued.
type BatchID uint64

// Tracker is the acknowledgement tracker of one shard. The zero value is ready to use (as is
// [New]'s result).
//
// A Tracker is not safe for concurrent use: the caller guards it with the lock of its shard
// state. That lock is needed anyway: the reader waits on a condition (InFlight below
// checkpoint_limit) that Ack changes, which takes a sync.Cond on the caller's mutex, and the
// checkpoint write is the sequence Committable, write, Committed together with the lease state.
// An internal mutex would be a second lock on every call and would make none of that atomic.
type Tracker struct {
	// ring holds the pending batches (delivered, not yet in the acknowledged prefix) in
	// delivery order: ring[head], ring[head+1], ... (indices modulo len(ring)), n of them.
	// len(ring) is 0 or a power of two.
	ring []batch
	head int
	n    int
	// retired counts the IDs no longer pending (popped into the prefix or dropped by Reset):
	// ring[head] has ID retired+1, and the next batch gets retired+n+1.
	retired  uint64
	inFlight int // messages in the pending batches

	last       Position // the last delivered batch's position, or the Resume start; zero: none
	checkpoint Position // end of the acknowledged prefix; zero: nothing acknowledged yet
	committed  Position // last position recorded by Committed or Resume; zero: none
}

type batch struct {
	pos      Position
	messages int
	acked    bool
}

// New returns an empty tracker for a shard read without a checkpoint. Use [Tracker.Resume] to
// start after a checkpoint instead.
func New() *Tracker { return &Tracker{} }

// Deliver registers a batch of messages, the next in shard order, whose last record is at pos.
// pos must be after the previous batch's position (and after the Resume start, if any), and
// messages at least 1; otherwise Deliver registers nothing and returns an error wrapping
// [ErrOutOfOrder] or [ErrInvalidBatch].
func (t *Tracker) Deliver(pos Position, messages int) (BatchID, error) {
	switch {
	case pos.IsZero():
		return 0, fmt.Errorf("%w: no position", ErrInvalidBatch)
	case messages < 1:
		return 0, fmt.Errorf("%w: %d messages at %v", ErrInvalidBatch, messages, pos)
	case !t.last.IsZero() && pos.Compare(t.last) <= 0:
		return 0, fmt.Errorf("%w: %v is not after %v", ErrOutOfOrder, pos, t.last)
	}
	if t.n == len(t.ring) {
		t.grow()
	}
	t.ring[(t.head+t.n)&(len(t.ring)-1)] = batch{pos: pos, messages: messages}
	t.n++
	t.inFlight += messages
	t.last = pos
	return BatchID(t.retired + uint64(t.n)), nil
}

// grow doubles the ring (at least 8 slots), moving the pending batches to its start.
func (t *Tracker) grow() {
	ring := make([]batch, max(8, 2*len(t.ring)))
	for i := 0; i < t.n; i++ {
		ring[i] = t.ring[(t.head+i)&(len(t.ring)-1)]
	}
	t.ring, t.head = ring, 0
}

// Ack acknowledges batch id and moves the checkpoint over every batch at the front that is now
// acknowledged. It reports whether id was a pending, unacknowledged batch; acknowledging an
// unknown id, one dropped by Reset, or one already acknowledged changes nothing and returns false.
func (t *Tracker) Ack(id BatchID) bool {
	k := uint64(id) - t.retired - 1 // offset from the front; wraps for id <= retired
	if uint64(id) <= t.retired || k >= uint64(t.n) {
		return false
	}
	b := &t.ring[(t.head+int(k))&(len(t.ring)-1)]
	if b.acked {
		return false
	}
	b.acked = true
	if k == 0 {
		t.advance()
	}
	return true
}

// advance pops the acknowledged batches at the front into the prefix.
func (t *Tracker) advance() {
	mask := len(t.ring) - 1
	for t.n > 0 && t.ring[t.head].acked {
		b := &t.ring[t.head]
		t.checkpoint = b.pos
		t.inFlight -= b.messages
		*b = batch{} // drop the string reference
		t.head = (t.head + 1) & mask
		t.n--
		t.retired++
	}
}

// Checkpoint returns the end of the longest prefix of acknowledged batches: the position of the
// last batch in it. ok is false when no batch has been acknowledged into the prefix since the
// tracker was created, reset or resumed.
func (t *Tracker) Checkpoint() (pos Position, ok bool) {
	return t.checkpoint, !t.checkpoint.IsZero()
}

// Committable returns the checkpoint when there is one and it is beyond the last committed
// position (see [Tracker.Committed]): ok tells the caller that a checkpoint write is due.
func (t *Tracker) Committable() (pos Position, ok bool) {
	if t.checkpoint.IsZero() || (!t.committed.IsZero() && t.checkpoint.Compare(t.committed) <= 0) {
		return Position{}, false
	}
	return t.checkpoint, true
}

// Committed records that pos (a position obtained from Committable) has been written to the
// lease table, so Committable reports only positions beyond it. It returns false and changes
// nothing when pos is not beyond the last committed position or is beyond the current checkpoint:
// a confirmation that arrives late, or after a Reset (the shard was lost), is ignored.
func (t *Tracker) Committed(pos Position) bool {
	if pos.IsZero() || t.checkpoint.IsZero() || pos.Compare(t.checkpoint) > 0 ||
		(!t.committed.IsZero() && pos.Compare(t.committed) <= 0) {
		return false
	}
	t.committed = pos
	return true
}

// Last is the position of the last delivered batch, or the Resume start (zero: neither). A
// reader that reads again from before it (a rewind, or a resume inside a KPL aggregate) skips
// what is not after it.
func (t *Tracker) Last() Position { return t.last }

// InFlight returns the number of messages delivered and not yet in the acknowledged prefix
// (including acknowledged batches behind an unacknowledged one): the figure to keep under
// checkpoint_limit.
func (t *Tracker) InFlight() int { return t.inFlight }

// Pending returns the number of batches delivered and not yet in the acknowledged prefix; zero
// means every delivered batch is acknowledged and covered by the checkpoint.
func (t *Tracker) Pending() int { return t.n }

// Reset forgets everything, for a shard that was lost: the pending batches (acknowledging them
// later returns false and never moves a checkpoint), the checkpoint, the committed position and
// the order of deliveries. Batch IDs keep increasing. The tracker keeps its buffer.
func (t *Tracker) Reset() {
	mask := len(t.ring) - 1
	for i := 0; i < t.n; i++ {
		t.ring[(t.head+i)&mask] = batch{}
	}
	t.retired += uint64(t.n)
	t.head, t.n, t.inFlight = 0, 0, 0
	t.last, t.checkpoint, t.committed = Position{}, Position{}, Position{}
}

// Resume resets the tracker (see [Tracker.Reset]) and starts it after start, the checkpoint read
// from the lease table: the first batch delivered must be after start, and start counts as
// committed, so Committable reports only positions beyond it. Checkpoint reports nothing until a
// batch is acknowledged. Resume with the zero Position is Reset.
func (t *Tracker) Resume(start Position) {
	t.Reset()
	t.last, t.committed = start, start
}
