package input

// Regression tests of two defects of the coordinator before the lease protocol became a pure
// state machine (checkpointer/lease) with an I/O shell (coordinator.go):
//
//   - TestIntegrationSlowDynamoDBManyShardsNeverFenced: the old loop made one table write per
//     shard, one after another and without a per-call timeout, before its next heartbeat. With
//     shards × write latency above the fencing margin (lease_period − lease_period/3) the worker
//     fenced itself during its own commit round, and the re-take (another write per shard)
//     outlasted the margin every time: fenced for good.
//   - TestIntegrationFailingStreamDoesNotFreezeOtherStreams: the old cycle returned on the first
//     stream whose ListShards failed, before reconciling, re-taking and planning, so one deleted
//     stream stopped every lease decision of every stream: a dead worker's shards of a healthy
//     stream were never taken.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/benthos-kinesis/benthos-kinesis/checkpointer"
	"github.com/benthos-kinesis/benthos-kinesis/internal/chaos/faultproxy"
	"github.com/benthos-kinesis/benthos-kinesis/internal/kinesisapi"
	"github.com/benthos-kinesis/benthos-kinesis/internal/testenv"
)

// scaleLogs keeps what an input logged at info level and above, with the time it was logged.
type scaleLogs struct {
	mu   sync.Mutex
	recs []scaleLogRecord
}

type scaleLogRecord struct {
	at    time.Time
	level slog.Level
	msg   string
	attrs map[string]string
}

// scaleLogHandler is a slog.Handler that records into a scaleLogs.
type scaleLogHandler struct {
	logs  *scaleLogs
	attrs []slog.Attr
}

func (h scaleLogHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelInfo }

func (h scaleLogHandler) Handle(_ context.Context, r slog.Record) error {
	rec := scaleLogRecord{at: time.Now(), level: r.Level, msg: r.Message, attrs: map[string]string{}}
	for _, a := range h.attrs {
		rec.attrs[a.Key] = a.Value.String()
	}
	r.Attrs(func(a slog.Attr) bool {
		rec.attrs[a.Key] = a.Value.String()
		return true
	})
	h.logs.mu.Lock()
	h.logs.recs = append(h.logs.recs, rec)
	h.logs.mu.Unlock()
	return nil
}

func (h scaleLogHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return scaleLogHandler{logs: h.logs, attrs: append(slices.Clone(h.attrs), as...)}
}

func (h scaleLogHandler) WithGroup(string) slog.Handler { return h }

// fencedSince returns the log lines, from t on, that say the worker paused delivery because it
// fenced itself. The current coordinator logs the lease change "fenced" (attribute event) as
// "Delivery paused: ..."; the old one logged "No heartbeat reached dynamodb table ...: delivery
// paused until one does". Both are errors and say "delivery paused".
func (l *scaleLogs) fencedSince(t time.Time) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, r := range l.recs {
		if r.at.Before(t) {
			continue
		}
		if r.attrs["event"] == "fenced" || (r.level >= slog.LevelError && strings.Contains(strings.ToLower(r.msg), "delivery paused")) {
			out = append(out, fmt.Sprintf("+%v %s", r.at.Sub(t).Round(time.Millisecond), r.msg))
		}
	}
	return out
}

// since returns up to max log lines at warning level and above from t on, for a failure report.
func (l *scaleLogs) since(t time.Time, max int) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, r := range l.recs {
		if r.at.Before(t) || r.level < slog.LevelWarn {
			continue
		}
		if len(out) == max {
			out = append(out, "...")
			break
		}
		out = append(out, fmt.Sprintf("+%v %v %s %v", r.at.Sub(t).Round(time.Millisecond), r.level, r.msg, r.attrs))
	}
	return out
}

// shardDeliveries counts the records delivered per shard.
type shardDeliveries struct {
	mu     sync.Mutex
	counts map[string]int
}

func (d *shardDeliveries) add(batch service.MessageBatch) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, m := range batch {
		shard, _ := m.MetaGet("kinesis_shard")
		d.counts[shard]++
	}
}

