package input

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	_ "github.com/redpanda-data/benthos/v4/public/components/pure"
	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/benthos-kinesis/benthos-kinesis/checkpointer"
	"github.com/benthos-kinesis/benthos-kinesis/internal/testenv"
)

// received collects what the pipelines of a test delivered, by record id.
type received struct {
	mu     sync.Mutex
	counts map[int]int
	by     map[string]int // per worker label
	total  int
}

func newReceived() *received { return &received{counts: map[int]int{}, by: map[string]int{}} }

func (r *received) add(label string, batch service.MessageBatch) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, m := range batch {
		b, err := m.AsBytes()
		if err != nil {
			return err
		}
		n, err := strconv.Atoi(string(b))
		if err != nil {
			return fmt.Errorf("record %q: %w", b, err)
		}
		r.counts[n]++
		r.by[label]++
		r.total++
	}
	return nil
}

func (r *received) snapshot() (distinct, total int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.counts), r.total
}

// pipeline is one running Benthos stream with this input.
type pipeline struct {
	stream *service.Stream
	done   chan error
}

func startPipeline(t *testing.T, label, inputYAML string, got *received) *pipeline {
	t.Helper()
	env := service.NewEnvironment()
	if err := Register(env, "aws_kinesis"); err != nil {
		t.Fatal(err)
	}
	sb := env.NewStreamBuilder()
	if err := sb.SetLoggerYAML("level: WARN"); err != nil {
		t.Fatal(err)
	}
	if err := sb.AddInputYAML(inputYAML); err != nil {
		t.Fatal(err)
	}
	if err := sb.AddBatchConsumerFunc(func(_ context.Context, b service.MessageBatch) error { return got.add(label, b) }); err != nil {
		t.Fatal(err)
	}
	st, err := sb.Build()
	if err != nil {
		t.Fatal(err)
	}
	p := &pipeline{stream: st, done: make(chan error, 1)}
	go func() { p.done <- st.Run(context.Background()) }()
	t.Cleanup(func() { p.stopGracefully(t) })
	return p
}

// stopGracefully stops the stream the way Benthos does on SIGTERM, bounded.
func (p *pipeline) stopGracefully(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.stream.Stop(ctx); err != nil && !errors.Is(err, service.ErrNotConnected) {
		t.Logf("stop: %v", err)
	}
}

// inputYAML is workerYAML as a component config, for a stream builder.
func inputYAML(t *testing.T, stream, table string) string {
	return "aws_kinesis:\n" + indent(workerYAML(t, stream, table), "  ")
}

// indent puts prefix before every non-empty line.
func indent(s, prefix string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		if l != "" {
			lines[i] = prefix + l
		}
	}
	return strings.Join(lines, "\n")
}

func putRecords(t *testing.T, c *kinesis.Client, stream string, from, to int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for start := from; start < to; start += 500 {
		var entries []types.PutRecordsRequestEntry
		for n := start; n < min(start+500, to); n++ {
			entries = append(entries, types.PutRecordsRequestEntry{Data: []byte(strconv.Itoa(n)), PartitionKey: aws.String("k" + strconv.Itoa(n%101))})
		}
		out, err := c.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String(stream), Records: entries})
		if err != nil || aws.ToInt32(out.FailedRecordCount) != 0 {
			t.Fatalf("put records: %v", err)
		}
	}
}

// waitFor polls cond (a condition on state the test can read, not a timing
// guess) until it holds or the deadline passes.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestIntegrationOneInputReadsEverything(t *testing.T) {
	kc := testenv.Kinesalite(t)
	stream := testenv.CreateStream(t, kc, 4)
	table := testenv.CreateTable(t, testenv.DynamoDB(t))
	putRecords(t, kc, stream, 0, 5000)
	got := newReceived()
	startPipeline(t, "a", inputYAML(t, stream, table), got)
	waitFor(t, time.Minute, "5,000 records", func() bool { d, _ := got.snapshot(); return d == 5000 })
	if _, total := got.snapshot(); total != 5000 {
		t.Fatalf("%d deliveries of 5,000 records", total)
	}
}

// worker is one input driven by hand: it reads, records and acks every
// batch, so a test can stop it gracefully or crash it.
type worker struct {
	label string
	in    *kinesisInput
	done  chan struct{}
}

