package verify

import (
	"cmp"
	"slices"
	"strings"
)

// LeaseViolationKind is what a LeaseViolation broke.
type LeaseViolationKind string

const (
	// EpochRegressed: the epoch of a shard went down. The epoch is the
	// fencing token; a lower one would let a fenced owner write again.
	EpochRegressed LeaseViolationKind = "epoch-regressed"
	// EpochShared: two owners held a shard at the same epoch. Every change of
	// owner bumps the epoch (releasing a lease keeps it, but leaves no
	// owner), so this is a broken fence.
	EpochShared LeaseViolationKind = "epoch-shared"
	// CheckpointRegressed: the checkpoint of a shard moved backwards, so
	// acknowledged records would be read again after the next take-over.
	CheckpointRegressed LeaseViolationKind = "checkpoint-regressed"
	// InvalidCheckpoint: a checkpoint is neither a decimal sequence number
	// nor a known sentinel.
	InvalidCheckpoint LeaseViolationKind = "invalid-checkpoint"
)

// LeaseViolation is a pair of samples of one shard's row that break a rule
// of the lease table (for InvalidCheckpoint, Before is zero).
type LeaseViolation struct {
	Kind   LeaseViolationKind
	Before LeaseSample
	After  LeaseSample
}

func (v LeaseViolation) String() string {
	if v.Kind == InvalidCheckpoint {
		return string(v.Kind) + " " + v.After.Stream + "/" + v.After.Shard + ": " + v.After.String()
	}
	return string(v.Kind) + " " + v.After.Stream + "/" + v.After.Shard + ": " + v.Before.String() + " -> " + v.After.String()
}

// checkLeases checks, per shard over the samples in time order, that the
// epoch never decreases nor is shared by two owners, and that the
// checkpoint never moves backwards. A shard never checkpointed ("" or a
// start sentinel) may get any first checkpoint, which the ordering of
// checkpoints gives for free: those sort before every sequence number.
func checkLeases(samples []LeaseSample, rep *Report) {
	type shardKey struct{ stream, shard string }
	groups := make(map[shardKey][]int)
	for i, s := range samples {
		k := shardKey{s.Stream, s.Shard}
		groups[k] = append(groups[k], i)
	}
	keys := make([]shardKey, 0, len(groups))
	for k := range groups {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b shardKey) int {
		return cmp.Or(strings.Compare(a.stream, b.stream), naturalCompare(a.shard, b.shard))
	})

	report := func(kind LeaseViolationKind, before, after LeaseSample) {
		rep.LeaseViolations++
		if len(rep.LeaseExamples) < rep.opts.MaxExamples {
			rep.LeaseExamples = append(rep.LeaseExamples, LeaseViolation{kind, before, after})
		}
	}
	type epochOwner struct {
		epoch int64
		owner string
	}
	for _, k := range keys {
		idx := groups[k]
		// Stable: samples taken at the same instant keep the caller's order.
		slices.SortStableFunc(idx, func(a, b int) int { return samples[a].At.Compare(samples[b].At) })

		ownerAt := make(map[int64]int) // epoch -> first sample with an owner at it
		reported := make(map[epochOwner]bool)
		prev, prevCP := -1, -1 // previous sample; previous one with a valid checkpoint
		var lastCP checkpoint
		for _, i := range idx {
			s := samples[i]
			if prev >= 0 && s.Epoch < samples[prev].Epoch {
				report(EpochRegressed, samples[prev], s)
			}
			if s.Owner != "" {
				if o, ok := ownerAt[s.Epoch]; !ok {
					ownerAt[s.Epoch] = i
				} else if samples[o].Owner != s.Owner && !reported[epochOwner{s.Epoch, s.Owner}] {
					reported[epochOwner{s.Epoch, s.Owner}] = true
					report(EpochShared, samples[o], s)
				}
			}
			cp, ok := parseCheckpoint(s.Checkpoint)
			switch {
			case !ok:
				report(InvalidCheckpoint, LeaseSample{}, s)
			case prevCP >= 0 && compareCheckpoints(cp, lastCP) < 0:
				report(CheckpointRegressed, samples[prevCP], s)
				fallthrough
			default:
				prevCP, lastCP = i, cp
			}
			prev = i
		}
	}
}

// checkpoint is a parsed checkpoint: a class, and for a sequence number its
// digits without leading zeros.
type checkpoint struct {
	class  int8
	digits string
}

// Classes of checkpoints, in order.
const (
	beforeAll int8 = iota // never checkpointed: "" or a start sentinel
	sequence              // a sequence number
	afterAll              // SHARD_END
)

// parseCheckpoint parses a checkpoint as the lease table holds it.
func parseCheckpoint(s string) (checkpoint, bool) {
	switch s {
	case "", "TRIM_HORIZON", "LATEST", "AT_TIMESTAMP":
		return checkpoint{class: beforeAll}, true
	case "SHARD_END":
		return checkpoint{class: afterAll}, true
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return checkpoint{}, false
		}
	}
	digits := strings.TrimLeft(s, "0")
	if digits == "" {
		digits = "0"
	}
	return checkpoint{class: sequence, digits: digits}, true
}

// compareCheckpoints orders checkpoints. Sequence numbers are decimals too
// long for any integer type (Kinesis's have 56 digits), compared as numbers
// without converting them: by length, then digit by digit ("9" < "10").
func compareCheckpoints(a, b checkpoint) int {
	return cmp.Or(
		cmp.Compare(a.class, b.class),
		cmp.Compare(len(a.digits), len(b.digits)),
		strings.Compare(a.digits, b.digits),
	)
}
