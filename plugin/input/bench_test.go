package input

// Benchmarks of the aws_kinesis input (issue 3). They are run by
// resources/dev/bench.sh (make bench), which writes their lines into
// docs/BENCHMARKS.md. Nothing here asserts a timing: the figures are
// reported with b.ReportMetric and judged in BENCHMARKS.md.
//
//   - BenchmarkInputKinesalite: one input reading a pre-filled 4-shard
//     kinesalite stream (op = one record), default config, unbatched and
//     with batching.count 500; the input read directly and through a whole
//     Benthos stream.
//   - BenchmarkInputFake: the same from the in-process fake, to show what
//     the plugin itself costs (op = one record), next to what the SDK and
//     the fake cost without the plugin (sdk_only) and to the plugin alone
//     on records served from memory (memory).
//   - BenchmarkInputFailover: default lease settings; a worker killed
//     (crash: kill -9) and a worker joining (join). Run once: -benchtime 1x.
//   - BenchmarkInputIdleFleetWrites: DynamoDB writes/s of an idle fleet of 4
//     workers on 1,000 shards. Run once: -benchtime 1x.
//   - BenchmarkInputFleetDefaultMoves: how long 4 workers with every setting
//     at its default take to share 1,000 shards, and to take over a killed
//     one's 250. Minutes: skipped unless BENCH_LONG=1, not in make bench.

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/benthos-kinesis/benthos-kinesis/checkpointer"
	"github.com/benthos-kinesis/benthos-kinesis/internal/kinesisfake"
	"github.com/benthos-kinesis/benthos-kinesis/internal/kpl"
	"github.com/benthos-kinesis/benthos-kinesis/internal/testenv"
)

// benchCPU is the CPU time (user + system) of this process so far.
func benchCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchMallocs is the number of heap objects allocated by this process so far.
func benchMallocs() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.Mallocs
}

// benchInput builds an input from the fields of its YAML config with the
// given clients (the package-internal hook: no AWS session, no endpoint)
// and connects it. It is closed when the benchmark ends.
func benchInput(tb testing.TB, yaml string, kin kinesisAPI, ddb checkpointer.API) (*kinesisInput, *service.ParsedConfig) {
	tb.Helper()
	pConf, err := Spec().ParseYAML(yaml, nil)
	if err != nil {
		tb.Fatal(err)
	}
	conf, err := inputConfigFromParsed(pConf)
	if err != nil {
		tb.Fatal(err)
	}
	policy, err := pConf.FieldBatchPolicy(fieldBatching)
	if err != nil {
		tb.Fatal(err)
	}
	in := newKinesisInput(conf, policy, service.MockResources(), clients{
		kinesis:  func() kinesisAPI { return kin },
		dynamodb: func() checkpointer.API { return ddb },
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := in.Connect(ctx); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = in.Close(ctx)
	})
	return in, pConf
}

// benchResult is what one read of n records cost this process.
type benchResult struct {
	records int
	elapsed time.Duration
	cpu     time.Duration
	allocs  uint64
}

func (r benchResult) report(b *testing.B) {
	b.ReportMetric(float64(r.records)/r.elapsed.Seconds(), "records/s")
	b.ReportMetric(float64(r.cpu.Nanoseconds())/1e3/float64(r.records), "cpu-µs/record")
	b.ReportMetric(float64(r.allocs)/float64(r.records), "allocs/record")
}

// benchReadAll reads n records from in the way a pipeline whose output acks at
// once (drop) would: every batch acknowledged as soon as it is read. It
// measures from the call (the input is connected; claiming its shards is
// part of the run) to the n-th record. The timer runs only meanwhile.
func benchReadAll(b *testing.B, in service.BatchInput, n int) benchResult {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	runtime.GC()
	b.ResetTimer()
	b.StartTimer()
	m0, cpu0, t0 := benchMallocs(), benchCPU(), time.Now()
	got := 0
	for got < n {
		batch, ackFn, err := in.ReadBatch(ctx)
		if err != nil {
			b.Fatalf("after %d of %d records: %v", got, n, err)
		}
		got += len(batch)
		_ = ackFn(ctx, nil)
	}
	r := benchResult{records: got, elapsed: time.Since(t0), cpu: benchCPU() - cpu0, allocs: benchMallocs() - m0}
	b.StopTimer()
	return r
}

