package balance

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// shards builds n free shards of stream, ids shardId-000000000000 on.
func shards(stream string, n int) []Shard {
	out := make([]Shard, n)
	for i := range out {
		out[i] = Shard{Stream: stream, ID: shardID(i)}
	}
	return out
}

func shardID(i int) string { return fmt.Sprintf("shardId-%012d", i) }

// owned sets the owner of shards[from:to] (and epoch 1).
func owned(sh []Shard, owner string, from, to int) []Shard {
	for i := from; i < to; i++ {
		sh[i].Owner, sh[i].Epoch = owner, 1
	}
	return sh
}

func kinds(plan []Action) string {
	var b strings.Builder
	for _, a := range plan {
		b.WriteString(a.Kind.String()[:1])
	}
	return b.String()
}

func TestPlanRules(t *testing.T) {
	type tc struct {
		name  string
		snap  Snapshot
		want  string // kinds of the plan, one letter each: c(laim), s(teal), r(equest)
		check func(t *testing.T, plan []Action)
	}
	cases := []tc{
		{name: "empty", snap: Snapshot{Self: "w1"}, want: ""},
		{
			name: "alone takes everything within max moves",
			snap: Snapshot{Self: "w1", Shards: shards("s1", 4), MaxMoves: 10},
			want: "cccc",
		},
		{
			name: "max moves bounds the plan",
			snap: Snapshot{Self: "w1", Shards: shards("s1", 10), MaxMoves: 3},
			want: "ccc",
		},
		{
			name: "max moves below one counts as one",
			snap: Snapshot{Self: "w1", Shards: shards("s1", 10)},
			want: "c",
		},
		{
			name: "fresh fleet: the ceiling goes to the lowest id on a tie",
			snap: Snapshot{Self: "w1", Workers: []string{"w2", "w3"}, Shards: shards("s1", 10), MaxMoves: 10},
			want: "cccc",
		},
		{
			name: "fresh fleet: the others take the floor",
			snap: Snapshot{Self: "w3", Workers: []string{"w1", "w2"}, Shards: shards("s1", 10), MaxMoves: 10},
			want: "ccc",
		},
		{
			name: "the ceiling stays with the worker that already holds more",
			snap: Snapshot{Self: "w1", Workers: []string{"w2", "w3"}, Shards: owned(shards("s1", 10), "w2", 0, 4), MaxMoves: 10},
			want: "ccc",
		},
		{
			name: "a dead owner's shard is stolen with the observed epoch",
			snap: Snapshot{Self: "w1", Shards: []Shard{{Stream: "s1", ID: "a", Owner: "gone", Epoch: 7}}, MaxMoves: 2},
			want: "s",
			check: func(t *testing.T, plan []Action) {
				if a := plan[0]; a.From != "gone" || a.Epoch != 7 || a.Shard != "a" || a.Stream != "s1" {
					t.Fatalf("steal = %+v", a)
				}
			},
		},
		{
			// w3 started less than a lease period ago: it cannot judge "gone"
			// dead yet. w1 (holding 1) steals up to its share among the two
			// that can (3 of 6), not only up to its share among three (2).
			name: "dead owners' shards: a young worker does not count in the share",
			snap: Snapshot{
				Self: "w1", Workers: []string{"w2", "w3"}, Young: []string{"w3"},
				Shards:   owned(owned(owned(shards("s1", 6), "w1", 0, 1), "w2", 1, 3), "gone", 3, 6),
				MaxMoves: 10,
			},
			want: "ss",
		},
		{
			name: "dead owners' shards: without young workers, only the fair share",
			snap: Snapshot{
				Self: "w1", Workers: []string{"w2", "w3"},
				Shards:   owned(owned(owned(shards("s1", 6), "w1", 0, 1), "w2", 1, 3), "gone", 3, 6),
				MaxMoves: 10,
			},
			want: "s",
		},
		{
			name: "free shards: a young worker counts in the share",
			snap: Snapshot{
				Self: "w1", Workers: []string{"w2", "w3"}, Young: []string{"w3"},
				Shards:   owned(owned(shards("s1", 6), "w1", 0, 1), "w2", 1, 3),
				MaxMoves: 10,
			},
			want: "c",
		},
		{
			name: "a claim carries the observed epoch (a released row)",
			snap: Snapshot{Self: "w1", Shards: []Shard{{Stream: "s1", ID: "a", Epoch: 3}}, MaxMoves: 2},
			want: "c",
			check: func(t *testing.T, plan []Action) {
				if a := plan[0]; a.From != "" || a.Epoch != 3 {
					t.Fatalf("claim = %+v", a)
				}
			},
		},
		{
			name: "an owner in grace keeps its shards and gets no share",
			snap: Snapshot{
				Self: "w1", Workers: []string{"w2"}, Grace: []string{"builtin"},
				Shards:   owned(shards("s1", 4), "builtin", 0, 4),
				MaxMoves: 4,
			},
			want: "",
		},
		{
			name: "an owner in grace counts in n: the free shards are split over the live workers",
			snap: Snapshot{
				Self: "w1", Workers: []string{"w2"}, Grace: []string{"builtin"},
				Shards:   owned(shards("s1", 8), "builtin", 0, 4),
				MaxMoves: 8,
			},
			want: "cccc",
		},
		{
			name: "finished shards are never planned",
			snap: Snapshot{Self: "w1", Shards: []Shard{{Stream: "s1", ID: "a", Finished: true}, {Stream: "s1", ID: "b", Finished: true, Owner: "gone"}}, MaxMoves: 2},
			want: "",
		},
		{
			name: "a child waits for its parent",
			snap: Snapshot{Self: "w1", Shards: []Shard{
				{Stream: "s1", ID: "p", Owner: "w1", Epoch: 1},
				{Stream: "s1", ID: "c1", Parents: []string{"p"}},
				{Stream: "s1", ID: "c2", Parents: []string{"p"}},
			}, MaxMoves: 4},
			want: "",
		},
		{
			name: "a child of a finished parent is readable",
			snap: Snapshot{Self: "w1", Shards: []Shard{
				{Stream: "s1", ID: "p", Finished: true, Epoch: 2},
				{Stream: "s1", ID: "c1", Parents: []string{"p"}},
			}, MaxMoves: 4},
			want: "c",
		},
		{
			name: "a child of an aged-out parent is readable",
			snap: Snapshot{Self: "w1", Shards: []Shard{{Stream: "s1", ID: "c1", Parents: []string{"p"}}}, MaxMoves: 4},
			want: "c",
		},
		{
			name: "a merged child waits for both parents",
			snap: Snapshot{Self: "w1", Shards: []Shard{
				{Stream: "s1", ID: "p1", Finished: true},
				{Stream: "s1", ID: "p2", Owner: "w1", Epoch: 1},
				{Stream: "s1", ID: "c", Parents: []string{"p1", "p2"}},
			}, MaxMoves: 4},
			want: "",
		},
		{
			name: "a parent of another stream does not count",
			snap: Snapshot{Self: "w1", Shards: []Shard{
				{Stream: "s2", ID: "p", Owner: "w1", Epoch: 1},
				{Stream: "s1", ID: "c", Parents: []string{"p"}},
			}, MaxMoves: 4},
			want: "c",
		},
		{
			name: "below the floor: hand-offs from the loaded worker, never below its floor",
			snap: Snapshot{Self: "w1", Workers: []string{"w2"}, Shards: owned(shards("s1", 6), "w2", 0, 6), MaxMoves: 5},
			want: "rrr",
			check: func(t *testing.T, plan []Action) {
				for _, a := range plan {
					if a.From != "w2" || a.Epoch != 1 {
						t.Fatalf("request = %+v", a)
					}
				}
			},
		},
		{
			name: "two owners at the ceiling: one hand-off reaches the floor, no more",
			snap: Snapshot{Self: "w1", Workers: []string{"w2", "w3"}, Shards: owned(owned(owned(shards("s1", 10), "w2", 0, 4), "w3", 4, 8), "w1", 8, 10), MaxMoves: 5},
			want: "r",
		},
		{
			name: "at the floor with the ceiling as share, an owner above it is asked (5/3/3 on 11 shards)",
			snap: Snapshot{Self: "w2", Workers: []string{"w1", "w3"}, Shards: owned(owned(owned(shards("s1", 11), "w1", 0, 5), "w2", 5, 8), "w3", 8, 11), MaxMoves: 5},
			want: "r",
			check: func(t *testing.T, plan []Action) {
				if plan[0].From != "w1" {
					t.Fatalf("asked %s, want w1", plan[0].From)
				}
			},
		},
		{
			name: "at the floor with the floor as share, nobody is asked (5/3/3 on 11 shards)",
			snap: Snapshot{Self: "w3", Workers: []string{"w1", "w2"}, Shards: owned(owned(owned(shards("s1", 11), "w1", 0, 5), "w2", 5, 8), "w3", 8, 11), MaxMoves: 5},
			want: "",
		},
		{
			name: "below the floor, the owner above its share is asked, not the one at the ceiling",
			snap: Snapshot{Self: "w3", Workers: []string{"w1", "w2"}, Shards: owned(owned(owned(shards("s1", 10), "w1", 0, 4), "w2", 4, 8), "w3", 8, 10), MaxMoves: 5},
			want: "r",
			check: func(t *testing.T, plan []Action) {
				if plan[0].From != "w2" {
					t.Fatalf("asked %s, want w2 (w1 keeps the ceiling: lower id)", plan[0].From)
				}
			},
		},
		{
			name: "fair share: nothing to do",
			snap: Snapshot{Self: "w3", Workers: []string{"w1", "w2"}, Shards: owned(owned(owned(shards("s1", 10), "w1", 0, 4), "w2", 4, 7), "w3", 7, 10), MaxMoves: 5},
			want: "",
		},
		{
			name: "one apart is fair: no hand-off between 4 and 3",
			snap: Snapshot{Self: "w2", Workers: []string{"w1"}, Shards: owned(owned(shards("s1", 7), "w1", 0, 4), "w2", 4, 7), MaxMoves: 5},
			want: "",
		},
		{
			name: "a pending request of Self counts as moved",
			snap: func() Snapshot {
				sh := owned(shards("s1", 6), "w2", 0, 6)
				sh[0].HandoffTo, sh[1].HandoffTo = "w1", "w1"
				return Snapshot{Self: "w1", Workers: []string{"w2"}, Shards: sh, MaxMoves: 5}
			}(),
			want: "r",
			check: func(t *testing.T, plan []Action) {
				if plan[0].Shard == shardID(0) || plan[0].Shard == shardID(1) {
					t.Fatalf("asked again for %s", plan[0].Shard)
				}
			},
		},
		{
			name: "a shard requested by another live worker is neither asked for nor the owner's",
			snap: func() Snapshot {
				sh := owned(shards("s1", 3), "w2", 0, 3)
				sh[0].HandoffTo, sh[1].HandoffTo = "w3", "w3"
				return Snapshot{Self: "w1", Workers: []string{"w2", "w3"}, Shards: sh, MaxMoves: 5}
			}(),
			want: "",
		},
		{
			name: "a request by a dead worker blocks the shard but leaves it with its owner",
			snap: func() Snapshot {
				sh := owned(shards("s1", 4), "w2", 0, 4)
				sh[0].HandoffTo, sh[1].HandoffTo = "gone", "gone"
				return Snapshot{Self: "w1", Workers: []string{"w2"}, Shards: sh, MaxMoves: 5}
			}(),
			want: "rr",
			check: func(t *testing.T, plan []Action) {
				for _, a := range plan {
					if a.Shard == shardID(0) || a.Shard == shardID(1) {
						t.Fatalf("asked for %s, which carries a request", a.Shard)
					}
				}
			},
		},
		{
			name: "free shards before hand-offs",
			snap: Snapshot{Self: "w1", Workers: []string{"w2"}, Shards: owned(shards("s1", 8), "w2", 0, 7), MaxMoves: 2},
			want: "cr",
		},
		{
			name: "own shards are never planned",
			snap: Snapshot{Self: "w1", Shards: owned(shards("s1", 3), "w1", 0, 3), MaxMoves: 3},
			want: "",
		},
		{
			name: "a dead owner's shard that Self asked for comes first, one another asked for last",
			snap: func() Snapshot {
				sh := owned(shards("s1", 5), "gone", 0, 5)
				sh[3].HandoffTo = "w1"
				sh[0].HandoffTo, sh[1].HandoffTo, sh[2].HandoffTo = "w2", "w2", "w2"
				return Snapshot{Self: "w1", Shards: sh, MaxMoves: 2}
			}(),
			want: "ss",
			check: func(t *testing.T, plan []Action) {
				if plan[0].Shard != shardID(3) || plan[1].Shard != shardID(4) {
					t.Fatalf("plan = %v", plan)
				}
			},
		},
		{
			name: "Self spreads over the streams",
			snap: func() Snapshot {
				sh := append(owned(shards("s1", 4), "w1", 0, 2), shards("s2", 2)...)
				return Snapshot{Self: "w1", Shards: sh, MaxMoves: 2}
			}(),
			want: "cc",
			check: func(t *testing.T, plan []Action) {
				for _, a := range plan {
					if a.Stream != "s2" {
						t.Fatalf("plan = %v, want s2 first", plan)
					}
				}
			},
		},
		{
			name: "a duplicated row counts once",
			snap: Snapshot{Self: "w1", Workers: []string{"w2"}, Shards: append(shards("s1", 2), shards("s1", 2)...), MaxMoves: 4},
			want: "c",
		},
		{
			name: "shards with the same id in two streams are two shards",
			snap: Snapshot{Self: "w1", Shards: append(shards("s1", 1), shards("s2", 1)...), MaxMoves: 4},
			want: "cc",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := slices.Clone(c.snap.Shards)
			plan := Plan(c.snap)
			if got := kinds(plan); got != c.want {
				t.Fatalf("plan = %v (%q), want %q", plan, got, c.want)
			}
			if c.check != nil {
				c.check(t, plan)
			}
			if !slices.EqualFunc(in, c.snap.Shards, func(a, b Shard) bool {
				return a.Stream == b.Stream && a.ID == b.ID && a.Owner == b.Owner && a.Epoch == b.Epoch && a.HandoffTo == b.HandoffTo
			}) {
				t.Fatal("Plan changed its input")
			}
			if err := checkPlan(c.snap, plan); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestPlanSeedSpreads checks the tie-break: workers planning on the same fresh snapshot with
// their own seeds reach for different shards.
func TestPlanSeedSpreads(t *testing.T) {
	first := map[string]bool{}
	for seed := uint64(0); seed < 64; seed++ {
		plan := Plan(Snapshot{Self: "w1", Workers: []string{"w2", "w3", "w4"}, Shards: shards("s1", 16), MaxMoves: 1, Seed: seed})
		first[plan[0].Shard] = true
	}
	if len(first) < 8 {
		t.Fatalf("64 seeds picked only %d distinct first shards of 16", len(first))
	}
	// The same seed gives the same plan.
	s := Snapshot{Self: "w1", Workers: []string{"w2"}, Shards: shards("s1", 16), MaxMoves: 4, Seed: 42}
	if a, b := Plan(s), Plan(s); !slices.Equal(a, b) {
		t.Fatalf("same snapshot, two plans: %v, %v", a, b)
	}
}

func TestActionString(t *testing.T) {
	for _, c := range []struct {
		a    Action
		want string
	}{
		{Action{Kind: Claim, Stream: "s1", Shard: "a"}, "claim s1/a epoch 0"},
		{Action{Kind: Steal, Stream: "s1", Shard: "a", From: "w2", Epoch: 3}, "steal s1/a from w2 epoch 3"},
		{Action{Kind: RequestHandoff, Stream: "s1", Shard: "a", From: "w2", Epoch: 3}, "request s1/a from w2 epoch 3"},
		{Action{Kind: 9}, "Kind(9) / epoch 0"},
	} {
		if got := c.a.String(); got != c.want {
			t.Errorf("%+v: %q, want %q", c.a, got, c.want)
		}
	}
}
