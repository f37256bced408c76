package input

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/benthos-kinesis/benthos-kinesis/internal/kpl"
	"github.com/benthos-kinesis/benthos-kinesis/internal/testenv"
)

// Rollback (docs/MIGRATION.md): a table written by this input is resumed by
// a reader that understands only the built-in input's columns.
//
// The built-in (Redpanda Connect's aws_kinesis input,
// internal/impl/aws/kinesis/input.go and input_checkpointer.go in
// github.com/redpanda-data/connect) is not a Go dependency of this module:
// it lives in Redpanda Connect's own module with its whole dependency tree,
// and its reader is not exported. builtinReader below re-implements the part
// of it that decides where a shard is read from, from that source:
//
//   - the shards: ListShards, closed shards (an EndingSequenceNumber) left out;
//   - the claims: a Scan of the table filtered on StreamID (one page, as the
//     built-in does); a row with a ClientID must have a LeaseTimeout that
//     parses as RFC 3339 (time.RFC3339Nano), or the built-in fails the whole
//     stream's balancing;
//   - a shard is free when no row claims it, or when its claim's
//     LeaseTimeout passed more than two lease periods ago;
//   - claim: UpdateItem SET ClientID, LeaseTimeout on condition
//     attribute_not_exists(ClientID) (free) or ClientID = the old owner
//     (taken over), returning the old item; the checkpoint is its
//     SequenceNumber; when taken over, after waiting for the old owner's next
//     commit (LeaseTimeout - lease period + commit period + steal grace
//     period) it reads the row again with GetItem, which fails when the row
//     has no SequenceNumber;
//   - reading: GetShardIterator AFTER_SEQUENCE_NUMBER the checkpoint, or
//     TRIM_HORIZON without one (start_from_oldest: true), then GetRecords.
//
// It knows nothing of Epoch, SubSequence, Finished, HandoffTo, StartAt or
// the worker rows, as the built-in does not. Stream names, not ARNs, go to
// Kinesis because kinesalite has no ARNs; nothing else differs.

// rollbackShard is what one shard holds and what the pipeline acknowledges.
type rollbackShard struct {
	n int // user-visible records 0..n-1, data shard*1000+j
	// aggFrom, aggTo: records aggFrom..aggTo-1 are the user records of one
	// KPL aggregate (one Kinesis record); aggTo == 0: no aggregate.
	aggFrom, aggTo int
	// acked: the pipeline acknowledges record j's batch (a batch is
	// acknowledged only when every record in it is).
	acked func(j int) bool
}

type rollbackCase struct {
	name     string
	batching string // the input's batching field, YAML
	shards   []rollbackShard
	// crash: the input is killed (no release, as kill -9) instead of
	// stopped cleanly; the reader must wait for the claims to expire.
	crash bool
	// skipped: per shard, the unacknowledged records the built-in's rule
	// does not read (the rest of a KPL aggregate it cannot see into).
	skipped [][]int
}

func ackedBelow(k int) func(int) bool { return func(j int) bool { return j < k } }

