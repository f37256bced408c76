package verify

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// EventKind is what happened to a reader incarnation.
type EventKind uint8

// The zero EventKind is invalid, so that an Event whose Kind was never set
// is not silently taken for one that was.
const (
	Started     EventKind = iota + 1 // the process was started
	Killed                           // the harness sent SIGKILL
	Stopped                          // the harness sent SIGSTOP: the process is frozen
	Continued                        // the harness sent SIGCONT to a stopped process
	Partitioned                      // the process was cut off from the network
	Healed                           // the partition was removed
	Terminated                       // the harness sent SIGTERM: a graceful shutdown
	Exited                           // the process exited (after any of the above, or on its own)
	LeaseLost                        // the process logged that it was fenced or lost a lease
)

var eventKindNames = [...]string{
	Started:     "started",
	Killed:      "killed",
	Stopped:     "stopped",
	Continued:   "continued",
	Partitioned: "partitioned",
	Healed:      "healed",
	Terminated:  "terminated",
	Exited:      "exited",
	LeaseLost:   "lease-lost",
}

func (k EventKind) String() string {
	if k > 0 && int(k) < len(eventKindNames) {
		return eventKindNames[k]
	}
	return fmt.Sprintf("EventKind(%d)", uint8(k))
}

// MarshalText writes the kind's name, so that events can be stored as JSON.
func (k EventKind) MarshalText() ([]byte, error) {
	if k == 0 || int(k) >= len(eventKindNames) {
		return nil, fmt.Errorf("invalid event kind %d", uint8(k))
	}
	return []byte(eventKindNames[k]), nil
}

// UnmarshalText reads a name written by MarshalText.
func (k *EventKind) UnmarshalText(b []byte) error {
	for i, name := range eventKindNames {
		if i > 0 && name == string(b) {
			*k = EventKind(i)
			return nil
		}
	}
	return fmt.Errorf("unknown event kind %q", b)
}

// Event is something the harness did to, or observed of, one reader
// incarnation. For a signal, At may be taken just before sending it or just
// after: Check treats a kill, a freeze (Stopped until Continued) and a
// partition (Partitioned until Healed) as states, which a delivery stamped
// in between still falls into.
type Event struct {
	At          time.Time
	Incarnation string // as in Delivery.Incarnation, e.g. "r2.1"
	Kind        EventKind
}

// LeaseSample is one shard row of the lease table as the harness read it.
type LeaseSample struct {
	At     time.Time
	Stream string
	Shard  string
	Owner  string // "" when free
	Epoch  int64
	// Checkpoint is the decimal sequence number, or "" when never
	// checkpointed, or a sentinel: TRIM_HORIZON, LATEST, AT_TIMESTAMP (before
	// every sequence number) or SHARD_END (after every one).
	Checkpoint string
}

func (s LeaseSample) String() string {
	cp := s.Checkpoint
	if cp == "" {
		cp = `""`
	}
	owner := s.Owner
	if owner == "" {
		owner = "(free)"
	}
	return fmt.Sprintf("%s owner %s epoch %d checkpoint %s",
		s.At.UTC().Format("15:04:05.000000"), owner, s.Epoch, cp)
}

// timeline holds one incarnation's events of the kinds Check reasons about,
// as sorted unix nanoseconds, and the spans of time it spent frozen and
// partitioned.
type timeline struct {
	killed, continued, leaseLost []int64
	stopped, partitioned         []span
}

// span is a state from a time until another, [from, to]; to is MaxInt64
// while the state lasted to the end of the run.
type span struct{ from, to int64 }

// timelines indexes events by incarnation.
type timelines map[string]*timeline

func newTimelines(events []Event) timelines {
	type raw struct{ stopped, healed, partitioned []int64 }
	tls := make(timelines)
	raws := make(map[*timeline]*raw)
	for _, e := range events {
		tl := tls[e.Incarnation]
		if tl == nil {
			tl = new(timeline)
			tls[e.Incarnation] = tl
			raws[tl] = new(raw)
		}
		r := raws[tl]
		at := e.At.UnixNano()
		switch e.Kind {
		case Killed:
			tl.killed = append(tl.killed, at)
		case Stopped:
			r.stopped = append(r.stopped, at)
		case Continued:
			tl.continued = append(tl.continued, at)
		case Partitioned:
			r.partitioned = append(r.partitioned, at)
		case Healed:
			r.healed = append(r.healed, at)
		case LeaseLost:
			tl.leaseLost = append(tl.leaseLost, at)
		}
	}
	for tl, r := range raws {
		for _, l := range [][]int64{tl.killed, tl.continued, tl.leaseLost, r.stopped, r.partitioned, r.healed} {
			slices.Sort(l)
		}
		tl.stopped = spans(r.stopped, tl.continued)
		tl.partitioned = spans(r.partitioned, r.healed)
	}
	return tls
}

// spans pairs each start of a state with the first end at or after it.
func spans(starts, ends []int64) []span {
	out := make([]span, 0, len(starts))
	for _, from := range starts {
		to := int64(math.MaxInt64)
		if i, _ := slices.BinarySearch(ends, from); i < len(ends) {
			to = ends[i]
		}
		out = append(out, span{from, to})
	}
	return out
}

// overlaps reports whether a span of a list sorted by start meets [lo, hi].
func overlaps(list []span, lo, hi int64) bool {
	for _, s := range list {
		if s.from > hi {
			return false
		}
		if s.to >= lo {
			return true
		}
	}
	return false
}

// startsBy reports whether a span of a list sorted by start begins at or
// before t.
func startsBy(list []span, t int64) bool { return len(list) > 0 && list[0].from <= t }

// anyIn reports whether a sorted list has a time in [lo, hi].
func anyIn(ts []int64, lo, hi int64) bool {
	i, _ := slices.BinarySearch(ts, lo)
	return i < len(ts) && ts[i] <= hi
}

// lastAtOrBefore returns the latest time in a sorted list that is <= t.
func lastAtOrBefore(ts []int64, t int64) (int64, bool) {
	i, found := slices.BinarySearch(ts, t)
	if found {
		return t, true
	}
	if i == 0 {
		return 0, false
	}
	return ts[i-1], true
}