// benchInputYAML is the config of the throughput benchmarks' one input: the
// defaults, and extra, but max_moves_per_rebalance 4, so that the input
// claims the 4 shards in its first cycle: with the default 2 it claims the
// other two a heartbeat period (2 s) later, a start-up delay that would
// dominate a run of 200,000 records.
func benchInputYAML(stream, table, extra string) string {
	return fmt.Sprintf("streams: [%s]\ndynamodb: {table: %s}\nmax_moves_per_rebalance: 4\n%s", stream, table, extra)
}

// benchSpare is how many records a stream holds beyond the b.N a benchmark
// reads: a batch is formed per shard and, without a period, a shard's last
// records wait for the batch to fill; with 500 spare records per shard the reader
// always reaches b.N.
const benchSpare = 4 * 500

// benchBatchings are the two configs of the throughput benchmarks.
var benchBatchings = []struct{ name, yaml string }{
	{"unbatched", ""}, // the default: one message per batch
	{"batched_500", "batching: {count: 500}\n"}, // batches of 500 records
}

// ---------------------------------------------------------------------------
// 1. kinesalite

// benchKinesaliteStream is a kinesalite stream holding at least n records of 100 B,
// put in PutRecords calls of 500 from 8 goroutines.
type benchKinesaliteStream struct {
	client *kinesis.Client
	name   string
	filled int
}

func (s *benchKinesaliteStream) fillTo(tb testing.TB, n int) {
	tb.Helper()
	if s.filled >= n {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	starts := make(chan int)
	var wg sync.WaitGroup
	var (
		failOnce sync.Once
		failErr  error
	)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for start := range starts {
				entries := make([]types.PutRecordsRequestEntry, 0, 500)
				for i := start; i < min(start+500, n); i++ {
					data := make([]byte, 100)
					copy(data, strconv.Itoa(i))
					entries = append(entries, types.PutRecordsRequestEntry{Data: data, PartitionKey: aws.String("k" + strconv.Itoa(i%101))})
				}
				for len(entries) > 0 {
					out, err := s.client.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String(s.name), Records: entries})
					if err != nil {
						failOnce.Do(func() { failErr = err })
						cancel() // the other goroutines and the sender stop too
						return
					}
					var retry []types.PutRecordsRequestEntry
					for i, r := range out.Records {
						if r.ErrorCode != nil {
							retry = append(retry, entries[i])
						}
					}
					entries = retry
				}
			}
		}()
	}
send:
	for start := s.filled; start < n; start += 500 {
		select {
		case starts <- start:
		case <-ctx.Done():
			break send
		}
	}
	close(starts)
	wg.Wait()
	if failErr != nil {
		tb.Fatalf("filling stream %s: %v", s.name, failErr)
	}
	if err := ctx.Err(); err != nil {
		tb.Fatalf("filling stream %s: %v", s.name, err)
	}
	s.filled = n
}

// BenchmarkInputKinesalite reads b.N records of 100 B (200,000 in make
// bench) from a pre-filled 4-shard kinesalite stream with one input, default
// config but max_moves_per_rebalance (poll every 200 ms per shard, up to
// 10,000 records a call), leases
// in dynalite, to a consumer that acks at once: unbatched and batched_500
// read the input directly, pipeline_* through a whole Benthos stream (see
// benchReadPipeline). The CPU is this process's; the emulators' is not counted.
func BenchmarkInputKinesalite(b *testing.B) {
	kc := testenv.Kinesalite(b)
	dc := testenv.DynamoDB(b)
	s := &benchKinesaliteStream{client: kc, name: testenv.CreateStream(b, kc, 4)}
	for _, c := range benchBatchings {
		b.Run(c.name, func(b *testing.B) {
			b.StopTimer()
			s.fillTo(b, b.N+benchSpare)
			table := testenv.CreateTable(b, dc)
			in, _ := benchInput(b, benchInputYAML(s.name, table, c.yaml), kc, dc)
			benchReadAll(b, in, b.N).report(b)
		})
	}
	for _, c := range benchBatchings {
		b.Run("pipeline_"+c.name, func(b *testing.B) {
			b.StopTimer()
			s.fillTo(b, b.N+benchSpare)
			table := testenv.CreateTable(b, dc)
			benchReadPipeline(b, benchPipelineYAML(s.name, table, testenv.KinesaliteEndpoint(b), testenv.DynamoDBEndpoint(b), c.yaml), b.N).report(b)
		})
	}
}