// This input reads a 2-shard stream, its pipeline acknowledges part of the
// records, and it stops cleanly (or is killed); then the built-in's rule
// reads the rest. Checked: the rows have the column types the built-in
// reads; it resumes each shard exactly after the acknowledged prefix (no
// record of the prefix again; every record after it, acknowledged or not);
// and what it cannot resume exactly (inside a KPL aggregate) is what the
// case names.
func TestIntegrationRollbackToBuiltinReader(t *testing.T) {
	cases := []rollbackCase{{
		name:     "unbatched, a prefix acknowledged, a shard never acknowledged",
		batching: "{}",
		shards: []rollbackShard{
			{n: 60, acked: ackedBelow(23)},
			{n: 40, acked: func(int) bool { return false }},
		},
	}, {
		name:     "batches of 10, later batches acknowledged past a held one",
		batching: "{count: 10}",
		shards: []rollbackShard{
			{n: 60, acked: func(j int) bool { return j < 30 || j >= 40 }},
			{n: 50, acked: ackedBelow(50)},
		},
	}, {
		name:     "killed, the reader takes over expired claims",
		batching: "{count: 5}",
		crash:    true,
		shards: []rollbackShard{
			{n: 40, acked: ackedBelow(15)},
			{n: 40, acked: ackedBelow(35)},
		},
	}, {
		// The checkpoint is the aggregate's sequence number with SubSequence 4:
		// the built-in reads after the whole aggregate, so its unacknowledged
		// user records 15..19 are not read (docs/MIGRATION.md, "Rollback").
		name:     "checkpoint inside a KPL aggregate",
		batching: "{}",
		shards: []rollbackShard{
			{n: 30, aggFrom: 10, aggTo: 20, acked: ackedBelow(15)},
			{n: 20, acked: ackedBelow(5)},
		},
		skipped: [][]int{{15, 16, 17, 18, 19}, nil},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { testRollback(t, tc) })
	}
}

// rollbackHashKeys route a record to shard 0 or 1 of a 2-shard stream.
var rollbackHashKeys = []string{"0", "170141183460469231731687303715884105728"}

// rollbackPut is what was written to one shard: the sequence number of each
// Kinesis record, and for each user record j its Kinesis record and its
// index in the aggregate (-1 for a plain record).
type rollbackPut struct {
	seqs     []string
	recordOf []int
	subOf    []int
}

func rollbackPutShard(ctx context.Context, t *testing.T, kc *kinesis.Client, stream string, shard int, s rollbackShard) rollbackPut {
	t.Helper()
	var out rollbackPut
	put := func(data []byte, pk string) {
		res, err := kc.PutRecord(ctx, &kinesis.PutRecordInput{
			StreamName: aws.String(stream), PartitionKey: aws.String(pk),
			ExplicitHashKey: aws.String(rollbackHashKeys[shard]), Data: data,
		})
		if err != nil || aws.ToString(res.ShardId) != fmt.Sprintf("shardId-%012d", shard) {
			t.Fatalf("put to shard %d: %v (%v)", shard, err, res)
		}
		out.seqs = append(out.seqs, aws.ToString(res.SequenceNumber))
	}
	for j := 0; j < s.n; j++ {
		if s.aggTo > 0 && j == s.aggFrom {
			agg, err := kpl.NewAggregator(1 << 20)
			if err != nil {
				t.Fatal(err)
			}
			for u := s.aggFrom; u < s.aggTo; u++ {
				ur := kpl.UserRecord{PartitionKey: "k", ExplicitHashKey: rollbackHashKeys[shard], Data: []byte(strconv.Itoa(shard*1000 + u))}
				if err := agg.Add(ur); err != nil {
					t.Fatal(err)
				}
				out.recordOf = append(out.recordOf, len(out.seqs))
				out.subOf = append(out.subOf, u-s.aggFrom)
			}
			a, _ := agg.Flush()
			put(a.Data, a.PartitionKey)
			j = s.aggTo - 1
			continue
		}
		out.recordOf = append(out.recordOf, len(out.seqs))
		out.subOf = append(out.subOf, -1)
		put([]byte(strconv.Itoa(shard*1000+j)), "k")
	}
	return out
}

// firstUnacked is the first record the pipeline does not acknowledge (n: all are).
func (s rollbackShard) firstUnacked() int {
	for j := 0; j < s.n; j++ {
		if !s.acked(j) {
			return j
		}
	}
	return s.n
}

// wantCheckpoint is the row this input must leave: the last record of the
// acknowledged prefix, with its place in an aggregate when it is inside
// one and not its last user record (absent: none acknowledged).
func (s rollbackShard) wantCheckpoint(p rollbackPut) (seq string, sub int) {
	last := s.firstUnacked() - 1
	if last < 0 {
		return "", -1
	}
	sub = p.subOf[last]
	if sub >= 0 && last == s.aggTo-1 {
		sub = -1 // the aggregate's last user record: the whole record
	}
	return p.seqs[p.recordOf[last]], sub
}

