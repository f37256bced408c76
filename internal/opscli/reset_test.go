package opscli

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/benthos-kinesis/benthos-kinesis/checkpointer"
	"github.com/benthos-kinesis/benthos-kinesis/internal/kinesisapi"
)

// gap makes the next record arrive later than the last one written: AT_TIMESTAMP tells records
// apart by their arrival times (kinesalite keeps milliseconds).
func gap() { time.Sleep(20 * time.Millisecond) }

// TestResetEndToEnd moves the checkpoint of a stream an input has read, then starts an input
// and checks the first record it delivers: the reset is what a reader resumes from.
func TestResetEndToEnd(t *testing.T) {
	cases := []struct {
		name string
		// to returns --to given the records written before (A, B, C).
		to    func(recs []record) string
		shard bool
		// want are the records the input delivers, with D written after the reset.
		want []string
		// row checks the row the reset wrote.
		row func(t *testing.T, l checkpointer.Lease, recs []record)
	}{
		{
			name: "timestamp", to: func(recs []record) string { return "timestamp=" + recs[2].Arrival.Format(time.RFC3339Nano) },
			want: []string{"C", "D"},
			row: func(t *testing.T, l checkpointer.Lease, recs []record) {
				if l.SequenceNumber != "" || !l.StartAt.Equal(recs[2].Arrival) {
					t.Errorf("row %s, start %v: want no checkpoint and StartAt %v", l, l.StartAt, recs[2].Arrival)
				}
			},
		},
		{
			name: "oldest", to: func([]record) string { return "oldest" }, want: []string{"A", "B", "C", "D"},
			row: func(t *testing.T, l checkpointer.Lease, _ []record) {
				if l.SequenceNumber != "" || !l.StartAt.Equal(oldestStart) {
					t.Errorf("row %s, start %v: want no checkpoint and the oldest start", l, l.StartAt)
				}
			},
		},
		{
			name: "latest", to: func([]record) string { return "latest" }, want: []string{"D"},
			row: func(t *testing.T, l checkpointer.Lease, recs []record) {
				if l.SequenceNumber != "" || !l.StartAt.After(recs[2].Arrival) {
					t.Errorf("row %s, start %v: want no checkpoint and a start after the last record", l, l.StartAt)
				}
			},
		},
		{
			name: "sequence", to: func(recs []record) string { return "sequence=" + recs[0].Seq }, shard: true, want: []string{"B", "C", "D"},
			row: func(t *testing.T, l checkpointer.Lease, recs []record) {
				if l.SequenceNumber != recs[0].Seq || l.SubSequence != nil {
					t.Errorf("row %s: want the checkpoint %s", l, recs[0].Seq)
				}
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newFakeLenv(t, 1)
			recs := e.put(shardID(0), "A", "B")
			gap()
			recs = append(recs, e.put(shardID(0), "C")...)
			if !recs[2].Arrival.After(recs[1].Arrival) {
				t.Fatalf("C arrived at %v, not after B (%v)", recs[2].Arrival, recs[1].Arrival)
			}
			// An input reads everything and checkpoints it, then stops (releasing its lease).
			in := e.startInput()
			in.waitFor(t, 3, 30*time.Second)
			in.stop()
			if l := e.row(shardID(0)); l.SequenceNumber != recs[2].Seq || l.ClientID != "" {
				t.Fatalf("after the first input: %s, want checkpoint %s and no owner", l, recs[2].Seq)
			}
			before := e.row(shardID(0))

			args := []string{"leases", "reset", "--table", e.table, "--stream", e.stream, "--to", tc.to(recs), "--yes"}
			if tc.shard {
				args = append(args, "--shard", shardID(0))
			}
			out, _, err := e.run(strings.NewReader(""), false, args...)
			if err != nil {
				t.Fatalf("reset: %v\n%s", err, out)
			}
			l := e.row(shardID(0))
			tc.row(t, l, recs)
			if l.Epoch != before.Epoch+1 || l.ClientID != "" {
				t.Errorf("row %s: want no owner and epoch %d", l, before.Epoch+1)
			}
			if !strings.Contains(out, "moved") {
				t.Errorf("output does not report the move:\n%s", out)
			}
			gap()
			e.put(shardID(0), "D")
			got := e.startInput().waitFor(t, len(tc.want), 30*time.Second)
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Errorf("the input delivered %v after the reset, want %v", got, tc.want)
			}
		})
	}
}

