package input

import (
	"cmp"
	"context"
	"fmt"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/benthos-kinesis/benthos-kinesis/checkpointer"
	"github.com/benthos-kinesis/benthos-kinesis/internal/kinesisapi"
	"github.com/benthos-kinesis/benthos-kinesis/internal/testenv"
)

// Resharding against kinesis-local (kinesis-mock, the emulator with
// UpdateShardCount, SplitShard, MergeShards and ChildShards). Every record
// carries a partition key and a per-key counter; the tests check, from the
// outside, what docs/LEASES.md ("Resharding") promises:
//
//   - nothing is lost: every record written is delivered at least once;
//   - per key, the first delivery of each record is in write order (a key's
//     records move from a parent shard to its children at the reshard);
//   - no child shard is read before its parents are finished: at the first
//     record of a child, the rows of its parents say Finished, and every
//     record of a parent was received before any record of its children.
//
// Duplicates are allowed (at least once) and logged.

// reshardWorkerOpts are the settings a test changes from reshardWorkerYAML's.
type reshardWorkerOpts struct {
	latest    bool // start_from_oldest: false
	pollLimit int  // poll.limit; 0 keeps the default
	// holdAcks: the worker records its batches and never acknowledges them
	// (a pipeline stuck on its output).
	holdAcks bool
	// stealGrace: steal_grace_period, the bound of the wait for
	// acknowledgements at shutdown; "" keeps 5s.
	stealGrace string
	// ends, when set, counts the GetRecords answers of the worker without
	// a next iterator: a closed shard read to its end.
	ends *atomic.Int64
}

// reshardKinesisTap wraps a worker's Kinesis client. It hides shards from
// ListShards, as the stream does once a closed shard is older than the
// retention period (its children still name it as their parent), and
// counts the GetRecords answers that end a shard.
type reshardKinesisTap struct {
	kinesisAPI
	hidden []string
	ends   *atomic.Int64
}

func (k reshardKinesisTap) ListShards(ctx context.Context, in *kinesis.ListShardsInput, opts ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error) {
	out, err := k.kinesisAPI.ListShards(ctx, in, opts...)
	if err != nil || len(k.hidden) == 0 {
		return out, err
	}
	cp := *out
	cp.Shards = slices.DeleteFunc(slices.Clone(out.Shards), func(s types.Shard) bool { return slices.Contains(k.hidden, aws.ToString(s.ShardId)) })
	return &cp, nil
}

func (k reshardKinesisTap) GetRecords(ctx context.Context, in *kinesis.GetRecordsInput, opts ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error) {
	out, err := k.kinesisAPI.GetRecords(ctx, in, opts...)
	if err == nil && out.NextShardIterator == nil && k.ends != nil {
		k.ends.Add(1)
	}
	return out, err
}

// reshardWorkerYAML is workerYAML pointed at kinesis-local.
func reshardWorkerYAML(t *testing.T, stream, table string, o reshardWorkerOpts) string {
	extra := ""
	if o.latest {
		extra += "start_from_oldest: false\n"
	}
	poll := "{idle_wait: 100ms}"
	if o.pollLimit > 0 {
		poll = fmt.Sprintf("{idle_wait: 100ms, limit: %d}", o.pollLimit)
	}
	stealGrace := "5s"
	if o.stealGrace != "" {
		stealGrace = o.stealGrace
	}
	return leaseTestYAML(t, testenv.KinesisMockEndpoint(t), stream, table) +
		fmt.Sprintf("steal_grace_period: %s\npoll: %s\n%s", stealGrace, poll, extra)
}

// reshardRec identifies a record: its key (index) and its counter within the key.
type reshardRec struct{ key, n int }

func (r reshardRec) String() string { return fmt.Sprintf("k%02d#%d", r.key, r.n) }

// reshardWriter writes records "key:n" with partition key kNN and an explicit
// hash key in the middle of the key's 1/len(keys) slice of the hash space,
// so that keys spread evenly over the shards and none sits on a boundary.
// Per key, records are written in counter order: one goroutine, and within
// a PutRecords call a key's records are in order (any failed entry fails
// the test, so no retry can reorder them).
type reshardWriter struct {
	kc     *kinesis.Client
	stream string
	hashes []*big.Int

	mu   sync.Mutex
	next []int // per key, the next counter to write
}

