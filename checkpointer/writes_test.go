package checkpointer

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
)

const (
	st = "stream-a"
	sh = "shardId-000000000000"
)

// ownerWrite is one of the owner's writes, made by w1 at epoch; taker is w3 for HandOver.
type ownerWrite struct {
	name string
	do   func(e *env, epoch int64) error
	// check verifies the row after a successful write.
	check func(t *testing.T, before, after Lease)
}

var ownerWrites = []ownerWrite{
	{
		name: "checkpoint",
		do: func(e *env, epoch int64) error {
			got, err := e.w1.Checkpoint(ctxOf(e.t), st, sh, epoch, "4950", u64(3))
			if err == nil && (got.SequenceNumber != "4950" || got.SubSequence == nil || *got.SubSequence != 3) {
				e.t.Errorf("Checkpoint returned %s", got)
			}
			return err
		},
		check: func(t *testing.T, before, after Lease) {
			if after.SequenceNumber != "4950" || after.SubSequence == nil || *after.SubSequence != 3 ||
				after.ClientID != "w1" || after.Epoch != before.Epoch || after.Finished {
				t.Errorf("after checkpoint: %s", after)
			}
		},
	},
	{
		name: "finish",
		do: func(e *env, epoch int64) error {
			return e.w1.Finish(ctxOf(e.t), st, sh, epoch, "4950", nil)
		},
		check: func(t *testing.T, before, after Lease) {
			if !after.Finished || after.ClientID != "" || after.Epoch != before.Epoch || !after.HasEpoch ||
				after.SequenceNumber != "4950" || after.SubSequence != nil || after.HandoffTo != "" {
				t.Errorf("after finish: %s", after)
			}
		},
	},
	{
		name: "release",
		do: func(e *env, epoch int64) error {
			return e.w1.Release(ctxOf(e.t), st, sh, epoch, "4950", u64(7))
		},
		check: func(t *testing.T, before, after Lease) {
			if after.Finished || after.ClientID != "" || after.Epoch != before.Epoch || !after.HasEpoch ||
				after.SequenceNumber != "4950" || after.SubSequence == nil || *after.SubSequence != 7 || after.HandoffTo != "" {
				t.Errorf("after release: %s", after)
			}
		},
	},
	{
		name: "hand over",
		do: func(e *env, epoch int64) error {
			return e.w1.HandOver(ctxOf(e.t), st, sh, epoch, "w3", "4950", nil)
		},
		check: func(t *testing.T, before, after Lease) {
			if after.ClientID != "w3" || after.Epoch != before.Epoch+1 || after.SequenceNumber != "4950" ||
				after.HandoffTo != "" || after.HandoffEpoch != 0 || after.Finished {
				t.Errorf("after hand over: %s", after)
			}
			if time.Until(after.LeaseTimeout) < DefaultLeasePeriod/2 {
				t.Errorf("hand over wrote LeaseTimeout %v", after.LeaseTimeout)
			}
		},
	},
}

// ownerSetups prepare the row before an owner write; they return the epoch w1 writes with.
var ownerSetups = []struct {
	name  string
	setup func(e *env) int64
	want  error
}{
	{"owner at its epoch", func(e *env) int64 {
		return e.claim(e.w1, st, sh).Epoch
	}, nil},
	{"owner at its epoch after a built-in row", func(e *env) int64 {
		e.put(builtinRow(st, sh, "1200", "old-client", time.Now()))
		return e.claim(e.w1, st, sh).Epoch
	}, nil},
	{"wrong owner", func(e *env) int64 {
		return e.claim(e.w2, st, sh).Epoch
	}, ErrLeaseLost},
	{"wrong epoch", func(e *env) int64 {
		return e.claim(e.w1, st, sh).Epoch + 1
	}, ErrLeaseLost},
	{"stale epoch after a steal", func(e *env) int64 {
		mine := e.claim(e.w1, st, sh).Epoch
		e.claim(e.w2, st, sh) // takes it as a dead owner's
		return mine
	}, ErrLeaseLost},
	{"released", func(e *env) int64 {
		mine := e.claim(e.w1, st, sh).Epoch
		if err := e.w1.Release(ctxOf(e.t), st, sh, mine, "", nil); err != nil {
			e.t.Fatal(err)
		}
		return mine
	}, ErrLeaseLost},
	{"missing row", func(e *env) int64 { return 1 }, ErrLeaseLost},
	{"built-in row without Epoch, epoch 0", func(e *env) int64 {
		e.put(builtinRow(st, sh, "1200", "w1", time.Now()))
		return 0
	}, ErrLeaseLost},
	{"built-in row without Epoch, epoch 1", func(e *env) int64 {
		e.put(builtinRow(st, sh, "1200", "w1", time.Now()))
		return 1
	}, ErrLeaseLost},
}

