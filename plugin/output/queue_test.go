package output

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
)

// The dispatcher, driven by hand: no goroutines, a fixed clock, and requests
// booked by the test. Keys "a" and "h" hash to shard 0 of fourShards, "c" to
// shard 1, "b" and "d" to shard 2, "e" to shard 3.

// testDispatcher is a dispatcher over the scripted four-shard stream,
// unconnected: nothing runs but what the test calls.
func testDispatcher(t *testing.T, extraYAML string) *dispatcher {
	t.Helper()
	w := writerFromYAML(t, "stream: test-stream\npartition_key: ${! meta(\"key\") }\n"+extraYAML, newScripted())
	w.client = w.newClient()
	m, err := w.loadShardMap(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	w.shardMap.Store(m)
	return newDispatcher(w)
}

// queueJob prepares and queues msgs as one WriteBatch would.
func queueJob(d *dispatcher, msgs service.MessageBatch) *batchJob {
	job := &batchJob{recs: make([]outRecord, len(msgs)), done: make(chan struct{})}
	d.enqueue(job, d.w.prepare(msgs, job.recs, nil))
	return job
}

// msgs makes messages "key:n" for keys like "a a b".
func msgs(keys string) service.MessageBatch {
	var b service.MessageBatch
	for n, k := range strings.Fields(keys) {
		m := service.NewMessage([]byte(fmt.Sprintf("%s:%d", k, n)))
		m.MetaSetMut("key", k)
		b = append(b, m)
	}
	return b
}

// names lists a request's records as their data.
func names(req *request) string {
	if req == nil {
		return "none"
	}
	var s []string
	for _, r := range req.recs {
		s = append(s, string(r.data))
	}
	return strings.Join(s, " ")
}

// nextChecked is d.next, with the queues' counts checked after it.
func nextChecked(d *dispatcher, now time.Time) (*request, time.Duration) {
	req, wait := d.next(now)
	d.mu.Lock()
	checkQueues(d)
	d.mu.Unlock()
	return req, wait
}

// land books every record of req as landed.
func land(d *dispatcher, req *request) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, r := range req.recs {
		d.finish(r)
	}
	d.booked(req)
	checkQueues(d)
}

// checkQueues recounts every queue's records and free lanes, and panics
// (the dispatcher's tests run it after each step) when the running counts
// are wrong.
func checkQueues(d *dispatcher) {
	for s, q := range d.queues {
		count, bytes, free := q.loose.len(), 0, 0
		for _, r := range q.loose.buf[q.loose.head:] {
			bytes += r.size
		}
		for _, l := range q.lanes {
			if l.q != q {
				panic("a lane of another queue")
			}
			count += l.waiting()
			for _, r := range l.recs[l.head:] {
				bytes += r.size
			}
			if !l.busy && l.waiting() > 0 {
				free++
			}
		}
		if count != q.count || bytes != q.bytes || free != q.free {
			panic(fmt.Sprintf("queue %v: count %d bytes %d free %d, counted %d, %d, %d", s, q.count, q.bytes, q.free, count, bytes, free))
		}
	}
}

const lifted = "shard_limits: {records_per_second: 1000000, bytes_per_second: 1000000000}\n"

func TestDispatcherLanes(t *testing.T) {
	d := testDispatcher(t, lifted)
	job1 := queueJob(d, msgs("a a h c"))
	job2 := queueJob(d, msgs("a h"))

	// Every shard's records go at once, each batch's in batch order.
	req1, _ := nextChecked(d, t0)
	if got := names(req1); !strings.Contains(got, "a:0 a:1 h:2") || !strings.Contains(got, "a:0 h:1") || !strings.Contains(got, "c:3") {
		t.Fatalf("first request %q, want all six records, each batch's in order", got)
	}
	land(d, req1)
	for _, job := range []*batchJob{job1, job2} {
		select {
		case <-job.done:
		default:
			t.Fatal("a job is not done after all its records landed")
		}
	}

	// A lane with a request in flight holds its later records back; another
	// batch's lane of the same shard goes meanwhile.
	d = testDispatcher(t, "shard_limits: {records_per_second: 1000, bytes_per_second: 1000000000}\n")
	queueJob(d, msgs(strings.Repeat("a ", 60)))
	queueJob(d, msgs("h h"))
	req1, _ = nextChecked(d, t0)
	if len(req1.recs) != 50 || string(req1.recs[0].data) != "a:0" {
		t.Fatalf("first request %q, want a burst of 50 of the first batch", names(req1))
	}
	if req, wait := nextChecked(d, t0); req != nil || wait <= 0 {
		t.Fatalf("request %q wait %v with the burst spent, want a wait", names(req), wait)
	}
	later := t0.Add(time.Second)
	req2, _ := nextChecked(d, later)
	if got := names(req2); got != "h:0 h:1" {
		t.Fatalf("second request %q, want the second batch alone: the first's lane is busy", got)
	}
	land(d, req1)
	req3, _ := nextChecked(d, later)
	if got := names(req3); !strings.HasPrefix(got, "a:50 a:51") || len(req3.recs) != 10 {
		t.Fatalf("third request %q, want a:50..a:59", got)
	}
}

