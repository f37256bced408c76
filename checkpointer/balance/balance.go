// Package balance is the decision function of the aws_kinesis input's lease protocol
// (docs/LEASES.md, "Balancing"): from a snapshot of the lease table and of the workers one
// worker judges alive, Plan says which shards that worker should take this cycle (claim a free
// shard, steal a dead owner's shard, ask a live owner for a hand-off).
//
// The package is pure: no I/O, no goroutines, no clock, no global random source. Time enters only
// through what the caller puts in the Snapshot (which workers it judges alive, after watching
// their heartbeat counters on its own monotonic clock) and randomness only through
// Snapshot.Seed. The caller (checkpointer and plugin/input) makes each Action a conditional
// write; a write that loses a race simply fails its condition, and the next cycle plans again
// from a fresh read.
//
// # Rules
//
//  1. A shard is readable when it is not finished and each of its parents (ParentShardId, and
//     AdjacentParentShardId after a merge) is finished or absent from the snapshot (aged out of
//     the stream). Plan never acts on a shard that is not readable, and only readable shards
//     count in anyone's load.
//  2. The live workers are Snapshot.Workers plus Self (a worker is always alive to itself).
//     Owners listed in Snapshot.Grace (no heartbeat row, not yet watched for a lease period, as
//     for rows written by the built-in input) are neither live nor dead: their shards are left
//     alone and they get no share. Any other owner is dead.
//  3. Fair share over all streams together: with n readable shards and w live workers every
//     worker should hold floor(n/w) or ceil(n/w). The n mod w workers that get the ceiling are
//     the most loaded ones (ties broken by worker id), the same on every worker given the same
//     snapshot, so the workers that already hold more keep it.
//  4. Self first takes free shards and dead owners' shards (Claim, Steal) up to its share, at
//     most MaxMoves of them. Then it steals more dead owners' shards up to its share among
//     the workers that are not Young (Self counts always): a worker Self has watched for
//     less than a lease period started that recently, so it cannot yet judge the dead owner
//     dead, and the shard its share would give it would wait for it that long unread. It
//     gets its share later by hand-offs (rule 5).
//  5. With moves left and Self still below its share, it asks live owners above theirs for
//     hand-offs (RequestHandoff), the most loaded first, and only an owner that holds at least
//     two more than Self. No owner is pushed below its share (so never below floor(n/w)), and
//     every hand-off lowers the sum of squared loads, so a fleet that sees the same table
//     converges and never oscillates; the two-more guard keeps each hand-off a step down in
//     what the requester sees even when views differ.
//     With one view, the hand-offs are exactly the shards above their owners' shares: the
//     fewest possible. (LEASES.md says "below floor(n/w)", from owners "above ceil(n/w)"; a
//     worker whose share is the ceiling must also ask, or a fleet such as 5/3/3 on 11 shards
//     would never reach 4/4/3, and asking only above the ceiling would leave 4/4/2 on 10.)
//  6. A worker never gives shards away unasked (Plan has no such action), never asks for a
//     shard that already carries a hand-off request, and never plans for its own shards.
//     Pending requests count as already moved: a shard whose HandoffTo is a live worker other
//     than its owner counts in the requester's load, not the owner's.
//
// Candidates are ordered by a hash of Snapshot.Seed and the shard, after two preferences: a dead
// owner's shard that Self already asked for comes first and one that another worker asked for
// comes last, and Self prefers the stream where it holds the fewest shards (so each worker's
// shards spread over the streams). Workers started at once, each with its own seed, thus reach
// for different shards; conditional writes settle the collisions that remain.
//
// Weighting by observed bytes per second is not implemented: every readable shard weighs one.
//
// # What the caller does
//
// The rest of the protocol is the caller's: checkpointer/lease's Machine, whose simulation and
// scenario scripts check it with this package's Plan inside.
//
//   - Snapshot: every shard ListShards returns (and only those) with its row; Workers and Grace
//     from the heartbeat counters as judged on the caller's own clock (LEASES.md "Liveness").
//   - Actions: each one conditional write: Claim and Steal on ClientID and Epoch as observed
//     (0: a row without Epoch, or no row), RequestHandoff on ClientID, Epoch and no other
//     request. A failed condition is not an error: the next plan starts from a fresh read.
//   - Forcing a hand-off is not planned here: it depends on how long the request has waited on
//     the requester's clock (steal_grace_period), which the caller tracks.
package balance

import (
	"cmp"
	"fmt"
	"slices"
)

// Shard is one shard as one worker sees it after reading the lease table and ListShards.
type Shard struct {
	Stream string
	ID     string
	// Parents are ParentShardId and AdjacentParentShardId, when set. A parent that is not among
	// the snapshot's shards has aged out of the stream and counts as finished: the caller must
	// therefore put in the snapshot only the shards ListShards still returns.
	Parents []string
	// Owner is the row's ClientID: the owning worker; "" when free (no row, a released row, a
	// finished row).
	Owner string
	// Epoch is the row's epoch as read; 0 when the row has none (a built-in row) or there is no
	// row. Actions carry it back for the write's condition.
	Epoch    int64
	Finished bool
	// HandoffTo is the worker that asked the owner for the shard; "" when none.
	HandoffTo string
}

