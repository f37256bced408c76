package verify

import (
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

var sentinels = []error{
	ErrInvalidInput, ErrLost, ErrUnknown, ErrOutOfOrder, ErrUnexplained,
	ErrDuplicates, ErrStaleZombie, ErrLease,
}

// join concatenates lists of deliveries into a new slice.
func join(lists ...[]Delivery) []Delivery {
	var out []Delivery
	for _, l := range lists {
		out = append(out, l...)
	}
	return out
}

// without returns ds minus the deliveries of key k with n in [from, to].
func without(ds []Delivery, k, from, to int) []Delivery {
	key := Written{}.Key(k)
	return slices.DeleteFunc(slices.Clone(ds), func(d Delivery) bool {
		return d.Key == key && d.N >= from && d.N <= to
	})
}

// retimed returns ds with the delivery of (k, n) moved to ms(m).
func retimed(ds []Delivery, k, n int, m float64) []Delivery {
	out := slices.Clone(ds)
	key := Written{}.Key(k)
	for i := range out {
		if out[i].Key == key && out[i].N == n {
			out[i].At = ms(m)
		}
	}
	return out
}

// redeliver delivers records (k, from..to) by inc, one per millisecond from
// ms(start).
func redeliver(k, from, to int, inc string, start float64) []Delivery {
	var ds []Delivery
	for n := from; n <= to; n++ {
		ds = append(ds, del(k, n, inc, start+float64(n-from)))
	}
	return ds
}

func TestCheck(t *testing.T) {
	w := Written{Keys: 2, PerKey: 10}
	base := all(w, "r1.0", 0) // key-0 at 0..9 ms, key-1 at 10..19 ms
	takeover := join(base, redeliver(1, 5, 9, "r2.0", 100))

	// The zombie scenario: r1.0 is frozen at 8 ms while reading key-0; r2.0
	// takes over and delivers the rest from 20 ms; r1.0 resumes at 40 ms.
	zombieBase := join(
		redeliver(0, 0, 7, "r1.0", 0),
		redeliver(0, 8, 9, "r2.0", 20),
		redeliver(1, 0, 9, "r2.0", 22),
	)
	zombieEvents := []Event{ev(8, "r1.0", Stopped), ev(40, "r1.0", Continued)}

	// A record written twice: key-0/3 has a second copy in the stream.
	copy2 := del(0, 3, "r1.0", 30)
	copy2.Seq = "4959999999999999"

	tests := []struct {
		name    string
		w       *Written // w if nil
		ds      []Delivery
		events  []Event
		samples []LeaseSample
		opts    Options
		want    []error // the failed checks; none means Err is nil
		check   func(t *testing.T, r Report)
	}{
		{
			name: "clean",
			ds:   base,
			check: func(t *testing.T, r Report) {
				if r.Written != 20 || r.Distinct != 20 || r.Duplicates != 0 {
					t.Errorf("written %d distinct %d duplicates %d", r.Written, r.Distinct, r.Duplicates)
				}
			},
		},
		{
			name: "lost",
			ds:   without(without(base, 1, 3, 5), 0, 9, 9),
			want: []error{ErrLost},
			check: func(t *testing.T, r Report) {
				want := []Range{{"key-0", 9, 9}, {"key-1", 3, 5}}
				if r.Lost != 4 || !slices.Equal(r.LostExamples, want) {
					t.Errorf("lost %d %v, want 4 %v", r.Lost, r.LostExamples, want)
				}
			},
		},
		{
			name: "lost examples bounded",
			ds:   nil,
			opts: Options{MaxExamples: 1},
			want: []error{ErrLost},
			check: func(t *testing.T, r Report) {
				if r.Lost != 20 || len(r.LostExamples) != 1 || r.LostExamples[0] != (Range{"key-0", 0, 9}) {
					t.Errorf("lost %d %v", r.Lost, r.LostExamples)
				}
			},
		},
		{
			name: "unknown",
			ds: join(base, []Delivery{
				del(2, 0, "r1.0", 30),  // key-2: only keys 0 and 1 were written
				del(0, 10, "r1.0", 31), // n beyond PerKey
				del(0, -1, "r1.0", 32),
				{Key: "key-01", N: 1, At: ms(33), Incarnation: "r1.0"},
				{Key: "other", N: 1, At: ms(34), Incarnation: "r1.0"},
			}),
			want: []error{ErrUnknown},
			check: func(t *testing.T, r Report) {
				if r.Unknown != 5 || len(r.UnknownExamples) != 5 || r.UnknownExamples[0].Key != "key-2" {
					t.Errorf("unknown %d %v", r.Unknown, r.UnknownExamples)
				}
			},
		},
		{
			name: "order violation",
			ds:   retimed(retimed(base, 0, 2, 3), 0, 3, 2),
			want: []error{ErrOutOfOrder},
			check: func(t *testing.T, r Report) {
				if r.OutOfOrder != 1 || r.OrderExamples[0].Late.N != 2 || r.OrderExamples[0].Ahead.N != 3 {
					t.Errorf("out of order %d %v", r.OutOfOrder, r.OrderExamples)
				}
			},
		},
		{
			name: "order violation reported but allowed",
			ds:   retimed(retimed(base, 0, 2, 3), 0, 3, 2),
			opts: Options{AllowOutOfOrder: true},
			check: func(t *testing.T, r Report) {
				if r.OutOfOrder != 1 {
					t.Errorf("out of order %d, want it counted", r.OutOfOrder)
				}
			},
		},
		{
			name: "order violation counts every record overtaken",
			ds:   retimed(base, 0, 5, -1),
			want: []error{ErrOutOfOrder},
			check: func(t *testing.T, r Report) {
				if r.OutOfOrder != 5 {
					t.Errorf("out of order %d, want 5 (n=0..4 after n=5)", r.OutOfOrder)
				}
			},
		},
		{
			name: "order: same time, earlier in the files first",
			ds:   retimed(base, 0, 3, 2), // n=2 and n=3 both at 2 ms, n=2 first in ds
		},
		{
			name: "order: same time, later in the files second",
			ds:   join(without(base, 0, 2, 2), []Delivery{del(0, 2, "r1.0", 3)}), // n=2 at n=3's time, after it in ds
			want: []error{ErrOutOfOrder},
		},
		{
			name:   "order looks only at first deliveries",
			ds:     join(base, redeliver(0, 2, 2, "r2.0", 100)),
			events: []Event{ev(50, "r1.0", Killed)},
		},
		{
			name:   "duplicates after a kill",
			ds:     takeover,
			events: []Event{ev(50, "r1.0", Killed)},
			check:  wantCauses(map[Cause]int{CauseKilled: 5}),
		},
		{
			name:   "duplicates after a kill, in a scenario without duplicates",
			ds:     takeover,
			events: []Event{ev(50, "r1.0", Killed)},
			opts:   Options{ZeroDuplicates: true},
			want:   []error{ErrDuplicates},
		},
		{
			name:   "duplicates after the first deliverer froze",
			ds:     takeover,
			events: []Event{ev(50, "r1.0", Stopped)},
			check:  wantCauses(map[Cause]int{CauseZombie: 5}),
		},
		{
			name:   "duplicates after the first deliverer was partitioned",
			ds:     takeover,
			events: []Event{ev(50, "r1.0", Partitioned)},
			check:  wantCauses(map[Cause]int{CausePartitioned: 5}),
		},
		{
			name:   "duplicates by a deliverer partitioned before the first copy",
			ds:     join(zombieBase, redeliver(0, 8, 8, "r1.0", 60)),
			events: []Event{ev(8, "r1.0", Partitioned), ev(40, "r1.0", Healed)},
			check:  wantCauses(map[Cause]int{CausePartitioned: 1}),
		},
		{
			name: "duplicates after the first deliverer lost its lease, noticed late",
			ds:   takeover,
			// Logged after the duplicates: a process notices at its next
			// lease write.
			events: []Event{ev(200, "r1.0", LeaseLost)},
			check:  wantCauses(map[Cause]int{CauseLeaseLost: 5}),
		},
		{
			name:   "duplicates by a deliverer that then noticed it had lost its lease",
			ds:     takeover,
			events: []Event{ev(200, "r2.0", LeaseLost)},
			check:  wantCauses(map[Cause]int{CauseLeaseLost: 5}),
		},
		{
			name:   "duplicate by the same incarnation after losing and retaking a lease",
			ds:     join(base, redeliver(0, 3, 3, "r1.0", 30)),
			events: []Event{ev(25, "r1.0", LeaseLost)},
			check:  wantCauses(map[Cause]int{CauseLeaseLost: 1}),
		},
		{
			name: "unexplained duplicates",
			ds:   takeover,
			want: []error{ErrUnexplained},
			check: func(t *testing.T, r Report) {
				wantCauses(map[Cause]int{CauseUnexplained: 5})(t, r)
				ex := r.DuplicateExamples[CauseUnexplained]
				if len(ex) != 5 || ex[0].First.Incarnation != "r1.0" || ex[0].Dup.Incarnation != "r2.0" {
					t.Errorf("examples %v", ex)
				}
			},
		},
		{
			name: "unexplained duplicates within the allowance",
			ds:   takeover,
			opts: Options{MaxUnexplained: 5},
		},
		{
			name:   "a kill after the duplicate does not explain it",
			ds:     takeover,
			events: []Event{ev(150, "r1.0", Killed)},
			want:   []error{ErrUnexplained},
		},
		{
			name:   "a graceful shutdown does not explain duplicates",
			ds:     takeover,
			events: []Event{ev(50, "r1.0", Terminated), ev(51, "r1.0", Exited)},
			want:   []error{ErrUnexplained},
		},
		{
			name: "a kill stamped before the signal explains deliveries in between",
			ds:   takeover,
			// key-1/9 was delivered at 19 ms, after the harness stamped the
			// kill but before the signal took effect.
			events: []Event{ev(18.5, "r1.0", Killed)},
			check:  wantCauses(map[Cause]int{CauseKilled: 5}),
		},
		{
			name: "a freeze explains what the frozen process delivered while it was being stopped",
			ds:   takeover,
			// Stamped before SIGSTOP took effect: key-1/9 at 19 ms is inside
			// the freeze.
			events: []Event{ev(18.5, "r1.0", Stopped), ev(300, "r1.0", Continued)},
			check:  wantCauses(map[Cause]int{CauseZombie: 5}),
		},
		{
			name:   "a freeze that ended before the first delivery does not explain it",
			ds:     takeover,
			events: []Event{ev(1, "r1.0", Stopped), ev(2, "r1.0", Continued)},
			want:   []error{ErrUnexplained},
		},
		{
			name: "a partition explains what the cut-off process delivered during it",
			ds:   takeover,
			// Partitioned before key-1/5..9 were delivered (from its
			// pipeline); their checkpoint could not be written.
			events: []Event{ev(12, "r1.0", Partitioned), ev(60, "r1.0", Healed)},
			check:  wantCauses(map[Cause]int{CausePartitioned: 5}),
		},
		{
			name:   "a partition healed before the first delivery does not explain it",
			ds:     takeover,
			events: []Event{ev(1, "r1.0", Partitioned), ev(2, "r1.0", Healed)},
			want:   []error{ErrUnexplained},
		},
		{
			name: "a lost lease logged before the delivery does not explain it",
			ds:   takeover,
			// Logged at 14.5 ms; key-1/5..9 were delivered from 15 ms.
			events: []Event{ev(14.5, "r1.0", LeaseLost)},
			want:   []error{ErrUnexplained},
		},
		{
			name:   "a lost lease logged before the delivery explains it within the slack",
			ds:     takeover,
			events: []Event{ev(14.5, "r1.0", LeaseLost)},
			opts:   Options{ClockSlack: 10 * time.Millisecond},
			check:  wantCauses(map[Cause]int{CauseLeaseLost: 5}),
		},
		{
			name:  "a record written twice is not a reader duplicate",
			ds:    join(base, []Delivery{copy2}),
			opts:  Options{ZeroDuplicates: true},
			check: wantCauses(map[Cause]int{CauseWrittenTwice: 1}),
		},
		{
			name: "a duplicate of the second copy is judged against that copy",
			ds: join(base, []Delivery{copy2}, []Delivery{func() Delivery {
				d := copy2
				d.Incarnation, d.At = "r2.0", ms(100)
				return d
			}()}),
			// Frozen after the first copy was delivered, resumed before the
			// second: the freeze would explain a duplicate of the first copy,
			// not of the second (delivered at 30 ms).
			events: []Event{ev(20, "r1.0", Stopped), ev(25, "r1.0", Continued)},
			want:   []error{ErrUnexplained},
			check: func(t *testing.T, r Report) {
				wantCauses(map[Cause]int{CauseWrittenTwice: 1, CauseUnexplained: 1})(t, r)
				if d := r.DuplicateExamples[CauseUnexplained][0]; d.First.At != ms(30) {
					t.Errorf("compared with %v, want the copy delivered at 30 ms", d.First)
				}
			},
		},
		{
			name:   "a resumed process delivers within its grace period",
			ds:     join(zombieBase, redeliver(0, 8, 8, "r1.0", 45)),
			events: zombieEvents,
			opts:   Options{ContinueGrace: 10 * time.Millisecond},
			check:  wantCauses(map[Cause]int{CauseZombie: 1}),
		},
		{
			name:   "a resumed process delivers a lost shard's records after its grace period",
			ds:     join(zombieBase, redeliver(0, 8, 9, "r1.0", 60)),
			events: zombieEvents,
			opts:   Options{ContinueGrace: 10 * time.Millisecond},
			want:   []error{ErrStaleZombie},
			check: func(t *testing.T, r Report) {
				wantCauses(map[Cause]int{CauseZombie: 2})(t, r)
				if r.StaleZombie != 2 || r.StaleZombieExamples[0].Dup.Incarnation != "r1.0" ||
					r.StaleZombieExamples[0].First.Incarnation != "r2.0" {
					t.Errorf("stale %d %v", r.StaleZombie, r.StaleZombieExamples)
				}
			},
		},
		{
			name: "a resumed process may redeliver what a killed owner delivered",
			ds:   join(zombieBase, redeliver(0, 8, 9, "r1.0", 60)),
			// r2.0 is killed at 50 ms: r1.0 then retakes key-0's shard from
			// r2.0's checkpoint, legitimately.
			events: append(slices.Clone(zombieEvents), ev(50, "r2.0", Killed)),
			opts:   Options{ContinueGrace: 10 * time.Millisecond},
			check:  wantCauses(map[Cause]int{CauseKilled: 2}),
		},
		{
			name: "invalid Written",
			w:    &Written{Keys: -1, PerKey: 10},
			ds:   base,
			want: []error{ErrInvalidInput},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			written := w
			if tt.w != nil {
				written = *tt.w
			}
			r := Check(written, tt.ds, tt.events, tt.samples, tt.opts)
			err := r.Err()
			for _, s := range sentinels {
				if got, want := errors.Is(err, s), slices.Contains(tt.want, s); got != want {
					t.Errorf("errors.Is(Err, %v) = %v, want %v; Err:\n%v", s, got, want, err)
				}
			}
			if err == nil && len(tt.want) > 0 {
				t.Errorf("Err is nil, want %v", tt.want)
			}
			if r.invalid == nil && r.Delivered != r.Distinct+r.Duplicates+r.Unknown {
				t.Errorf("delivered %d != distinct %d + duplicates %d + unknown %d",
					r.Delivered, r.Distinct, r.Duplicates, r.Unknown)
			}
			if tt.check != nil {
				tt.check(t, r)
			}
			if t.Failed() {
				t.Logf("report:\n%s", r)
			}
		})
	}
}

