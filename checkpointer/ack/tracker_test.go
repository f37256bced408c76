package ack_test

import (
	"errors"
	"testing"

	"github.com/benthos-kinesis/benthos-kinesis/checkpointer/ack"
)

const W = ack.WholeRecord

// A step of a scripted tracker test.
type step interface {
	run(t *testing.T, tr *ack.Tracker)
}

// deliver delivers a batch ending at (seq, sub) and expects ID id (0: don't check) or err.
type deliver struct {
	seq  string
	sub  uint64
	msgs int
	id   ack.BatchID
	err  error
}

func (s deliver) run(t *testing.T, tr *ack.Tracker) {
	t.Helper()
	var pos ack.Position
	if s.seq != "" {
		pos = mustPos(t, s.seq, s.sub)
	}
	pendingBefore, inFlightBefore := tr.Pending(), tr.InFlight()
	id, err := tr.Deliver(pos, s.msgs)
	if s.err != nil {
		if !errors.Is(err, s.err) {
			t.Fatalf("Deliver(%v, %d) = %d, %v; want %v", pos, s.msgs, id, err, s.err)
		}
		if tr.Pending() != pendingBefore || tr.InFlight() != inFlightBefore {
			t.Fatalf("a refused Deliver changed the tracker")
		}
		return
	}
	if err != nil {
		t.Fatalf("Deliver(%v, %d): %v", pos, s.msgs, err)
	}
	if s.id != 0 && id != s.id {
		t.Fatalf("Deliver(%v, %d) = %d, want ID %d", pos, s.msgs, id, s.id)
	}
}

// ackID acknowledges id and expects Ack to return want.
type ackID struct {
	id   ack.BatchID
	want bool
}

func (s ackID) run(t *testing.T, tr *ack.Tracker) {
	t.Helper()
	if got := tr.Ack(s.id); got != s.want {
		t.Fatalf("Ack(%d) = %v, want %v", s.id, got, s.want)
	}
}

// commit calls Committed(seq, sub) and expects want.
type commit struct {
	seq  string
	sub  uint64
	want bool
}

func (s commit) run(t *testing.T, tr *ack.Tracker) {
	t.Helper()
	var pos ack.Position
	if s.seq != "" {
		pos = mustPos(t, s.seq, s.sub)
	}
	if got := tr.Committed(pos); got != s.want {
		t.Fatalf("Committed(%v) = %v, want %v", pos, got, s.want)
	}
}

type reset struct{}

func (reset) run(_ *testing.T, tr *ack.Tracker) { tr.Reset() }

// resume resumes after (seq, sub); seq "" is the zero Position.
type resume struct {
	seq string
	sub uint64
}

func (s resume) run(t *testing.T, tr *ack.Tracker) {
	var pos ack.Position
	if s.seq != "" {
		pos = mustPos(t, s.seq, s.sub)
	}
	tr.Resume(pos)
}

// state checks the observable state; positions as Position.String() gives them ("none": none).
type state struct {
	checkpoint  string
	committable string
	inFlight    int
	pending     int
}

func (s state) run(t *testing.T, tr *ack.Tracker) {
	t.Helper()
	cp, ok := tr.Checkpoint()
	if ok == cp.IsZero() {
		t.Fatalf("Checkpoint() = %v, %v: ok must say whether there is a position", cp, ok)
	}
	if cp.String() != s.checkpoint {
		t.Fatalf("Checkpoint() = %v, want %s", cp, s.checkpoint)
	}
	c, ok := tr.Committable()
	if ok == c.IsZero() {
		t.Fatalf("Committable() = %v, %v: ok must say whether there is a position", c, ok)
	}
	if c.String() != s.committable {
		t.Fatalf("Committable() = %v, want %s", c, s.committable)
	}
	if tr.InFlight() != s.inFlight || tr.Pending() != s.pending {
		t.Fatalf("InFlight() = %d, Pending() = %d; want %d, %d", tr.InFlight(), tr.Pending(), s.inFlight, s.pending)
	}
}

var empty = state{checkpoint: "none", committable: "none"}