func newReshardWriter(kc *kinesis.Client, stream string, keys int) *reshardWriter {
	space := new(big.Int).Lsh(big.NewInt(1), 128)
	slice := new(big.Int).Div(space, big.NewInt(int64(keys)))
	w := &reshardWriter{kc: kc, stream: stream, next: make([]int, keys)}
	for i := 0; i < keys; i++ {
		h := new(big.Int).Mul(slice, big.NewInt(int64(i)))
		h.Add(h, new(big.Int).Rsh(slice, 1))
		w.hashes = append(w.hashes, h)
	}
	return w
}

// keysIn returns the keys whose hash lies in the shard's range.
func (w *reshardWriter) keysIn(sh types.Shard) []int {
	lo, _ := new(big.Int).SetString(aws.ToString(sh.HashKeyRange.StartingHashKey), 10)
	hi, _ := new(big.Int).SetString(aws.ToString(sh.HashKeyRange.EndingHashKey), 10)
	var keys []int
	for i, h := range w.hashes {
		if h.Cmp(lo) >= 0 && h.Cmp(hi) <= 0 {
			keys = append(keys, i)
		}
	}
	return keys
}

// put writes perKey records of each of keys in one PutRecords call.
func (w *reshardWriter) put(ctx context.Context, keys []int, perKey int) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	var entries []types.PutRecordsRequestEntry
	for _, k := range keys {
		for j := 0; j < perKey; j++ {
			entries = append(entries, types.PutRecordsRequestEntry{
				Data:            []byte(fmt.Sprintf("%d:%d", k, w.next[k]+j)),
				PartitionKey:    aws.String(fmt.Sprintf("k%02d", k)),
				ExplicitHashKey: aws.String(w.hashes[k].String()),
			})
		}
	}
	for start := 0; start < len(entries); start += 500 {
		out, err := w.kc.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String(w.stream), Records: entries[start:min(start+500, len(entries))]})
		if err != nil {
			return fmt.Errorf("put records: %w", err)
		}
		if n := aws.ToInt32(out.FailedRecordCount); n != 0 {
			return fmt.Errorf("put records: %d failed (first: %s)", n, reshardFirstFailure(out.Records))
		}
	}
	for _, k := range keys {
		w.next[k] += perKey
	}
	return nil
}

func reshardFirstFailure(rs []types.PutRecordsResultEntry) string {
	for _, r := range rs {
		if r.ErrorCode != nil {
			return aws.ToString(r.ErrorCode) + ": " + aws.ToString(r.ErrorMessage)
		}
	}
	return "?"
}

func (w *reshardWriter) allKeys() []int {
	keys := make([]int, len(w.hashes))
	for i := range keys {
		keys[i] = i
	}
	return keys
}

// written returns every record written so far, per key from from[key] on.
func (w *reshardWriter) written(from []int) []reshardRec {
	w.mu.Lock()
	defer w.mu.Unlock()
	var all []reshardRec
	for k, n := range w.next {
		for i := from[k]; i < n; i++ {
			all = append(all, reshardRec{k, i})
		}
	}
	return all
}

// positions returns, per key, the counter the next record will have.
func (w *reshardWriter) positions() []int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.next)
}

func (w *reshardWriter) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, c := range w.next {
		n += c
	}
	return n
}

// background writes one record of every key each period, from one
// goroutine, until stop is called or limit records are written. The period
// shapes the load (kinesis-local slows down with many records per shard);
// it synchronises nothing. stop returns once the last write returned; a
// write in flight is not cancelled, so that what was written is known.
func (w *reshardWriter) background(t *testing.T, period time.Duration, limit int) (stop func()) {
	quit := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(period)
		defer tick.Stop()
		for w.count()+len(w.hashes) <= limit {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			err := w.put(ctx, w.allKeys(), 1)
			cancel()
			if err != nil {
				t.Errorf("writer: %v", err)
				return
			}
			select {
			case <-quit:
				return
			case <-tick.C:
			}
		}
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			close(quit)
			<-done
		})
	}
	t.Cleanup(stop)
	return stop
}

// reshardLog records every delivery of every worker, in the order ReadBatch
// returned them (a worker acknowledges a batch only after recording it, so
// a shard's hand-over or finish, which wait for those acknowledgements,
// happen after its deliveries are recorded).
type reshardLog struct {
	mu         sync.Mutex
	deliveries int
	count      map[reshardRec]int
	last       map[int]int    // per key, the highest counter first delivered so far
	shardFirst map[string]int // per shard, the index of its first delivery
	shardLast  map[string]int // and of its last
	by         map[string]int // per worker
	errs       []string
}