// rollbackLog records what this input delivered and what was acknowledged.
type rollbackLog struct {
	mu        sync.Mutex
	delivered map[int]int
	acked     map[int]bool
}

var errNotAcknowledged = errors.New("not acknowledged (rollback test)")

// batch books one batch and says whether to acknowledge it.
func (l *rollbackLog) batch(b service.MessageBatch, shards []rollbackShard) (bool, error) {
	ids := make([]int, 0, len(b))
	ack := true
	for _, m := range b {
		raw, err := m.AsBytes()
		if err != nil {
			return false, err
		}
		n, err := strconv.Atoi(string(raw))
		if err != nil {
			return false, fmt.Errorf("record %q: %w", raw, err)
		}
		ids = append(ids, n)
		if !shards[n/1000].acked(n % 1000) {
			ack = false
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, n := range ids {
		l.delivered[n]++
		if ack {
			l.acked[n] = true
		}
	}
	return ack, nil
}

// waitSettled waits until every record was delivered and every record to
// acknowledge was acknowledged; it fails the test saying what is missing.
func (l *rollbackLog) waitSettled(t *testing.T, shards []rollbackShard) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		m := l.missing(shards)
		if m == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 1m: %s", m)
		}
		time.Sleep(20 * time.Millisecond) // polls the log, as waitFor does
	}
}

// missing says what settled still waits for ("" for nothing).
func (l *rollbackLog) missing(shards []rollbackShard) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var undelivered, unacked []int
	for i, s := range shards {
		for j := 0; j < s.n; j++ {
			switch {
			case l.delivered[i*1000+j] == 0:
				undelivered = append(undelivered, i*1000+j)
			case s.acked(j) && !l.acked[i*1000+j]:
				unacked = append(unacked, i*1000+j)
			}
		}
	}
	if len(undelivered)+len(unacked) == 0 {
		return ""
	}
	return fmt.Sprintf("not delivered %v, not acknowledged %v", undelivered, unacked)
}

