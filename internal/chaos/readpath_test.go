package chaos

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/benthos-kinesis/benthos-kinesis/internal/chaos/faultproxy"
	"github.com/benthos-kinesis/benthos-kinesis/internal/chaos/verify"
)

// readBatchings are the readers' batching policies of the read-error
// scenario, one per reader: by count, by period, by both. With poll.limit 40
// and a backlog reported in every answer, a batch spans several answers.
var readBatchings = []string{"{ count: 100 }", "{ period: 1s }", "{ count: 50, period: 500ms }"}

// readBurst is one outage of the readers' GetRecords.
type readBurst struct {
	what string
	// faults are installed on the readers' Kinesis proxies for the burst
	// (100 % of GetRecords); blackHole partitions those proxies instead.
	faults    faultproxy.Faults
	blackHole bool
	// failsReads: the burst must end consumer runs, whose "read-failed" log
	// lines carry this text; "" for faults the reader rides out on its own
	// (KMS throttling backs off, an expired iterator is renewed, a black
	// hole holds the call until the network heals and the SDK retries it).
	failsReads string
}

// 8. GetRecords failing for longer than the SDK's retries (100 % of the
// calls, a few seconds at a time) while the readers are behind (the proxies
// report a backlog, so partial batches wait for more answers), with the
// input batching by count, by period and by both (one reader each). The
// records in a partial batch when a read fails must be read again, not
// skipped (issue 9, defect 1): nothing lost, order per key, and no
// duplicate (no take-over happens, the lease table is untouched).
func TestChaosReadErrors(t *testing.T) {
	burstFor := pick(3*time.Second, 8*time.Second)
	gap := pick(1500*time.Millisecond, 5*time.Second)
	rounds := pick(1, 2)
	getRecords := []string{"GetRecords"}
	coded := func(code string) faultproxy.Faults {
		return faultproxy.Faults{ErrorRate: 1, ErrorCode: code, Operations: getRecords}
	}
	for _, tc := range []struct {
		name   string
		bursts []readBurst
	}{
		{"server errors, resets and black holes", []readBurst{
			{what: "500 InternalFailure", faults: coded("InternalFailure"), failsReads: "InternalFailure"},
			{what: "connection resets", faults: faultproxy.Faults{ResetRate: 1, Operations: getRecords}, failsReads: "connection reset"},
			{what: "black hole (Kinesis only)", blackHole: true},
		}},
		{"KMS errors and expired iterators", []readBurst{
			{what: "KMSThrottlingException", faults: coded("KMSThrottlingException")},
			{what: "KMSAccessDeniedException", faults: coded("KMSAccessDeniedException"), failsReads: "KMSAccessDeniedException"},
			{what: "KMSDisabledException", faults: coded("KMSDisabledException"), failsReads: "KMSDisabledException"},
			{what: "ExpiredIteratorException", faults: coded("ExpiredIteratorException")},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			interval := 2 * time.Millisecond
			head := 2 * time.Second
			attack := time.Duration(rounds*len(tc.bursts)) * (burstFor + gap)
			c := newCluster(t, clusterSpec{
				shards: 6, keys: keys, perKey: perKey(head+attack+time.Second, interval), writerInterval: interval,
				batching: readBatchings, pollLimit: 40, backlog: 5 * time.Second,
			})
			c.startWriter()
			c.sleep(head) // the readers start behind
			for range readBatchings {
				c.addReader()
			}
			for _, r := range c.readers {
				c.waitOwns(r, 30*time.Second)
			}
			type figures struct {
				injected, iterators int
			}
			got := make([]figures, len(tc.bursts))
			for range rounds {
				for i, b := range tc.bursts {
					before, iters := c.readerStats(), c.readerRequests("GetShardIterator")
					c.burst(b, burstFor)
					after := c.readerStats()
					got[i].injected += after.Errors - before.Errors + after.Resets - before.Resets + after.Held - before.Held
					got[i].iterators += c.readerRequests("GetShardIterator") - iters
					c.sleep(gap)
				}
			}
			c.waitWriter(2 * time.Minute)
			// The readers catch up in seconds once the writer is done; a lost
			// record never comes, and the verifier then says which.
			rep := c.finish(verify.Options{ZeroDuplicates: true}, time.Minute)

			var b strings.Builder
			fmt.Fprintf(&b, "readers' batching: %s; bursts of %v, 100 %% of GetRecords, %d round(s)\n", strings.Join(readBatchings, ", "), burstFor, rounds)
			for i, bu := range tc.bursts {
				failed := 0
				if bu.failsReads != "" {
					failed = readFailures(c, bu.failsReads)
				}
				what := "answers injected"
				if bu.blackHole {
					what = "requests held"
				}
				fmt.Fprintf(&b, "%s: %d %s, %d consumer runs failed, %d GetShardIterator calls\n", bu.what, got[i].injected, what, failed, got[i].iterators)
				if got[i].injected == 0 {
					t.Errorf("%s: the burst injected nothing", bu.what)
				}
				if bu.failsReads != "" && failed == 0 {
					t.Errorf("%s: no read failed: the burst did not reach the consumers", bu.what)
				}
			}
			backlogged := c.readerStats().Backlogged
			fmt.Fprintf(&b, "GetRecords answers that reported a backlog: %d\n", backlogged)
			if backlogged == 0 {
				t.Error("no answer reported a backlog: the readers flushed after every answer")
			}
			report(t, rep, b.String())
		})
	}
}