func newReshardLog() *reshardLog {
	return &reshardLog{
		count: map[reshardRec]int{}, last: map[int]int{}, shardFirst: map[string]int{}, shardLast: map[string]int{}, by: map[string]int{},
	}
}

func (o *reshardLog) failf(format string, args ...any) {
	if len(o.errs) < 20 {
		o.errs = append(o.errs, fmt.Sprintf(format, args...))
	}
}

// add records one delivered record; it reports whether it is the first
// delivery of its shard.
func (o *reshardLog) add(worker, shard string, data []byte) (firstOfShard bool, err error) {
	k, n, ok := strings.Cut(string(data), ":")
	key, err1 := strconv.Atoi(k)
	cnt, err2 := strconv.Atoi(n)
	if !ok || err1 != nil || err2 != nil {
		return false, fmt.Errorf("record %q is not key:counter", data)
	}
	r := reshardRec{key, cnt}
	o.mu.Lock()
	defer o.mu.Unlock()
	i := o.deliveries
	o.deliveries++
	o.by[worker]++
	o.count[r]++
	if o.count[r] == 1 {
		// First deliveries of a key in increasing order; with none lost
		// (checked at the end) that is 0, 1, 2...: write order.
		if last, ok := o.last[key]; ok && cnt < last {
			o.failf("first delivery of %v (shard %s, worker %s) after the first delivery of %v: not in write order", r, shard, worker, reshardRec{key, last})
		}
		o.last[key] = max(o.last[key], cnt)
	}
	if _, seen := o.shardFirst[shard]; !seen {
		o.shardFirst[shard] = i
		firstOfShard = true
	}
	o.shardLast[shard] = i
	return firstOfShard, nil
}

func (o *reshardLog) hasAll(recs []reshardRec) bool { return len(o.missing(recs)) == 0 }

// missing returns those of recs never delivered.
func (o *reshardLog) missing(recs []reshardRec) []reshardRec {
	o.mu.Lock()
	defer o.mu.Unlock()
	var miss []reshardRec
	for _, r := range recs {
		if o.count[r] == 0 {
			miss = append(miss, r)
		}
	}
	return miss
}

// readFrom reports whether every one of shards has delivered a record.
func (o *reshardLog) readFrom(shards []string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, s := range shards {
		if _, ok := o.shardFirst[s]; !ok {
			return false
		}
	}
	return true
}

// reshardEnv is one test's stream and table, and what its workers delivered.
type reshardEnv struct {
	t      *testing.T
	kc     *kinesis.Client
	stream string
	table  string
	leases *checkpointer.Table // an observer's view of the lease table
	log    *reshardLog
	w      *reshardWriter
	// from is, per key, the first record that must be delivered: 0 unless
	// a test reads from the tip (start_from_oldest: false), where records
	// written before the readers were positioned may be skipped by design.
	from []int
	// agedOut are closed shards the workers' ListShards no longer returns.
	agedOut []string
}

func newReshardEnv(t *testing.T, shards int32, keys int) *reshardEnv {
	kc := testenv.KinesisMock(t)
	dc := testenv.DynamoDB(t)
	e := &reshardEnv{t: t, kc: kc, stream: testenv.CreateStream(t, kc, shards), table: testenv.CreateTable(t, dc), log: newReshardLog()}
	tbl, err := checkpointer.New(dc, e.table, "reshard-test-observer")
	if err != nil {
		t.Fatal(err)
	}
	e.leases = tbl
	e.w = newReshardWriter(kc, e.stream, keys)
	e.from = make([]int, keys)
	return e
}

func (e *reshardEnv) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 30*time.Second)
}

func (e *reshardEnv) shards() []types.Shard {
	e.t.Helper()
	ctx, cancel := e.ctx()
	defer cancel()
	shards, err := kinesisapi.ListShards(ctx, e.kc, kinesisapi.Stream(e.stream), 0)
	if err != nil {
		e.t.Fatal(err)
	}
	return shards
}

func reshardOpenShards(shards []types.Shard) []string {
	var ids []string
	for _, s := range shards {
		if s.SequenceNumberRange == nil || s.SequenceNumberRange.EndingSequenceNumber == nil {
			ids = append(ids, aws.ToString(s.ShardId))
		}
	}
	return ids
}

func reshardParents(s types.Shard) []string {
	var ps []string
	for _, p := range []*string{s.ParentShardId, s.AdjacentParentShardId} {
		if aws.ToString(p) != "" {
			ps = append(ps, aws.ToString(p))
		}
	}
	return ps
}

