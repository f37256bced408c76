package kinesisfake

// limiter admits units (records, bytes or calls) at a rate of limit per
// second. In window mode it counts in one-second windows aligned to whole
// seconds of the clock; in token-bucket mode it refills continuously and
// holds at most one second of burst. A limit <= 0 admits everything.
//
// A single unit larger than the whole limit (a 1 MiB record plus its
// partition key against a 1 MiB/s budget) is admitted when the window is
// untouched or the bucket is full, so it can never starve; the bucket then
// goes into debt.
type limiter struct {
	limit  int64
	bucket bool

	// window mode
	window int64 // unix second of the current window
	used   int64

	// token-bucket mode, in units scaled by 1e9 (nano-units) to stay exact
	tokens int64
	last   int64 // unix nanos of the last refill
	primed bool
}

func newLimiter(limit int64, bucket bool) limiter {
	return limiter{limit: limit, bucket: bucket}
}

// refresh brings the limiter to time now (unix nanos).
func (l *limiter) refresh(now int64) {
	if l.limit <= 0 {
		return
	}
	if !l.bucket {
		if w := floorSecond(now); w != l.window {
			l.window = w
			l.used = 0
		}
		return
	}
	full := l.limit * 1e9
	if !l.primed {
		l.primed = true
		l.tokens = full
		l.last = now
		return
	}
	if now > l.last {
		el := now - l.last
		// tokens += el * limit (nano-units); guard overflow for long gaps.
		if el >= 1e9 || l.tokens+el*l.limit >= full {
			l.tokens = full
		} else {
			l.tokens += el * l.limit
		}
		l.last = now
	}
}

// can reports whether n units fit now. Call refresh first.
func (l *limiter) can(n int64) bool {
	if l.limit <= 0 {
		return true
	}
	if !l.bucket {
		return l.used+n <= l.limit || l.used == 0
	}
	full := l.limit * 1e9
	return l.tokens >= n*1e9 || l.tokens >= full
}

// take consumes n units. Call can first.
func (l *limiter) take(n int64) {
	if l.limit <= 0 {
		return
	}
	if !l.bucket {
		l.used += n
		return
	}
	l.tokens -= n * 1e9
}

func floorSecond(nanos int64) int64 {
	s := nanos / 1e9
	if nanos < 0 && s*1e9 != nanos {
		s--
	}
	return s
}

// perSecondMax tracks a count per aligned second and the largest seen.
type perSecondMax struct {
	window int64
	cur    int64
	max    int64
	seen   bool
}

func (p *perSecondMax) add(now, n int64) {
	w := floorSecond(now)
	if !p.seen || w != p.window {
		p.seen = true
		p.window = w
		p.cur = 0
	}
	p.cur += n
	if p.cur > p.max {
		p.max = p.cur
	}
}