// wantCauses checks the duplicates by cause, exactly.
func wantCauses(want map[Cause]int) func(*testing.T, Report) {
	return func(t *testing.T, r Report) {
		t.Helper()
		total := 0
		for _, c := range causes {
			total += want[c]
			if got := r.DuplicatesByCause[c]; got != want[c] {
				t.Errorf("duplicates %s: %d, want %d", c, got, want[c])
			}
		}
		if r.Duplicates != total {
			t.Errorf("duplicates %d, want %d", r.Duplicates, total)
		}
	}
}

func TestCheckStatistics(t *testing.T) {
	w := Written{Keys: 1, PerKey: 10}
	ds := join(
		redeliver(0, 0, 4, "r1.0", 0),
		redeliver(0, 3, 9, "r2.0", 1000), // key-0/3..4 again, then 5..9 from 1002 ms
	)
	events := []Event{
		ev(-1, "r1.0", Started), ev(-1, "r2.0", Started), ev(-1, "r10.0", Started),
		ev(5, "r1.0", Killed), ev(5.1, "r1.0", Exited),
	}
	files := []FileStats{{Source: "a", Deliveries: 5, TornLine: 6, TornBytes: 40}, {Source: "b", Deliveries: 7}}
	r := Check(w, ds, events, nil, Options{Files: files})
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	if r.TornLines != 1 || len(r.Files) != 2 {
		t.Errorf("torn %d, files %v", r.TornLines, r.Files)
	}
	if !r.Start.Equal(at(0)) {
		t.Errorf("start %v", r.Start)
	}

	ids := make([]string, len(r.Incarnations))
	for i, in := range r.Incarnations {
		ids[i] = in.ID
	}
	if want := []string{"r1.0", "r2.0", "r10.0"}; !slices.Equal(ids, want) {
		t.Fatalf("incarnations %v, want %v (natural order, including those without deliveries)", ids, want)
	}
	r1, r2, r10 := r.Incarnations[0], r.Incarnations[1], r.Incarnations[2]
	if r1.Deliveries != 5 || r1.Duplicates != 0 || r1.Events[Killed] != 1 || !r1.Last.Equal(at(4)) {
		t.Errorf("r1.0: %+v", r1)
	}
	if r2.Deliveries != 7 || r2.Duplicates != 2 || !r2.First.Equal(at(1000)) {
		t.Errorf("r2.0: %+v", r2)
	}
	if r10.Deliveries != 0 || !r10.First.IsZero() {
		t.Errorf("r10.0: %+v", r10)
	}

	if len(r.Shards) != 1 {
		t.Fatalf("shards %+v", r.Shards)
	}
	s := r.Shards[0]
	want := ShardStats{Shard: "shardId-000000000000", Records: 10, Deliveries: 12, Takeovers: 1,
		MaxTakeoverGap: 998 * time.Millisecond, MaxGapFrom: "r1.0", MaxGapTo: "r2.0"}
	if s != want {
		t.Errorf("shard %+v, want %+v", s, want)
	}

	out := r.String()
	for _, want := range []string{"verify: PASS", "killed 2", "r10.0", "killed, exited", "998ms (r1.0 -> r2.0)", "torn lines 1"} {
		if !strings.Contains(out, want) {
			t.Errorf("String() lacks %q:\n%s", want, out)
		}
	}
	t.Logf("\n%s", out)
}