// Snapshot is what one worker knows when it plans.
type Snapshot struct {
	// Self is the planning worker's id.
	Self string
	// Workers are the workers Self judges alive (their heartbeat counter changed within the
	// last lease period of Self's clock, or Self has not watched them that long yet). Self is
	// alive whether listed or not. Order does not matter.
	Workers []string
	// Grace are owners without a heartbeat row that Self has not yet watched for a lease period
	// (a built-in input's client, say). Their shards are not taken and they get no share. An
	// owner in neither Workers nor Grace is dead.
	Grace []string
	// Young are live workers Self has watched for less than a lease period (from their first
	// heartbeat Self saw): they started too recently to judge anyone dead. They count in
	// the fair share, except for stealing dead owners' shards (rule 4). Optional.
	Young []string
	// Shards are every listed shard of every stream the worker reads, with its row.
	Shards []Shard
	// MaxMoves bounds the actions of one Plan; below 1 counts as 1.
	MaxMoves int
	// Seed breaks ties between equally good candidates. Use a different value per worker (and
	// preferably per cycle).
	Seed uint64
}

// Kind is what an Action asks the caller to write.
type Kind uint8

const (
	// Claim takes a free shard: ClientID absent, epoch as observed.
	Claim Kind = iota + 1
	// Steal takes a dead owner's shard: ClientID = From, epoch as observed.
	Steal
	// RequestHandoff asks a live owner (From) to hand the shard over: HandoffTo = Self.
	RequestHandoff
)

