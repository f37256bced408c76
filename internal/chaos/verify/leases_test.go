package verify

import (
	"errors"
	"slices"
	"testing"
)

func TestCheckLeases(t *testing.T) {
	const sh = "shardId-000000000000"
	tests := []struct {
		name    string
		samples []LeaseSample
		want    []LeaseViolationKind
	}{
		{
			name: "checkpoints advance",
			samples: []LeaseSample{
				sample(0, sh, "", 0, ""),
				sample(1, sh, "a", 1, "TRIM_HORIZON"),
				sample(2, sh, "a", 1, "9"),
				sample(3, sh, "a", 1, "10"), // numerically after 9, lexically before
				sample(4, sh, "b", 2, "10"),
				sample(5, sh, "b", 2, "0000011"),
				sample(6, sh, "", 2, "SHARD_END"),
			},
		},
		{
			name:    "checkpoint regression is numeric, not lexical",
			samples: []LeaseSample{sample(0, sh, "a", 1, "10"), sample(1, sh, "a", 1, "9")},
			want:    []LeaseViolationKind{CheckpointRegressed},
		},
		{
			name: "a first checkpoint may be anything",
			samples: []LeaseSample{
				sample(0, sh, "a", 1, ""), sample(1, sh, "a", 1, "LATEST"),
				sample(2, sh, "a", 1, "AT_TIMESTAMP"), sample(3, sh, "a", 1, "5"),
			},
		},
		{
			name: "long sequence numbers",
			samples: []LeaseSample{
				sample(0, sh, "a", 1, "49590338271490256608559692538361571095921575989136588818"),
				sample(1, sh, "a", 1, "49590338271490256608559692538361571095921575989136588817"),
			},
			want: []LeaseViolationKind{CheckpointRegressed},
		},
		{
			name:    "checkpoint lost",
			samples: []LeaseSample{sample(0, sh, "a", 1, "5"), sample(1, sh, "a", 1, "")},
			want:    []LeaseViolationKind{CheckpointRegressed},
		},
		{
			name:    "checkpoint after SHARD_END",
			samples: []LeaseSample{sample(0, sh, "", 1, "SHARD_END"), sample(1, sh, "a", 2, "99")},
			want:    []LeaseViolationKind{CheckpointRegressed},
		},
		{
			name: "a regression is reported once, where it happens",
			samples: []LeaseSample{
				sample(0, sh, "a", 1, "10"), sample(1, sh, "a", 1, "9"),
				sample(2, sh, "a", 1, "9"), sample(3, sh, "a", 1, "9"),
			},
			want: []LeaseViolationKind{CheckpointRegressed},
		},
		{
			name:    "epoch regression",
			samples: []LeaseSample{sample(0, sh, "a", 3, "5"), sample(1, sh, "b", 2, "5")},
			want:    []LeaseViolationKind{EpochRegressed},
		},
		{
			name: "release keeps the epoch, the next claim bumps it",
			samples: []LeaseSample{
				sample(0, sh, "a", 3, "5"), sample(1, sh, "", 3, "6"), sample(2, sh, "b", 4, "6"),
			},
		},
		{
			name:    "two owners at one epoch",
			samples: []LeaseSample{sample(0, sh, "a", 3, "5"), sample(1, sh, "", 3, "6"), sample(2, sh, "b", 3, "6")},
			want:    []LeaseViolationKind{EpochShared},
		},
		{
			name:    "invalid checkpoint",
			samples: []LeaseSample{sample(0, sh, "a", 1, "5"), sample(1, sh, "a", 1, "-6"), sample(2, sh, "a", 1, "7")},
			want:    []LeaseViolationKind{InvalidCheckpoint},
		},
		{
			name: "samples are taken in time order, not slice order",
			samples: []LeaseSample{
				sample(2, sh, "a", 1, "10"), sample(1, sh, "a", 1, "9"), sample(0, sh, "a", 1, ""),
			},
		},
		{
			name: "shards and streams are independent",
			samples: []LeaseSample{
				sample(0, "shardId-000000000001", "a", 5, "100"),
				sample(1, sh, "b", 1, "5"),
				{At: at(2), Stream: "other", Shard: "shardId-000000000001", Owner: "c", Epoch: 1, Checkpoint: "1"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Check(Written{}, nil, nil, tt.samples, Options{})
			var got []LeaseViolationKind
			for _, v := range r.LeaseExamples {
				got = append(got, v.Kind)
			}
			if !slices.Equal(got, tt.want) || r.LeaseViolations != len(tt.want) {
				t.Errorf("violations %d %v, want %v", r.LeaseViolations, r.LeaseExamples, tt.want)
			}
			if err := r.Err(); errors.Is(err, ErrLease) != (len(tt.want) > 0) {
				t.Errorf("Err = %v", err)
			}
		})
	}
}

func TestCheckpointRegressionReportsBothSamples(t *testing.T) {
	before := sample(0, "sh", "a", 1, "10")
	after := sample(1, "sh", "b", 2, "9")
	r := Check(Written{}, nil, nil, []LeaseSample{before, after}, Options{})
	if len(r.LeaseExamples) != 1 {
		t.Fatalf("got %v", r.LeaseExamples)
	}
	if v := r.LeaseExamples[0]; v.Kind != CheckpointRegressed || v.Before != before || v.After != after {
		t.Errorf("got %+v", v)
	}
}

func TestCompareCheckpoints(t *testing.T) {
	// In increasing order; equal neighbours marked.
	order := []struct {
		cp    string
		equal bool // equal to the previous one
	}{
		{"", false}, {"TRIM_HORIZON", true}, {"LATEST", true}, {"AT_TIMESTAMP", true},
		{"0", false}, {"000", true}, {"9", false}, {"10", false}, {"010", true}, {"99", false},
		{"340282366920938463463374607431768211456", false}, // 2^128
		{"49590338271490256608559692538361571095921575989136588818", false},
		{"SHARD_END", false},
	}
	for i := 1; i < len(order); i++ {
		a, _ := parseCheckpoint(order[i-1].cp)
		b, ok := parseCheckpoint(order[i].cp)
		if !ok {
			t.Fatalf("%q rejected", order[i].cp)
		}
		want := -1
		if order[i].equal {
			want = 0
		}
		if got := compareCheckpoints(a, b); got != want {
			t.Errorf("compare(%q, %q) = %d, want %d", order[i-1].cp, order[i].cp, got, want)
		}
		if got := compareCheckpoints(b, a); got != -want {
			t.Errorf("compare(%q, %q) = %d, want %d", order[i].cp, order[i-1].cp, got, -want)
		}
	}
	for _, bad := range []string{"-1", "1.5", "1e5", " 1", "shard_end", "abc"} {
		if _, ok := parseCheckpoint(bad); ok {
			t.Errorf("%q accepted", bad)
		}
	}
}