// parentsFinished checks, at the first record of a shard, that the rows of
// its parents say Finished (the shard's listing comes from the stream; a
// shard without parents passes).
func (e *reshardEnv) parentsFinished(shard string) error {
	ctx, cancel := e.ctx()
	defer cancel()
	shards, err := kinesisapi.ListShards(ctx, e.kc, kinesisapi.Stream(e.stream), 0)
	if err != nil {
		return err
	}
	for _, s := range shards {
		if aws.ToString(s.ShardId) != shard {
			continue
		}
		for _, p := range reshardParents(s) {
			if slices.Contains(e.agedOut, p) {
				continue // no longer listed: no need to wait for it
			}
			l, err := e.leases.Get(ctx, e.stream, p)
			if err != nil {
				return err
			}
			if !l.Finished {
				return fmt.Errorf("first record of shard %s received while its parent's row is not finished: %v", shard, l)
			}
		}
		return nil
	}
	return fmt.Errorf("shard %s delivered a record but is not listed", shard)
}

// startWorker starts a worker (the integration harness's worker type) that
// records every delivery in the order log, checks the parents of a shard at
// its first record, and acknowledges each batch after recording it.
func (e *reshardEnv) startWorker(label string, opts reshardWorkerOpts) *worker {
	t := e.t
	t.Helper()
	in := testInput(t, reshardWorkerYAML(t, e.stream, e.table, opts), func(in *kinesisInput) {
		kin, hidden := in.clients.kinesis, slices.Clone(e.agedOut)
		in.clients.kinesis = func() kinesisAPI { return reshardKinesisTap{kinesisAPI: kin(), hidden: hidden, ends: opts.ends} }
	}, true)
	w := &worker{label: label, in: in, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for {
			batch, ackFn, err := in.ReadBatch(context.Background())
			if err != nil {
				return
			}
			for _, m := range batch {
				b, err := m.AsBytes()
				if err != nil {
					t.Error(err)
					continue
				}
				shard, _ := m.MetaGet("kinesis_shard")
				first, err := e.log.add(label, shard, b)
				if err != nil {
					t.Error(err)
					continue
				}
				if first {
					if err := e.parentsFinished(shard); err != nil {
						t.Errorf("worker %s: %v", label, err)
					}
				}
			}
			if !opts.holdAcks {
				_ = ackFn(context.Background(), nil)
			}
		}
	}()
	t.Cleanup(func() { w.stop(t) })
	return w
}

// reshard runs one resharding operation and waits for the stream to be
// ACTIVE again.
func (e *reshardEnv) reshard(what string, op func(context.Context) error) {
	e.t.Helper()
	ctx, cancel := e.ctx()
	defer cancel()
	if err := op(ctx); err != nil {
		e.t.Fatalf("%s: %v", what, err)
	}
	if err := testenv.WaitStreamActive(ctx, e.kc, e.stream); err != nil {
		e.t.Fatalf("%s: %v", what, err)
	}
}

func (e *reshardEnv) updateShardCount(n int32) {
	e.t.Helper()
	e.reshard(fmt.Sprintf("UpdateShardCount to %d", n), func(ctx context.Context) error {
		_, err := e.kc.UpdateShardCount(ctx, &kinesis.UpdateShardCountInput{
			StreamName: aws.String(e.stream), TargetShardCount: aws.Int32(n), ScalingType: types.ScalingTypeUniformScaling,
		})
		return err
	})
}

// split splits a shard in the middle of its hash range.
func (e *reshardEnv) split(sh types.Shard) {
	e.t.Helper()
	lo, _ := new(big.Int).SetString(aws.ToString(sh.HashKeyRange.StartingHashKey), 10)
	hi, _ := new(big.Int).SetString(aws.ToString(sh.HashKeyRange.EndingHashKey), 10)
	mid := new(big.Int).Rsh(new(big.Int).Add(lo, hi), 1)
	mid.Add(mid, big.NewInt(1))
	e.reshard("SplitShard "+aws.ToString(sh.ShardId), func(ctx context.Context) error {
		_, err := e.kc.SplitShard(ctx, &kinesis.SplitShardInput{
			StreamName: aws.String(e.stream), ShardToSplit: sh.ShardId, NewStartingHashKey: aws.String(mid.String()),
		})
		return err
	})
}

func (e *reshardEnv) merge(a, b types.Shard) {
	e.t.Helper()
	e.reshard(fmt.Sprintf("MergeShards %s %s", aws.ToString(a.ShardId), aws.ToString(b.ShardId)), func(ctx context.Context) error {
		_, err := e.kc.MergeShards(ctx, &kinesis.MergeShardsInput{
			StreamName: aws.String(e.stream), ShardToMerge: a.ShardId, AdjacentShardToMerge: b.ShardId,
		})
		return err
	})
}