func (k Kind) String() string {
	switch k {
	case Claim:
		return "claim"
	case Steal:
		return "steal"
	case RequestHandoff:
		return "request"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Action is one conditional write for the caller to make.
type Action struct {
	Kind   Kind
	Stream string
	Shard  string
	// From is the owner as observed: the dead owner (Steal) or the live one (RequestHandoff);
	// "" for Claim.
	From string
	// Epoch is the epoch as observed, for the write's condition (0: the row has no epoch, or
	// there is no row).
	Epoch int64
}

func (a Action) String() string {
	s := fmt.Sprintf("%s %s/%s", a.Kind, a.Stream, a.Shard)
	if a.From != "" {
		s += " from " + a.From
	}
	return fmt.Sprintf("%s epoch %d", s, a.Epoch)
}

type shardKey struct{ stream, id string }

// Plan returns what s.Self should write this cycle, at most max(s.MaxMoves, 1) actions, claims
// and steals first. It returns nil when Self has its share (or cannot get closer to it).
func Plan(s Snapshot) []Action {
	moves := max(s.MaxMoves, 1)

	live := map[string]bool{s.Self: true}
	for _, w := range s.Workers {
		if w != "" {
			live[w] = true
		}
	}
	grace := make(map[string]bool, len(s.Grace))
	for _, g := range s.Grace {
		if !live[g] {
			grace[g] = true
		}
	}

	byKey := make(map[shardKey]*Shard, len(s.Shards))
	for i := range s.Shards {
		k := shardKey{s.Shards[i].Stream, s.Shards[i].ID}
		if _, dup := byKey[k]; !dup {
			byKey[k] = &s.Shards[i]
		}
	}
	readable := func(sh *Shard) bool {
		if sh.Finished {
			return false
		}
		for _, p := range sh.Parents {
			if ps, ok := byKey[shardKey{sh.Stream, p}]; ok && p != "" && !ps.Finished {
				return false
			}
		}
		return true
	}

	// Projected loads: readable shards owned, with pending requests already moved.
	load := make(map[string]int, len(live))
	selfIn := map[string]int{} // Self's projected shards per stream
	var free []*Shard          // claimable: free or a dead owner's
	donatable := map[string][]*Shard{}
	n := 0
	for i := range s.Shards {
		sh := &s.Shards[i]
		if byKey[shardKey{sh.Stream, sh.ID}] != sh || !readable(sh) {
			continue
		}
		n++
		switch {
		case sh.Owner == "" || (!live[sh.Owner] && !grace[sh.Owner]):
			free = append(free, sh)
		case live[sh.Owner]:
			holder := sh.Owner
			if to := sh.HandoffTo; to != "" && to != sh.Owner && live[to] {
				holder = to
			}
			load[holder]++
			if holder == s.Self {
				selfIn[sh.Stream]++
			}
			if sh.HandoffTo == "" && sh.Owner != s.Self {
				donatable[sh.Owner] = append(donatable[sh.Owner], sh)
			}
		}
	}

	workers := make([]string, 0, len(live))
	for w := range live {
		workers = append(workers, w)
	}
	// The ceiling goes to the most loaded workers, ties by id: the same order on every worker.
	slices.SortFunc(workers, func(a, b string) int {
		if c := cmp.Compare(load[b], load[a]); c != 0 {
			return c
		}
		return cmp.Compare(a, b)
	})
	floor, extra := n/len(workers), n%len(workers)
	target := make(map[string]int, len(workers))
	for i, w := range workers {
		target[w] = floor
		if i < extra {
			target[w]++
		}
	}

	// The share of dead owners' shards, counting only the workers that can steal them now.
	stealTarget := target
	if len(s.Young) > 0 {
		young := make(map[string]bool, len(s.Young))
		for _, y := range s.Young {
			young[y] = y != s.Self
		}
		mature := slices.DeleteFunc(slices.Clone(workers), func(w string) bool { return young[w] })
		if len(mature) < len(workers) {
			floor, extra := n/len(mature), n%len(mature)
			stealTarget = make(map[string]int, len(mature))
			for i, w := range mature {
				stealTarget[w] = floor
				if i < extra {
					stealTarget[w]++
				}
			}
		}
	}

	var plan []Action
	// pick removes and returns the best candidate of c for Self.
	pick := func(c []*Shard, pref func(*Shard) int) ([]*Shard, *Shard) {
		best := -1
		for i, sh := range c {
			if best < 0 || better(s.Seed, selfIn, pref, sh, c[best]) {
				best = i
			}
		}
		sh := c[best]
		c[best] = c[len(c)-1]
		return c[:len(c)-1], sh
	}

	// Rule 4: free shards and dead owners' shards, up to the share.
	handoffPref := func(sh *Shard) int {
		switch sh.HandoffTo {
		case s.Self:
			return 0
		case "":
			return 1
		}
		return 2
	}
	take := func(sh *Shard) {
		a := Action{Kind: Claim, Stream: sh.Stream, Shard: sh.ID, Epoch: sh.Epoch}
		if sh.Owner != "" {
			a.Kind, a.From = Steal, sh.Owner
		}
		plan = append(plan, a)
		load[s.Self]++
		selfIn[sh.Stream]++
	}
	for len(plan) < moves && load[s.Self] < target[s.Self] && len(free) > 0 {
		var sh *Shard
		free, sh = pick(free, handoffPref)
		take(sh)
	}
	dead := slices.DeleteFunc(free, func(sh *Shard) bool { return sh.Owner == "" })
	for len(plan) < moves && load[s.Self] < stealTarget[s.Self] && len(dead) > 0 {
		var sh *Shard
		dead, sh = pick(dead, handoffPref)
		take(sh)
	}

	// Rule 5: hand-offs from the most loaded live owners above their share.
	for len(plan) < moves && load[s.Self] < target[s.Self] {
		donor := ""
		for _, w := range workers {
			if w == s.Self || len(donatable[w]) == 0 || load[w] <= target[w] || load[w] < load[s.Self]+2 {
				continue
			}
			if donor == "" || betterDonor(s.Seed, w, donor, load) {
				donor = w
			}
		}
		if donor == "" {
			break
		}
		var sh *Shard
		donatable[donor], sh = pick(donatable[donor], nil)
		plan = append(plan, Action{Kind: RequestHandoff, Stream: sh.Stream, Shard: sh.ID, From: donor, Epoch: sh.Epoch})
		load[donor]--
		load[s.Self]++
		selfIn[sh.Stream]++
	}
	return plan
}

// better orders candidate shards: pref (lower first), then the stream where Self holds fewest,
// then the seeded hash.
func better(seed uint64, selfIn map[string]int, pref func(*Shard) int, a, b *Shard) bool {
	if pref != nil {
		if pa, pb := pref(a), pref(b); pa != pb {
			return pa < pb
		}
	}
	if ca, cb := selfIn[a.Stream], selfIn[b.Stream]; ca != cb {
		return ca < cb
	}
	ha, hb := hash(seed, a.Stream, a.ID), hash(seed, b.Stream, b.ID)
	if ha != hb {
		return ha < hb
	}
	if a.Stream != b.Stream {
		return a.Stream < b.Stream
	}
	return a.ID < b.ID
}

// betterDonor orders donors: the most loaded, then the seeded hash.
func betterDonor(seed uint64, a, b string, load map[string]int) bool {
	if load[a] != load[b] {
		return load[a] > load[b]
	}
	ha, hb := hash(seed, "", a), hash(seed, "", b)
	if ha != hb {
		return ha < hb
	}
	return a < b
}

// hash mixes seed with a stream and an id (FNV-1a, then a splitmix64 finaliser).
func hash(seed uint64, stream, id string) uint64 {
	h := uint64(14695981039346656037) ^ seed
	for i := 0; i < len(stream); i++ {
		h = (h ^ uint64(stream[i])) * 1099511628211
	}
	h = (h ^ 0xff) * 1099511628211
	for i := 0; i < len(id); i++ {
		h = (h ^ uint64(id[i])) * 1099511628211
	}
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	h ^= h >> 31
	return h
}
