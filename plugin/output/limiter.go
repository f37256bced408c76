package output

import (
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// shardLimits are the write limits of one shard, counted as Kinesis counts
// them: records, and bytes of data plus partition key.
type shardLimits struct {
	recordsPerSecond float64
	bytesPerSecond   float64
}

const (
	// On throttling the rate drops to this fraction of what it was...
	aimdDecrease = 0.7
	// ...at most once in this period, since one burst of throttles is one
	// signal, not hundreds.
	aimdDecreaseCooldown = 500 * time.Millisecond
	// Without throttling it climbs back by this fraction of the configured
	// limit per second.
	aimdIncreasePerSecond = 0.1
	// It never falls below this fraction, so a shard is never starved.
	aimdFloor = 0.05
)

// burstFraction is the share of a shard's per-second limit that may be sent
// at once. The buckets refill at the limit minus that burst, so that no
// one-second window, wherever it starts, sees more than the limit: Kinesis
// counts per second, and a bucket holding a whole second of burst would let
// up to twice the limit into one window.
const burstFraction = 0.05

// shardLimiter keeps one shard under its write limits with two token buckets
// (records, and bytes of data plus partition key) and scales both by an AIMD
// factor: multiplicative decrease when Kinesis throttles the shard anyway
// (another producer shares it), additive increase while it does not.
type shardLimiter struct {
	mu           sync.Mutex
	records      *rate.Limiter
	bytes        *rate.Limiter
	recordRate   float64 // refill rates at factor 1
	byteRate     float64
	byteBurst    int
	factor       float64
	lastDecrease time.Time
	lastIncrease time.Time
}

func newShardLimiter(l shardLimits, now time.Time) *shardLimiter {
	recordBurst := max(1, int(l.recordsPerSecond*burstFraction))
	byteBurst := max(1, int(l.bytesPerSecond*burstFraction))
	s := &shardLimiter{
		recordRate:   math.Max(l.recordsPerSecond-float64(recordBurst), l.recordsPerSecond/2),
		byteRate:     math.Max(l.bytesPerSecond-float64(byteBurst), l.bytesPerSecond/2),
		byteBurst:    byteBurst,
		factor:       1,
		lastIncrease: now,
	}
	s.records = rate.NewLimiter(rate.Limit(s.recordRate), recordBurst)
	s.bytes = rate.NewLimiter(rate.Limit(s.byteRate), byteBurst)
	return s
}

// take admits one record of size bytes at now if both buckets hold enough;
// otherwise it takes nothing and says how long until they may. A record
// larger than the byte burst needs a full bucket and leaves it in debt, so
// the shard's average stays under the limit.
func (l *shardLimiter) take(now time.Time, size int) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, wait := l.roomLocked(now, size); wait > 0 {
		return false, wait
	}
	l.records.AllowN(now, 1)
	if size <= l.byteBurst {
		l.bytes.AllowN(now, size)
	} else {
		for left := size; left > 0; left -= l.byteBurst {
			l.bytes.ReserveN(now, min(left, l.byteBurst))
		}
	}
	return true, 0
}

// room says whether take would admit a record of size bytes at now, taking
// nothing. If so it returns the largest record take would admit as well (at
// least size), which bounds an aggregate starting with that record; if not,
// how long until it would.
func (l *shardLimiter) room(now time.Time, size int) (int, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.roomLocked(now, size)
}

func (l *shardLimiter) roomLocked(now time.Time, size int) (int, time.Duration) {
	need := min(size, l.byteBurst)
	recTokens := l.records.TokensAt(now)
	byteTokens := l.bytes.TokensAt(now)
	if recTokens >= 1 && byteTokens >= float64(need) {
		return max(size, int(byteTokens)), 0
	}
	wait := deficitWait(1-recTokens, float64(l.records.Limit()))
	if w := deficitWait(float64(need)-byteTokens, float64(l.bytes.Limit())); w > wait {
		wait = w
	}
	return 0, wait
}

// deficitWait is how long a bucket refilling at perSecond takes to gain
// deficit tokens, rounded up to a millisecond so callers never spin.
func deficitWait(deficit, perSecond float64) time.Duration {
	if deficit <= 0 {
		return 0
	}
	d := time.Duration(math.Ceil(deficit / perSecond * float64(time.Second)))
	if d < time.Millisecond {
		d = time.Millisecond
	}
	return d
}

// throttled records that Kinesis refused a record for this shard's throughput.
func (l *shardLimiter) throttled(now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.lastDecrease.IsZero() && now.Sub(l.lastDecrease) < aimdDecreaseCooldown {
		return
	}
	l.lastDecrease = now
	l.lastIncrease = now
	l.setFactor(now, l.factor*aimdDecrease)
}

// succeeded records that Kinesis took records for this shard without
// throttling any.
func (l *shardLimiter) succeeded(now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.factor >= 1 {
		l.lastIncrease = now
		return
	}
	elapsed := now.Sub(l.lastIncrease)
	if elapsed <= 0 {
		return
	}
	l.lastIncrease = now
	l.setFactor(now, l.factor+aimdIncreasePerSecond*elapsed.Seconds())
}

func (l *shardLimiter) setFactor(now time.Time, f float64) {
	f = math.Min(1, math.Max(aimdFloor, f))
	l.factor = f
	l.records.SetLimitAt(now, rate.Limit(l.recordRate*f))
	l.bytes.SetLimitAt(now, rate.Limit(l.byteRate*f))
}

// rateFactor is the fraction of the configured limits currently allowed.
func (l *shardLimiter) rateFactor() float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.factor
}

// waitFor is how long until both buckets hold what n records of size bytes
// in all need, each capped at fill (a fraction) of its burst. Zero when they
// do now.
func (l *shardLimiter) waitFor(now time.Time, n, size int, fill float64) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	n = min(n, max(1, int(math.Ceil(fill*float64(l.records.Burst())))))
	size = min(size, max(1, int(math.Ceil(fill*float64(l.byteBurst)))))
	wait := deficitWait(float64(n)-l.records.TokensAt(now), float64(l.records.Limit()))
	if w := deficitWait(float64(size)-l.bytes.TokensAt(now), float64(l.bytes.Limit())); w > wait {
		wait = w
	}
	return wait
}