func TestTracker(t *testing.T) {
	tests := []struct {
		name  string
		steps []step
	}{
		{"empty", []step{empty}},
		{"in order", []step{
			deliver{seq: "10", sub: W, msgs: 2, id: 1},
			deliver{seq: "20", sub: W, msgs: 3, id: 2},
			deliver{seq: "30", sub: W, msgs: 4, id: 3},
			state{"none", "none", 9, 3},
			ackID{1, true},
			state{"10", "10", 7, 2},
			ackID{2, true},
			state{"20", "20", 4, 1},
			ackID{3, true},
			state{"30", "30", 0, 0},
		}},
		{"ack after a later batch", []step{
			deliver{seq: "10", sub: W, msgs: 1},
			deliver{seq: "20", sub: W, msgs: 1},
			deliver{seq: "30", sub: W, msgs: 1},
			ackID{2, true},
			state{"none", "none", 3, 3}, // acked but behind batch 1
			ackID{3, true},
			state{"none", "none", 3, 3},
			ackID{1, true},
			state{"30", "30", 0, 0}, // the whole prefix at once
		}},
		{"gap holds the checkpoint", []step{
			deliver{seq: "10", sub: W, msgs: 1},
			deliver{seq: "20", sub: W, msgs: 2},
			deliver{seq: "30", sub: W, msgs: 4},
			ackID{1, true},
			ackID{3, true},
			state{"10", "10", 6, 2},
			ackID{2, true},
			state{"30", "30", 0, 0},
		}},
		{"nacked batch never advances", []step{
			deliver{seq: "10", sub: W, msgs: 1},
			deliver{seq: "20", sub: W, msgs: 1},
			ackID{2, true},
			state{"none", "none", 2, 2},
			deliver{seq: "30", sub: W, msgs: 1},
			ackID{3, true},
			state{"none", "none", 3, 3},
		}},
		{"duplicate and unknown acks", []step{
			deliver{seq: "10", sub: W, msgs: 1, id: 1},
			deliver{seq: "20", sub: W, msgs: 1, id: 2},
			ackID{0, false}, // never issued
			ackID{3, false}, // not yet issued
			ackID{2, true},
			ackID{2, false}, // acked, pending behind 1
			ackID{1, true},
			ackID{1, false}, // acked, in the prefix
			ackID{2, false},
			state{"20", "20", 0, 0},
			deliver{seq: "30", sub: W, msgs: 1, id: 3},
			ackID{^ack.BatchID(0), false},
			state{"20", "20", 1, 1},
		}},
		{"out of order delivery", []step{
			deliver{seq: "10", sub: W, msgs: 1},
			deliver{seq: "10", sub: W, msgs: 1, err: ack.ErrOutOfOrder},  // equal
			deliver{seq: "010", sub: W, msgs: 1, err: ack.ErrOutOfOrder}, // equal, leading zero
			deliver{seq: "9", sub: W, msgs: 1, err: ack.ErrOutOfOrder},   // before
			deliver{seq: "10", sub: 3, msgs: 1, err: ack.ErrOutOfOrder},  // inside the record already delivered whole
			deliver{seq: "11", sub: W, msgs: 1, id: 2},                   // numeric, not lexicographic
			deliver{seq: "100", sub: W, msgs: 1, id: 3},
			state{"none", "none", 3, 3},
		}},
		{"aggregate", []step{
			deliver{seq: "500", sub: 0, msgs: 1, id: 1},
			deliver{seq: "500", sub: 4, msgs: 4, id: 2},
			deliver{seq: "500", sub: 4, msgs: 1, err: ack.ErrOutOfOrder},
			deliver{seq: "500", sub: 2, msgs: 1, err: ack.ErrOutOfOrder},
			deliver{seq: "500", sub: W, msgs: 3, id: 3}, // the rest of the aggregate
			deliver{seq: "600", sub: 0, msgs: 2, id: 4},
			ackID{2, true},
			state{"none", "none", 10, 4},
			ackID{1, true},
			state{"500/4", "500/4", 5, 2},
			ackID{4, true},
			ackID{3, true},
			state{"600/0", "600/0", 0, 0},
		}},
		{"invalid batch", []step{
			deliver{seq: "", msgs: 1, err: ack.ErrInvalidBatch},
			deliver{seq: "10", sub: W, msgs: 0, err: ack.ErrInvalidBatch},
			deliver{seq: "10", sub: W, msgs: -3, err: ack.ErrInvalidBatch},
			empty,
			deliver{seq: "10", sub: W, msgs: 1, id: 1}, // refused batches took no ID
		}},
		{"reset", []step{
			deliver{seq: "10", sub: W, msgs: 1, id: 1},
			deliver{seq: "20", sub: W, msgs: 2, id: 2},
			deliver{seq: "30", sub: W, msgs: 3, id: 3},
			ackID{1, true},
			ackID{3, true},
			commit{"10", W, true},
			state{"10", "none", 5, 2},
			reset{},
			empty,
			ackID{2, false}, // dropped: can never be checkpointed
			empty,
			deliver{seq: "5", sub: W, msgs: 1, id: 4}, // order forgotten, IDs not reused
			ackID{4, true},
			state{"5", "5", 0, 0}, // the committed position was forgotten too
		}},
		{"reset empty twice", []step{reset{}, reset{}, empty, deliver{seq: "1", sub: W, msgs: 1, id: 1}}},
		{"committed", []step{
			commit{"10", W, false}, // nothing acknowledged
			deliver{seq: "10", sub: W, msgs: 1},
			deliver{seq: "20", sub: W, msgs: 1},
			deliver{seq: "30", sub: W, msgs: 1},
			ackID{1, true},
			commit{"20", W, false}, // beyond the checkpoint
			commit{"", 0, false},   // zero
			commit{"10", W, true},
			state{"10", "none", 2, 2},
			commit{"10", W, false}, // again
			ackID{2, true},
			state{"20", "20", 1, 1},
			ackID{3, true},
			commit{"30", W, true},
			commit{"20", W, false}, // late confirmation of an earlier write
			state{"30", "none", 0, 0},
			commit{"25", W, false}, // not beyond committed
			deliver{seq: "40", sub: W, msgs: 1},
			ackID{4, true},
			state{"40", "40", 0, 0},
			commit{"35", W, true}, // any position up to the checkpoint
			state{"40", "40", 0, 0},
		}},
		{"committed after reset is ignored", []step{
			deliver{seq: "10", sub: W, msgs: 1},
			ackID{1, true},
			reset{},
			commit{"10", W, false},
			deliver{seq: "5", sub: W, msgs: 1},
			ackID{2, true},
			state{"5", "5", 0, 0},
		}},
		{"resume", []step{
			deliver{seq: "90", sub: W, msgs: 1, id: 1},
			resume{"100", 3},
			empty, // no checkpoint since the resume, the start counts as committed
			ackID{1, false},
			deliver{seq: "100", sub: 3, msgs: 1, err: ack.ErrOutOfOrder},
			deliver{seq: "99", sub: W, msgs: 1, err: ack.ErrOutOfOrder},
			deliver{seq: "100", sub: 4, msgs: 2, id: 2},
			commit{"100", 3, false}, // the start: already committed, and beyond no checkpoint
			ackID{2, true},
			state{"100/4", "100/4", 0, 0},
			commit{"100", 4, true},
			state{"100/4", "none", 0, 0},
		}},
		{"resume zero is reset", []step{
			deliver{seq: "90", sub: W, msgs: 1},
			ackID{1, true},
			resume{"", 0},
			empty,
			deliver{seq: "1", sub: W, msgs: 1},
			ackID{2, true},
			state{"1", "1", 0, 0},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, tr := range []*ack.Tracker{ack.New(), new(ack.Tracker)} {
				for _, s := range tt.steps {
					s.run(t, tr)
				}
			}
		})
	}
}