func TestOwnerWrites(t *testing.T) {
	for _, w := range ownerWrites {
		for _, s := range ownerSetups {
			t.Run(w.name+"/"+s.name, func(t *testing.T) {
				t.Parallel()
				e := newEnv(t)
				epoch := s.setup(e)
				if cur := e.row(st, sh); cur.ClientID != "" && w.name == "hand over" {
					// The taker's request, so that only the setup can fail the hand-over.
					if err := e.w3.RequestHandoff(ctxOf(t), st, sh, cur.ClientID, cur.Epoch); err != nil {
						t.Fatal(err)
					}
				}
				before := e.row(st, sh)
				err := w.do(e, epoch)
				wantErr(t, err, s.want)
				after := e.row(st, sh)
				if s.want != nil {
					if !equalRows(before, after) {
						t.Errorf("a failed %s changed the row:\nbefore %s\nafter  %s", w.name, before, after)
					}
					if !strings.Contains(err.Error(), e.table) || !strings.Contains(err.Error(), sh) {
						t.Errorf("error %q does not name the table and the shard", err)
					}
					return
				}
				w.check(t, before, after)
			})
		}
	}
}

func TestCheckpointRejectsEmptySequence(t *testing.T) {
	e := newEnv(t)
	l := e.claim(e.w1, st, sh)
	_, err := e.w1.Checkpoint(ctxOf(t), st, sh, l.Epoch, "", nil)
	if err == nil || errors.Is(err, ErrLeaseLost) {
		t.Fatalf("err = %v, want an argument error", err)
	}
}