func (d *shardDeliveries) snapshot() map[string]int {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make(map[string]int, len(d.counts))
	for k, v := range d.counts {
		out[k] = v
	}
	return out
}

// checkpoints reads the checkpoint of every shard row of stream, by shard, straight from
// dynalite (not through any proxy).
func checkpoints(t *testing.T, tbl *checkpointer.Table, stream string) map[string]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rows, err := tbl.Leases(ctx, stream)
	if err != nil {
		t.Fatalf("reading the leases of %s: %v", stream, err)
	}
	out := map[string]string{}
	for _, r := range rows {
		out[r.Shard] = r.SequenceNumber
	}
	return out
}

// seqAfter reports whether sequence number b is after a (both decimal; empty is before all).
func seqAfter(b, a string) bool {
	if b == "" {
		return false
	}
	if a == "" {
		return true
	}
	x, ok1 := new(big.Int).SetString(a, 10)
	y, ok2 := new(big.Int).SetString(b, 10)
	return ok1 && ok2 && y.Cmp(x) > 0
}

// One input owns 60 shards, records flow into every one; then DynamoDB becomes slow (+120 ms a
// call, through the fault proxy). Writing 60 checkpoints one after another takes over 7 s, well
// past the fencing margin of 4 s (lease_period 6 s, the default, − heartbeat period 2 s). Over
// four lease periods of slowness the input must never fence itself, and over the last two every
// shard must deliver and advance its checkpoint.
//
// The lease period is the default 6 s, not a shorter one, because the current design tolerates
// a heartbeat answer up to one heartbeat period late, and on a loaded 2-core machine (the race
// detector, three emulators, other test binaries) with lease_period 1.5 s or 3 s the current
// code fenced now and then from CPU starvation alone (heartbeats taking 0.5 to 1.4 s with no
// latency injected).
func TestIntegrationSlowDynamoDBManyShardsNeverFenced(t *testing.T) {
	const (
		shards      = 60
		latency     = 120 * time.Millisecond
		leasePeriod = 6 * time.Second
		window      = 4 * leasePeriod
	)
	kc := testenv.Kinesalite(t)
	dc := testenv.DynamoDB(t)
	stream := testenv.CreateStream(t, kc, shards)
	table := testenv.CreateTable(t, dc)
	proxy, err := faultproxy.New(faultproxy.DynamoDB, testenv.DynamoDBEndpoint(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = proxy.Close() })

	// Records flow into every shard: one per shard every second, each aimed at its shard by an
	// explicit hash key.
	listCtx, cancelList := context.WithTimeout(context.Background(), 30*time.Second)
	listed, err := kinesisapi.ListShards(listCtx, kc, kinesisapi.Stream(stream), 0)
	cancelList()
	if err != nil {
		t.Fatal(err)
	}
	if len(listed) != shards {
		t.Fatalf("%d shards listed, want %d", len(listed), shards)
	}
	produceCtx, stopProducing := context.WithCancel(context.Background())
	produced := make(chan struct{})
	go func() {
		defer close(produced)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for n := 0; ; n++ {
			entries := make([]types.PutRecordsRequestEntry, 0, len(listed))
			for _, sh := range listed {
				entries = append(entries, types.PutRecordsRequestEntry{
					Data: []byte(strconv.Itoa(n)), PartitionKey: aws.String("k"),
					ExplicitHashKey: sh.HashKeyRange.StartingHashKey,
				})
			}
			ctx, cancel := context.WithTimeout(produceCtx, 10*time.Second)
			out, err := kc.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String(stream), Records: entries})
			cancel()
			if produceCtx.Err() != nil {
				return
			}
			if err != nil || aws.ToInt32(out.FailedRecordCount) != 0 {
				t.Errorf("put records: %v", err)
				return
			}
			select {
			case <-produceCtx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(func() {
		stopProducing()
		<-produced
	})

	logs := &scaleLogs{}
	res := service.MockResources(service.MockResourcesOptUseLogger(
		service.NewLoggerFromSlog(slog.New(scaleLogHandler{logs: logs}))))
	yaml := fmt.Sprintf(`
streams: [%s]
endpoint: %s
region: us-east-1
credentials: {id: test, secret: test}
dynamodb:
  table: %s
  endpoint: %s
lease_period: %v
commit_period: 2s
rebalance_period: 2s
steal_grace_period: 5s
poll_period: 1s
poll: {idle_wait: 1s}
`, stream, testenv.KinesaliteEndpoint(t), table, proxy.URL(), leasePeriod)
	pConf, err := Spec().ParseYAML(yaml, nil)
	if err != nil {
		t.Fatal(err)
	}
	in, err := newKinesisInputFromParsed(pConf, res)
	if err != nil {
		t.Fatal(err)
	}
	started := time.Now()
	connectCtx, cancelConnect := context.WithTimeout(context.Background(), 30*time.Second)
	err = in.Connect(connectCtx)
	cancelConnect()
	if err != nil {
		t.Fatal(err)
	}
	got := &shardDeliveries{counts: map[string]int{}}
	read := make(chan struct{})
	go func() {
		defer close(read)
		for {
			batch, ackFn, err := in.ReadBatch(context.Background())
			if err != nil {
				return
			}
			got.add(batch)
			_ = ackFn(context.Background(), nil)
		}
	}()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := in.Close(ctx); err != nil {
			t.Errorf("close: %v", err)
		}
		<-read
	})

	// Warm-up, with DynamoDB at full speed: every shard owned, delivering and checkpointed.
	observer, err := checkpointer.New(dc, table, "observer")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 45*time.Second, "the input to own, deliver and checkpoint all 60 shards", func() bool {
		if in.ownedCount.Load() != shards || len(got.snapshot()) != shards {
			return false
		}
		cps := checkpoints(t, observer, stream)
		if len(cps) != shards {
			return false
		}
		for _, seq := range cps {
			if seq == "" {
				return false
			}
		}
		return true
	})
	if warm := logs.fencedSince(started); len(warm) > 0 {
		t.Logf("fenced during the warm-up, before any latency: %q\n%s", warm, strings.Join(logs.since(started, 20), "\n"))
	}

	// DynamoDB slows down. Observe for four lease periods.
	proxy.SetFaults(faultproxy.Faults{Latency: latency})
	slowFrom := time.Now()
	// Progress is judged over the last two lease periods: what was acknowledged just before
	// the slow-down may still be written in the first commit round after it.
	time.Sleep(2 * leasePeriod)
	midCheckpoints, midDeliveries := checkpoints(t, observer, stream), got.snapshot()
	time.Sleep(window - 2*leasePeriod)
	endCheckpoints, endDeliveries := checkpoints(t, observer, stream), got.snapshot()
	stats := proxy.Stats()

	var stalled, silent []string
	for _, sh := range listed {
		id := aws.ToString(sh.ShardId)
		if !seqAfter(endCheckpoints[id], midCheckpoints[id]) {
			stalled = append(stalled, id)
		}
		if endDeliveries[id] <= midDeliveries[id] {
			silent = append(silent, id)
		}
	}
	fenced := logs.fencedSince(slowFrom)
	if len(fenced) > 0 {
		t.Errorf("the input fenced itself %d time(s) in the %v after DynamoDB slowed down by %v a call; first: %s",
			len(fenced), window, latency, fenced[0])
	}
	if len(stalled) > 0 {
		t.Errorf("%d of %d shards' checkpoints did not advance from +%v to +%v after the slow-down (e.g. %s)",
			len(stalled), shards, 2*leasePeriod, window, stalled[0])
	}
	if len(silent) > 0 {
		t.Errorf("%d of %d shards delivered nothing from +%v to +%v after the slow-down (e.g. %s)",
			len(silent), shards, 2*leasePeriod, window, silent[0])
	}
	if t.Failed() {
		t.Logf("warnings and errors after the slow-down:\n%s", strings.Join(logs.since(slowFrom, 20), "\n"))
	}
	t.Logf("DynamoDB calls through the proxy: %d forwarded; fence log lines after the slow-down: %d", stats.Forwarded, len(fenced))
}