// TestTrackerWraps delivers and acknowledges across many ring sizes and wrap-arounds.
func TestTrackerWraps(t *testing.T) {
	for _, window := range []int{1, 2, 7, 8, 9, 64, 100} {
		tr := ack.New()
		next := 1
		var ids []ack.BatchID
		for round := 0; round < 20; round++ {
			ids = ids[:0]
			for i := 0; i < window; i++ {
				id, err := tr.Deliver(seqPos(t, next), 2)
				if err != nil {
					t.Fatal(err)
				}
				next++
				ids = append(ids, id)
			}
			// Acknowledge from the back: the checkpoint moves only with the first.
			for i := len(ids) - 1; i >= 0; i-- {
				if !tr.Ack(ids[i]) {
					t.Fatalf("window %d: Ack(%d) = false", window, ids[i])
				}
				if i > 0 && tr.Pending() != window {
					t.Fatalf("window %d: Pending() = %d before the first batch is acked", window, tr.Pending())
				}
			}
			cp, _ := tr.Checkpoint()
			if cp.Compare(seqPos(t, next-1)) != 0 || tr.InFlight() != 0 || tr.Pending() != 0 {
				t.Fatalf("window %d: Checkpoint %v, InFlight %d, Pending %d", window, cp, tr.InFlight(), tr.Pending())
			}
		}
	}
}

// TestTrackerSteadyStateDoesNotAllocate: once the ring is big enough, Deliver and Ack allocate
// nothing.
func TestTrackerSteadyStateDoesNotAllocate(t *testing.T) {
	const window = 32
	positions := make([]ack.Position, 4096)
	for i := range positions {
		positions[i] = seqPos(t, i+1)
	}
	tr := ack.New()
	next := 0
	ids := make([]ack.BatchID, window)
	cycle := func() {
		for i := range ids {
			id, err := tr.Deliver(positions[next%len(positions)], 1)
			if err != nil {
				t.Fatal(err)
			}
			next++
			ids[i] = id
		}
		for i := range ids {
			tr.Ack(ids[(i*7+3)%window]) // 7 is prime to 32: a permutation
		}
		tr.Checkpoint()
		tr.Committable()
		if next+window > len(positions) {
			tr.Reset()
			next = 0
		}
	}
	cycle() // grow the ring
	if n := testing.AllocsPerRun(200, cycle); n != 0 {
		t.Fatalf("%v allocations per %d deliveries and acks", n, window)
	}
}

// seqPos is the whole record with sequence number 49590338271490256608559692538361571095921575989136588898+n.
func seqPos(t testing.TB, n int) ack.Position {
	t.Helper()
	return mustPos(t, addDecimal(realSeq, n), W)
}