func testRollback(t *testing.T, tc rollbackCase) {
	kc := testenv.Kinesalite(t)
	dc := testenv.DynamoDB(t)
	stream := testenv.CreateStream(t, kc, 2)
	table := testenv.CreateTable(t, dc)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()

	puts := make([]rollbackPut, len(tc.shards))
	for i, s := range tc.shards {
		puts[i] = rollbackPutShard(ctx, t, kc, stream, i, s)
	}
	log := &rollbackLog{delivered: map[int]int{}, acked: map[int]bool{}}
	fields := leaseTestYAML(t, testenv.KinesaliteEndpoint(t), stream, table) +
		"steal_grace_period: 1s\npoll: {idle_wait: 100ms}\nbatching: " + tc.batching + "\n"

	// 1. This input reads everything, the pipeline acknowledges part of it.
	if tc.crash {
		rollbackRunThenCrash(ctx, t, fields, tc, puts, log, dc, table, stream)
	} else {
		rollbackRunThenStop(ctx, t, fields, tc, log, dc, table, stream)
	}

	// 2. The rows as this input left them, with the built-in's column types.
	for i, s := range tc.shards {
		shard := fmt.Sprintf("shardId-%012d", i)
		item := rollbackRow(ctx, t, dc, table, stream, shard)
		checkBuiltinColumnTypes(t, item)
		seq, sub := s.wantCheckpoint(puts[i])
		if got := stringAttr(item["SequenceNumber"]); got != seq {
			t.Errorf("%s: SequenceNumber %q, want %q (after record %d)", shard, got, seq, s.firstUnacked()-1)
		}
		gotSub := -1
		if v, ok := item["SubSequence"].(*dtypes.AttributeValueMemberN); ok {
			gotSub, _ = strconv.Atoi(v.Value)
		}
		if gotSub != sub {
			t.Errorf("%s: SubSequence %d, want %d (-1: absent)", shard, gotSub, sub)
		}
		_, owned := item["ClientID"]
		if owned != tc.crash {
			t.Errorf("%s: ClientID present = %v after a %s", shard, owned, map[bool]string{true: "kill", false: "clean stop"}[tc.crash])
		}
	}

	// The worker rows (LEASES.md) share the table; the built-in's Scan,
	// filtered on the stream, never returns them. After a kill the dead
	// worker's row is still there.
	workers := workerRows(ctx, t, dc, table)
	if tc.crash && workers == 0 {
		t.Error("no worker row after a kill: the test no longer shows the built-in passing over them")
	}

	// 3. The built-in's rule resumes every shard.
	r := &builtinReader{
		kc: kc, dc: dc, table: table, stream: stream, clientID: "builtin-" + testenv.UniqueName(t, "c"),
		leasePeriod: time.Second, commitPeriod: 200 * time.Millisecond, stealGrace: 200 * time.Millisecond,
	}
	read, err := r.resumeAll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range tc.shards {
		shard := fmt.Sprintf("shardId-%012d", i)
		// What Kinesis holds after the checkpoint's record: exactly what must
		// be read (nothing of the acknowledged prefix, nothing after it skipped).
		seq, _ := s.wantCheckpoint(puts[i])
		from := 0
		if seq != "" {
			from = slices.Index(puts[i].seqs, seq) + 1
		}
		if got, want := read[shard], puts[i].seqs[from:]; !slices.Equal(got.seqs, want) {
			t.Errorf("%s: the built-in's rule read %d records %v, want the %d after the checkpoint's record (record %d of %d)", shard, len(got.seqs), got.data, len(want), from-1, len(puts[i].seqs))
		}
		// Unacknowledged records it does not read: only what the case names.
		readIDs := map[int]bool{}
		for _, n := range read[shard].ids {
			readIDs[n%1000] = true
		}
		var skipped []int
		reread := 0
		for j := 0; j < s.n; j++ {
			switch {
			case j >= s.firstUnacked() && !readIDs[j]:
				skipped = append(skipped, j)
			case j < s.firstUnacked() && readIDs[j]:
				t.Errorf("%s: record %d read again: it is in the acknowledged prefix", shard, j)
			case readIDs[j] && s.acked(j):
				reread++
			}
		}
		var want []int
		if i < len(tc.skipped) {
			want = tc.skipped[i]
		}
		if !slices.Equal(skipped, want) {
			t.Errorf("%s: unacknowledged records the built-in's rule does not read: %v, want %v", shard, skipped, want)
		}
		t.Logf("%s: first unacknowledged record %d; read %d Kinesis records, %d acknowledged ones again (after the unacknowledged one)", shard, s.firstUnacked(), len(read[shard].seqs), reread)
	}
}

