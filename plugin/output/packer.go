package output

import (
	"container/heap"
	"time"
)

// Kinesis' PutRecords limits.
const (
	maxRequestRecords = 500
	maxRequestBytes   = 5 << 20
	defaultMaxRecord  = 1 << 20
)

// outRecord is one message of a batch on its way to Kinesis.
type outRecord struct {
	data         []byte
	partitionKey string
	explicitHash string // "" unless hash_key gave one
	hash         hashKey
	size         int // what Kinesis counts: data plus partition key bytes
	index        int // the message's index in the batch

	job   *batchJob   // the WriteBatch waiting for it
	seq   uint64      // the order it was queued in, across batches
	shard *shardState // the shard it is queued for (nil: no open shard covers it)

	// members are an aggregate's user records, in order; nil for a message's
	// own record. An aggregate lives in one request only: its members are
	// booked, and requeued, one by one.
	members []*outRecord
	// bare: never aggregate it (put again after its aggregate landed on a
	// shard that does not own it, so that its own key routes it).
	bare bool

	retryState
	err  error // set when the record has failed for good
	done bool
}

// userRecords is how many messages r carries.
func (r *outRecord) userRecords() int {
	if r.members != nil {
		return len(r.members)
	}
	return 1
}

// request is one PutRecords call being filled from the shard queues, or one
// PutRecord call of a record over the PutRecords budget (max_record_size
// allows up to 10 MiB; a request, 5 MiB), which never shares a request.
type request struct {
	recs  []*outRecord
	bytes int
	alone bool
	segs  []requestSeg // which shard queue each run of recs came from
	lanes []*lane      // the lanes it holds busy
}

// requestSeg says that recs[previous end:end] came from q.
type requestSeg struct {
	q   *shardQueue
	end int
}

// fits says whether r can join the request, as the PutRecords limits go.
func (req *request) fits(r *outRecord) bool {
	if req.alone || r.size > maxRequestBytes {
		return len(req.recs) == 0
	}
	return len(req.recs) < maxRequestRecords && req.bytes+r.size <= maxRequestBytes
}

func (req *request) add(q *shardQueue, r *outRecord) {
	req.recs = append(req.recs, r)
	req.bytes += r.size
	req.alone = r.size > maxRequestBytes
	if n := len(req.segs); n > 0 && req.segs[n-1].q == q {
		req.segs[n-1].end = len(req.recs)
		return
	}
	req.segs = append(req.segs, requestSeg{q: q, end: len(req.recs)})
}

// full says whether no record at all can join any more.
func (req *request) full() bool {
	return req.alone || len(req.recs) == maxRequestRecords || req.bytes == maxRequestBytes
}

// recordFIFO is a queue of records; popping is O(1) and the buffer is
// reused, so a queue that fills and drains allocates nothing.
type recordFIFO struct {
	buf  []*outRecord
	head int
}

func (f *recordFIFO) len() int { return len(f.buf) - f.head }

func (f *recordFIFO) push(r *outRecord) {
	if f.head > 0 && f.head >= len(f.buf)/2 {
		// Reclaim the popped half before growing.
		n := copy(f.buf, f.buf[f.head:])
		clear(f.buf[n:])
		f.buf, f.head = f.buf[:n], 0
	}
	f.buf = append(f.buf, r)
}

func (f *recordFIFO) peek() *outRecord {
	if f.head == len(f.buf) {
		return nil
	}
	return f.buf[f.head]
}

func (f *recordFIFO) pop() *outRecord {
	r := f.buf[f.head]
	f.buf[f.head] = nil
	f.head++
	if f.head == len(f.buf) {
		f.buf, f.head = f.buf[:0], 0
	}
	return r
}

// drain removes and returns every record, in order.
func (f *recordFIFO) drain() []*outRecord {
	out := append([]*outRecord(nil), f.buf[f.head:]...)
	clear(f.buf)
	f.buf, f.head = f.buf[:0], 0
	return out
}

// retryHeap holds records waiting out a backoff, the earliest due first (in
// queue order among equals).
type retryHeap []*outRecord

func (h retryHeap) Len() int { return len(h) }
func (h retryHeap) Less(i, j int) bool {
	if !h[i].notBefore.Equal(h[j].notBefore) {
		return h[i].notBefore.Before(h[j].notBefore)
	}
	return h[i].seq < h[j].seq
}
func (h retryHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *retryHeap) Push(x any)   { *h = append(*h, x.(*outRecord)) }
func (h *retryHeap) Pop() any {
	old := *h
	r := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return r
}

// popDue removes and returns the earliest record due at now, or nil.
func (h *retryHeap) popDue(now time.Time) *outRecord {
	if len(*h) == 0 || (*h)[0].notBefore.After(now) {
		return nil
	}
	return heap.Pop(h).(*outRecord)
}

// nextDue is when the earliest record is due; zero when there is none.
func (h retryHeap) nextDue() time.Time {
	if len(h) == 0 {
		return time.Time{}
	}
	return h[0].notBefore
}

func minWait(cur, d time.Duration) time.Duration {
	if cur == 0 || d < cur {
		return d
	}
	return cur
}