func TestReportErrSummarisesEveryFailure(t *testing.T) {
	w := Written{Keys: 2, PerKey: 10}
	ds := join(without(all(w, "r1.0", 0), 0, 0, 0), redeliver(1, 5, 5, "r2.0", 100), []Delivery{del(5, 0, "r1.0", 200)})
	samples := []LeaseSample{sample(0, "shardId-0", "a", 2, "10"), sample(1, "shardId-0", "a", 2, "9")}
	r := Check(w, ds, nil, samples, Options{})
	err := r.Err()
	for _, s := range []error{ErrLost, ErrUnknown, ErrUnexplained, ErrLease} {
		if !errors.Is(err, s) {
			t.Errorf("Err lacks %v", s)
		}
	}
	msg := err.Error()
	for _, want := range []string{"key-0/0", "key-5/0", "key-1/5 (unexplained) by r2.0", "checkpoint-regressed"} {
		if !strings.Contains(msg, want) {
			t.Errorf("Err lacks %q:\n%s", want, msg)
		}
	}
	if !strings.Contains(r.String(), "verify: FAIL") {
		t.Errorf("String:\n%s", r)
	}
	t.Logf("\n%v\n\n%s", err, r)
}

func TestNaturalCompare(t *testing.T) {
	in := []string{"r10.1", "r2.10", "r2.9", "r1.0", "r01.0", "shardId-000000000010", "shardId-000000000009", "r"}
	slices.SortFunc(in, naturalCompare)
	want := []string{"r", "r01.0", "r1.0", "r2.9", "r2.10", "r10.1", "shardId-000000000009", "shardId-000000000010"}
	if !slices.Equal(in, want) {
		t.Errorf("got %v, want %v", in, want)
	}
}