// rollbackRunThenStop runs the input in a Benthos stream built with the
// registered component, into an output that acknowledges what the case says
// and holds the rest, unanswered, as a slow or stuck output does (up to 256
// batches at once, so later batches go on). It stops the stream as on
// SIGTERM; the input, closed, waits steal_grace_period for what is still
// unanswered, writes the acknowledged prefix and releases its leases.
func rollbackRunThenStop(ctx context.Context, t *testing.T, fields string, tc rollbackCase, log *rollbackLog, dc *dynamodb.Client, table, stream string) {
	t.Helper()
	env := service.NewEnvironment()
	if err := Register(env, "aws_kinesis"); err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	if err := env.RegisterBatchOutput("rollback_sink", service.NewConfigSpec(),
		func(*service.ParsedConfig, *service.Resources) (service.BatchOutput, service.BatchPolicy, int, error) {
			return &rollbackSink{log: log, shards: tc.shards, release: release}, service.BatchPolicy{}, 256, nil
		}); err != nil {
		t.Fatal(err)
	}
	sb := env.NewStreamBuilder()
	// FATAL: the held batches' nacks are logged as errors.
	if err := sb.SetLoggerYAML("level: FATAL"); err != nil {
		t.Fatal(err)
	}
	if err := sb.AddInputYAML("aws_kinesis:\n" + indent(fields, "  ")); err != nil {
		t.Fatal(err)
	}
	if err := sb.AddOutputYAML("rollback_sink: {}"); err != nil {
		t.Fatal(err)
	}
	st, err := sb.Build()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- st.Run(context.Background()) }()
	var releaseOnce sync.Once
	unblock := func() { releaseOnce.Do(func() { close(release) }) }
	t.Cleanup(func() { // a test that failed early must not leave the stream running
		unblock()
		stopCtx, stopCancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer stopCancel()
		_ = st.Stop(stopCtx)
	})
	log.waitSettled(t, tc.shards)

	// Benthos closes the input once the pipeline has answered every batch, or
	// when the stop's graceful part (most of its timeout) has passed, after
	// which it cancels the output's writes: the held batches are nacked then.
	// A short timeout keeps the test short; the input's Close is the same.
	stopped := make(chan error, 1)
	go func() {
		stopCtx, stopCancel := context.WithTimeout(ctx, 5*time.Second)
		defer stopCancel()
		stopped <- st.Stop(stopCtx)
	}()
	waitFor(t, 30*time.Second, "the input to release its leases", func() bool {
		for i := range tc.shards {
			if _, owned := rollbackRow(ctx, t, dc, table, stream, fmt.Sprintf("shardId-%012d", i))["ClientID"]; owned {
				return false
			}
		}
		return true
	})
	unblock()
	if err := <-stopped; err != nil {
		t.Fatalf("clean stop: %v", err)
	}
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("stream: %v", err)
	}
}

// rollbackSink is the test's output: it acknowledges the batches the case
// acknowledges and holds the others until release.
type rollbackSink struct {
	log     *rollbackLog
	shards  []rollbackShard
	release <-chan struct{}
}

func (*rollbackSink) Connect(context.Context) error { return nil }
func (*rollbackSink) Close(context.Context) error   { return nil }

func (s *rollbackSink) WriteBatch(ctx context.Context, b service.MessageBatch) error {
	ack, err := s.log.batch(b, s.shards)
	if err != nil || ack {
		return err
	}
	select {
	case <-s.release:
	case <-ctx.Done():
	}
	return errNotAcknowledged
}

// rollbackRunThenCrash runs the input by hand (a crash needs the input itself),
// never acknowledging what it must not, waits until the table holds the
// acknowledged prefix, and kills it: no final checkpoint, no release.
func rollbackRunThenCrash(ctx context.Context, t *testing.T, fields string, tc rollbackCase, puts []rollbackPut, log *rollbackLog, dc *dynamodb.Client, table, stream string) {
	t.Helper()
	in := testInput(t, fields, nil, true)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			b, ackFn, err := in.ReadBatch(ctx)
			if err != nil {
				return
			}
			ack, err := log.batch(b, tc.shards)
			if err != nil {
				t.Error(err)
			}
			if ack {
				_ = ackFn(ctx, nil)
			} // else held, never acknowledged: a pipeline stuck downstream
		}
	}()
	log.waitSettled(t, tc.shards)
	waitFor(t, time.Minute, "the acknowledged prefixes checkpointed", func() bool {
		for i, s := range tc.shards {
			seq, _ := s.wantCheckpoint(puts[i])
			if stringAttr(rollbackRow(ctx, t, dc, table, stream, fmt.Sprintf("shardId-%012d", i))["SequenceNumber"]) != seq {
				return false
			}
		}
		return true
	})
	in.crash()
	<-done
}

