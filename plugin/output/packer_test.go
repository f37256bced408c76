package output

import (
	"container/heap"
	"fmt"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func sized(sizes ...int) []*outRecord {
	recs := make([]*outRecord, len(sizes))
	for i, s := range sizes {
		recs[i] = &outRecord{partitionKey: fmt.Sprintf("k%d", i), size: s, seq: uint64(i)}
	}
	return recs
}

func repeat(n, size int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = size
	}
	return s
}

// packed adds records to a request while they fit, and says how many did.
func packed(recs []*outRecord) (*request, int) {
	req := &request{}
	for i, r := range recs {
		if !req.fits(r) {
			return req, i
		}
		req.add(nil, r)
	}
	return req, len(recs)
}

func TestRequestLimits(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		name  string
		sizes []int
		want  int // records in the request
		full  bool
	}{
		{"500 records fit", repeat(500, 10), 500, true},
		{"the 501st does not", repeat(501, 10), 500, true},
		{"5 records of exactly 1 MiB fill 5 MiB", repeat(5, mib), 5, true},
		{"the 6th MiB does not fit", repeat(6, mib), 5, true},
		{"one byte over 5 MiB does not fit", append(repeat(4, mib), mib+1), 4, false},
		{"exactly the request budget alone", []int{maxRequestBytes}, 1, true},
		{"over the budget: alone", []int{maxRequestBytes + 1, 10}, 1, true},
		{"over the budget after others: not with them", []int{10, 6 * mib}, 1, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			req, n := packed(sized(c.sizes...))
			if n != c.want || req.full() != c.full {
				t.Fatalf("%d records packed (full %v), want %d (full %v)", n, req.full(), c.want, c.full)
			}
			if req.alone != (c.sizes[0] > maxRequestBytes) {
				t.Fatalf("alone = %v", req.alone)
			}
		})
	}
}

func TestRequestSegments(t *testing.T) {
	q1, q2 := &shardQueue{}, &shardQueue{}
	req := &request{}
	for i, q := range []*shardQueue{q1, q1, q2, q1} {
		req.add(q, &outRecord{size: 1, seq: uint64(i)})
	}
	if len(req.segs) != 3 || req.segs[0] != (requestSeg{q1, 2}) || req.segs[1] != (requestSeg{q2, 3}) || req.segs[2] != (requestSeg{q1, 4}) {
		t.Fatalf("segments %v", req.segs)
	}
}

func TestRecordFIFO(t *testing.T) {
	var f recordFIFO
	recs := sized(repeat(100, 1)...)
	next := 0
	// Interleave pushes and pops so that the buffer compacts and wraps.
	for i, r := range recs {
		f.push(r)
		if i%3 == 2 {
			if got := f.pop(); got != recs[next] {
				t.Fatalf("pop %d: record %d", next, got.seq)
			}
			next++
		}
	}
	if f.len() != 100-next {
		t.Fatalf("len %d, want %d", f.len(), 100-next)
	}
	if f.peek() != recs[next] {
		t.Fatal("peek is not the oldest record")
	}
	rest := f.drain()
	if len(rest) != 100-next || rest[0] != recs[next] || rest[len(rest)-1] != recs[99] || f.len() != 0 || f.peek() != nil {
		t.Fatalf("drained %d records, %d left", len(rest), f.len())
	}
	if cap(f.buf) > 200 {
		t.Fatalf("buffer of capacity %d for at most 67 records", cap(f.buf))
	}
}

func TestRetryHeap(t *testing.T) {
	var h retryHeap
	recs := sized(1, 1, 1, 1)
	for i, at := range []time.Duration{3, 1, 2, 1} {
		recs[i].notBefore = t0.Add(at * time.Second)
		heap.Push(&h, recs[i])
	}
	if h.nextDue() != t0.Add(time.Second) {
		t.Fatalf("next due %v", h.nextDue())
	}
	if r := h.popDue(t0); r != nil {
		t.Fatalf("record %d due before its time", r.seq)
	}
	var got []uint64
	for r := h.popDue(t0.Add(2 * time.Second)); r != nil; r = h.popDue(t0.Add(2 * time.Second)) {
		got = append(got, r.seq)
	}
	// Earliest first, queue order among equals; the one due at 3s stays.
	if fmt.Sprint(got) != "[1 3 2]" || len(h) != 1 {
		t.Fatalf("popped %v, %d left", got, len(h))
	}
}