func TestKeyIndex(t *testing.T) {
	w := Written{Keys: 100, PerKey: 1}
	for key, want := range map[string]int{"key-0": 0, "key-99": 99, "key-100": -1, "key-01": -1, "key-": -1,
		"key-1x": -1, "Key-1": -1, "key--1": -1, "key-99999999999999999999": -1} {
		k, ok := w.keyIndex(key)
		if !ok {
			k = -1
		}
		if k != want {
			t.Errorf("keyIndex(%q) = %d, want %d", key, k, want)
		}
		if ok && w.Key(k) != key {
			t.Errorf("Key(%d) = %q, want %q", k, w.Key(k), key)
		}
	}
}

func TestEventKindText(t *testing.T) {
	for k := Started; k <= LeaseLost; k++ {
		b, err := k.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		var got EventKind
		if err := got.UnmarshalText(b); err != nil || got != k {
			t.Errorf("%v: round trip gave %v, %v", k, got, err)
		}
	}
	if _, err := EventKind(0).MarshalText(); err == nil {
		t.Error("the zero EventKind marshalled")
	}
	var k EventKind
	if err := k.UnmarshalText([]byte("")); err == nil {
		t.Error(`"" unmarshalled`)
	}
}

func TestTimelineSpans(t *testing.T) {
	tls := newTimelines([]Event{
		ev(5, "r1.0", Stopped), ev(1, "r1.0", Stopped), ev(2, "r1.0", Stopped), ev(3, "r1.0", Continued),
		ev(1, "r1.0", Partitioned), ev(4, "r1.0", Healed), ev(0, "r1.0", Started),
	})
	tl := tls["r1.0"]
	wantStopped := []span{{ms(1), ms(3)}, {ms(2), ms(3)}, {ms(5), math.MaxInt64}}
	if !slices.Equal(tl.stopped, wantStopped) {
		t.Errorf("stopped %v, want %v", tl.stopped, wantStopped)
	}
	if want := []span{{ms(1), ms(4)}}; !slices.Equal(tl.partitioned, want) {
		t.Errorf("partitioned %v, want %v", tl.partitioned, want)
	}
	for _, c := range []struct {
		lo, hi float64
		want   bool
	}{{0, 0.5, false}, {0, 1, true}, {3, 3, true}, {3.5, 4.5, false}, {4, 6, true}, {100, 200, true}} {
		if got := overlaps(tl.stopped, ms(c.lo), ms(c.hi)); got != c.want {
			t.Errorf("stopped overlaps [%v, %v] = %v, want %v", c.lo, c.hi, got, c.want)
		}
	}
}