// benchPipelineYAML is the aws_kinesis input of a Benthos stream: benchInputYAML's
// config with the endpoints and static credentials.
func benchPipelineYAML(stream, table, kinesisEndpoint, dynamoEndpoint, extra string) string {
	conf := benchInputYAML(stream, table, extra) + fmt.Sprintf(`endpoint: %s
region: us-east-1
credentials: {id: test, secret: test}
dynamodb: {table: %s, endpoint: %s}
`, kinesisEndpoint, table, dynamoEndpoint)
	// benchInputYAML's own dynamodb line is replaced by the one above.
	conf = strings.Replace(conf, fmt.Sprintf("dynamodb: {table: %s}\n", table), "", 1)
	return "aws_kinesis:\n  " + strings.ReplaceAll(strings.TrimSuffix(conf, "\n"), "\n", "\n  ") + "\n"
}

// benchReadPipeline runs a Benthos stream (this input, registered as the
// binary does, replaying nacks itself, auto_replay_nacks being true by
// default) into a consumer that acks at once, as a drop output would, and
// measures from Run until n records reached it.
func benchReadPipeline(b *testing.B, inputYAML string, n int) benchResult {
	env := service.NewEnvironment()
	if err := Register(env, "aws_kinesis"); err != nil {
		b.Fatal(err)
	}
	sb := env.NewStreamBuilder()
	// Logs would split the benchmark's line in bench.sh's output.
	if err := sb.SetLoggerYAML("level: ERROR"); err != nil {
		b.Fatal(err)
	}
	if err := sb.AddInputYAML(inputYAML); err != nil {
		b.Fatal(err)
	}
	var got atomic.Int64
	reached := make(chan struct{})
	var once sync.Once
	if err := sb.AddBatchConsumerFunc(func(_ context.Context, batch service.MessageBatch) error {
		if got.Add(int64(len(batch))) >= int64(n) {
			once.Do(func() { close(reached) })
		}
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	st, err := sb.Build()
	if err != nil {
		b.Fatal(err)
	}
	ran := make(chan error, 1)
	runtime.GC()
	b.ResetTimer()
	b.StartTimer()
	m0, cpu0, t0 := benchMallocs(), benchCPU(), time.Now()
	go func() { ran <- st.Run(context.Background()) }()
	select {
	case <-reached:
	case err := <-ran:
		b.Fatalf("the stream ended after %d of %d records: %v", got.Load(), n, err)
	case <-time.After(10 * time.Minute):
		b.Fatalf("%d of %d records after 10 minutes", got.Load(), n)
	}
	r := benchResult{records: int(got.Load()), elapsed: time.Since(t0), cpu: benchCPU() - cpu0, allocs: benchMallocs() - m0}
	b.StopTimer()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stopping := time.Now()
	if err := st.Stop(ctx); err != nil {
		b.Logf("stop: %v", err)
	}
	b.Logf("graceful stop took %v", time.Since(stopping).Round(time.Millisecond))
	return r
}

// ---------------------------------------------------------------------------
// 2. the in-process fake, and the plugin alone

// benchFakeStream is a 4-shard stream of the in-process fake (no read limit)
// holding at least n records of 100 B.
type benchFakeStream struct {
	srv    *kinesisfake.Server
	filled int
}

func (s *benchFakeStream) fillTo(tb testing.TB, n int) {
	tb.Helper()
	data := make([]byte, 100)
	for i := s.filled; i < n; i++ {
		copy(data, strconv.Itoa(i))
		if _, _, err := s.srv.Append("bench", "k"+strconv.Itoa(i%101), data); err != nil {
			tb.Fatal(err)
		}
	}
	s.filled = max(s.filled, n)
}

// benchFastPoll polls a shard again 1 ms after a call that returned records.
const benchFastPoll = "poll_period: 1ms\n"

// BenchmarkInputFake is the plugin's own cost per record (op = one record):
//
//   - unbatched, batched_500: one input reads b.N records of 100 B from a
//     4-shard stream of the in-process fake (no read limit, poll_period
//     1 ms), leases in dynalite, to a consumer that acks at once. CPU and
//     allocations are the whole process's: the input, the SDK decoding
//     GetRecords, and the fake serving it.
//   - pipeline_unbatched, pipeline_batched_500: the same through a whole
//     Benthos stream (the input as registered, with Benthos' nack-replay
//     wrapper, into a consumer function that acks at once): what a
//     pipeline with a drop output costs.
//   - sdk_only: the same records read with the SDK's GetRecords from 4
//     goroutines, no input: what the SDK and the fake cost on their own.
//     The plugin's cost is the difference.
//   - memory_unbatched, memory_batched_500: the input reading records held
//     in memory (a kinesisAPI that returns pre-built records): the plugin
//     alone, no HTTP, no JSON.
func BenchmarkInputFake(b *testing.B) {
	dc := testenv.DynamoDB(b)
	s := &benchFakeStream{srv: kinesisfake.Start(b, kinesisfake.WithStream("bench", 4), kinesisfake.WithoutReadLimit())}
	for _, c := range benchBatchings {
		b.Run(c.name, func(b *testing.B) {
			b.StopTimer()
			s.fillTo(b, b.N+benchSpare)
			table := testenv.CreateTable(b, dc)
			in, _ := benchInput(b, benchInputYAML("bench", table, benchFastPoll+c.yaml), s.srv.Client(), dc)
			benchReadAll(b, in, b.N).report(b)
		})
	}
	for _, c := range benchBatchings {
		b.Run("pipeline_"+c.name, func(b *testing.B) {
			b.StopTimer()
			s.fillTo(b, b.N+benchSpare)
			table := testenv.CreateTable(b, dc)
			benchReadPipeline(b, benchPipelineYAML("bench", table, s.srv.URL, testenv.DynamoDBEndpoint(b), benchFastPoll+c.yaml), b.N).report(b)
		})
	}
	b.Run("sdk_only", func(b *testing.B) {
		b.StopTimer()
		s.fillTo(b, b.N+benchSpare)
		client := s.srv.Client()
		shards, err := s.srv.ShardIDs("bench")
		if err != nil {
			b.Fatal(err)
		}
		ctx := context.Background()
		runtime.GC()
		b.ResetTimer()
		b.StartTimer()
		m0, cpu0, t0 := benchMallocs(), benchCPU(), time.Now()
		var total atomic.Int64
		var wg sync.WaitGroup
		for _, shard := range shards {
			wg.Add(1)
			go func() {
				defer wg.Done()
				it, err := client.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{
					StreamName: aws.String("bench"), ShardId: aws.String(shard), ShardIteratorType: types.ShardIteratorTypeTrimHorizon,
				})
				if err != nil {
					b.Error(err)
					return
				}
				iter := it.ShardIterator
				for total.Load() < int64(b.N) {
					out, err := client.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter, Limit: aws.Int32(10000)})
					if err != nil {
						b.Error(err)
						return
					}
					if len(out.Records) == 0 {
						return // this shard is read to its tip
					}
					total.Add(int64(len(out.Records)))
					iter = out.NextShardIterator
				}
			}()
		}
		wg.Wait()
		r := benchResult{records: int(total.Load()), elapsed: time.Since(t0), cpu: benchCPU() - cpu0, allocs: benchMallocs() - m0}
		b.StopTimer()
		r.report(b)
	})
	for _, c := range benchBatchings {
		b.Run("memory_"+c.name, func(b *testing.B) {
			b.StopTimer()
			mem := newBenchMemKinesis("bench", 4, b.N+benchSpare)
			table := testenv.CreateTable(b, dc)
			in, _ := benchInput(b, benchInputYAML("bench", table, benchFastPoll+c.yaml), mem, dc)
			benchReadAll(b, in, b.N).report(b)
		})
	}
}