func TestCheckpointRemovesSubSequence(t *testing.T) {
	e := newEnv(t)
	l := e.claim(e.w1, st, sh)
	if _, err := e.w1.Checkpoint(ctxOf(t), st, sh, l.Epoch, "10", u64(2)); err != nil {
		t.Fatal(err)
	}
	got, err := e.w1.Checkpoint(ctxOf(t), st, sh, l.Epoch, "11", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got.SequenceNumber != "11" || got.SubSequence != nil {
		t.Fatalf("got %s", got)
	}
}

func TestFinalWritesWithoutSequenceKeepCheckpoint(t *testing.T) {
	e := newEnv(t)
	l := e.claim(e.w1, st, sh)
	if _, err := e.w1.Checkpoint(ctxOf(t), st, sh, l.Epoch, "10", u64(2)); err != nil {
		t.Fatal(err)
	}
	if err := e.w1.Release(ctxOf(t), st, sh, l.Epoch, "", nil); err != nil {
		t.Fatal(err)
	}
	got := e.row(st, sh)
	if got.SequenceNumber != "10" || got.SubSequence == nil || *got.SubSequence != 2 || got.ClientID != "" {
		t.Fatalf("got %s", got)
	}
}

func TestClaim(t *testing.T) {
	tests := []struct {
		name string
		// setup prepares the table and returns the row as w1 observed it.
		setup func(e *env) Lease
		want  error
		// wantEpoch and wantSeq are checked after a successful claim.
		wantEpoch int64
		wantSeq   string
	}{
		{"no row", func(e *env) Lease { return e.row(st, sh) }, nil, 1, ""},
		{"no row, put by another since", func(e *env) Lease {
			obs := e.row(st, sh)
			e.claim(e.w2, st, sh)
			return obs
		}, ErrClaimConflict, 0, ""},
		{"released row", func(e *env) Lease {
			l := e.claim(e.w2, st, sh)
			if err := e.w2.Release(ctxOf(e.t), st, sh, l.Epoch, "77", nil); err != nil {
				e.t.Fatal(err)
			}
			return e.row(st, sh)
		}, nil, 2, "77"},
		{"released row, claimed by another since", func(e *env) Lease {
			l := e.claim(e.w2, st, sh)
			if err := e.w2.Release(ctxOf(e.t), st, sh, l.Epoch, "77", nil); err != nil {
				e.t.Fatal(err)
			}
			obs := e.row(st, sh)
			e.claim(e.w3, st, sh)
			return obs
		}, ErrClaimConflict, 0, ""},
		{"released row, claimed and released since", func(e *env) Lease {
			l := e.claim(e.w2, st, sh)
			if err := e.w2.Release(ctxOf(e.t), st, sh, l.Epoch, "77", nil); err != nil {
				e.t.Fatal(err)
			}
			obs := e.row(st, sh)
			l = e.claim(e.w3, st, sh)
			if err := e.w3.Release(ctxOf(e.t), st, sh, l.Epoch, "", nil); err != nil {
				e.t.Fatal(err)
			}
			return obs // free as observed, but at another epoch
		}, ErrClaimConflict, 0, ""},
		{"built-in free row (final checkpoint)", func(e *env) Lease {
			e.put(builtinRow(st, sh, "49590338271490256608559692538361571095921575989136588898", "", time.Time{}))
			return e.row(st, sh)
		}, nil, 1, "49590338271490256608559692538361571095921575989136588898"},
		{"built-in free row, claimed with an epoch since", func(e *env) Lease {
			e.put(builtinRow(st, sh, "1200", "", time.Time{}))
			obs := e.row(st, sh)
			l := e.claim(e.w2, st, sh)
			if err := e.w2.Release(ctxOf(e.t), st, sh, l.Epoch, "", nil); err != nil {
				e.t.Fatal(err)
			}
			return obs // free again, but the row has an Epoch now
		}, ErrClaimConflict, 0, ""},
		{"built-in row of a dead client", func(e *env) Lease {
			e.put(builtinRow(st, sh, "1200", "old-client", time.Now().Add(-time.Hour)))
			return e.row(st, sh)
		}, nil, 1, "1200"},
		{"built-in row of a dead client, taken by another since", func(e *env) Lease {
			e.put(builtinRow(st, sh, "1200", "old-client", time.Now().Add(-time.Hour)))
			obs := e.row(st, sh)
			e.claim(e.w2, st, sh)
			return obs
		}, ErrClaimConflict, 0, ""},
		{"dead owner with a pending hand-off request", func(e *env) Lease {
			l := e.claim(e.w2, st, sh)
			if _, err := e.w2.Checkpoint(ctxOf(e.t), st, sh, l.Epoch, "55", nil); err != nil {
				e.t.Fatal(err)
			}
			if err := e.w3.RequestHandoff(ctxOf(e.t), st, sh, "w2", l.Epoch); err != nil {
				e.t.Fatal(err)
			}
			return e.row(st, sh)
		}, nil, 2, "55"},
		{"dead owner, stale epoch (stolen since)", func(e *env) Lease {
			e.claim(e.w2, st, sh)
			obs := e.row(st, sh)
			e.claim(e.w3, st, sh)
			return obs
		}, ErrClaimConflict, 0, ""},
		{"dead owner, observed free", func(e *env) Lease {
			e.claim(e.w2, st, sh)
			obs := e.row(st, sh)
			obs.ClientID = ""
			return obs
		}, ErrClaimConflict, 0, ""},
		{"observed without epoch, row has one", func(e *env) Lease {
			e.claim(e.w2, st, sh)
			obs := e.row(st, sh)
			obs.HasEpoch, obs.Epoch = false, 0
			return obs
		}, ErrClaimConflict, 0, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			obs := tc.setup(e)
			before := e.row(st, sh)
			got, err := e.w1.Claim(ctxOf(t), st, sh, obs)
			wantErr(t, err, tc.want)
			after := e.row(st, sh)
			if tc.want != nil {
				if !equalRows(before, after) {
					t.Errorf("a failed claim changed the row:\nbefore %s\nafter  %s", before, after)
				}
				if !strings.Contains(err.Error(), "claim shard "+sh+" of "+st+": ") || !strings.Contains(err.Error(), e.table) {
					t.Errorf("error %q lacks context", err)
				}
				return
			}
			if !equalRows(got, after) {
				t.Errorf("Claim returned %s, the row is %s", got, after)
			}
			if after.ClientID != "w1" || !after.HasEpoch || after.Epoch != tc.wantEpoch || after.SequenceNumber != tc.wantSeq ||
				after.HandoffTo != "" || after.HandoffEpoch != 0 {
				t.Errorf("after claim: %s; want owner w1, epoch %d, checkpoint %q", after, tc.wantEpoch, tc.wantSeq)
			}
			if d := time.Until(after.LeaseTimeout); d < DefaultLeasePeriod/2 || d > DefaultLeasePeriod+time.Minute {
				t.Errorf("LeaseTimeout %v is not about now + %v", after.LeaseTimeout, DefaultLeasePeriod)
			}
		})
	}
}

