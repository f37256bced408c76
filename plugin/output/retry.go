package output

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"
)

// retryState is a record's retry bookkeeping.
type retryState struct {
	attempts     int       // failed attempts so far
	firstFailure time.Time // when the first attempt failed
	notBefore    time.Time // no attempt before this
}

// retryPolicy is max_retries and backoff: when a failed record is tried
// again, and when it is given up.
type retryPolicy struct {
	maxRetries      int           // 0: no limit
	initialInterval time.Duration // backoff after the first failure
	maxInterval     time.Duration // 0: no cap
	maxElapsed      time.Duration // since the first failure; 0: no limit
	// random returns a number in [0, 1) for the jitter; nil means
	// math/rand/v2 (tests fix it).
	random func() float64
}

// backoffJitter spreads each backoff by ±50% so that the retries of many
// records failed together do not come back together.
const backoffJitter = 0.5

// backoff is the wait before a record's next attempt after its n-th failure:
// exponential from initial_interval, capped at max_interval, jittered.
func (p retryPolicy) backoff(n int) time.Duration {
	d := float64(p.initialInterval) * math.Pow(2, float64(n-1))
	if p.maxInterval > 0 && d > float64(p.maxInterval) {
		d = float64(p.maxInterval)
	}
	random := p.random
	if random == nil {
		random = rand.Float64
	}
	return time.Duration(d * (1 - backoffJitter + 2*backoffJitter*random()))
}

// schedule books a failure, at now, of a record whose retry state is s. Unless
// max_retries or backoff.max_elapsed_time is spent, it sets the next attempt
// at now plus delay (zero: the record's own backoff) and returns nil;
// otherwise it returns why the record is given up, wrapping cause.
func (p retryPolicy) schedule(s *retryState, now time.Time, cause error, delay time.Duration) error {
	s.attempts++
	if s.firstFailure.IsZero() {
		s.firstFailure = now
	}
	switch elapsed := now.Sub(s.firstFailure); {
	case p.maxRetries > 0 && s.attempts > p.maxRetries:
		return fmt.Errorf("gave up after %d attempts (max_retries %d): %w", s.attempts, p.maxRetries, cause)
	case p.maxElapsed > 0 && elapsed >= p.maxElapsed:
		return fmt.Errorf("gave up after retrying for %s (backoff.max_elapsed_time): %w", elapsed.Round(time.Millisecond), cause)
	}
	if delay <= 0 {
		delay = p.backoff(s.attempts)
	}
	s.notBefore = now.Add(delay)
	return nil
}