// benchMemKinesis serves the records of one stream from memory, built before
// the benchmark starts: GetRecords hands out sub-slices of them, so that a
// benchmark through it measures the input alone.
type benchMemKinesis struct {
	stream string
	ids    []string
	shards map[string][]types.Record
}

func newBenchMemKinesis(stream string, shards, records int) *benchMemKinesis {
	m := &benchMemKinesis{stream: stream, shards: map[string][]types.Record{}}
	for i := 0; i < shards; i++ {
		m.ids = append(m.ids, fmt.Sprintf("shardId-%012d", i))
	}
	arrival := time.Now()
	for i := 0; i < records; i++ {
		id := m.ids[i%shards]
		data := make([]byte, 100)
		copy(data, strconv.Itoa(i))
		m.shards[id] = append(m.shards[id], types.Record{
			Data:                        data,
			PartitionKey:                aws.String("k" + strconv.Itoa(i%101)),
			SequenceNumber:              aws.String(fmt.Sprintf("%056d", i+1)),
			ApproximateArrivalTimestamp: aws.Time(arrival),
		})
	}
	return m
}

func (m *benchMemKinesis) DescribeStreamSummary(context.Context, *kinesis.DescribeStreamSummaryInput, ...func(*kinesis.Options)) (*kinesis.DescribeStreamSummaryOutput, error) {
	return &kinesis.DescribeStreamSummaryOutput{StreamDescriptionSummary: &types.StreamDescriptionSummary{
		StreamName: aws.String(m.stream), StreamStatus: types.StreamStatusActive, OpenShardCount: aws.Int32(int32(len(m.ids))),
	}}, nil
}