// TestResetRefusals: a live owner, no --yes without a terminal, a dry run, a no on the terminal:
// nothing changes. With --force the live owner keeps the lease at a new epoch.
func TestResetRefusals(t *testing.T) {
	cases := []struct {
		name     string
		args     []string
		terminal bool
		answer   string
		live     bool
		wantErr  string
		moved    bool
	}{
		{name: "live owner", live: true, args: []string{"--yes"}, wantErr: "refusing: live workers own " + shardID(0) + " (owner live-owner)"},
		{name: "live owner, dry run", live: true, args: []string{"--dry-run"}, wantErr: "refusing"},
		{name: "live owner, --force", live: true, args: []string{"--force", "--yes"}, moved: true},
		{name: "no --yes, not a terminal", wantErr: "stdin is not a terminal"},
		{name: "terminal, no", terminal: true, answer: "no\n", wantErr: "not confirmed"},
		{name: "terminal, yes", terminal: true, answer: "yes\n", moved: true},
		{name: "dry run", args: []string{"--dry-run"}},
		{name: "dead owner", args: []string{"--yes"}, moved: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newLenv(t, 1)
			id := "dead-owner"
			if tc.live {
				id = "live-owner"
			}
			owner := e.worker(id)
			if tc.live {
				e.beating(owner)
			} else if err := owner.Heartbeat(t.Context(), 1, []string{e.stream}); err != nil {
				t.Fatal(err)
			}
			l := e.claim(owner, shardID(0))
			if _, err := owner.Checkpoint(t.Context(), e.stream, shardID(0), l.Epoch, "77", nil); err != nil {
				t.Fatal(err)
			}
			before := e.row(shardID(0))
			args := append([]string{"leases", "reset", "--table", e.table, "--stream", e.stream, "--to", "oldest"}, tc.args...)
			out, _, err := e.run(strings.NewReader(tc.answer), tc.terminal, args...)
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Errorf("error = %v, want %q", err, tc.wantErr)
			}
			// The plan is printed whatever happens next.
			if !strings.Contains(out, "after 77") || !strings.Contains(out, "oldest") {
				t.Errorf("output does not show the plan (from after 77 to oldest):\n%s", out)
			}
			after := e.row(shardID(0))
			if !tc.moved {
				if after.String() != before.String() || !after.StartAt.IsZero() {
					t.Errorf("row changed: %s, was %s", after, before)
				}
				return
			}
			wantOwner := ""
			if tc.live {
				wantOwner = id // fenced at the new epoch, not freed
			}
			if after.SequenceNumber != "" || !after.StartAt.Equal(oldestStart) || after.Epoch != before.Epoch+1 || after.ClientID != wantOwner {
				t.Errorf("row %s (start %v), want no checkpoint, the oldest start, epoch %d, owner %q", after, after.StartAt, before.Epoch+1, wantOwner)
			}
		})
	}
}

// TestResetConflict: a worker that claims the shard while the user is being asked makes the
// write fail, clearly, rather than be overwritten.
func TestResetConflict(t *testing.T) {
	t.Parallel()
	e := newLenv(t, 1)
	claimer := e.worker("claimer")
	stdin := &answering{before: func() { e.claim(claimer, shardID(0)) }, r: strings.NewReader("y\n")}
	var res planResult
	out, _, err := e.run(stdin, true, "leases", "reset", "--table", e.table, "--stream", e.stream, "--to", "oldest", "--format", "json")
	if err == nil || !strings.Contains(err.Error(), "1 of 1 shard(s) not changed") {
		t.Fatalf("error = %v, want a failed change", err)
	}
	mustJSON(t, out, &res)
	if len(res.Changes) != 1 || res.Changes[0].Result != "failed" || !strings.Contains(res.Changes[0].Error, "the row changed since it was read") || !res.Applied {
		t.Errorf("JSON = %+v", res)
	}
	if l := e.row(shardID(0)); l.ClientID != "claimer" || !l.StartAt.IsZero() {
		t.Errorf("row %s: the claim was overwritten", l)
	}
}