// reshardNewShards returns the open shards that were not among before.
func reshardNewShards(before []string, now []types.Shard) []string {
	var ids []string
	for _, id := range reshardOpenShards(now) {
		if !slices.Contains(before, id) {
			ids = append(ids, id)
		}
	}
	return ids
}

// reshardShardByID finds a listed shard.
func reshardShardByID(t *testing.T, shards []types.Shard, id string) types.Shard {
	t.Helper()
	for _, s := range shards {
		if aws.ToString(s.ShardId) == id {
			return s
		}
	}
	t.Fatalf("shard %s not listed", id)
	return types.Shard{}
}

// verify waits until every record written is delivered and every closed
// shard's row is finished, then checks the order and logs duplicates.
func (e *reshardEnv) verify(within time.Duration) {
	t := e.t
	t.Helper()
	want := e.w.written(e.from)
	delivered := false
	defer func() {
		if !delivered { // waitFor gave up: say what is missing
			miss := e.log.missing(want)
			t.Logf("%d records never delivered, e.g. %v", len(miss), miss[:min(10, len(miss))])
		}
	}()
	waitFor(t, within, fmt.Sprintf("all %d records written to be delivered", len(want)), func() bool { return e.log.hasAll(want) })
	delivered = true
	shards := e.shards()
	var closed []string
	for _, s := range shards {
		if s.SequenceNumberRange != nil && s.SequenceNumberRange.EndingSequenceNumber != nil && !slices.Contains(e.agedOut, aws.ToString(s.ShardId)) {
			closed = append(closed, aws.ToString(s.ShardId))
		}
	}
	waitFor(t, within, fmt.Sprintf("the rows of the closed shards %v to be finished", closed), func() bool {
		ctx, cancel := e.ctx()
		defer cancel()
		rows, err := e.leases.Leases(ctx, e.stream)
		if err != nil {
			t.Logf("reading the leases: %v", err)
			return false
		}
		finished := map[string]bool{}
		for _, l := range rows {
			finished[l.Shard] = l.Finished
		}
		for _, id := range closed {
			if !finished[id] {
				return false
			}
		}
		return true
	})

	o := e.log
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, msg := range o.errs {
		t.Error(msg)
	}
	// Every delivery of a parent precedes every delivery of its children,
	// whatever the key (the stronger form of "per key, all of a parent's
	// records before any of its child's").
	for _, s := range shards {
		child := aws.ToString(s.ShardId)
		cFirst, ok := o.shardFirst[child]
		if !ok {
			continue
		}
		for _, p := range reshardParents(s) {
			if pLast, ok := o.shardLast[p]; ok && pLast > cFirst {
				t.Errorf("shard %s (child) delivered its first record at #%d, before the last record of its parent %s (#%d)", child, cFirst, p, pLast)
			}
		}
	}
	extra := 0
	dupRecords := 0
	for _, c := range o.count {
		if c > 1 {
			extra += c - 1
			dupRecords++
		}
	}
	written := e.w.positions()
	for k := range o.count {
		if k.n >= written[k.key] {
			t.Errorf("delivered %v, which was never written", k)
		}
	}
	t.Logf("%d records expected, %d deliveries: %d duplicate deliveries (%d records delivered more than once); per worker %v; %d shards read",
		len(want), o.deliveries, extra, dupRecords, o.by, len(o.shardFirst))
}

// positioned waits until every one of shards has delivered a record (the
// background writer writes to all of them). With start_from_oldest: false
// the records written before are not expected (the readers started at the
// tip, wherever it was); every record written after must be delivered.
func (e *reshardEnv) positioned(shards []string, latest bool) {
	e.t.Helper()
	waitFor(e.t, 30*time.Second, fmt.Sprintf("shards %v to deliver", shards), func() bool { return e.log.readFrom(shards) })
	if latest {
		e.from = e.w.positions()
	}
}