func (m *benchMemKinesis) ListShards(context.Context, *kinesis.ListShardsInput, ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error) {
	out := &kinesis.ListShardsOutput{}
	for _, id := range m.ids {
		out.Shards = append(out.Shards, types.Shard{ShardId: aws.String(id)})
	}
	return out, nil
}

func (m *benchMemKinesis) GetShardIterator(_ context.Context, in *kinesis.GetShardIteratorInput, _ ...func(*kinesis.Options)) (*kinesis.GetShardIteratorOutput, error) {
	recs, ok := m.shards[aws.ToString(in.ShardId)]
	if !ok {
		return nil, &types.ResourceNotFoundException{Message: aws.String("no such shard")}
	}
	pos := 0
	switch in.ShardIteratorType {
	case types.ShardIteratorTypeLatest:
		pos = len(recs)
	case types.ShardIteratorTypeAfterSequenceNumber:
		after := aws.ToString(in.StartingSequenceNumber)
		pos, _ = slices.BinarySearchFunc(recs, after, func(r types.Record, seq string) int { return strings.Compare(*r.SequenceNumber, seq) })
		if pos < len(recs) && *recs[pos].SequenceNumber == after {
			pos++
		}
	}
	return &kinesis.GetShardIteratorOutput{ShardIterator: aws.String(aws.ToString(in.ShardId) + "/" + strconv.Itoa(pos))}, nil
}

func (m *benchMemKinesis) GetRecords(_ context.Context, in *kinesis.GetRecordsInput, _ ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error) {
	shard, at, _ := strings.Cut(aws.ToString(in.ShardIterator), "/")
	pos, err := strconv.Atoi(at)
	recs, ok := m.shards[shard]
	if err != nil || !ok {
		return nil, &types.InvalidArgumentException{Message: aws.String("bad iterator")}
	}
	end := min(len(recs), pos+int(aws.ToInt32(in.Limit)))
	behind := int64(0)
	if end < len(recs) {
		behind = 1000
	}
	return &kinesis.GetRecordsOutput{
		Records:            recs[pos:end],
		NextShardIterator:  aws.String(shard + "/" + strconv.Itoa(end)),
		MillisBehindLatest: aws.Int64(behind),
	}, nil
}

// ---------------------------------------------------------------------------
// 3. failover and join, default lease settings

// benchWorker is one input read by hand: it acks every batch at once and
// notes, per shard, when it first received a record after mark.
type benchWorker struct {
	in   *kinesisInput
	done chan struct{}

	mu    sync.Mutex
	first map[string]time.Time // shard: first record since the last mark
	total int
}

func startBenchWorker(tb testing.TB, yaml string, kin kinesisAPI, ddb checkpointer.API) *benchWorker {
	tb.Helper()
	in, _ := benchInput(tb, yaml, kin, ddb)
	w := &benchWorker{in: in, done: make(chan struct{}), first: map[string]time.Time{}}
	go func() {
		defer close(w.done)
		for {
			batch, ackFn, err := in.ReadBatch(context.Background())
			if err != nil {
				return
			}
			now := time.Now()
			w.mu.Lock()
			for _, m := range batch {
				shard, _ := m.MetaGet("kinesis_shard")
				if _, ok := w.first[shard]; !ok {
					w.first[shard] = now
				}
			}
			w.total += len(batch)
			w.mu.Unlock()
			_ = ackFn(context.Background(), nil)
		}
	}()
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = in.Close(ctx)
		<-w.done
	})
	return w
}

func (w *benchWorker) owned() int { return int(w.in.ownedCount.Load()) }

func (w *benchWorker) id() string {
	w.in.mu.Lock()
	defer w.in.mu.Unlock()
	return w.in.coord.workerID
}

// mark forgets which shards were seen, so that firstSince reports shards
// newly read from now on.
func (w *benchWorker) mark() {
	w.mu.Lock()
	defer w.mu.Unlock()
	clear(w.first)
}

// seen returns when each of shards first delivered a record since the last
// mark, and whether all of them have.
func (w *benchWorker) seen(shards []string) (last time.Time, all bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, s := range shards {
		t, ok := w.first[s]
		if !ok {
			return time.Time{}, false
		}
		if t.After(last) {
			last = t
		}
	}
	return last, true
}