// TestResetJSONPlan: the dry run's JSON lists every shard, from and to.
func TestResetJSONPlan(t *testing.T) {
	t.Parallel()
	e := newFakeLenv(t, 2)
	recs := e.put(shardID(1), "A")
	var res planResult
	at := recs[0].Arrival.Format(time.RFC3339Nano)
	if err := e.runJSON(&res, "leases", "reset", "--table", e.table, "--stream", e.stream, "--to", "timestamp="+at, "--dry-run"); err != nil {
		t.Fatal(err)
	}
	if !res.DryRun || res.Applied || len(res.Changes) != 2 {
		t.Fatalf("JSON = %+v", res)
	}
	for _, ch := range res.Changes {
		if ch.Result != "planned" || ch.StartAt == nil || !ch.StartAt.Equal(recs[0].Arrival) || !strings.HasPrefix(ch.From, "no row") {
			t.Errorf("change %+v", ch)
		}
	}
	// Neither shard is a child: StartAt is all the inputs need, nothing is read to plan it.
	if res.Changes[0].Note != "AT_TIMESTAMP" || res.Changes[1].Note != "AT_TIMESTAMP" {
		t.Errorf("notes %q, %q, want AT_TIMESTAMP", res.Changes[0].Note, res.Changes[1].Note)
	}
	if l := e.row(shardID(0)); l.Exists {
		t.Errorf("a dry run wrote %s", l)
	}
}

// TestResetNonChildOnKinesalite: latest and timestamp=<now> on a shard that is not the child of
// a listed parent write StartAt and read nothing, so they work on kinesalite, which never
// answers the AT_TIMESTAMP GetShardIterator they used to ask when no record is at or after the
// time (the command failed after 10s).
func TestResetNonChildOnKinesalite(t *testing.T) {
	cases := []struct {
		name    string
		records bool // records written before the reset (all before the time)
		latest  bool // --to latest, else --to timestamp=<now>
	}{
		{name: "latest, empty shard", latest: true},
		{name: "latest, records before", records: true, latest: true},
		{name: "timestamp now, empty shard"},
		{name: "timestamp now, records before", records: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newLenv(t, 1)
			if tc.records {
				e.put(shardID(0), "A", "B")
				gap()
			}
			before := time.Now()
			to := "latest"
			if !tc.latest {
				to = "timestamp=" + before.UTC().Format(time.RFC3339Nano)
			}
			var res planResult
			if err := e.runJSON(&res, "leases", "reset", "--table", e.table, "--stream", e.stream, "--to", to, "--yes"); err != nil {
				t.Fatalf("reset --to %s: %v (%+v)", to, err, res)
			}
			after := time.Now()
			if len(res.Changes) != 1 || res.Changes[0].Result != "moved" || res.Changes[0].Note != "AT_TIMESTAMP" {
				t.Fatalf("JSON = %+v", res)
			}
			l := e.row(shardID(0))
			ok := l.StartAt.Equal(before)
			if tc.latest {
				ok = !l.StartAt.Before(before.Truncate(time.Millisecond)) && !l.StartAt.After(after)
			}
			if !ok || l.SequenceNumber != "" || l.Finished {
				t.Errorf("row %s, start %v: want no checkpoint and a StartAt of %v", l, l.StartAt, before)
			}
		})
	}
}

// TestResetAfterSplitOnKinesalite: after a split, latest on the closed parent finishes it and
// timestamp=<now> writes its StartAt, neither reading it; on a child (its parent still listed),
// where the shard must be read and kinesalite does not answer, the error says what happened
// and why.
func TestResetAfterSplitOnKinesalite(t *testing.T) {
	t.Parallel()
	e := newLenv(t, 1)
	e.put(shardID(0), "A")
	if _, err := e.kin.SplitShard(t.Context(), &kinesis.SplitShardInput{
		StreamName: aws.String(e.stream), ShardToSplit: aws.String(shardID(0)),
		NewStartingHashKey: aws.String(new(big.Int).Lsh(big.NewInt(1), 127).String()),
	}); err != nil {
		t.Fatalf("SplitShard: %v", err)
	}
	if _, err := waitActive(t.Context(), e.kin, kinesisapi.Stream(e.stream), 10*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	reset := func(to, shard string, extra ...string) (planResult, error) {
		var res planResult
		err := e.runJSON(&res, append([]string{"leases", "reset", "--table", e.table, "--stream", e.stream, "--to", to, "--shard", shard}, extra...)...)
		return res, err
	}
	now := time.Now().UTC()
	res, err := reset("timestamp="+now.Format(time.RFC3339Nano), shardID(0), "--dry-run")
	if err != nil || len(res.Changes) != 1 || res.Changes[0].StartAt == nil || !res.Changes[0].StartAt.Equal(now) || res.Changes[0].Finished {
		t.Fatalf("timestamp=<now> on the closed parent: %v, %+v", err, res)
	}
	res, err = reset("latest", shardID(0), "--yes")
	if err != nil || len(res.Changes) != 1 || res.Changes[0].Result != "moved" {
		t.Fatalf("latest on the closed parent: %v, %+v", err, res)
	}
	if l := e.row(shardID(0)); !l.Finished || l.SequenceNumber != "" {
		t.Errorf("closed parent after latest: %s, want finished", l)
	}
	// With the parent finished but still listed, its children are still children.
	_, err = reset("latest", shardID(1), "--dry-run")
	want := "shard " + shardID(1) + " of " + e.stream + ": Kinesis did not answer GetShardIterator AT_TIMESTAMP within 10s " +
		"(kinesalite, the local emulator, never answers it when no record is at or after the time)"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("latest on a child: error = %v, want one containing %q", err, want)
	}
}