// A request starts when a shard's buckets hold most of a burst (startFill),
// not as soon as one record fits, and takes what the other shards can send
// too.
func TestDispatcherWaitsForFullBurst(t *testing.T) {
	d := testDispatcher(t, "")
	queueJob(d, msgs(strings.Repeat("a ", 120)))
	req, _ := nextChecked(d, t0)
	if len(req.recs) != 50 {
		t.Fatalf("first request of %d records, want the burst of 50", len(req.recs))
	}
	land(d, req)
	_, wait := nextChecked(d, t0)
	// 45 of the 50-record burst at 950/s: 47.4ms.
	if wait < 47*time.Millisecond || wait > 48*time.Millisecond {
		t.Fatalf("wait %v, want about 47.4ms for 90%% of the burst", wait)
	}
	if req, _ := nextChecked(d, t0.Add(wait/2)); req != nil {
		t.Fatalf("request of %d records at half the wait, want none", len(req.recs))
	}

	// Shard 2 ("b") queued later has a full bucket: it starts a request and
	// shard 0's half-refilled bucket goes along.
	queueJob(d, msgs("b b b"))
	req, _ = nextChecked(d, t0.Add(wait/2))
	var a, b int
	for _, r := range req.recs {
		switch r.partitionKey {
		case "a":
			a++
		case "b":
			b++
		}
	}
	if b != 3 || a < 21 || a > 24 {
		t.Fatalf("request of %d a and %d b, want 3 b and the 22 or so a that shard 0 can send", a, b)
	}
}

func TestDispatcherRecordOverRequestBudgetGoesAlone(t *testing.T) {
	d := testDispatcher(t, lifted+"max_record_size: 10485760\n")
	b := msgs("a a a c")
	b[1].SetBytes(make([]byte, 6<<20))
	queueJob(d, b)
	var got []string
	for i := 0; i < 3; i++ {
		req, _ := nextChecked(d, t0)
		if req == nil {
			t.Fatalf("request %d: none", i)
		}
		got = append(got, fmt.Sprintf("%d/%v", len(req.recs), req.alone))
		land(d, req)
	}
	// a:0 and c:3 first; then the big one alone (a:0 was in flight before);
	// then a:2 after it.
	if fmt.Sprint(got) != "[2/false 1/true 1/false]" {
		t.Fatalf("requests %v", got)
	}
}

func TestDispatcherAbandonedJobIsDropped(t *testing.T) {
	d := testDispatcher(t, "shard_limits: {records_per_second: 1, bytes_per_second: 1000000000}\n")
	job := queueJob(d, msgs("a a a"))
	req, _ := nextChecked(d, t0)
	if names(req) != "a:0" {
		t.Fatalf("first request %q, want a:0", names(req))
	}
	d.abandon(job)
	land(d, req)
	queueJob(d, msgs("h"))
	req, wait := nextChecked(d, t0.Add(time.Hour))
	if names(req) != "h:0" {
		t.Fatalf("request %q (wait %v), want only the new job's record", names(req), wait)
	}
	land(d, req)
	if req, _ := nextChecked(d, t0.Add(2*time.Hour)); req != nil {
		t.Fatalf("request %q, want nothing left", names(req))
	}
	if len(d.queues) != 0 {
		t.Fatalf("%d queues left", len(d.queues))
	}
}

