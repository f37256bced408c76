package ack_test

import (
	"fmt"
	"math/big"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/benthos-kinesis/benthos-kinesis/checkpointer/ack"
)

// addDecimal returns the decimal string of s+n.
func addDecimal(s string, n int) string {
	x, ok := new(big.Int).SetString(s, 10)
	if !ok {
		panic(s)
	}
	return x.Add(x, big.NewInt(int64(n))).String()
}

// refPos is the reference model's position: a math/big sequence number and a sub-sequence number.
type refPos struct {
	seq *big.Int // nil: none
	sub uint64
}

func (p refPos) none() bool { return p.seq == nil }

func (p refPos) cmp(q refPos) int {
	if c := p.seq.Cmp(q.seq); c != 0 {
		return c
	}
	return cmpUint(p.sub, q.sub)
}

func (p refPos) String() string {
	if p.none() {
		return "none"
	}
	if p.sub == ack.WholeRecord {
		return p.seq.String()
	}
	return fmt.Sprintf("%s/%d", p.seq, p.sub)
}

// toRef reads a tracker Position with math/big.
func toRef(t *testing.T, p ack.Position) refPos {
	t.Helper()
	if p.IsZero() {
		return refPos{}
	}
	x, ok := new(big.Int).SetString(p.SequenceNumber(), 10)
	if !ok {
		t.Fatalf("tracker returned an unparsable position %q", p.SequenceNumber())
	}
	sub, ok := p.SubSequence()
	if !ok {
		sub = ack.WholeRecord
	}
	return refPos{x, sub}
}

// model is the reference: every batch of the current generation in a slice, everything
// recomputed by scanning it.
type model struct {
	batches   []refBatch
	last      refPos
	committed refPos
}

type refBatch struct {
	id    ack.BatchID
	pos   refPos
	msgs  int
	acked bool
}

// prefix returns the length of the longest acknowledged prefix.
func (m *model) prefix() int {
	n := 0
	for n < len(m.batches) && m.batches[n].acked {
		n++
	}
	return n
}

func (m *model) checkpoint() refPos {
	if n := m.prefix(); n > 0 {
		return m.batches[n-1].pos
	}
	return refPos{}
}

func (m *model) inFlight() (messages, batches int) {
	for _, b := range m.batches[m.prefix():] {
		messages += b.msgs
		batches++
	}
	return messages, batches
}

func (m *model) committable() refPos {
	cp := m.checkpoint()
	if cp.none() || (!m.committed.none() && cp.cmp(m.committed) <= 0) {
		return refPos{}
	}
	return cp
}

func (m *model) deliverOK(p refPos, msgs int) bool {
	return !p.none() && msgs >= 1 && (m.last.none() || p.cmp(m.last) > 0)
}

func (m *model) ack(id ack.BatchID) bool {
	for i := range m.batches {
		if m.batches[i].id == id {
			if m.batches[i].acked {
				return false
			}
			m.batches[i].acked = true
			return true
		}
	}
	return false
}

func (m *model) commit(p refPos) bool {
	cp := m.checkpoint()
	if p.none() || cp.none() || p.cmp(cp) > 0 || (!m.committed.none() && p.cmp(m.committed) <= 0) {
		return false
	}
	m.committed = p
	return true
}

func (m *model) reset(start refPos) {
	m.batches = nil
	m.last, m.committed = start, start
}

// posGen makes positions: mostly increasing, with KPL aggregates, digit-count changes and
// leading zeros.
type posGen struct {
	r   *rand.Rand
	cur refPos
}

func (g *posGen) start() {
	switch g.r.IntN(3) {
	case 0:
		g.cur = refPos{big.NewInt(int64(g.r.IntN(20))), ack.WholeRecord}
	case 1:
		g.cur = refPos{big.NewInt(int64(g.r.IntN(1000) + 9_990)), ack.WholeRecord} // near 10^4
	default:
		x, _ := new(big.Int).SetString(realSeq, 10)
		g.cur = refPos{x.Add(x, big.NewInt(int64(g.r.IntN(1_000_000)))), ack.WholeRecord}
	}
}