// stalled is a Kinesis whose calls end as the SDK ends them when their context's deadline
// passes (or, canceled, as when the caller's context ends).
type stalled struct {
	kinesisAPI
	iterErr, recordsErr error
}

func (s stalled) GetShardIterator(context.Context, *kinesis.GetShardIteratorInput, ...func(*kinesis.Options)) (*kinesis.GetShardIteratorOutput, error) {
	if s.iterErr != nil {
		return nil, s.iterErr
	}
	return &kinesis.GetShardIteratorOutput{ShardIterator: aws.String("it")}, nil
}

func (s stalled) GetRecords(context.Context, *kinesis.GetRecordsInput, ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error) {
	return nil, s.recordsErr
}

// TestScanUnanswered: a call ended by its own deadline says which call Kinesis did not answer
// (AT_TIMESTAMP with the emulator's reason); other errors keep their usual wording.
func TestScanUnanswered(t *testing.T) {
	deadline := fmt.Errorf("operation error Kinesis: GetShardIterator: %w", context.DeadlineExceeded)
	canceledCtx, cancel := context.WithCancel(t.Context())
	cancel()
	cases := []struct {
		name    string
		ctx     context.Context
		api     stalled
		it      types.ShardIteratorType
		want    string
		wantNot string
	}{
		{name: "AT_TIMESTAMP", api: stalled{iterErr: deadline}, it: types.ShardIteratorTypeAtTimestamp,
			want: "shard s-0 of st: Kinesis did not answer GetShardIterator AT_TIMESTAMP within 10s (kinesalite, the local emulator, never answers it when no record is at or after the time)"},
		{name: "TRIM_HORIZON", api: stalled{iterErr: deadline}, it: types.ShardIteratorTypeTrimHorizon,
			want: "shard s-0 of st: Kinesis did not answer GetShardIterator TRIM_HORIZON within 10s: ", wantNot: "kinesalite"},
		{name: "GetRecords", api: stalled{recordsErr: deadline}, it: types.ShardIteratorTypeAtTimestamp,
			want: "shard s-0 of st: Kinesis did not answer GetRecords within 10s: ", wantNot: "kinesalite"},
		{name: "the caller's context ended", ctx: canceledCtx, api: stalled{iterErr: deadline}, it: types.ShardIteratorTypeAtTimestamp,
			want: "getting a AT_TIMESTAMP iterator", wantNot: "did not answer"},
		{name: "another error", api: stalled{iterErr: errors.New("boom")}, it: types.ShardIteratorTypeAtTimestamp,
			want: "getting a AT_TIMESTAMP iterator for shard s-0 of stream st: boom", wantNot: "did not answer"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := tc.ctx
			if ctx == nil {
				ctx = t.Context()
			}
			in := kinesis.GetShardIteratorInput{ShardIteratorType: tc.it, Timestamp: aws.Time(time.Now())}
			_, err := scan(ctx, tc.api, kinesisapi.Stream("st"), "s-0", in, time.Millisecond, func(types.Record) bool { return true })
			if err == nil || !strings.Contains(err.Error(), tc.want) || (tc.wantNot != "" && strings.Contains(err.Error(), tc.wantNot)) {
				t.Fatalf("error = %v, want one containing %q and not %q", err, tc.want, tc.wantNot)
			}
			if !errors.Is(err, context.DeadlineExceeded) && tc.api.iterErr == deadline {
				t.Errorf("error %v does not wrap the deadline", err)
			}
		})
	}
}