// workerRows counts the table's worker rows.
func workerRows(ctx context.Context, t *testing.T, dc *dynamodb.Client, table string) int {
	t.Helper()
	out, err := dc.Query(ctx, &dynamodb.QueryInput{
		TableName:                 aws.String(table),
		KeyConditionExpression:    aws.String("StreamID = :w"),
		ExpressionAttributeValues: map[string]dtypes.AttributeValue{":w": &dtypes.AttributeValueMemberS{Value: reservedWorkersStream}},
	})
	if err != nil {
		t.Fatalf("query worker rows: %v", err)
	}
	return len(out.Items)
}

func rollbackRow(ctx context.Context, t *testing.T, dc *dynamodb.Client, table, stream, shard string) map[string]dtypes.AttributeValue {
	t.Helper()
	out, err := dc.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(table), Key: map[string]dtypes.AttributeValue{
		"StreamID": &dtypes.AttributeValueMemberS{Value: stream}, "ShardID": &dtypes.AttributeValueMemberS{Value: shard},
	}})
	if err != nil {
		t.Fatalf("get row %s/%s: %v", stream, shard, err)
	}
	if out.Item == nil {
		t.Fatalf("no row for %s/%s", stream, shard)
	}
	return out.Item
}

// checkBuiltinColumnTypes checks the columns the built-in reads have the
// types it reads them as: it takes a column of another type for absent
// (SequenceNumber, ClientID) or fails (LeaseTimeout not RFC 3339).
func checkBuiltinColumnTypes(t *testing.T, item map[string]dtypes.AttributeValue) {
	t.Helper()
	for _, name := range []string{"StreamID", "ShardID", "SequenceNumber", "ClientID", "LeaseTimeout"} {
		v, ok := item[name]
		if !ok {
			if name == "StreamID" || name == "ShardID" {
				t.Errorf("row without %s", name)
			}
			continue
		}
		s, isS := v.(*dtypes.AttributeValueMemberS)
		if !isS {
			t.Errorf("%s is %T, the built-in reads a string (S)", name, v)
			continue
		}
		switch name {
		case "SequenceNumber":
			if strings.Trim(s.Value, "0123456789") != "" || s.Value == "" {
				t.Errorf("SequenceNumber %q is not a sequence number", s.Value)
			}
		case "LeaseTimeout":
			if _, err := time.Parse(time.RFC3339Nano, s.Value); err != nil {
				t.Errorf("LeaseTimeout %q: the built-in parses it as RFC 3339: %v", s.Value, err)
			}
		}
	}
	if _, owned := item["ClientID"]; owned {
		if _, ok := item["LeaseTimeout"]; !ok {
			t.Error("a row with ClientID and no LeaseTimeout: the built-in fails the stream's balancing on it")
		}
	}
}

// builtinReader is the built-in input's reading rule, re-implemented (see
// the top of this file); one client, read once to the end of each shard.
type builtinReader struct {
	kc           *kinesis.Client
	dc           *dynamodb.Client
	table        string
	stream       string
	clientID     string
	leasePeriod  time.Duration
	commitPeriod time.Duration
	stealGrace   time.Duration
}

// builtinShardRead is what the reader got from one shard.
type builtinShardRead struct {
	seqs []string
	data []string
	ids  []int // record ids, the user records of an aggregate included
}