// burst attacks the GetRecords of every reader for d.
func (c *cluster) burst(b readBurst, d time.Duration) {
	for _, r := range c.readers {
		if b.blackHole {
			r.kin.Partition(true)
			continue
		}
		f := b.faults
		f.Backlog, f.Seed = c.spec.backlog, c.rng.Uint64()
		r.kin.SetFaults(f)
	}
	c.sleep(d)
	for _, r := range c.readers {
		r.kin.Partition(false)
		r.kin.SetFaults(c.readerFaults())
	}
}

// readerStats sums the counts of the readers' Kinesis proxies.
func (c *cluster) readerStats() faultproxy.Stats {
	var s faultproxy.Stats
	for _, r := range c.readers {
		st := r.kin.Stats()
		s.Forwarded += st.Forwarded
		s.Errors += st.Errors
		s.Resets += st.Resets
		s.Held += st.Held
		s.Backlogged += st.Backlogged
	}
	return s
}

// readerRequests sums the requests of operation op the readers sent.
func (c *cluster) readerRequests(op string) int {
	n := 0
	for _, r := range c.readers {
		n += r.kin.Requests(op)
	}
	return n
}

// readFailures counts the "read-failed" lease changes logged by every
// process whose reason contains s.
func readFailures(c *cluster, s string) int {
	n := 0
	for _, p := range c.procs {
		f, err := os.Open(p.log)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
		for sc.Scan() {
			if leaseEvent(sc.Bytes()) == "read-failed" && strings.Contains(sc.Text(), s) {
				n++
			}
		}
		_ = f.Close()
	}
	return n
}