// secondShardAt is when a second shard delivered its first record since the
// last mark.
func (w *benchWorker) secondShardAt() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	var at []time.Time
	for _, t := range w.first {
		at = append(at, t)
	}
	slices.SortFunc(at, time.Time.Compare)
	if len(at) < 2 {
		return time.Time{}
	}
	return at[1]
}

func (w *benchWorker) shardsSeen() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for s := range w.first {
		out = append(out, s)
	}
	return out
}

// benchProduce is produceKinesalite until the benchmark ends.
func benchProduce(tb testing.TB, kc *kinesis.Client, stream string) {
	tb.Cleanup(produceKinesalite(kc, stream))
}

// benchPoll waits, checking every 10 ms, until cond holds, and returns when it
// first did; it fails the benchmark after within (a bound, not a figure).
func benchPoll(tb testing.TB, within time.Duration, what string, cond func() bool) time.Time {
	tb.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("not within %v: %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Now()
}

// benchDefaultsYAML is a worker's config: every lease setting at its default
// (lease_period 3.5s, heartbeats every 1.17s, rebalance_period 5s,
// max_moves_per_rebalance 2, commit_period 5s).
func benchDefaultsYAML(stream, table string) string {
	return fmt.Sprintf("streams: [%s]\ndynamodb: {table: %s}\n", stream, table)
}

// BenchmarkInputFailover measures, with every lease setting at its default
// and 800 records/s flowing into a 4-shard kinesalite stream:
//
//   - crash: two workers hold 2 shards each; one is killed (no release, no
//     final checkpoint, as kill -9). read-s is the time until the survivor
//     has received a record from each of the dead worker's shards;
//     takeover-s until its owned-shards gauge says 4.
//   - join: one worker holds all 4 shards; a second starts. fair-share-s is
//     the time from its start (Connect included) until it has received
//     records from 2 shards; gauges-s until both owned-shards gauges say 2
//     (later: a gauge is updated at the end of a heartbeat cycle, so the
//     old owner's lags its hand-overs by up to a heartbeat period).
//
// Run it once (-benchtime 1x): each op is a whole scenario.
func BenchmarkInputFailover(b *testing.B) {
	kc := testenv.Kinesalite(b)
	dc := testenv.DynamoDB(b)
	b.Run("crash", func(b *testing.B) {
		var takeover, read time.Duration
		for i := 0; i < b.N; i++ {
			t, r := benchCrashOnce(b, kc, dc)
			takeover += t
			read += r
		}
		b.ReportMetric(takeover.Seconds()/float64(b.N), "takeover-s")
		b.ReportMetric(read.Seconds()/float64(b.N), "read-s")
	})
	b.Run("join", func(b *testing.B) {
		var share, reading time.Duration
		for i := 0; i < b.N; i++ {
			s, r := benchJoinOnce(b, kc, dc)
			share += s
			reading += r
		}
		b.ReportMetric(reading.Seconds()/float64(b.N), "fair-share-s")
		b.ReportMetric(share.Seconds()/float64(b.N), "gauges-s")
	})
}

func benchCrashOnce(b *testing.B, kc *kinesis.Client, dc *dynamodb.Client) (takeover, read time.Duration) {
	b.StopTimer()
	stream := testenv.CreateStream(b, kc, 4)
	table := testenv.CreateTable(b, dc)
	benchProduce(b, kc, stream)
	yaml := benchDefaultsYAML(stream, table)
	a := startBenchWorker(b, yaml, kc, dc)
	v := startBenchWorker(b, yaml, kc, dc)
	benchPoll(b, 2*time.Minute, "2 shards each", func() bool { return a.owned() == 2 && v.owned() == 2 })
	a.mark()
	v.mark()
	benchPoll(b, time.Minute, "records from every shard", func() bool { return len(a.shardsSeen()) == 2 && len(v.shardsSeen()) == 2 })

	tbl, err := checkpointer.New(dc, table, "observer")
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	leases, err := tbl.Leases(ctx, stream)
	if err != nil {
		b.Fatal(err)
	}
	victim := v.id()
	var foreign []string
	for _, l := range leases {
		if l.ClientID == victim {
			foreign = append(foreign, l.Shard)
		}
	}
	if len(foreign) != 2 {
		b.Fatalf("the victim holds %v in the table, want 2 shards", foreign)
	}

	a.mark()
	b.StartTimer()
	crashed := time.Now()
	v.in.crash()
	<-v.done
	owned := benchPoll(b, 2*time.Minute, "the survivor to own all 4 shards", func() bool { return a.owned() == 4 })
	benchPoll(b, 2*time.Minute, "records from the dead worker's shards", func() bool { _, all := a.seen(foreign); return all })
	b.StopTimer()
	last, _ := a.seen(foreign)
	return owned.Sub(crashed), last.Sub(crashed)
}

func benchJoinOnce(b *testing.B, kc *kinesis.Client, dc *dynamodb.Client) (share, reading time.Duration) {
	b.StopTimer()
	stream := testenv.CreateStream(b, kc, 4)
	table := testenv.CreateTable(b, dc)
	benchProduce(b, kc, stream)
	yaml := benchDefaultsYAML(stream, table)
	a := startBenchWorker(b, yaml, kc, dc)
	benchPoll(b, 2*time.Minute, "the first worker to own all 4 shards", func() bool { return a.owned() == 4 })
	a.mark()
	benchPoll(b, time.Minute, "records from every shard", func() bool { return len(a.shardsSeen()) == 4 })

	b.StartTimer()
	joined := time.Now()
	n := startBenchWorker(b, yaml, kc, dc)
	fair := benchPoll(b, 2*time.Minute, "2 shards each", func() bool { return a.owned() == 2 && n.owned() == 2 })
	benchPoll(b, 2*time.Minute, "the new worker reading 2 shards", func() bool { return len(n.shardsSeen()) == 2 })
	b.StopTimer()
	return fair.Sub(joined), n.secondShardAt().Sub(joined)
}

// ---------------------------------------------------------------------------
// 4. idle fleet

// BenchmarkInputIdleFleetWrites runs 4 workers on a 1,000-shard stream of
// the in-process fake (nothing written to it) with their leases in dynalite
// through one counting client, lets them settle (every shard owned, 250
// each, no move for a lease period), then counts the table calls over a
// 20 s window: writes-s (PutItem + UpdateItem + DeleteItem per second,
// the fleet's), query-pages-s, and the fleet's GetRecords calls per second.
//
// Every lease setting is at its default but max_moves_per_rebalance (100
// instead of 2, only so that the fleet settles in seconds: with 2 moves per
// 2 s heartbeat cycle per worker, 1,000 shards take about 4 minutes to be
// claimed). Run it once (-benchtime 1x).
func BenchmarkInputIdleFleetWrites(b *testing.B) {
	const (
		shards  = 1000
		workers = 4
		window  = 20 * time.Second
	)
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		srv := kinesisfake.Start(b, kinesisfake.WithStream("idle", shards))
		dc := testenv.DynamoDB(b)
		table := testenv.CreateTable(b, dc)
		counting := checkpointer.NewCountingClient(dc)
		kin := srv.Client()
		yaml := benchDefaultsYAML("idle", table) + "max_moves_per_rebalance: 100\n"
		started := time.Now()
		fleet := make([]*benchWorker, workers)
		for w := range fleet {
			fleet[w] = startBenchWorker(b, yaml, kin, counting)
		}
		loads := func() []int {
			out := make([]int, workers)
			for w, wk := range fleet {
				out[w] = wk.owned()
			}
			return out
		}
		fair := func() bool {
			for _, n := range loads() {
				if n != shards/workers {
					return false
				}
			}
			return true
		}
		settled := benchPoll(b, 3*time.Minute, "250 shards each", fair)
		b.Logf("fleet settled at 250 shards each after %v", settled.Sub(started).Round(100*time.Millisecond))
		// No move for a lease period before counting.
		for stable := time.Now(); time.Since(stable) < 6*time.Second; time.Sleep(100 * time.Millisecond) {
			if !fair() {
				stable = time.Now()
			}
		}

		counting.Reset()
		kin0 := srv.Stats().Requests[kinesisfake.OpGetRecords]
		cpu0, t0 := benchCPU(), time.Now()
		b.StartTimer()
		time.Sleep(window)
		b.StopTimer()
		elapsed := time.Since(t0).Seconds()
		c := counting.Counts()
		cpu := benchCPU() - cpu0
		getRecords := srv.Stats().Requests[kinesisfake.OpGetRecords] - kin0
		if !fair() {
			b.Logf("a shard moved during the window: loads %v", loads())
		}
		b.Logf("window %.1f s: %d PutItem, %d UpdateItem, %d DeleteItem, %d Query pages, %d GetItem; %d GetRecords",
			elapsed, c.PutItem, c.UpdateItem, c.DeleteItem, c.Query, c.GetItem, getRecords)
		b.ReportMetric(float64(c.Writes())/elapsed, "writes/s")
		b.ReportMetric(float64(c.Query)/elapsed, "query-pages/s")
		b.ReportMetric(float64(getRecords)/elapsed, "getrecords/s")
		b.ReportMetric(100*cpu.Seconds()/elapsed, "cpu-%")
	}
}