// resumeAll claims every open shard as the built-in would (waiting, as it
// does every rebalance period, while a claim has not expired) and reads
// each from where the claim says.
func (r *builtinReader) resumeAll(ctx context.Context) (map[string]builtinShardRead, error) {
	read := map[string]builtinShardRead{}
	shards, err := r.openShards(ctx)
	if err != nil {
		return nil, err
	}
	tick := time.NewTicker(100 * time.Millisecond) // the built-in's rebalance loop, shortened
	defer tick.Stop()
	for len(read) < len(shards) {
		claims, err := r.allClaims(ctx)
		if err != nil {
			return nil, err
		}
		for _, shard := range shards {
			if _, done := read[shard]; done {
				continue
			}
			owner, claimable := "", true
			for client, cs := range claims {
				for _, c := range cs {
					if c.shard != shard {
						continue
					}
					if time.Since(c.leaseTimeout) > 2*r.leasePeriod {
						owner = client // expired: taken over from it
					} else {
						claimable = false
					}
				}
			}
			if !claimable {
				continue
			}
			seq, err := r.claim(ctx, shard, owner)
			if err != nil {
				return nil, fmt.Errorf("claim %s: %w", shard, err)
			}
			if read[shard], err = r.readShard(ctx, shard, seq); err != nil {
				return nil, fmt.Errorf("read %s: %w", shard, err)
			}
		}
		if len(read) < len(shards) {
			select {
			case <-ctx.Done():
				return nil, fmt.Errorf("%d of %d shards resumed: %w", len(read), len(shards), ctx.Err())
			case <-tick.C:
			}
		}
	}
	return read, nil
}

func (r *builtinReader) openShards(ctx context.Context) ([]string, error) {
	out, err := r.kc.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(r.stream)})
	if err != nil {
		return nil, fmt.Errorf("list shards: %w", err)
	}
	var open []string
	for _, s := range out.Shards {
		if s.SequenceNumberRange == nil || s.SequenceNumberRange.EndingSequenceNumber == nil {
			open = append(open, aws.ToString(s.ShardId))
		}
	}
	return open, nil
}

type builtinClaim struct {
	shard        string
	leaseTimeout time.Time
}

// allClaims is the built-in's AllClaims: one Scan page filtered on the
// stream, rows with a ClientID, each needing an RFC 3339 LeaseTimeout.
func (r *builtinReader) allClaims(ctx context.Context) (map[string][]builtinClaim, error) {
	out, err := r.dc.Scan(ctx, &dynamodb.ScanInput{
		TableName:                 aws.String(r.table),
		FilterExpression:          aws.String("StreamID = :stream_id"),
		ExpressionAttributeValues: map[string]dtypes.AttributeValue{":stream_id": &dtypes.AttributeValueMemberS{Value: r.stream}},
	})
	if err != nil {
		return nil, fmt.Errorf("scan claims: %w", err)
	}
	claims := map[string][]builtinClaim{}
	for _, item := range out.Items {
		client, ok := item["ClientID"].(*dtypes.AttributeValueMemberS)
		if !ok {
			continue
		}
		c := builtinClaim{shard: stringAttr(item["ShardID"])}
		if c.shard == "" {
			return nil, errors.New("extracting shard id from claim")
		}
		if s, ok := item["LeaseTimeout"].(*dtypes.AttributeValueMemberS); ok {
			if c.leaseTimeout, err = time.Parse(time.RFC3339Nano, s.Value); err != nil {
				return nil, fmt.Errorf("parsing claim lease: %w", err)
			}
		}
		if c.leaseTimeout.IsZero() {
			return nil, errors.New("extracting lease timeout from claim")
		}
		claims[client.Value] = append(claims[client.Value], c)
	}
	return claims, nil
}