// next advances and returns the new position.
func (g *posGen) next() refPos {
	seq := new(big.Int).Set(g.cur.seq)
	switch k := g.r.IntN(10); {
	case k < 3 && g.cur.sub != ack.WholeRecord: // further inside the same aggregate
		if g.r.IntN(3) == 0 {
			g.cur = refPos{seq, ack.WholeRecord}
		} else {
			g.cur = refPos{seq, g.cur.sub + 1 + uint64(g.r.IntN(5))}
		}
		return g.cur
	case k == 3: // jump to a longer number
		seq.Mul(seq, big.NewInt(10))
		seq.Add(seq, big.NewInt(int64(g.r.IntN(10)+1)))
	default:
		seq.Add(seq, big.NewInt(int64(g.r.IntN(100)+1)))
	}
	sub := ack.WholeRecord
	if g.r.IntN(3) == 0 {
		sub = uint64(g.r.IntN(4)) // ends inside an aggregate
	}
	g.cur = refPos{seq, sub}
	return g.cur
}

// around returns a position near p: before, equal or after it.
func (g *posGen) around(p refPos) refPos {
	if p.none() {
		p = g.cur
	}
	seq := new(big.Int).Set(p.seq)
	switch g.r.IntN(4) {
	case 0:
		return refPos{seq, p.sub}
	case 1:
		if p.sub > 0 && p.sub != ack.WholeRecord {
			return refPos{seq, p.sub - 1}
		}
		return refPos{seq.Sub(seq, big.NewInt(1)).Abs(seq), p.sub}
	case 2:
		return refPos{seq, uint64(g.r.IntN(3))}
	default:
		return refPos{seq.Add(seq, big.NewInt(int64(g.r.IntN(50)))), ack.WholeRecord}
	}
}

// toPos converts to a tracker Position, sometimes with leading zeros.
func (g *posGen) toPos(t *testing.T, p refPos) ack.Position {
	t.Helper()
	if p.none() {
		return ack.Position{}
	}
	s := p.seq.String()
	if g.r.IntN(10) == 0 {
		s = strings.Repeat("0", g.r.IntN(3)+1) + s
	}
	return mustPos(t, s, p.sub)
}

// TestTrackerAgainstModel runs seeded random sequences of deliveries, out-of-order acks,
// duplicate and stale acks, commits, resets and resumes against the tracker and the reference
// model, and compares everything observable after every step.
func TestTrackerAgainstModel(t *testing.T) {
	runs, steps := 3000, 300
	if testing.Short() {
		runs = 300
	}
	for seed := uint64(1); seed <= uint64(runs); seed++ {
		runModel(t, seed, steps)
		if t.Failed() {
			return
		}
	}
}