// BenchmarkInputFleetDefaultMoves is the scale check of the lease protocol
// with every setting at its default, max_moves_per_rebalance 2 included: 4
// workers start at once on a 1,000-shard stream of the in-process fake
// (leases in dynalite); settle-s is the time until each owns 250. Then one
// is killed: takeover-s is the time until the 3 others own all 1,000
// shards. Both are bounded by max_moves_per_rebalance per heartbeat period
// per worker. It takes minutes, so make bench does not run it: set
// BENCH_LONG=1 (and -benchtime 1x) to.
func BenchmarkInputFleetDefaultMoves(b *testing.B) {
	if os.Getenv("BENCH_LONG") == "" {
		b.Skip("takes about 6 minutes: set BENCH_LONG=1 to run it")
	}
	const (
		shards  = 1000
		workers = 4
	)
	var settle, takeover time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		srv := kinesisfake.Start(b, kinesisfake.WithStream("fleet", shards))
		dc := testenv.DynamoDB(b)
		table := testenv.CreateTable(b, dc)
		kin := srv.Client()
		yaml := benchDefaultsYAML("fleet", table)
		b.StartTimer()
		started := time.Now()
		fleet := make([]*benchWorker, workers)
		for w := range fleet {
			fleet[w] = startBenchWorker(b, yaml, kin, dc)
		}
		settled := benchPoll(b, 10*time.Minute, "250 shards each", func() bool {
			for _, w := range fleet {
				if w.owned() != shards/workers {
					return false
				}
			}
			return true
		})
		settle += settled.Sub(started)
		b.Logf("settled after %v", settled.Sub(started).Round(100*time.Millisecond))
		crashed := time.Now()
		fleet[0].in.crash()
		<-fleet[0].done
		taken := benchPoll(b, 10*time.Minute, "the survivors to own all 1,000 shards", func() bool {
			n := 0
			for _, w := range fleet[1:] {
				n += w.owned()
			}
			return n == shards
		})
		b.StopTimer()
		takeover += taken.Sub(crashed)
		b.Logf("taken over after %v", taken.Sub(crashed).Round(100*time.Millisecond))
	}
	b.ReportMetric(settle.Seconds()/float64(b.N), "settle-s")
	b.ReportMetric(takeover.Seconds()/float64(b.N), "takeover-s")
}