// 9. The downstream: acknowledgements held, slow, and out of order. The
// readers' output also posts every message to the test's server and the
// message is acknowledged only when the server answers.
func TestChaosDownstream(t *testing.T) {
	interval := 2 * time.Millisecond

	// A pipeline that acknowledges nothing for longer than the lease
	// period: checkpoint_limit stops every shard's reading (no GetRecords
	// in the second half of the hold, no more messages unacknowledged than
	// the limit), the readers keep their leases (no take-over), and once
	// acks resume nothing is lost or delivered twice.
	t.Run("acks held", func(t *testing.T) {
		const limit, shards = 16, 4
		hold := pick(2*leasePeriod, 30*time.Second)
		acks := startAckServer(t, nil)
		c := newCluster(t, clusterSpec{shards: shards, keys: keys, perKey: perKey(hold+8*time.Second, interval), writerInterval: interval, checkpointLimit: limit, ackURL: acks.url()})
		a, b := c.addReader(), c.addReader()
		c.startWriter()
		// Balanced first: a hand-off asked during the hold could not drain,
		// and its forced end would be a lease change the hold did not cause.
		c.waitOwnsN(a, shards/2, 30*time.Second)
		c.waitOwnsN(b, shards/2, 30*time.Second)
		c.sleep(2 * time.Second)
		from := time.Now()
		acks.hold()
		c.sleep(hold / 2)
		mid := c.readerRequests("GetRecords")
		c.sleep(hold - hold/2)
		reads := c.readerRequests("GetRecords") - mid
		to := time.Now()
		held := acks.release()
		if reads != 0 {
			t.Errorf("the readers called GetRecords %d times in the second half of a %v hold of every ack: checkpoint_limit did not stop reading", reads, hold)
		}
		if held == 0 || held > shards*limit {
			t.Errorf("%d messages waited for their ack at the end of the hold, want 1 to %d (checkpoint_limit %d × %d shards)", held, shards*limit, limit, shards)
		}
		changes := leaseChanges(c.monitor.samples(), from, to)
		for _, ch := range changes {
			t.Errorf("lease changed while the acks were held: %s", ch)
		}
		for _, r := range c.readers {
			if n := logEventCount(r.cur, "lost") + logEventCount(r.cur, "fenced"); n > 0 {
				t.Errorf("%s lost or fenced %d leases", r.cur.id, n)
			}
		}
		c.waitWriter(2 * time.Minute)
		rep := c.finish(verify.Options{ZeroDuplicates: true}, 2*time.Minute)
		acks.checkAll(t, c.written())
		report(t, rep, fmt.Sprintf("acks held %v with checkpoint_limit %d: %d messages waiting at the end, %d GetRecords calls in its second half, %d lease changes during it\n%s",
			hold, limit, held, reads, len(changes), acks))
	})

	// Slow acks (200 ms each) while a third reader joins and leaves
	// gracefully: each hand-off waits for the slow acks of the shard, so
	// nothing is delivered twice.
	t.Run("slow acks and hand-offs", func(t *testing.T) {
		step := pick(4*time.Second, 15*time.Second)
		acks := startAckServer(t, func() time.Duration { return 200 * time.Millisecond })
		c := newCluster(t, clusterSpec{shards: 4, keys: keys, perKey: perKey(2*step+6*time.Second, interval), writerInterval: interval, checkpointLimit: 32, ackURL: acks.url()})
		a, b := c.addReader(), c.addReader()
		c.startWriter()
		c.waitOwns(a, 30*time.Second)
		c.waitOwns(b, 30*time.Second)
		c.sleep(step)
		third := c.addReader()
		c.waitOwns(third, 30*time.Second)
		c.sleep(step)
		c.stop(third)
		c.waitWriter(2 * time.Minute)
		rep := c.finish(verify.Options{ZeroDuplicates: true}, 2*time.Minute)
		acks.checkAll(t, c.written())
		handOffs, releases := 0, 0
		for _, p := range c.procs {
			handOffs += logEventCount(p, "handed-over")
			releases += logEventCount(p, "released")
		}
		if handOffs == 0 {
			t.Error("no shard was handed over to the reader that joined: the scenario did not test hand-offs")
		}
		report(t, rep, fmt.Sprintf("every ack 200 ms late, checkpoint_limit 32, a reader joined and left: %d hand-offs, %d releases\n%s", handOffs, releases, acks))
	})

	// Acks in random order (each 0-400 ms late, many in flight) and a
	// kill -9: the checkpoint must only pass records acknowledged with all
	// those before them, so every record is acknowledged at least once,
	// by the killed reader or by the one that reads its shards after it.
	t.Run("acks out of order and kill", func(t *testing.T) {
		d := pick(12*time.Second, time.Minute)
		var mu sync.Mutex
		rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 9))
		acks := startAckServer(t, func() time.Duration {
			mu.Lock()
			defer mu.Unlock()
			return time.Duration(rng.Int64N(int64(400 * time.Millisecond)))
		})
		c := newCluster(t, clusterSpec{shards: 4, keys: keys, perKey: perKey(d, interval), writerInterval: interval, ackURL: acks.url()})
		a, b := c.addReader(), c.addReader()
		c.startWriter()
		c.waitOwns(a, 30*time.Second)
		c.waitOwns(b, 30*time.Second)
		c.sleep(d / 3)
		c.kill(a)
		c.sleep(2 * time.Second)
		c.startReader(a)
		c.waitWriter(2 * time.Minute)
		rep := c.finish(verify.Options{}, 2*time.Minute)
		acks.checkAll(t, c.written())
		if acks.stats().outOfOrder == 0 {
			t.Error("no ack came before that of an earlier record of its shard: the scenario did not reorder acks")
		}
		report(t, rep, fmt.Sprintf("acks 0-400 ms late in random order, kill -9 of a reader\n%s", acks))
	})
}

// leaseChanges lists, from the lease table's samples, every change of a
// shard's owner or epoch between from and to.
func leaseChanges(samples []verify.LeaseSample, from, to time.Time) []string {
	type state struct {
		owner string
		epoch int64
	}
	last := map[string]state{}
	var out []string
	for _, s := range samples {
		cur := state{s.Owner, s.Epoch}
		prev, seen := last[s.Shard]
		last[s.Shard] = cur
		if seen && prev != cur && s.At.After(from) && !s.At.After(to) {
			out = append(out, fmt.Sprintf("%s at %s: owner %s epoch %d, was %s epoch %d", s.Shard, s.At.Format("15:04:05.000"), cur.owner, cur.epoch, prev.owner, prev.epoch))
		}
	}
	return out
}