// Two workers share streams A and B. A is deleted (its ListShards answers ResourceNotFound
// from then on) and one worker is killed (kill -9). The survivor must still take every shard
// of B within four lease periods, and read what is written to B after the crash.
func TestIntegrationFailingStreamDoesNotFreezeOtherStreams(t *testing.T) {
	const leasePeriod = 3 * time.Second // leaseTestYAML's
	kc := testenv.Kinesalite(t)
	dc := testenv.DynamoDB(t)
	streamA := testenv.CreateStream(t, kc, 1)
	streamB := testenv.CreateStream(t, kc, 4)
	table := testenv.CreateTable(t, dc)
	got := newReceived()
	yaml := workerYAML(t, streamA+", "+streamB, table)

	a := startWorker(t, "a", yaml, got)
	b := startWorker(t, "b", yaml, got)
	putRecords(t, kc, streamB, 0, 2000)
	putRecords(t, kc, streamA, 100000, 100100)
	waitFor(t, time.Minute, "the 5 shards shared 3 and 2, and every record read", func() bool {
		d, _ := got.snapshot()
		return a.owned()+b.owned() == 5 && a.owned() >= 2 && b.owned() >= 2 && d == 2100
	})

	idOf := func(w *worker) string {
		w.in.mu.Lock()
		defer w.in.mu.Unlock()
		return w.in.coord.workerID
	}
	survivorID, victimID := idOf(a), idOf(b)
	observer, err := checkpointer.New(dc, table, "observer")
	if err != nil {
		t.Fatal(err)
	}
	ownersOfB := func() map[string]string {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		rows, err := observer.Leases(ctx, streamB)
		if err != nil {
			t.Fatalf("reading the leases of %s: %v", streamB, err)
		}
		out := map[string]string{}
		for _, r := range rows {
			out[r.Shard] = r.ClientID
		}
		return out
	}
	// b holds at most A's one shard, so at least one of B's.
	victimShards := 0
	for _, owner := range ownersOfB() {
		if owner == victimID {
			victimShards++
		}
	}
	if victimShards == 0 {
		t.Fatalf("worker b owns no shard of %s: %v", streamB, ownersOfB())
	}

	// Stream A fails: deleted, so that every ListShards of it answers ResourceNotFound.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := kc.DeleteStream(ctx, &kinesis.DeleteStreamInput{StreamName: aws.String(streamA)}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "stream A to be gone", func() bool {
		_, err := kc.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(streamA)})
		var nf *types.ResourceNotFoundException
		return errors.As(err, &nf)
	})

	b.in.crash()
	<-b.done
	crashedAt := time.Now()
	bound := 4 * leasePeriod
	deadline := crashedAt.Add(bound)
	for {
		owners := ownersOfB()
		all := len(owners) == 4
		for _, owner := range owners {
			all = all && owner == survivorID
		}
		if all {
			break
		}
		if time.Now().After(deadline) {
			desc := make([]string, 0, len(owners))
			for shard, owner := range owners {
				who := owner
				switch owner {
				case survivorID:
					who = "survivor"
				case victimID:
					who = "crashed worker"
				case "":
					who = "nobody"
				}
				desc = append(desc, shard+": "+who)
			}
			sort.Strings(desc)
			t.Fatalf("%v after the crash (4 lease periods), with stream A deleted, the survivor does not own every shard of %s: %s",
				bound, streamB, strings.Join(desc, ", "))
		}
		time.Sleep(50 * time.Millisecond)
	}
	takeover := time.Since(crashedAt)

	putRecords(t, kc, streamB, 2000, 3000)
	waitFor(t, 30*time.Second, "the survivor to read the 1,000 records written to B after the crash", func() bool {
		got.mu.Lock()
		defer got.mu.Unlock()
		for n := 2000; n < 3000; n++ {
			if got.counts[n] == 0 {
				return false
			}
		}
		return true
	})
	t.Logf("the survivor owned every shard of B %v after the crash (lease period %v)", takeover.Round(10*time.Millisecond), leasePeriod)
}