// testInput builds an input from the fields in yaml, lets tweak replace its
// clients (fault injection), and connects it unless connect is false.
func testInput(t testing.TB, yaml string, tweak func(*kinesisInput), connect bool) *kinesisInput {
	t.Helper()
	pConf, err := Spec().ParseYAML(yaml, nil)
	if err != nil {
		t.Fatal(err)
	}
	in, err := newKinesisInputFromParsed(pConf, service.MockResources())
	if err != nil {
		t.Fatal(err)
	}
	if tweak != nil {
		tweak(in)
	}
	if connect {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := in.Connect(ctx); err != nil {
			t.Fatal(err)
		}
	}
	return in
}

func startWorker(t *testing.T, label, yaml string, got *received) *worker {
	t.Helper()
	in := testInput(t, yaml, nil, true)
	w := &worker{label: label, in: in, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for {
			batch, ackFn, err := in.ReadBatch(context.Background())
			if err != nil {
				return
			}
			if err := got.add(label, batch); err != nil {
				t.Error(err)
			}
			_ = ackFn(context.Background(), nil)
		}
	}()
	t.Cleanup(func() { w.stop(t) })
	return w
}

func (w *worker) stop(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := w.in.Close(ctx); err != nil {
		t.Errorf("close %s: %v", w.label, err)
	}
	<-w.done
}

func (w *worker) owned() int {
	return int(w.in.ownedCount.Load())
}

func workerYAML(t *testing.T, stream, table string) string {
	return leaseTestYAML(t, testenv.KinesaliteEndpoint(t), stream, table) +
		"steal_grace_period: 5s\npoll: {idle_wait: 100ms}\n"
}

// leaseTestYAML is the input's fields for tests: the Kinesis endpoint given,
// leases in dynalite, and lease timings short enough for tests.
func leaseTestYAML(t *testing.T, kinesisEndpoint, stream, table string) string {
	return fmt.Sprintf(`
streams: [%s]
endpoint: %s
region: us-east-1
credentials: {id: test, secret: test}
dynamodb:
  table: %s
  endpoint: %s
lease_period: 3s
rebalance_period: 500ms
commit_period: 200ms
`, stream, kinesisEndpoint, table, testenv.DynamoDBEndpoint(t))
}

// Two, then three workers share a stream and read 50,000 records between
// them; one stops gracefully mid-run.
// Hand-offs and the graceful stop deliver nothing twice; nothing is lost.
func TestIntegrationWorkersShareAndHandOffWithoutDuplicates(t *testing.T) {
	kc := testenv.Kinesalite(t)
	stream := testenv.CreateStream(t, kc, 6)
	table := testenv.CreateTable(t, testenv.DynamoDB(t))
	got := newReceived()
	yaml := workerYAML(t, stream, table)

	a := startWorker(t, "a", yaml, got)
	putRecords(t, kc, stream, 0, 10000)
	waitFor(t, time.Minute, "a to own all 6 shards", func() bool { return a.owned() == 6 })
	b := startWorker(t, "b", yaml, got)
	waitFor(t, time.Minute, "a and b to own 3 shards each", func() bool { return a.owned() == 3 && b.owned() == 3 })
	putRecords(t, kc, stream, 10000, 20000)
	c := startWorker(t, "c", yaml, got)
	waitFor(t, time.Minute, "2 shards each", func() bool { return a.owned() == 2 && b.owned() == 2 && c.owned() == 2 })
	putRecords(t, kc, stream, 20000, 30000)
	b.stop(t)
	waitFor(t, time.Minute, "a and c to own 3 shards each", func() bool { return a.owned() == 3 && c.owned() == 3 })
	putRecords(t, kc, stream, 30000, 50000)
	waitFor(t, time.Minute, "50,000 records", func() bool { d, _ := got.snapshot(); return d == 50000 })

	distinct, total := got.snapshot()
	if distinct != 50000 || total != 50000 {
		t.Fatalf("%d records delivered %d times: %d duplicates", distinct, total, total-distinct)
	}
	t.Logf("per worker: %v", got.by)
}

