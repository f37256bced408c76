package output

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestRetryPolicyBackoff(t *testing.T) {
	p := retryPolicy{initialInterval: 100 * time.Millisecond, maxInterval: time.Second}
	for _, c := range []struct {
		n      int
		random float64
		want   time.Duration
	}{
		{1, 0.5, 100 * time.Millisecond}, // no jitter at the middle
		{2, 0.5, 200 * time.Millisecond},
		{3, 0.5, 400 * time.Millisecond},
		{4, 0.5, 800 * time.Millisecond},
		{5, 0.5, time.Second}, // capped at max_interval
		{50, 0.5, time.Second},
		{1, 0, 50 * time.Millisecond}, // jitter ±50%
		{1, 0.999999, 149999900 * time.Nanosecond},
		{5, 0, 500 * time.Millisecond},
	} {
		p.random = func() float64 { return c.random }
		if got := p.backoff(c.n); got != c.want {
			t.Errorf("backoff(%d) with random %v = %v, want %v", c.n, c.random, got, c.want)
		}
	}
	uncapped := retryPolicy{initialInterval: time.Second, random: func() float64 { return 0.5 }}
	if got := uncapped.backoff(6); got != 32*time.Second {
		t.Errorf("backoff(6) without max_interval = %v, want 32s", got)
	}
}

func TestRetryPolicySchedule(t *testing.T) {
	cause := errors.New("InternalFailure: boom")
	mid := func() float64 { return 0.5 }
	for _, c := range []struct {
		name    string
		policy  retryPolicy
		state   retryState // before the failure
		at      time.Duration
		delay   time.Duration
		wantErr string        // "" when retried
		wantIn  time.Duration // next attempt after the failure, when retried
	}{
		{"first failure: the initial interval", retryPolicy{initialInterval: time.Second, random: mid}, retryState{}, 0, 0, "", time.Second},
		{"third failure: doubled twice", retryPolicy{initialInterval: time.Second, maxInterval: time.Minute, random: mid},
			retryState{attempts: 2, firstFailure: t0}, 3 * time.Second, 0, "", 4 * time.Second},
		{"a delay given wins over the backoff", retryPolicy{initialInterval: time.Second, random: mid}, retryState{}, 0, 7 * time.Millisecond, "", 7 * time.Millisecond},
		{"max_retries reached: still retried", retryPolicy{maxRetries: 3, initialInterval: time.Millisecond, random: mid},
			retryState{attempts: 2, firstFailure: t0}, 0, 0, "", 4 * time.Millisecond},
		{"max_retries spent", retryPolicy{maxRetries: 3, initialInterval: time.Millisecond, random: mid},
			retryState{attempts: 3, firstFailure: t0}, 0, 0, "gave up after 4 attempts (max_retries 3): InternalFailure: boom", 0},
		{"max_elapsed_time not yet spent", retryPolicy{maxElapsed: 10 * time.Second, initialInterval: time.Second, random: mid},
			retryState{attempts: 1, firstFailure: t0}, 9999 * time.Millisecond, 0, "", 2 * time.Second},
		{"max_elapsed_time spent", retryPolicy{maxElapsed: 10 * time.Second, initialInterval: time.Second, random: mid},
			retryState{attempts: 1, firstFailure: t0}, 10 * time.Second, 0, "gave up after retrying for 10s (backoff.max_elapsed_time): InternalFailure: boom", 0},
		{"no limits: retried for ever", retryPolicy{initialInterval: time.Millisecond, maxInterval: time.Millisecond, random: mid},
			retryState{attempts: 1000, firstFailure: t0}, 24 * time.Hour, 0, "", time.Millisecond},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := c.state
			now := t0.Add(c.at)
			err := c.policy.schedule(&s, now, cause, c.delay)
			if s.attempts != c.state.attempts+1 {
				t.Errorf("attempts %d, want %d", s.attempts, c.state.attempts+1)
			}
			if want := c.state.firstFailure; (want.IsZero() && !s.firstFailure.Equal(now)) || (!want.IsZero() && !s.firstFailure.Equal(want)) {
				t.Errorf("first failure %v, want the first one's", s.firstFailure)
			}
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) || !errors.Is(err, cause) {
					t.Fatalf("error %v, want %q wrapping the cause", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("given up: %v", err)
			}
			if got := s.notBefore.Sub(now); got != c.wantIn {
				t.Fatalf("next attempt in %v, want %v", got, c.wantIn)
			}
		})
	}
}
