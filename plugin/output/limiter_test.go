package output

import (
	"math/rand/v2"
	"testing"
	"time"
)

var defaultLimits = shardLimits{recordsPerSecond: 1000, bytesPerSecond: 1 << 20}

func TestShardLimiterRefusesAndWaits(t *testing.T) {
	l := newShardLimiter(defaultLimits, t0)
	taken := 0
	for ; taken < 2000; taken++ {
		if ok, _ := l.take(t0, 10); !ok {
			break
		}
	}
	if taken != 50 {
		t.Fatalf("%d records taken at once, want a burst of 50 (5%% of 1000)", taken)
	}
	ok, wait := l.take(t0, 10)
	if ok || wait <= 0 || wait > 2*time.Millisecond {
		t.Fatalf("after the burst: ok=%v wait=%v, want refused for about 1/950 s", ok, wait)
	}
	if ok, _ := l.take(t0.Add(wait), 10); !ok {
		t.Fatalf("refused after waiting the %v it asked for", wait)
	}
}

func TestShardLimiterBigRecordLeavesDebt(t *testing.T) {
	l := newShardLimiter(defaultLimits, t0)
	if ok, _ := l.take(t0, 1<<20); !ok {
		t.Fatal("a 1 MiB record refused by a full bucket")
	}
	ok, wait := l.take(t0, 1)
	// The debt is 1 MiB less the 52,428-byte burst, refilled at 996,148 B/s.
	if ok || wait < 990*time.Millisecond || wait > 1010*time.Millisecond {
		t.Fatalf("after 1 MiB: ok=%v wait=%v, want about one second of debt", ok, wait)
	}
	big := newShardLimiter(defaultLimits, t0)
	if ok, _ := big.take(t0, 10<<20); !ok {
		t.Fatal("a 10 MiB record never fits")
	}
}

// TestShardLimiterWindowOracle drives a greedy producer through 20 simulated
// seconds and checks every one-second window, at every millisecond offset,
// against the limit: the oracle is the definition of the limit itself.
func TestShardLimiterWindowOracle(t *testing.T) {
	for _, c := range []struct {
		name  string
		sizes func(r *rand.Rand) int
	}{
		{"small records: record-bound", func(*rand.Rand) int { return 100 }},
		{"10 KB records: byte-bound", func(*rand.Rand) int { return 10 << 10 }},
		{"mixed sizes", func(r *rand.Rand) int { return 1 + r.IntN(40<<10) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, 2))
			l := newShardLimiter(defaultLimits, t0)
			const ms = 20000
			recs := make([]int, ms)
			bytes := make([]int, ms)
			size := c.sizes(rng)
			for i := 0; i < ms; i++ {
				now := t0.Add(time.Duration(i) * time.Millisecond)
				for {
					ok, _ := l.take(now, size)
					if !ok {
						break
					}
					recs[i]++
					bytes[i] += size
					size = c.sizes(rng)
				}
			}
			var totalRecs, totalBytes int
			for start := 0; start+1000 <= ms; start++ {
				r, b := 0, 0
				for i := start; i < start+1000; i++ {
					r += recs[i]
					b += bytes[i]
				}
				if r > 1000 || b > 1<<20 {
					t.Fatalf("window at %dms: %d records, %d bytes: over the limit", start, r, b)
				}
			}
			for i := range recs {
				totalRecs += recs[i]
				totalBytes += bytes[i]
			}
			// It must also use the shard: at least 90% of whichever limit binds.
			recShare := float64(totalRecs) / 20 / 1000
			byteShare := float64(totalBytes) / 20 / (1 << 20)
			if max(recShare, byteShare) < 0.9 {
				t.Fatalf("used %.1f%% of the record limit and %.1f%% of the byte limit", 100*recShare, 100*byteShare)
			}
		})
	}
}

func TestShardLimiterAIMD(t *testing.T) {
	l := newShardLimiter(defaultLimits, t0)
	steps := []struct {
		at        time.Duration
		throttled bool
		want      float64
	}{
		{0, true, 0.7},
		{100 * time.Millisecond, true, 0.7}, // same burst of throttles: one signal
		{600 * time.Millisecond, true, 0.49},
		{1600 * time.Millisecond, false, 0.59},
		{2600 * time.Millisecond, false, 0.69},
		{20 * time.Second, false, 1},
	}
	for _, s := range steps {
		if s.throttled {
			l.throttled(t0.Add(s.at))
		} else {
			l.succeeded(t0.Add(s.at))
		}
		if got := l.rateFactor(); got < s.want-1e-9 || got > s.want+1e-9 {
			t.Fatalf("after %v: factor %v, want %v", s.at, got, s.want)
		}
	}
	for i := 0; i < 100; i++ {
		l.throttled(t0.Add(time.Minute + time.Duration(i)*time.Second))
	}
	if got := l.rateFactor(); got != aimdFloor {
		t.Fatalf("factor %v after many throttles, want the floor %v", got, aimdFloor)
	}
	// At the floor the records bucket refills at 5% of 950/s: 47.5 a second.
	now := t0.Add(3 * time.Minute)
	for {
		if ok, _ := l.take(now, 1); !ok {
			break
		}
	}
	_, wait := l.take(now, 1)
	if wait < 20*time.Millisecond || wait > 22*time.Millisecond {
		t.Fatalf("wait %v at the floor, want about 21ms (47.5 records/s)", wait)
	}
}

// waitFor is how long until a request of n records of size bytes in all
// fits the buckets, each capped at a fraction of its burst.
func TestShardLimiterWaitFor(t *testing.T) {
	l := newShardLimiter(defaultLimits, t0)
	for _, c := range []struct {
		n, size int
		want    time.Duration
	}{
		{1, 100, 0},
		{50, 5000, 0},
		{500, 50000, 0},  // capped at the bursts: a full bucket is enough
		{1, 10 << 20, 0}, // a record over the byte burst needs a full bucket
	} {
		if got := l.waitFor(t0, c.n, c.size, 1); got != c.want {
			t.Errorf("full: waitFor(%d, %d) = %v, want %v", c.n, c.size, got, c.want)
		}
	}
	for i := 0; i < 50; i++ {
		if ok, _ := l.take(t0, 100); !ok {
			t.Fatal("burst refused")
		}
	}
	// Empty: 50 records take 50/950 s to come back, 10 take 10/950 s.
	for _, c := range []struct {
		n    int
		want time.Duration
	}{{50, 52631579}, {10, 10526316}, {500, 52631579}} {
		if got := l.waitFor(t0, c.n, c.n*100, 1); got != c.want {
			t.Errorf("empty: waitFor(%d) = %v, want %v", c.n, got, c.want)
		}
	}
	if got := l.waitFor(t0, 50, 5000, 0.9); got != 47368422 {
		t.Errorf("empty: waitFor(50) for 90%% of the burst = %v, want 45/950 s", got)
	}
	if got := l.waitFor(t0.Add(52631579), 50, 5000, 1); got != 0 {
		t.Errorf("waitFor after the wait it gave = %v, want 0", got)
	}
}