// A worker crashes (no final checkpoint, no release): the other takes its
// shards once its heartbeat has been still for a lease period, and every
// record is delivered at least once.
func TestIntegrationCrashedWorkerShardsTakenOver(t *testing.T) {
	kc := testenv.Kinesalite(t)
	stream := testenv.CreateStream(t, kc, 4)
	table := testenv.CreateTable(t, testenv.DynamoDB(t))
	got := newReceived()
	yaml := workerYAML(t, stream, table)

	a := startWorker(t, "a", yaml, got)
	b := startWorker(t, "b", yaml, got)
	putRecords(t, kc, stream, 0, 10000)
	waitFor(t, time.Minute, "2 shards each", func() bool { return a.owned() == 2 && b.owned() == 2 })
	waitFor(t, time.Minute, "10,000 records", func() bool { d, _ := got.snapshot(); return d == 10000 })

	putRecords(t, kc, stream, 10000, 15000)
	crashedAt := time.Now()
	b.in.crash()
	<-b.done
	waitFor(t, time.Minute, "a to own all 4 shards", func() bool { return a.owned() == 4 })
	takeover := time.Since(crashedAt)
	putRecords(t, kc, stream, 15000, 20000)
	waitFor(t, time.Minute, "20,000 records", func() bool { d, _ := got.snapshot(); return d == 20000 })
	_, total := got.snapshot()
	t.Logf("take-over after %v (lease period 3s); %d duplicates", takeover.Round(10*time.Millisecond), total-20000)
}

// The built-in input's full default config, as its `create` prints it (with
// stream demo and table demo_checkpoints), runs unchanged; the endpoints
// come from the SDK's standard environment variables.
func TestIntegrationBuiltinDefaultConfigRuns(t *testing.T) {
	ref := testenv.SharedReference(t, "builtin-aws_kinesis-input.yaml")
	kc := testenv.Kinesalite(t)
	dc := testenv.DynamoDB(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	testenv.EnsureStream(t, kc, "demo", 2)
	ensureTable(t, dc, "demo_checkpoints")
	t.Setenv("AWS_ENDPOINT_URL_KINESIS", testenv.KinesaliteEndpoint(t))
	t.Setenv("AWS_ENDPOINT_URL_DYNAMODB", testenv.DynamoDBEndpoint(t))
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	t.Setenv("AWS_REGION", "us-east-1")

	run := strconv.FormatInt(time.Now().UnixNano(), 10)
	var entries []types.PutRecordsRequestEntry
	for i := 0; i < 100; i++ {
		entries = append(entries, types.PutRecordsRequestEntry{Data: []byte(run + "-" + strconv.Itoa(i)), PartitionKey: aws.String(strconv.Itoa(i))})
	}
	if _, err := kc.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String("demo"), Records: entries}); err != nil {
		t.Fatal(err)
	}

	env := service.NewEnvironment()
	if err := Register(env, "aws_kinesis"); err != nil {
		t.Fatal(err)
	}
	sb := env.NewStreamBuilder()
	if err := sb.SetLoggerYAML("level: WARN"); err != nil {
		t.Fatal(err)
	}
	// The file is `input:` and the component under it: add that, unchanged.
	_, component, ok := strings.Cut(ref, "input:\n")
	if !ok {
		t.Fatal("reference config has no input section")
	}
	if err := sb.AddInputYAML(dedent(component, "  ")); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	seen := map[string]bool{}
	if err := sb.AddConsumerFunc(func(_ context.Context, m *service.Message) error {
		b, _ := m.AsBytes()
		mu.Lock()
		seen[string(b)] = true
		mu.Unlock()
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	st, err := sb.Build()
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = st.Run(context.Background()) }()
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := st.Stop(ctx); err != nil {
			t.Errorf("stop: %v", err)
		}
	}()
	waitFor(t, time.Minute, "the 100 records of this run", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for i := 0; i < 100; i++ {
			if !seen[run+"-"+strconv.Itoa(i)] {
				return false
			}
		}
		return true
	})
}

// dedent removes prefix from the start of every line.
func dedent(s, prefix string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimPrefix(l, prefix)
	}
	return strings.Join(lines, "\n")
}

func ensureTable(t *testing.T, dc *dynamodb.Client, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tbl, err := checkpointer.New(dc, name, "test")
	if err != nil {
		t.Fatal(err)
	}
	if err := tbl.EnsureTable(ctx, true, checkpointer.BillingPayPerRequest, 0, 0); err != nil {
		t.Fatal(err)
	}
}