// claim is the built-in's Claim: the starting sequence ("" for none).
func (r *builtinReader) claim(ctx context.Context, shard, from string) (string, error) {
	values := map[string]dtypes.AttributeValue{
		":new_client_id":     &dtypes.AttributeValueMemberS{Value: r.clientID},
		":new_lease_timeout": &dtypes.AttributeValueMemberS{Value: time.Now().Add(r.leasePeriod).Format(time.RFC3339Nano)},
	}
	cond := "attribute_not_exists(ClientID)"
	if from != "" {
		cond = "ClientID = :old_client_id"
		values[":old_client_id"] = &dtypes.AttributeValueMemberS{Value: from}
	}
	res, err := r.dc.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(r.table),
		Key:                       r.key(shard),
		ReturnValues:              dtypes.ReturnValueAllOld,
		ConditionExpression:       aws.String(cond),
		UpdateExpression:          aws.String("SET ClientID = :new_client_id, LeaseTimeout = :new_lease_timeout"),
		ExpressionAttributeValues: values,
	})
	if err != nil {
		return "", fmt.Errorf("update item: %w", err)
	}
	seq := stringAttr(res.Attributes["SequenceNumber"])
	if from == "" {
		return seq, nil
	}
	// Taken over: wait for the old owner's next commit, then read the row.
	old, _ := time.Parse(time.RFC3339Nano, stringAttr(res.Attributes["LeaseTimeout"]))
	until := old.Add(-r.leasePeriod).Add(r.commitPeriod).Add(r.stealGrace)
	if wait := time.Until(until); wait > 0 {
		timer := time.NewTimer(wait)
		defer timer.Stop()
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-timer.C:
		}
	}
	got, err := r.dc.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(r.table), Key: r.key(shard)})
	if err != nil {
		return "", fmt.Errorf("get checkpoint: %w", err)
	}
	s, ok := got.Item["SequenceNumber"].(*dtypes.AttributeValueMemberS)
	if !ok {
		return "", errors.New("sequence ID was not found in checkpoint")
	}
	return s.Value, nil
}

func (r *builtinReader) key(shard string) map[string]dtypes.AttributeValue {
	return map[string]dtypes.AttributeValue{
		"StreamID": &dtypes.AttributeValueMemberS{Value: r.stream},
		"ShardID":  &dtypes.AttributeValueMemberS{Value: shard},
	}
}

// readShard reads from after seq (TRIM_HORIZON without one) to the tip.
// Records are kept as the built-in delivers them, aggregates whole; ids
// also lists an aggregate's user records, to say what was read.
func (r *builtinReader) readShard(ctx context.Context, shard, seq string) (builtinShardRead, error) {
	in := &kinesis.GetShardIteratorInput{StreamName: aws.String(r.stream), ShardId: aws.String(shard), ShardIteratorType: ktypes.ShardIteratorTypeTrimHorizon}
	if seq != "" {
		in.ShardIteratorType, in.StartingSequenceNumber = ktypes.ShardIteratorTypeAfterSequenceNumber, aws.String(seq)
	}
	it, err := r.kc.GetShardIterator(ctx, in)
	if err != nil {
		return builtinShardRead{}, fmt.Errorf("get shard iterator: %w", err)
	}
	var got builtinShardRead
	iter := it.ShardIterator
	for iter != nil {
		out, err := r.kc.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter})
		if err != nil {
			return got, fmt.Errorf("get records: %w", err)
		}
		for _, rec := range out.Records {
			got.seqs = append(got.seqs, aws.ToString(rec.SequenceNumber))
			payloads := [][]byte{rec.Data}
			if kpl.IsAggregated(rec.Data) {
				urs, err := kpl.Deaggregate(rec.Data)
				if err != nil {
					return got, fmt.Errorf("aggregate %s: %w", aws.ToString(rec.SequenceNumber), err)
				}
				payloads = payloads[:0]
				for _, u := range urs {
					payloads = append(payloads, u.Data)
				}
				got.data = append(got.data, fmt.Sprintf("aggregate of %d", len(urs)))
			} else {
				got.data = append(got.data, string(rec.Data))
			}
			for _, p := range payloads {
				n, err := strconv.Atoi(string(p))
				if err != nil {
					return got, fmt.Errorf("record %q: %w", p, err)
				}
				got.ids = append(got.ids, n)
			}
		}
		if len(out.Records) == 0 {
			break // at the tip: everything was written before
		}
		iter = out.NextShardIterator
	}
	return got, nil
}