// UpdateShardCount 4 → 8 → 4 (uniform scaling) while a writer writes and
// two workers read.
func TestReshardUpdateShardCountTwoWorkers(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		// scaleBackAtOnce: 8 → 4 as soon as the stream is ACTIVE after
		// 4 → 8, while the 8 children may not even be claimed: the 4
		// grandchildren must wait for two generations.
		scaleBackAtOnce bool
		// latest: start_from_oldest: false; children still start from
		// their oldest record (LEASES.md, "Resharding").
		latest bool
	}{
		{name: "children read before scaling back"},
		{name: "scale back at once", scaleBackAtOnce: true},
		{name: "scale back at once, start from latest", scaleBackAtOnce: true, latest: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newReshardEnv(t, 4, 32)
			opts := reshardWorkerOpts{latest: tc.latest}
			a := e.startWorker("a", opts)
			b := e.startWorker("b", opts)
			waitFor(t, 30*time.Second, "a and b to own 2 shards each", func() bool { return a.owned() == 2 && b.owned() == 2 })
			stop := e.w.background(t, 100*time.Millisecond, 4000)
			gen1 := reshardOpenShards(e.shards())
			e.positioned(gen1, tc.latest)

			e.updateShardCount(8)
			gen2 := reshardNewShards(gen1, e.shards())
			if len(gen2) != 8 {
				t.Fatalf("after 4 → 8: new open shards %v", gen2)
			}
			if tc.scaleBackAtOnce {
				// Records in every child, so that they close with data
				// that may not have been read yet.
				ctx, cancel := e.ctx()
				defer cancel()
				if err := e.w.put(ctx, e.w.allKeys(), 2); err != nil {
					t.Fatal(err)
				}
			} else {
				waitFor(t, 30*time.Second, "the 8 children to deliver", func() bool { return e.log.readFrom(gen2) })
			}
			e.updateShardCount(4)
			gen3 := reshardNewShards(gen2, e.shards())
			if len(gen3) != 4 {
				t.Fatalf("after 8 → 4: new open shards %v", gen3)
			}
			waitFor(t, 30*time.Second, "the 4 grandchildren to deliver", func() bool { return e.log.readFrom(gen3) })
			stop()
			e.verify(30 * time.Second)
		})
	}
}

// SplitShard, then MergeShards of one of the halves with its neighbour
// (parents of different generations), while a writer writes; with one and
// with two workers.
func TestReshardSplitAndMerge(t *testing.T) {
	t.Parallel()
	for _, workers := range []int{1, 2} {
		t.Run(fmt.Sprintf("%d workers", workers), func(t *testing.T) {
			t.Parallel()
			e := newReshardEnv(t, 2, 16)
			var ws []*worker
			for i := 0; i < workers; i++ {
				ws = append(ws, e.startWorker(string(rune('a'+i)), reshardWorkerOpts{}))
			}
			waitFor(t, 30*time.Second, "the 2 shards to be shared", func() bool {
				for _, w := range ws {
					if w.owned() != 2/workers {
						return false
					}
				}
				return true
			})
			stop := e.w.background(t, 100*time.Millisecond, 3000)
			shards := e.shards()
			gen1 := reshardOpenShards(shards)
			e.positioned(gen1, false)

			// Split shard 0 into a lower and an upper half.
			e.split(reshardShardByID(t, shards, gen1[0]))
			shards = e.shards()
			halves := reshardNewShards(gen1, shards)
			if len(halves) != 2 {
				t.Fatalf("after the split: new open shards %v", halves)
			}
			waitFor(t, 30*time.Second, "the halves to deliver", func() bool { return e.log.readFrom(halves) })

			// Merge the upper half with shard 1, its neighbour.
			lower, upper := reshardShardByID(t, shards, halves[0]), reshardShardByID(t, shards, halves[1])
			if reshardHashBelow(upper, lower) {
				upper = lower
			}
			e.merge(upper, reshardShardByID(t, shards, gen1[1]))
			merged := reshardNewShards(reshardOpenShards(shards), e.shards())
			if len(merged) != 1 {
				t.Fatalf("after the merge: new open shards %v", merged)
			}
			waitFor(t, 30*time.Second, "the merged shard to deliver", func() bool { return e.log.readFrom(merged) })
			stop()
			e.verify(30 * time.Second)
		})
	}
}

func reshardHashBelow(a, b types.Shard) bool {
	x, _ := new(big.Int).SetString(aws.ToString(a.HashKeyRange.StartingHashKey), 10)
	y, _ := new(big.Int).SetString(aws.ToString(b.HashKeyRange.StartingHashKey), 10)
	return x.Cmp(y) < 0
}