func runModel(t *testing.T, seed uint64, steps int) {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	g := &posGen{r: r}
	g.start()
	tr, m := ack.New(), &model{}
	var issued []ack.BatchID // every ID ever issued
	var lastID ack.BatchID
	var trace []string
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("seed %d, step %d: %s\ntrace (last 30):\n  %s", seed, len(trace), fmt.Sprintf(format, args...),
			strings.Join(trace[max(0, len(trace)-30):], "\n  "))
	}
	for range steps {
		switch k := r.IntN(100); {
		case k < 35: // deliver the next batch
			p, msgs := g.next(), 1+r.IntN(5)
			if r.IntN(50) == 0 {
				msgs = -r.IntN(2) // 0 or -1: refused
			}
			id, err := tr.Deliver(g.toPos(t, p), msgs)
			trace = append(trace, fmt.Sprintf("Deliver(%v, %d) = %d, %v", p, msgs, id, err))
			if ok := m.deliverOK(p, msgs); ok != (err == nil) {
				fail("Deliver error %v, model accepts: %v", err, ok)
			}
			if err == nil {
				if id <= lastID {
					fail("ID %d not above the previous %d", id, lastID)
				}
				lastID = id
				issued = append(issued, id)
				m.batches = append(m.batches, refBatch{id: id, pos: p, msgs: msgs})
				m.last = p
			}
		case k < 38: // deliver a position at or around the last one (mostly refused)
			p, msgs := g.around(m.last), 1
			id, err := tr.Deliver(g.toPos(t, p), msgs)
			trace = append(trace, fmt.Sprintf("Deliver(%v, %d) = %d, %v (around last)", p, msgs, id, err))
			if ok := m.deliverOK(p, msgs); ok != (err == nil) {
				fail("Deliver error %v, model accepts: %v", err, ok)
			}
			if err == nil {
				lastID = id
				issued = append(issued, id)
				m.batches = append(m.batches, refBatch{id: id, pos: p, msgs: msgs})
				m.last = p
				if p.cmp(g.cur) > 0 {
					g.cur = p
				}
			}
		case k < 70: // ack a random unacknowledged batch of this generation: out of order
			var open []ack.BatchID
			for _, b := range m.batches {
				if !b.acked {
					open = append(open, b.id)
				}
			}
			if len(open) == 0 {
				continue
			}
			// Favour the oldest now and then so that the prefix moves.
			id := open[r.IntN(len(open))]
			if r.IntN(4) == 0 {
				id = open[0]
			}
			got := tr.Ack(id)
			trace = append(trace, fmt.Sprintf("Ack(%d) = %v", id, got))
			if want := m.ack(id); got != want {
				fail("Ack(%d) = %v, model %v", id, got, want)
			}
		case k < 80: // ack any ID: duplicates, stale ones from before a reset, unknown ones
			var id ack.BatchID
			if len(issued) > 0 && r.IntN(5) > 0 {
				id = issued[r.IntN(len(issued))]
			} else {
				id = lastID + ack.BatchID(r.IntN(3)) // the last one or not yet issued
			}
			got := tr.Ack(id)
			trace = append(trace, fmt.Sprintf("Ack(%d) = %v (any)", id, got))
			if want := m.ack(id); got != want {
				fail("Ack(%d) = %v, model %v", id, got, want)
			}
		case k < 92: // the caller's write cycle: Committable, write, Committed
			p, ok := tr.Committable()
			if !ok {
				continue
			}
			got := tr.Committed(p)
			trace = append(trace, fmt.Sprintf("Committed(Committable() = %v) = %v", p, got))
			if want := m.commit(toRef(t, p)); got != want || !got {
				fail("Committed(%v) = %v, model %v (a committable position must be accepted)", p, got, want)
			}
		case k < 96: // Committed with a position that may be stale, premature or zero
			var p refPos
			if r.IntN(10) > 0 {
				p = g.around(m.checkpoint())
			}
			got := tr.Committed(g.toPos(t, p))
			trace = append(trace, fmt.Sprintf("Committed(%v) = %v (any)", p, got))
			if want := m.commit(p); got != want {
				fail("Committed(%v) = %v, model %v", p, got, want)
			}
		case k < 98: // the shard is lost
			tr.Reset()
			m.reset(refPos{})
			trace = append(trace, "Reset()")
			if r.IntN(2) == 0 {
				g.start() // re-read from anywhere
			}
		default: // re-acquired: resume from a checkpoint in the table
			var start refPos
			if r.IntN(8) > 0 {
				g.start()
				start = g.next()
			}
			tr.Resume(g.toPos(t, start))
			m.reset(start)
			trace = append(trace, fmt.Sprintf("Resume(%v)", start))
		}
		// Everything observable, after every step.
		cp, ok := tr.Checkpoint()
		want := m.checkpoint()
		if ok == want.none() || (ok && toRef(t, cp).cmp(want) != 0) {
			fail("Checkpoint() = %v, %v; model %v", cp, ok, want)
		}
		c, ok := tr.Committable()
		wantC := m.committable()
		if ok == wantC.none() || (ok && toRef(t, c).cmp(wantC) != 0) {
			fail("Committable() = %v, %v; model %v", c, ok, wantC)
		}
		msgs, batches := m.inFlight()
		if tr.InFlight() != msgs || tr.Pending() != batches {
			fail("InFlight() = %d, Pending() = %d; model %d, %d", tr.InFlight(), tr.Pending(), msgs, batches)
		}
	}
}