func TestDispatcherRetriesWaitTheirBackoff(t *testing.T) {
	d := testDispatcher(t, lifted)
	queueJob(d, msgs("a h"))
	req, _ := nextChecked(d, t0)
	d.mu.Lock()
	req.recs[0].notBefore = t0.Add(time.Second) // a:0 is retried
	d.requeue(req.recs[0])
	d.finish(req.recs[1])
	d.booked(req)
	d.mu.Unlock()
	if req, wait := nextChecked(d, t0); req != nil || wait != time.Second {
		t.Fatalf("request %q wait %v, want none for 1s", names(req), wait)
	}
	if req, _ := nextChecked(d, t0.Add(time.Second)); names(req) != "a:0" {
		t.Fatalf("request %q, want a:0 once due", names(req))
	}
}

// With order_per_key a key's records are queued one at a time, across
// batches; other keys are not held up.
func TestDispatcherOrderPerKey(t *testing.T) {
	d := testDispatcher(t, lifted+"order_per_key: true\n")
	queueJob(d, msgs("a a c"))
	queueJob(d, msgs("a c"))
	var got []string
	for req, _ := nextChecked(d, t0); req != nil; req, _ = nextChecked(d, t0) {
		got = append(got, names(req))
		land(d, req)
	}
	if len(got) != 3 || !strings.Contains(got[0], "a:0") || !strings.Contains(got[0], "c:2") ||
		!strings.Contains(got[1], "a:1") || !strings.Contains(got[1], "c:1") || got[2] != "a:0" {
		t.Fatalf("requests %q, want a:0 c:2, then a:1 c:1, then the second batch's a:0", got)
	}
	if len(d.keys) != 0 {
		t.Fatalf("keys left: %v", d.keys)
	}
}

// Records queued for a shard the new map no longer has move to the shards
// that own their keys now, keeping their order.
func TestDispatcherFollowsShardMap(t *testing.T) {
	d := testDispatcher(t, "shard_limits: {records_per_second: 1, bytes_per_second: 1000000000}\n")
	queueJob(d, msgs("a a a h"))
	req, _ := nextChecked(d, t0)
	land(d, req) // a:0; the rest wait for shard 0's budget

	// Shard 0 splits in two: "a" and "h" now land on its children.
	split := []shardBounds{
		{"child-low", "0", "42535295865117307932921825928971026431"},
		{"child-high", "42535295865117307932921825928971026432", "85070591730234615865843651857942052863"},
	}
	split = append(split, fourShards[1:]...)
	states := map[string]*shardState{}
	m, err := newShardMap(split, func(id string) *shardState {
		if s, ok := d.w.states[id]; ok {
			return s
		}
		s := &shardState{id: id, limiter: newShardLimiter(d.w.conf.limits, t0)}
		states[id] = s
		return s
	})
	if err != nil {
		t.Fatal(err)
	}
	d.w.shardMap.Store(m)
	var got []string
	for req, _ := nextChecked(d, t0); req != nil; req, _ = nextChecked(d, t0) {
		for _, r := range req.recs {
			got = append(got, string(r.data)+"@"+r.shard.id)
		}
		land(d, req)
	}
	for now := t0.Add(time.Second); len(got) < 3; now = now.Add(time.Second) {
		for req, _ := nextChecked(d, now); req != nil; req, _ = nextChecked(d, now) {
			for _, r := range req.recs {
				got = append(got, string(r.data)+"@"+r.shard.id)
			}
			land(d, req)
		}
	}
	// "a" hashes to 16955237001963240173058271559858726497: the low child;
	// "h" to the high one.
	if fmt.Sprint(got) != "[a:1@child-low h:3@child-high a:2@child-low]" && fmt.Sprint(got) != "[h:3@child-high a:1@child-low a:2@child-low]" {
		t.Fatalf("sent %v, want a:1 then a:2 on child-low and h:3 on child-high", got)
	}
}

func TestDispatcherMaxInFlight(t *testing.T) {
	d := testDispatcher(t, "max_in_flight: 1\nshard_limits: {records_per_second: 1000000, bytes_per_second: 1000000000}\n")
	queueJob(d, msgs(strings.Repeat("a ", 501)))
	req, _ := nextChecked(d, t0)
	if len(req.recs) != 500 {
		t.Fatalf("first request of %d records, want 500", len(req.recs))
	}
	queueJob(d, msgs("h"))
	if req, _ := nextChecked(d, t0); req != nil {
		t.Fatalf("request %q with one in flight and max_in_flight 1", names(req))
	}
	land(d, req)
	if req, _ := nextChecked(d, t0); names(req) != "a:500 h:0" {
		t.Fatalf("request %q, want a:500 h:0", names(req))
	}
}