// Records written to a shard just before it is split (or merged) are read
// from the closed parent, then the children's: the built-in never reads a
// closed parent and loses them.
func TestReshardRecordsWrittenJustBeforeAreKept(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		merge bool // merge shard 0 with shard 1, else split shard 0
		// reading: one worker reads both shards, caught up, when the
		// records are written; else it starts only after the reshard and
		// finds the parents closed with records nobody read.
		reading bool
		// latest: start_from_oldest: false. Reading, the worker is at the
		// tip before the records are written: none may be lost. Not
		// reading, the closed parents' records are skipped (the worker
		// starts at their tip), but not the children's: children start
		// from their oldest record whatever start_from_oldest says.
		latest bool
		// slowAdjacent: the merge's adjacent parent (shard 1) holds many
		// records and is read 20 at a time, so it ends well after the
		// other parent: the merged child must still wait for it.
		slowAdjacent bool
	}{
		{name: "split while reading", reading: true},
		{name: "split while reading, start from latest", reading: true, latest: true},
		{name: "split before any reader"},
		{name: "split before any reader, start from latest", latest: true},
		{name: "merge while reading", merge: true, reading: true},
		{name: "merge before any reader", merge: true},
		{name: "merge before any reader, slow adjacent parent", merge: true, slowAdjacent: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newReshardEnv(t, 2, 16)
			ctx, cancel := e.ctx()
			defer cancel()
			shards := e.shards()
			gen1 := reshardOpenShards(shards)
			target, adjacent := reshardShardByID(t, shards, gen1[0]), reshardShardByID(t, shards, gen1[1])
			keys := e.w.keysIn(target)
			if tc.merge {
				keys = e.w.allKeys()
			}
			opts := reshardWorkerOpts{latest: tc.latest}
			if tc.slowAdjacent {
				opts.pollLimit = 20
			}
			if tc.reading {
				w := e.startWorker("a", opts)
				waitFor(t, 30*time.Second, "a to own both shards", func() bool { return w.owned() == 2 })
				stop := e.w.background(t, 100*time.Millisecond, 500)
				e.positioned(gen1, tc.latest)
				stop()
			}
			// The records, then at once the reshard.
			if tc.slowAdjacent {
				if err := e.w.put(ctx, e.w.keysIn(target), 5); err != nil {
					t.Fatal(err)
				}
				if err := e.w.put(ctx, e.w.keysIn(adjacent), 40); err != nil {
					t.Fatal(err)
				}
			} else if err := e.w.put(ctx, keys, 20); err != nil {
				t.Fatal(err)
			}
			if tc.merge {
				e.merge(target, adjacent)
			} else {
				e.split(target)
			}
			if tc.latest && !tc.reading {
				e.from = e.w.positions()
			}
			// More records of the same keys, to the children.
			if err := e.w.put(ctx, keys, 5); err != nil {
				t.Fatal(err)
			}
			if !tc.reading {
				e.startWorker("a", opts)
			}
			e.verify(30 * time.Second)
		})
	}
}

// A child whose parents aged out of the stream (no longer listed; the child
// still names them) is readable at once, and, being no longer the
// continuation of anything a worker read, starts where start_from_oldest
// says (coordinator.isChild: "a parent still listed by the stream"). With
// start_from_oldest: false, a fleet started on a stream resharded longer ago
// than its retention period must start at the tip, not replay the whole
// retention window of every shard.
func TestReshardChildOfAgedOutParentStartsAsConfigured(t *testing.T) {
	t.Parallel()
	for _, latest := range []bool{false, true} {
		t.Run(fmt.Sprintf("start_from_oldest %v", !latest), func(t *testing.T) {
			t.Parallel()
			e := newReshardEnv(t, 1, 16)
			ctx, cancel := e.ctx()
			defer cancel()
			shards := e.shards()
			parent := shards[0]
			if err := e.w.put(ctx, e.w.allKeys(), 5); err != nil { // to the parent, never read
				t.Fatal(err)
			}
			e.split(parent)
			children := reshardNewShards(reshardOpenShards(shards), e.shards())
			if len(children) != 2 {
				t.Fatalf("after the split: new open shards %v", children)
			}
			e.agedOut = []string{aws.ToString(parent.ShardId)}
			// Records in the children before any worker runs.
			if err := e.w.put(ctx, e.w.allKeys(), 5); err != nil {
				t.Fatal(err)
			}
			old := e.w.positions()
			e.from = old // the parent's records are gone with it
			if latest {
				e.startWorker("a", reshardWorkerOpts{latest: true})
				stop := e.w.background(t, 100*time.Millisecond, 1000)
				e.positioned(children, true)
				stop()
				if err := e.w.put(ctx, e.w.allKeys(), 2); err != nil {
					t.Fatal(err)
				}
			} else {
				e.from = make([]int, len(old))
				for k := range e.from {
					e.from[k] = 5 // every record in the children
				}
				e.startWorker("a", reshardWorkerOpts{})
			}
			e.verify(30 * time.Second)
			if latest {
				// Every record of the children written after the worker
				// started is delivered: any replay of the older ones is too.
				e.log.mu.Lock()
				var replayed []reshardRec
				for r := range e.log.count {
					if r.n < old[r.key] {
						replayed = append(replayed, r)
					}
				}
				e.log.mu.Unlock()
				if len(replayed) > 0 {
					slices.SortFunc(replayed, func(a, b reshardRec) int { return cmp.Or(cmp.Compare(a.key, b.key), cmp.Compare(a.n, b.n)) })
					t.Errorf("start_from_oldest: false, yet %d of the %d records written to the children before the worker started were delivered (%v...): "+
						"the children of a parent no longer listed were read from TRIM_HORIZON", len(replayed), 5*len(old), replayed[:min(3, len(replayed))])
				}
			}
		})
	}
}

