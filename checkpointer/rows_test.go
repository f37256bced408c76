package checkpointer

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

func TestLeasesPagination(t *testing.T) {
	e := newEnv(t)
	ctx := ctxOf(t)
	const n = 7
	var want []string
	for i := range n {
		shard := fmt.Sprintf("shardId-%012d", i)
		want = append(want, shard)
		e.claim(e.w1, st, shard)
	}
	// Rows of another stream and worker rows live in other partitions.
	e.claim(e.w1, "stream-b", "shardId-000000000000")
	if err := e.w1.Heartbeat(ctx, 1, []string{st}); err != nil {
		t.Fatal(err)
	}

	for _, limit := range []int32{0, 1, 2, 3, n, n + 1} {
		t.Run(fmt.Sprintf("limit %d", limit), func(t *testing.T) {
			cc := NewCountingClient(e.c)
			w := e.workerOn(cc, "reader", WithPageLimit(limit))
			leases, err := w.Leases(ctx, st)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, l := range leases {
				if l.Stream != st || l.ClientID != "w1" || !l.Exists {
					t.Errorf("unexpected row %s", l)
				}
				got = append(got, l.Shard)
			}
			if !slices.Equal(got, want) {
				t.Fatalf("shards %v, want %v", got, want)
			}
			c := cc.Counts()
			minPages := int64(1)
			if limit > 0 {
				minPages = int64((n + int(limit) - 1) / int(limit))
			}
			if c.Query < minPages || c.Writes() != 0 || c.GetItem != 0 {
				t.Fatalf("counts %+v, want at least %d Query pages and nothing else", c, minPages)
			}
		})
	}
}

func TestLeasesErrors(t *testing.T) {
	e := newEnv(t)
	if _, err := e.w1.Leases(ctxOf(t), WorkersPartition); err == nil {
		t.Error("Leases of the workers partition: no error")
	}
	missing, err := New(e.c, "no-such-table-"+e.table, "w1")
	if err != nil {
		t.Fatal(err)
	}
	_, err = missing.Leases(ctxOf(t), st)
	if err == nil || !strings.Contains(err.Error(), missing.Name()) {
		t.Fatalf("err = %v, want one naming the table", err)
	}
	e.put(map[string]types.AttributeValue{
		"StreamID": &types.AttributeValueMemberS{Value: st},
		"ShardID":  &types.AttributeValueMemberS{Value: sh},
		"Epoch":    &types.AttributeValueMemberS{Value: "one"},
	})
	_, err = e.w1.Leases(ctxOf(t), st)
	if err == nil || !strings.Contains(err.Error(), "Epoch") || !strings.Contains(err.Error(), sh) {
		t.Fatalf("err = %v, want one naming the bad attribute and the shard", err)
	}
}

// TestBuiltinRows: rows in the exact format of the built-in aws_kinesis input parse, with no
// epoch.
func TestBuiltinRows(t *testing.T) {
	e := newEnv(t)
	timeout := time.Date(2025, 3, 4, 5, 6, 7, 123456789, time.UTC)
	const seq = "49590338271490256608559692538361571095921575989136588898"
	e.put(builtinRow(st, "shardId-000000000000", seq, "3f6e1c9a-8f0b-4d53-9b44-0c8a5e1e2f10", timeout))
	e.put(builtinRow(st, "shardId-000000000001", seq, "", time.Time{}))
	// The built-in's claim of a never-checkpointed shard: an update without SequenceNumber.
	e.put(map[string]types.AttributeValue{
		"StreamID":     &types.AttributeValueMemberS{Value: st},
		"ShardID":      &types.AttributeValueMemberS{Value: "shardId-000000000002"},
		"ClientID":     &types.AttributeValueMemberS{Value: "other"},
		"LeaseTimeout": &types.AttributeValueMemberS{Value: timeout.In(time.FixedZone("x", 3600)).Format(time.RFC3339Nano)},
	})
	leases, err := e.w1.Leases(ctxOf(t), st)
	if err != nil {
		t.Fatal(err)
	}
	want := []Lease{
		{Stream: st, Shard: "shardId-000000000000", Exists: true, SequenceNumber: seq, ClientID: "3f6e1c9a-8f0b-4d53-9b44-0c8a5e1e2f10", LeaseTimeout: timeout},
		{Stream: st, Shard: "shardId-000000000001", Exists: true, SequenceNumber: seq},
		{Stream: st, Shard: "shardId-000000000002", Exists: true, ClientID: "other", LeaseTimeout: timeout},
	}
	if len(leases) != len(want) {
		t.Fatalf("got %d leases: %v", len(leases), leases)
	}
	for i := range want {
		if !equalRows(leases[i], want[i]) || leases[i].HasEpoch || leases[i].SubSequence != nil {
			t.Errorf("lease %d:\n got %s (timeout %v)\nwant %s (timeout %v)", i, leases[i], leases[i].LeaseTimeout, want[i], want[i].LeaseTimeout)
		}
	}
}