func TestClaimRejectsBadKeys(t *testing.T) {
	e := newEnv(t)
	for _, k := range [][2]string{{WorkersPartition, "w9"}, {"", sh}, {st, ""}} {
		if _, err := e.w1.Claim(ctxOf(t), k[0], k[1], Lease{}); err == nil || errors.Is(err, ErrClaimConflict) {
			t.Errorf("Claim(%q, %q) = %v, want an argument error", k[0], k[1], err)
		}
	}
	other := Lease{Stream: st, Shard: "shardId-000000000009", Exists: true}
	if _, err := e.w1.Claim(ctxOf(t), st, sh, other); err == nil {
		t.Error("Claim accepted the observed row of another shard")
	}
}

func TestConcurrentClaimsOneWins(t *testing.T) {
	e := newEnv(t)
	for _, name := range []string{"no row", "free row"} {
		t.Run(name, func(t *testing.T) {
			shard := "shardId-" + strings.ReplaceAll(name, " ", "-")
			if name == "free row" {
				l := e.claim(e.w1, st, shard)
				if err := e.w1.Release(ctxOf(t), st, shard, l.Epoch, "", nil); err != nil {
					t.Fatal(err)
				}
			}
			obs := e.row(st, shard)
			const n = 8
			var wg sync.WaitGroup
			errs := make([]error, n)
			for i := range n {
				w := e.worker("c" + string(rune('a'+i)))
				wg.Go(func() { _, errs[i] = w.Claim(ctxOf(t), st, shard, obs) })
			}
			wg.Wait()
			won := 0
			for _, err := range errs {
				switch {
				case err == nil:
					won++
				case !errors.Is(err, ErrClaimConflict):
					t.Errorf("unexpected error %v", err)
				}
			}
			if won != 1 {
				t.Fatalf("%d claims won, want 1", won)
			}
		})
	}
}

func TestRequestHandoff(t *testing.T) {
	tests := []struct {
		name string
		// setup returns the owner and epoch w2 asks against.
		setup func(e *env) (string, int64)
		want  error
	}{
		{"owner at its epoch", func(e *env) (string, int64) {
			return "w1", e.claim(e.w1, st, sh).Epoch
		}, nil},
		{"again by the same taker", func(e *env) (string, int64) {
			ep := e.claim(e.w1, st, sh).Epoch
			if err := e.w2.RequestHandoff(ctxOf(e.t), st, sh, "w1", ep); err != nil {
				e.t.Fatal(err)
			}
			return "w1", ep
		}, nil},
		{"built-in owner without Epoch (epoch 0)", func(e *env) (string, int64) {
			e.put(builtinRow(st, sh, "1", "old-client", time.Now()))
			return "old-client", 0
		}, nil},
		{"already requested by another", func(e *env) (string, int64) {
			ep := e.claim(e.w1, st, sh).Epoch
			if err := e.w3.RequestHandoff(ctxOf(e.t), st, sh, "w1", ep); err != nil {
				e.t.Fatal(err)
			}
			return "w1", ep
		}, ErrClaimConflict},
		{"wrong owner", func(e *env) (string, int64) {
			return "w3", e.claim(e.w1, st, sh).Epoch
		}, ErrClaimConflict},
		{"wrong epoch", func(e *env) (string, int64) {
			return "w1", e.claim(e.w1, st, sh).Epoch + 1
		}, ErrClaimConflict},
		{"stale epoch after a steal", func(e *env) (string, int64) {
			ep := e.claim(e.w1, st, sh).Epoch
			e.claim(e.w3, st, sh)
			return "w1", ep
		}, ErrClaimConflict},
		{"free row", func(e *env) (string, int64) {
			ep := e.claim(e.w1, st, sh).Epoch
			if err := e.w1.Release(ctxOf(e.t), st, sh, ep, "", nil); err != nil {
				e.t.Fatal(err)
			}
			return "w1", ep
		}, ErrClaimConflict},
		{"missing row", func(e *env) (string, int64) { return "w1", 1 }, ErrClaimConflict},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			owner, epoch := tc.setup(e)
			before := e.row(st, sh)
			err := e.w2.RequestHandoff(ctxOf(t), st, sh, owner, epoch)
			wantErr(t, err, tc.want)
			after := e.row(st, sh)
			if tc.want != nil {
				if !equalRows(before, after) {
					t.Errorf("a failed request changed the row:\nbefore %s\nafter  %s", before, after)
				}
				return
			}
			before.HandoffTo, before.HandoffEpoch = "w2", epoch
			if !equalRows(before, after) {
				t.Errorf("after the request: %s, want %s", after, before)
			}
		})
	}
}