// BenchmarkInputFakeKPL is BenchmarkInputFake with the records written in the KPL's aggregated
// format (op = one user record): 100-byte user records, 500 to an aggregate, read and split by
// one input (deaggregate: true, the default). Its cost per user record against
// BenchmarkInputFake's per plain record is what deaggregation costs (issue 10: no more).
func BenchmarkInputFakeKPL(b *testing.B) {
	dc := testenv.DynamoDB(b)
	srv := kinesisfake.Start(b, kinesisfake.WithStream("bench", 4), kinesisfake.WithoutReadLimit())
	filled := 0
	fill := func(n int) {
		const perAggregate = 500
		data := make([]byte, 100)
		for filled < n {
			agg, err := kpl.NewAggregator(1 << 20)
			if err != nil {
				b.Fatal(err)
			}
			for range perAggregate {
				copy(data, strconv.Itoa(filled))
				if err := agg.Add(kpl.UserRecord{PartitionKey: "k" + strconv.Itoa(filled%101), Data: data}); err != nil {
					b.Fatal(err)
				}
				filled++
			}
			a, _ := agg.Flush()
			// Spread the aggregates over the shards, as a producer with many keys does.
			if _, _, err := srv.Append("bench", strconv.Itoa(filled), a.Data); err != nil {
				b.Fatal(err)
			}
		}
	}
	for _, c := range benchBatchings {
		b.Run(c.name, func(b *testing.B) {
			b.StopTimer()
			fill(b.N + benchSpare*500)
			table := testenv.CreateTable(b, dc)
			in, _ := benchInput(b, benchInputYAML("bench", table, benchFastPoll+c.yaml), srv.Client(), dc)
			benchReadAll(b, in, b.N).report(b)
		})
	}
}