func TestParseLease(t *testing.T) {
	s := func(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }
	n := func(v string) types.AttributeValue { return &types.AttributeValueMemberN{Value: v} }
	base := func(extra map[string]types.AttributeValue) map[string]types.AttributeValue {
		item := map[string]types.AttributeValue{"StreamID": s(st), "ShardID": s(sh)}
		for k, v := range extra {
			item[k] = v
		}
		return item
	}
	full, err := parseLease(base(map[string]types.AttributeValue{
		"SequenceNumber": s("123"), "SubSequence": n("4"), "ClientID": s("w1"),
		"LeaseTimeout": s("2025-01-02T03:04:05Z"), "Epoch": n("9"), "Finished": &types.AttributeValueMemberBOOL{Value: true},
		"HandoffTo": s("w2"), "HandoffEpoch": n("9"), "Unknown": s("kept out"),
	}))
	if err != nil {
		t.Fatal(err)
	}
	want := Lease{Stream: st, Shard: sh, Exists: true, SequenceNumber: "123", SubSequence: u64(4), ClientID: "w1",
		LeaseTimeout: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC), Epoch: 9, HasEpoch: true, Finished: true, HandoffTo: "w2", HandoffEpoch: 9}
	if !equalRows(full, want) {
		t.Fatalf("got %s, want %s", full, want)
	}
	// An unparsable LeaseTimeout is informational: ignored.
	if l, err := parseLease(base(map[string]types.AttributeValue{"LeaseTimeout": s("soon")})); err != nil || !l.LeaseTimeout.IsZero() {
		t.Fatalf("LeaseTimeout soon: %v, %v", l.LeaseTimeout, err)
	}
	for name, v := range map[string]types.AttributeValue{
		"SequenceNumber": n("1"), "SubSequence": n("-1"), "ClientID": n("1"), "Epoch": n("1.5"),
		"Finished": s("true"), "HandoffTo": &types.AttributeValueMemberNULL{Value: true}, "HandoffEpoch": s("1"),
	} {
		if _, err := parseLease(base(map[string]types.AttributeValue{name: v})); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s = %v: err %v, want one naming the attribute", name, v, err)
		}
	}
}

func TestHeartbeatAndWorkers(t *testing.T) {
	e := newEnv(t)
	ctx := ctxOf(t)
	start := time.Now()
	w1 := e.worker("w1")
	cc := NewCountingClient(e.c)
	w2 := e.workerOn(cc, "w2", WithWorkerName("pod-7f9c:1"))
	if err := w1.Heartbeat(ctx, 1, []string{"s2", "s1", "s1", ""}); err != nil {
		t.Fatal(err)
	}
	if err := w2.Heartbeat(ctx, 5, nil); err != nil {
		t.Fatal(err)
	}
	if err := w1.Heartbeat(ctx, 2, []string{"s1", "s2"}); err != nil {
		t.Fatal(err)
	}
	if c := cc.Counts(); c.PutItem != 1 || c.Writes() != 1 {
		t.Fatalf("one heartbeat made %+v", c)
	}
	workers, err := w1.Workers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(workers) != 2 {
		t.Fatalf("workers: %+v", workers)
	}
	got1, got2 := workers[0], workers[1]
	if got1.ID != "w1" || got1.Heartbeat != 2 || !slices.Equal(got1.Streams, []string{"s1", "s2"}) ||
		got1.Started.Before(start.Add(-time.Second)) || got1.Started.After(time.Now()) || got1.Name != DefaultWorkerName() {
		t.Errorf("w1's row: %+v", got1)
	}
	if got2.ID != "w2" || got2.Heartbeat != 5 || len(got2.Streams) != 0 || got2.Name != "pod-7f9c:1" {
		t.Errorf("w2's row: %+v", got2)
	}
	// Worker rows are not leases of any stream.
	if leases, err := w1.Leases(ctx, st); err != nil || len(leases) != 0 {
		t.Fatalf("leases: %v, %v", leases, err)
	}
	if err := w1.RemoveWorker(ctx); err != nil {
		t.Fatal(err)
	}
	workers, err = w2.Workers(ctx)
	if err != nil || len(workers) != 1 || workers[0].ID != "w2" {
		t.Fatalf("after RemoveWorker: %+v, %v", workers, err)
	}
}