func TestForceHandoff(t *testing.T) {
	tests := []struct {
		name  string
		setup func(e *env) int64 // the epoch w2 forces against (owner w1)
		want  error
	}{
		{"requested, owner silent", func(e *env) int64 {
			ep := e.claim(e.w1, st, sh).Epoch
			if err := e.w2.RequestHandoff(ctxOf(e.t), st, sh, "w1", ep); err != nil {
				e.t.Fatal(err)
			}
			return ep
		}, nil},
		{"not requested", func(e *env) int64 {
			return e.claim(e.w1, st, sh).Epoch
		}, ErrClaimConflict},
		{"requested by another", func(e *env) int64 {
			ep := e.claim(e.w1, st, sh).Epoch
			if err := e.w3.RequestHandoff(ctxOf(e.t), st, sh, "w1", ep); err != nil {
				e.t.Fatal(err)
			}
			return ep
		}, ErrClaimConflict},
		{"wrong epoch", func(e *env) int64 {
			ep := e.claim(e.w1, st, sh).Epoch
			if err := e.w2.RequestHandoff(ctxOf(e.t), st, sh, "w1", ep); err != nil {
				e.t.Fatal(err)
			}
			return ep + 1
		}, ErrClaimConflict},
		{"handed over meanwhile (the race ends well: the taker owns it)", func(e *env) int64 {
			ep := e.claim(e.w1, st, sh).Epoch
			if err := e.w2.RequestHandoff(ctxOf(e.t), st, sh, "w1", ep); err != nil {
				e.t.Fatal(err)
			}
			if err := e.w1.HandOver(ctxOf(e.t), st, sh, ep, "w2", "9", nil); err != nil {
				e.t.Fatal(err)
			}
			return ep
		}, nil},
		{"missing row", func(e *env) int64 { return 1 }, ErrClaimConflict},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			epoch := tc.setup(e)
			before := e.row(st, sh)
			got, err := e.w2.ForceHandoff(ctxOf(t), st, sh, "w1", epoch)
			wantErr(t, err, tc.want)
			after := e.row(st, sh)
			if tc.want != nil {
				if !equalRows(before, after) {
					t.Errorf("a failed force changed the row:\nbefore %s\nafter  %s", before, after)
				}
				return
			}
			if !equalRows(got, after) || after.ClientID != "w2" || after.Epoch != epoch+1 || after.HandoffTo != "" || after.HandoffEpoch != 0 {
				t.Errorf("ForceHandoff returned %s, row %s", got, after)
			}
			// The old owner is fenced.
			_, err = e.w1.Checkpoint(ctxOf(t), st, sh, epoch, "999", nil)
			wantErr(t, err, ErrLeaseLost)
			if _, err := e.w2.Checkpoint(ctxOf(t), st, sh, after.Epoch, "1000", nil); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestHandoffSequence: request, the owner sees it at its next checkpoint, hands over with its
// final checkpoint; the new owner's checkpoint works and the old owner's fails.
func TestHandoffSequence(t *testing.T) {
	e := newEnv(t)
	ctx := ctxOf(t)
	l := e.claim(e.w1, st, sh)
	if _, err := e.w1.Checkpoint(ctx, st, sh, l.Epoch, "100", nil); err != nil {
		t.Fatal(err)
	}
	if err := e.w2.RequestHandoff(ctx, st, sh, "w1", l.Epoch); err != nil {
		t.Fatal(err)
	}
	seen, err := e.w1.Checkpoint(ctx, st, sh, l.Epoch, "200", nil)
	if err != nil {
		t.Fatal(err)
	}
	if seen.HandoffTo != "w2" || seen.HandoffEpoch != l.Epoch {
		t.Fatalf("the owner's checkpoint returned %s, want the hand-off request", seen)
	}
	if err := e.w1.HandOver(ctx, st, sh, l.Epoch, "w2", "300", u64(4)); err != nil {
		t.Fatal(err)
	}
	leases, err := e.w2.Leases(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	if len(leases) != 1 {
		t.Fatalf("leases: %v", leases)
	}
	got := leases[0]
	if got.ClientID != "w2" || got.Epoch != l.Epoch+1 || got.SequenceNumber != "300" || *got.SubSequence != 4 || got.HandoffTo != "" {
		t.Fatalf("after the hand-over: %s", got)
	}
	if _, err := e.w2.Checkpoint(ctx, st, sh, got.Epoch, "400", nil); err != nil {
		t.Fatalf("new owner: %v", err)
	}
	_, err = e.w1.Checkpoint(ctx, st, sh, l.Epoch, "350", nil)
	wantErr(t, err, ErrLeaseLost)
	if !strings.Contains(err.Error(), `owner "w2"`) {
		t.Errorf("error %q does not say who owns it now", err)
	}
	err = e.w1.HandOver(ctx, st, sh, l.Epoch, "w2", "350", nil)
	wantErr(t, err, ErrLeaseLost)
	if got := e.row(st, sh); got.SequenceNumber != "400" || got.ClientID != "w2" {
		t.Fatalf("the old owner moved the checkpoint: %s", got)
	}
}

// HandOver to a worker other than the one that asked fails, and leaves the row alone.
func TestHandOverWrongTaker(t *testing.T) {
	e := newEnv(t)
	l := e.claim(e.w1, st, sh)
	if err := e.w2.RequestHandoff(ctxOf(t), st, sh, "w1", l.Epoch); err != nil {
		t.Fatal(err)
	}
	err := e.w1.HandOver(ctxOf(t), st, sh, l.Epoch, "w3", "1", nil)
	wantErr(t, err, ErrLeaseLost)
	if got := e.row(st, sh); got.ClientID != "w1" || got.HandoffTo != "w2" {
		t.Fatalf("row changed: %s", got)
	}
}

// replayingAPI applies every conditional write twice and answers with the second outcome: what
// the SDK does when the answer to an applied write is lost and it retries.
type replayingAPI struct {
	API
}

func (r replayingAPI) PutItem(ctx context.Context, in *dynamodb.PutItemInput, o ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	if _, err := r.API.PutItem(ctx, in, o...); err != nil {
		return nil, err
	}
	return r.API.PutItem(ctx, in, o...)
}

func (r replayingAPI) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, o ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	if _, err := r.API.UpdateItem(ctx, in, o...); err != nil {
		return nil, err
	}
	return r.API.UpdateItem(ctx, in, o...)
}

// TestRetriedWriteAfterLostAnswer: a write applied by a first attempt whose answer was lost
// fails its condition on the retry; the read-back recognises the write as done.
func TestRetriedWriteAfterLostAnswer(t *testing.T) {
	tests := []struct {
		name string
		run  func(e *env, r1, r2 *Table) error
		want func(l Lease) bool
	}{
		{"claim without row", func(e *env, r1, _ *Table) error {
			_, err := r1.Claim(ctxOf(e.t), st, sh, e.row(st, sh))
			return err
		}, func(l Lease) bool { return l.ClientID == "w1" && l.Epoch == 1 }},
		{"claim of a dead owner's row", func(e *env, r1, _ *Table) error {
			e.claim(e.w2, st, sh)
			_, err := r1.Claim(ctxOf(e.t), st, sh, e.row(st, sh))
			return err
		}, func(l Lease) bool { return l.ClientID == "w1" && l.Epoch == 2 }},
		{"checkpoint", func(e *env, r1, _ *Table) error {
			l := e.claim(e.w1, st, sh)
			_, err := r1.Checkpoint(ctxOf(e.t), st, sh, l.Epoch, "5", nil)
			return err
		}, func(l Lease) bool { return l.SequenceNumber == "5" }},
		{"finish", func(e *env, r1, _ *Table) error {
			l := e.claim(e.w1, st, sh)
			return r1.Finish(ctxOf(e.t), st, sh, l.Epoch, "5", u64(1))
		}, func(l Lease) bool { return l.Finished && l.SequenceNumber == "5" }},
		{"release", func(e *env, r1, _ *Table) error {
			l := e.claim(e.w1, st, sh)
			return r1.Release(ctxOf(e.t), st, sh, l.Epoch, "5", nil)
		}, func(l Lease) bool { return l.ClientID == "" && l.SequenceNumber == "5" }},
		{"request hand-off", func(e *env, _, r2 *Table) error {
			l := e.claim(e.w1, st, sh)
			return r2.RequestHandoff(ctxOf(e.t), st, sh, "w1", l.Epoch)
		}, func(l Lease) bool { return l.HandoffTo == "w2" }},
		{"hand over", func(e *env, r1, _ *Table) error {
			l := e.claim(e.w1, st, sh)
			if err := e.w2.RequestHandoff(ctxOf(e.t), st, sh, "w1", l.Epoch); err != nil {
				return err
			}
			return r1.HandOver(ctxOf(e.t), st, sh, l.Epoch, "w2", "5", nil)
		}, func(l Lease) bool { return l.ClientID == "w2" && l.Epoch == 2 && l.SequenceNumber == "5" }},
		{"force hand-off", func(e *env, _, r2 *Table) error {
			l := e.claim(e.w1, st, sh)
			if err := e.w2.RequestHandoff(ctxOf(e.t), st, sh, "w1", l.Epoch); err != nil {
				return err
			}
			_, err := r2.ForceHandoff(ctxOf(e.t), st, sh, "w1", l.Epoch)
			return err
		}, func(l Lease) bool { return l.ClientID == "w2" && l.Epoch == 2 }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			r := replayingAPI{e.c}
			if err := tc.run(e, e.workerOn(r, "w1"), e.workerOn(r, "w2")); err != nil {
				t.Fatalf("a replayed write was reported as failed: %v", err)
			}
			if got := e.row(st, sh); !tc.want(got) {
				t.Fatalf("row: %s", got)
			}
		})
	}
}

func TestSetStartOnlyOnceAndOnlyByTheOwner(t *testing.T) {
	e := newEnv(t)
	ctx := ctxOf(t)
	l := e.claim(e.w1, "s", "sh")
	t1 := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	got, err := e.w1.SetStart(ctx, "s", "sh", l.Epoch, t1)
	if err != nil || !got.StartAt.Equal(t1) {
		t.Fatalf("first SetStart: %v, StartAt %v", err, got.StartAt)
	}
	// A second start (a later owner, or a retry) keeps the first.
	got, err = e.w1.SetStart(ctx, "s", "sh", l.Epoch, t1.Add(time.Hour))
	if err != nil || !got.StartAt.Equal(t1) {
		t.Fatalf("second SetStart: %v, StartAt %v, want the first kept", err, got.StartAt)
	}
	if _, err := e.w2.SetStart(ctx, "s", "sh", l.Epoch, t1); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("SetStart by a worker that does not own the shard: %v, want ErrLeaseLost", err)
	}
	if _, err := e.w1.SetStart(ctx, "s", "sh", l.Epoch+1, t1); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("SetStart at a stale epoch: %v, want ErrLeaseLost", err)
	}
	if row := e.row("s", "sh"); !row.StartAt.Equal(t1) {
		t.Fatalf("row StartAt %v, want %v", row.StartAt, t1)
	}
}