// A worker stopped gracefully while batches it delivered are unacknowledged
// (its pipeline is stuck) releases its shards when its bounded wait for the
// acknowledgements ends (LEASES.md: "release (graceful shutdown)"; Close:
// "releases every lease"), so that the other worker takes them at once and
// delivers those records again; instead of waiting a lease period to judge
// the stopped worker dead. When the shard is a closed parent, its children,
// and their keys, wait with it.
func TestReshardGracefulStopReleasesUnacknowledgedParent(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		// atEnd: b has read the closed parent to its end (its finish waits
		// for the acknowledgements); else b stops before the split, the
		// parent still open.
		atEnd bool
	}{
		{name: "parent read to its end", atEnd: true},
		{name: "before the split"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newReshardEnv(t, 1, 16)
			ctx, cancel := e.ctx()
			defer cancel()
			parent := e.shards()[0]
			parentID := aws.ToString(parent.ShardId)
			var ends atomic.Int64
			// b waits 1s for its acknowledgements when it stops: less than
			// the lease period, so that a cannot judge it dead meanwhile.
			b := e.startWorker("b", reshardWorkerOpts{holdAcks: true, stealGrace: "1s", ends: &ends})
			waitFor(t, 30*time.Second, "b to own the shard", func() bool { return b.owned() == 1 })
			e.startWorker("a", reshardWorkerOpts{})
			if err := e.w.put(ctx, e.w.allKeys(), 5); err != nil {
				t.Fatal(err)
			}
			first := e.w.written(e.from)
			waitFor(t, 30*time.Second, "b to deliver the parent's records", func() bool { return e.log.hasAll(first) })
			row, err := e.leases.Get(ctx, e.stream, parentID)
			if err != nil {
				t.Fatal(err)
			}
			bID := row.ClientID
			beat := func() int64 {
				rows, err := e.leases.Workers(ctx)
				if err != nil {
					t.Fatal(err)
				}
				for _, w := range rows {
					if w.ID == bID {
						return w.Heartbeat
					}
				}
				return -1
			}
			reshard := func() {
				e.split(parent)
				if err := e.w.put(ctx, e.w.allKeys(), 2); err != nil { // to the children
					t.Fatal(err)
				}
			}
			if tc.atEnd {
				reshard()
				// b reads the parent to its end, then waits for
				// acknowledgements that do not come. Two of b's cycles
				// later, its loop has taken note.
				waitFor(t, 30*time.Second, "b to read the parent to its end", func() bool { return ends.Load() > 0 })
				h := beat()
				waitFor(t, 30*time.Second, "two more heartbeats of b", func() bool { return beat() >= h+2 })
			}

			stopped := time.Now()
			b.stop(t)
			took := time.Since(stopped).Round(time.Millisecond)
			row, err = e.leases.Get(ctx, e.stream, parentID)
			if err != nil {
				t.Fatal(err)
			}
			if row.ClientID == bID {
				t.Errorf("after b stopped gracefully (in %v), the parent is still leased to it: %v", took, row)
			}
			if beat() != -1 {
				t.Errorf("after b stopped gracefully (in %v), its heartbeat row is still there", took)
			}
			if !tc.atEnd {
				reshard()
			}
			waitFor(t, 30*time.Second, "a to finish the parent", func() bool {
				l, err := e.leases.Get(ctx, e.stream, parentID)
				return err == nil && l.Finished
			})
			t.Logf("b stopped in %v; a finished the parent %v after", took, time.Since(stopped).Round(time.Millisecond))
			e.verify(30 * time.Second)
		})
	}
}
