package checkpointer

import (
	"errors"
	"testing"
	"time"
)

// TestPlace: an operator's write bumps the epoch, frees the shard unless told to keep the owner,
// and fails when the row changed since it was read.
func TestPlace(t *testing.T) {
	e := newEnv(t)
	at := time.Date(2026, 1, 31, 9, 0, 0, 0, time.UTC)
	sub := uint64(4)
	cases := []struct {
		name    string
		setup   func(stream string) Lease // returns the row as observed
		change  func(stream string)       // a change after the read
		p       Placement
		want    func(t *testing.T, l Lease)
		wantErr error
	}{
		{
			name:  "no row",
			setup: func(s string) Lease { return e.row(s, "sh") },
			p:     Placement{StartAt: at},
			want: func(t *testing.T, l Lease) {
				if l.HasEpoch || l.ClientID != "" || !l.StartAt.Equal(at) || l.SequenceNumber != "" {
					t.Errorf("row %s", l)
				}
			},
		},
		{
			name: "owned row, freed",
			setup: func(s string) Lease {
				l := e.claim(e.w1, s, "sh")
				if _, err := e.w1.Checkpoint(ctxOf(t), s, "sh", l.Epoch, "10", nil); err != nil {
					t.Fatal(err)
				}
				return e.row(s, "sh")
			},
			p: Placement{SequenceNumber: "5", SubSequence: &sub},
			want: func(t *testing.T, l Lease) {
				if l.ClientID != "" || l.Epoch != 2 || l.SequenceNumber != "5" || l.SubSequence == nil || *l.SubSequence != 4 {
					t.Errorf("row %s", l)
				}
			},
		},
		{
			name: "owner kept",
			setup: func(s string) Lease {
				e.claim(e.w1, s, "sh")
				return e.row(s, "sh")
			},
			p: Placement{StartAt: at, KeepOwner: true},
			want: func(t *testing.T, l Lease) {
				if l.ClientID != "w1" || l.Epoch != 2 || !l.StartAt.Equal(at) {
					t.Errorf("row %s", l)
				}
			},
		},
		{
			name: "finished frees even with KeepOwner",
			setup: func(s string) Lease {
				e.claim(e.w1, s, "sh")
				return e.row(s, "sh")
			},
			p: Placement{Finished: true, KeepOwner: true},
			want: func(t *testing.T, l Lease) {
				if l.ClientID != "" || !l.Finished || l.Epoch != 2 {
					t.Errorf("row %s", l)
				}
			},
		},
		{
			name: "claimed since read",
			setup: func(s string) Lease {
				return e.row(s, "sh")
			},
			change:  func(s string) { e.claim(e.w2, s, "sh") },
			p:       Placement{StartAt: at},
			wantErr: ErrClaimConflict,
		},
		{
			name: "checkpoint moved since read",
			setup: func(s string) Lease {
				e.claim(e.w1, s, "sh")
				return e.row(s, "sh")
			},
			change: func(s string) {
				l := e.row(s, "sh")
				if _, err := e.w1.Checkpoint(ctxOf(t), s, "sh", l.Epoch, "11", nil); err != nil {
					t.Fatal(err)
				}
			},
			p:       Placement{StartAt: at},
			wantErr: ErrClaimConflict,
		},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			stream := "place-" + string(rune('a'+i))
			observed := tc.setup(stream)
			if tc.change != nil {
				tc.change(stream)
			}
			l, err := e.worker("operator").Place(ctxOf(t), observed, tc.p)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) || !IsConflict(err) {
					t.Fatalf("error = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.want(t, l)
			tc.want(t, e.row(stream, "sh"))
		})
	}
}

// TestWatchWorkers: a beating worker is alive, a still one dead, an owner without a row dead
// once a lease period passed without one.
func TestWatchWorkers(t *testing.T) {
	e := newEnv(t)
	ctx := ctxOf(t)
	if err := e.w2.Heartbeat(ctx, 5, nil); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for n := int64(1); ; n++ {
			select {
			case <-stop:
				return
			case <-tick.C:
				_ = e.w1.Heartbeat(ctx, n, nil)
			}
		}
	}()
	defer func() { close(stop); <-done }()
	const lease = 600 * time.Millisecond
	start := time.Now()
	got, err := e.w3.WatchWorkers(ctx, []string{"w1", "w2", "no-row"}, lease, 20*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if !got["w1"].Alive || got["w2"].Alive || !got["w2"].HasRow || got["no-row"].Alive || got["no-row"].HasRow {
		t.Errorf("judged %+v", got)
	}
	if got["w2"].Still < lease-lease/4 || time.Since(start) < lease-lease/4 {
		t.Errorf("w2 judged dead after %v (watched %v), want at least the protocol's threshold", got["w2"].Still, time.Since(start))
	}
}