// ackServer is the end of the readers' pipeline that acknowledges: each
// message is one POST, acknowledged when it is answered 200. It can hold
// every answer, or delay each.
type ackServer struct {
	srv   *httptest.Server
	delay func() time.Duration // nil: answer at once

	mu       sync.Mutex
	released chan struct{}             // while holding: closed by release
	held     int                       // requests waiting for release
	seq      int                       // requests received
	pending  map[string]map[string]int // shard → sequence number → arrival, not yet answered
	acked    map[ackKey]int
	st       ackStats
}

type ackKey struct {
	k string
	n int
}

type ackStats struct {
	received, acked, outOfOrder, maxHeld int
}

func startAckServer(t *testing.T, delay func() time.Duration) *ackServer {
	a := &ackServer{delay: delay, pending: map[string]map[string]int{}, acked: map[ackKey]int{}}
	a.srv = httptest.NewServer(http.HandlerFunc(a.serve))
	// Registered before the cluster's cleanup, so it runs after it: the
	// readers are gone, and no handler waits for a release any more.
	t.Cleanup(func() {
		a.release()
		a.srv.CloseClientConnections()
		a.srv.Close()
	})
	return a
}

func (a *ackServer) url() string { return a.srv.URL }

func (a *ackServer) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	var d verify.Delivery
	if err == nil {
		err = json.Unmarshal(body, &struct {
			K     *string `json:"k"`
			N     *int    `json:"n"`
			Shard *string `json:"shard"`
			Seq   *string `json:"seq"`
		}{&d.Key, &d.N, &d.Shard, &d.Seq})
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest) // a nack: the replay shows as a duplicate
		return
	}
	a.mu.Lock()
	a.st.received++
	arrival := a.seq
	a.seq++
	if a.pending[d.Shard] == nil {
		a.pending[d.Shard] = map[string]int{}
	}
	a.pending[d.Shard][d.Seq] = arrival
	release := a.released
	if release != nil {
		a.held++
		a.st.maxHeld = max(a.st.maxHeld, a.held)
	}
	a.mu.Unlock()
	ok := true
	if release != nil {
		select {
		case <-release:
		case <-r.Context().Done():
			ok = false
		}
	}
	if ok && a.delay != nil {
		ok = waitFor(r, a.delay())
	}
	// A client gone (killed) never got the ack.
	ok = ok && r.Context().Err() == nil
	a.mu.Lock()
	delete(a.pending[d.Shard], d.Seq)
	if ok {
		for _, other := range a.pending[d.Shard] {
			if other < arrival {
				a.st.outOfOrder++ // an earlier record of the shard still waits
				break
			}
		}
		a.st.acked++
		a.acked[ackKey{d.Key, d.N}]++
	}
	a.mu.Unlock()
	if ok {
		w.WriteHeader(http.StatusOK)
	}
}

// waitFor waits d, or less if the client goes; it reports whether it waited d.
func waitFor(r *http.Request, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
		return false
	}
}

// hold makes every answer wait for release.
func (a *ackServer) hold() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.released == nil {
		a.released = make(chan struct{})
	}
}

// release answers the held requests and returns how many were waiting.
func (a *ackServer) release() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := a.held
	if a.released != nil {
		close(a.released)
		a.released = nil
	}
	a.held = 0
	return n
}

func (a *ackServer) stats() ackStats {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.st
}

func (a *ackServer) String() string {
	s := a.stats()
	held := ""
	if s.maxHeld > 0 {
		held = fmt.Sprintf(", at most %d held at once", s.maxHeld)
	}
	return fmt.Sprintf("ack server: %d messages received, %d acknowledged, %d acknowledged before an earlier record of their shard%s\n",
		s.received, s.acked, s.outOfOrder, held)
}

// checkAll fails t unless every written record was acknowledged at least
// once: a record delivered but never acknowledged (its reader died first)
// must be delivered again, which a checkpoint moved past it would prevent.
func (a *ackServer) checkAll(t *testing.T, w verify.Written) {
	t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	var missing []string
	for k := range w.Keys {
		for n := range w.PerKey {
			if a.acked[ackKey{fmt.Sprintf("key-%d", k), n}] == 0 {
				missing = append(missing, fmt.Sprintf("key-%d/%d", k, n))
			}
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		t.Errorf("%d records never acknowledged, e.g. %s", len(missing), strings.Join(missing[:min(10, len(missing))], " "))
	}
}