// TestWorkerNameRow: the name written with each heartbeat reads back as written, bounded; a row
// written before the name existed (or with no name) reads with an empty one; a name of the
// wrong type is an error like any other attribute.
func TestWorkerNameRow(t *testing.T) {
	e := newEnv(t)
	ctx := ctxOf(t)
	long := strings.Repeat("h", MaxWorkerNameBytes-1) + "é" // the é would straddle the bound
	cases := []struct {
		name   string
		opts   []Option
		item   map[string]types.AttributeValue // written as is instead of a heartbeat
		want   string
		errHas string
	}{
		{name: "default", want: DefaultWorkerName()},
		{name: "given", opts: []Option{WithWorkerName("ip-10-0-1-23:4711")}, want: "ip-10-0-1-23:4711"},
		{name: "bounded", opts: []Option{WithWorkerName(long)}, want: strings.Repeat("h", MaxWorkerNameBytes-1)},
		{name: "invalid UTF-8", opts: []Option{WithWorkerName("host\xff:1")}, want: "host?:1"},
		{name: "empty: no attribute", opts: []Option{WithWorkerName("")}, want: ""},
		{name: "old row", item: map[string]types.AttributeValue{
			AttrHeartbeat: &types.AttributeValueMemberN{Value: "3"},
			AttrStarted:   &types.AttributeValueMemberS{Value: "2026-01-02T03:04:05Z"},
		}, want: ""},
		{name: "wrong type", item: map[string]types.AttributeValue{
			AttrHeartbeat:  &types.AttributeValueMemberN{Value: "3"},
			AttrWorkerName: &types.AttributeValueMemberN{Value: "1"},
		}, errHas: AttrWorkerName},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id := fmt.Sprintf("named-%d", i)
			if tc.item != nil {
				tc.item[AttrStreamID] = &types.AttributeValueMemberS{Value: WorkersPartition}
				tc.item[AttrShardID] = &types.AttributeValueMemberS{Value: id}
				e.put(tc.item)
			} else {
				w := e.worker(id, tc.opts...)
				if err := w.Heartbeat(ctx, 1, nil); err != nil {
					t.Fatal(err)
				}
				if w.WorkerName() != tc.want {
					t.Errorf("WorkerName() = %q, want %q", w.WorkerName(), tc.want)
				}
			}
			t.Cleanup(func() {
				if err := e.worker(id).RemoveWorker(ctx); err != nil {
					t.Error(err)
				}
			})
			workers, err := e.w1.Workers(ctx)
			if tc.errHas != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errHas) {
					t.Fatalf("err = %v, want one naming %s", err, tc.errHas)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			i := slices.IndexFunc(workers, func(w WorkerRow) bool { return w.ID == id })
			if i < 0 {
				t.Fatalf("no row %s in %+v", id, workers)
			}
			if workers[i].Name != tc.want || len(workers[i].Name) > MaxWorkerNameBytes {
				t.Errorf("name %q, want %q", workers[i].Name, tc.want)
			}
		})
	}
}

func TestDefaultWorkerName(t *testing.T) {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown"
	}
	if got, want := DefaultWorkerName(), host+":"+strconv.Itoa(os.Getpid()); got != want {
		t.Errorf("DefaultWorkerName() = %q, want %q", got, want)
	}
}

func TestNewValidates(t *testing.T) {
	c := dynamodb.New(dynamodb.Options{Region: "us-east-1"})
	for _, args := range [][2]string{{"", "w"}, {"t", ""}} {
		if _, err := New(c, args[0], args[1]); err == nil {
			t.Errorf("New(%q, %q): no error", args[0], args[1])
		}
	}
	if _, err := New(nil, "t", "w"); err == nil {
		t.Error("New(nil client): no error")
	}
}

func TestRemoveDeadWorkerOnlyWhileStill(t *testing.T) {
	e := newEnv(t)
	ctx := ctxOf(t)
	if err := e.w2.Heartbeat(ctx, 7, nil); err != nil {
		t.Fatal(err)
	}
	count := func() int {
		ws, err := e.w1.Workers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return len(ws)
	}
	// w1 last saw counter 6: w2 has beaten since, so its row stays.
	if err := e.w1.RemoveDeadWorker(ctx, "w2", 6); err != nil || count() != 1 {
		t.Fatalf("removed a worker that beat again: err %v, %d rows", err, count())
	}
	if err := e.w1.RemoveDeadWorker(ctx, "w2", 7); err != nil || count() != 0 {
		t.Fatalf("still worker not removed: err %v, %d rows", err, count())
	}
	// Gone already (another worker removed it): not an error.
	if err := e.w1.RemoveDeadWorker(ctx, "w2", 7); err != nil {
		t.Fatal(err)
	}
}

// The heartbeat writes the handle's lease period into the worker row (for tools that judge
// liveness from the rows); a row written before it existed reads as 0.
func TestWorkerRowLeasePeriod(t *testing.T) {
	e := newEnv(t)
	ctx := ctxOf(t)
	w := e.worker("with-lease", WithLeasePeriod(20*time.Second))
	if err := w.Heartbeat(ctx, 1, nil); err != nil {
		t.Fatal(err)
	}
	e.put(map[string]types.AttributeValue{
		AttrStreamID:  &types.AttributeValueMemberS{Value: WorkersPartition},
		AttrShardID:   &types.AttributeValueMemberS{Value: "without-lease"},
		AttrHeartbeat: &types.AttributeValueMemberN{Value: "3"},
	})
	workers, err := e.w1.Workers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]time.Duration{}
	for _, r := range workers {
		got[r.ID] = r.LeasePeriod
	}
	if got["with-lease"] != 20*time.Second || got["without-lease"] != 0 {
		t.Errorf("lease periods %v, want with-lease 20s, without-lease 0", got)
	}
}
