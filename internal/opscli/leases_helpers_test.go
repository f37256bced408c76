package opscli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
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
	"github.com/benthos-kinesis/benthos-kinesis/internal/kinesisapi"
	"github.com/benthos-kinesis/benthos-kinesis/internal/kinesisfake"
	"github.com/benthos-kinesis/benthos-kinesis/internal/testenv"
	"github.com/benthos-kinesis/benthos-kinesis/plugin/input"
)

// testLeasePeriod is the lease period of the tests' workers and of the tool's judgement: short,
// so that a dead worker is judged dead quickly.
const testLeasePeriod = time.Second

// lenv is a stream on kinesalite and a lease table on dynalite.
type lenv struct {
	t            *testing.T
	kinEP, ddbEP string
	kin          *kinesis.Client
	ddb          *dynamodb.Client
	table        string
	stream       string
}

// newFakeLenv is newLenv with the Kinesis of internal/kinesisfake: kinesalite never answers an
// AT_TIMESTAMP GetShardIterator when no record is at or after the time (empty shards, the tip),
// which is what reset and an input after a reset ask.
func newFakeLenv(t *testing.T, shards int) *lenv {
	t.Helper()
	srv := kinesisfake.Start(t, kinesisfake.WithoutReadLimit())
	e := &lenv{t: t, kinEP: srv.URL, ddbEP: testenv.DynamoDBEndpoint(t)}
	e.kin, e.ddb = srv.Client(), testenv.NewDynamoDBClient(e.ddbEP)
	e.table = testenv.CreateTable(t, e.ddb)
	e.stream = testenv.UniqueName(t, "stream")
	if err := srv.CreateStream(e.stream, shards); err != nil {
		t.Fatal(err)
	}
	return e
}

func newLenv(t *testing.T, shards int32) *lenv {
	t.Helper()
	e := &lenv{t: t, kinEP: emulatorEndpoint(t, envKinesalite), ddbEP: testenv.DynamoDBEndpoint(t)}
	e.kin, e.ddb = testClient(e.kinEP), testenv.NewDynamoDBClient(e.ddbEP)
	e.table = testenv.CreateTable(t, e.ddb)
	e.stream = testenv.CreateStream(t, e.kin, shards)
	return e
}

// worker returns a handle on the table as worker id.
func (e *lenv) worker(id string, opts ...checkpointer.Option) *checkpointer.Table {
	e.t.Helper()
	w, err := checkpointer.New(e.ddb, e.table, id, append([]checkpointer.Option{checkpointer.WithLeasePeriod(testLeasePeriod)}, opts...)...)
	if err != nil {
		e.t.Fatal(err)
	}
	return w
}

// beating keeps w's worker row beating every tenth of the lease period until the test ends.
func (e *lenv) beating(w *checkpointer.Table) {
	e.t.Helper()
	if err := w.Heartbeat(e.t.Context(), 1, []string{e.stream}); err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(testLeasePeriod / 10)
		defer tick.Stop()
		for n := int64(2); ; n++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				_ = w.Heartbeat(ctx, n, []string{e.stream})
			}
		}
	}()
	e.t.Cleanup(func() { cancel(); wg.Wait() })
}

// claim makes w own the shard (as observed now) and returns the row.
func (e *lenv) claim(w *checkpointer.Table, shard string) checkpointer.Lease {
	e.t.Helper()
	l, err := w.Claim(e.t.Context(), e.stream, shard, e.row(shard))
	if err != nil {
		e.t.Fatal(err)
	}
	return l
}

func (e *lenv) row(shard string) checkpointer.Lease {
	e.t.Helper()
	l, err := e.worker("reader").Get(e.t.Context(), e.stream, shard)
	if err != nil {
		e.t.Fatal(err)
	}
	return l
}

// put writes records to the shard and returns their sequence numbers and arrival times.
func (e *lenv) put(shard string, data ...string) []record {
	e.t.Helper()
	var out []record
	hash := startHash(e.t, e.kin, e.stream, shard)
	for _, d := range data {
		res, err := e.kin.PutRecord(e.t.Context(), &kinesis.PutRecordInput{
			StreamName: aws.String(e.stream), Data: []byte(d), PartitionKey: aws.String("pk"), ExplicitHashKey: aws.String(hash),
		})
		if err != nil {
			e.t.Fatal(err)
		}
		if aws.ToString(res.ShardId) != shard {
			e.t.Fatalf("record went to %s, want %s", aws.ToString(res.ShardId), shard)
		}
		out = append(out, record{Seq: aws.ToString(res.SequenceNumber)})
	}
	// The arrival times, as AT_TIMESTAMP sees them.
	recs := e.read(shard)
	for i := range out {
		for _, r := range recs {
			if aws.ToString(r.SequenceNumber) == out[i].Seq {
				out[i].Arrival = aws.ToTime(r.ApproximateArrivalTimestamp)
			}
		}
	}
	return out
}

// read returns every record of the shard.
func (e *lenv) read(shard string) []types.Record {
	e.t.Helper()
	var recs []types.Record
	_, err := scan(e.t.Context(), e.kin, kinesisapi.Stream(e.stream), shard, kinesis.GetShardIteratorInput{ShardIteratorType: types.ShardIteratorTypeTrimHorizon},
		time.Millisecond, func(r types.Record) bool { recs = append(recs, r); return false })
	if err != nil {
		e.t.Fatal(err)
	}
	return recs
}

func startHash(t *testing.T, cl *kinesis.Client, stream, shard string) string {
	t.Helper()
	out, err := cl.ListShards(t.Context(), &kinesis.ListShardsInput{StreamName: aws.String(stream)})
	if err != nil {
		t.Fatal(err)
	}
	for _, sh := range out.Shards {
		if aws.ToString(sh.ShardId) == shard {
			return aws.ToString(sh.HashKeyRange.StartingHashKey)
		}
	}
	t.Fatalf("no shard %s in %s", shard, stream)
	return ""
}

// run runs the tool with the emulators' endpoints and the test lease period; stdin answers
// questions (a terminal when terminal is true).
func (e *lenv) run(stdin io.Reader, terminal bool, args ...string) (string, string, error) {
	e.t.Helper()
	o := defaultOptions()
	o.stdin, o.isTerminal = stdin, func() bool { return terminal }
	o.leasePoll, o.pace = 20*time.Millisecond, 10*time.Millisecond
	full := append([]string{"kinesis", "--kinesis-endpoint", e.kinEP, "--dynamodb-endpoint", e.ddbEP}, args...)
	full = append(full, "--lease-period", testLeasePeriod.String())
	return runCLI(e.t, newCommand(o), full...)
}

// runJSON runs the tool with --format json and decodes its output into v.
func (e *lenv) runJSON(v any, args ...string) error {
	e.t.Helper()
	out, _, err := e.run(strings.NewReader(""), false, append(args, "--format", "json")...)
	if out != "" {
		if jerr := json.Unmarshal([]byte(out), v); jerr != nil {
			e.t.Fatalf("output is not JSON: %v\n%s", jerr, out)
		}
	}
	return err
}

// inputRun is an aws_kinesis input of this module running in a Benthos stream.
type inputRun struct {
	mu   sync.Mutex
	got  []string
	cond chan struct{} // closed and renewed on every message
	stop func()
}

// startInput runs the input on the stream and table and collects what it delivers.
func (e *lenv) startInput() *inputRun {
	e.t.Helper()
	env := service.NewEnvironment()
	if err := input.Register(env, "aws_kinesis"); err != nil {
		e.t.Fatal(err)
	}
	b := env.NewStreamBuilder()
	creds := fmt.Sprintf("credentials: {id: %s, secret: %s}", testenv.AccessKeyID, testenv.SecretAccessKey)
	if err := b.AddInputYAML(fmt.Sprintf(`
aws_kinesis:
  streams: [ %s ]
  endpoint: %s
  region: %s
  %s
  dynamodb:
    table: %s
    endpoint: %s
    region: %s
    %s
  commit_period: 50ms
  lease_period: %s
  start_from_oldest: true
`, e.stream, e.kinEP, testenv.Region, creds, e.table, e.ddbEP, testenv.Region, creds, (2 * testLeasePeriod).String())); err != nil {
		e.t.Fatal(err)
	}
	r := &inputRun{cond: make(chan struct{})}
	if err := b.AddConsumerFunc(func(_ context.Context, m *service.Message) error {
		data, err := m.AsBytes()
		if err != nil {
			return err
		}
		r.mu.Lock()
		r.got = append(r.got, string(data))
		close(r.cond)
		r.cond = make(chan struct{})
		r.mu.Unlock()
		return nil
	}); err != nil {
		e.t.Fatal(err)
	}
	if err := b.SetLoggerYAML("level: warn"); err != nil {
		e.t.Fatal(err)
	}
	stream, err := b.Build()
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- stream.Run(ctx) }()
	var once sync.Once
	r.stop = func() {
		once.Do(func() {
			sctx, scancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer scancel()
			if err := stream.Stop(sctx); err != nil {
				e.t.Errorf("stopping the input: %v", err)
			}
			cancel()
			<-done
		})
	}
	e.t.Cleanup(r.stop)
	return r
}

// waitFor waits until the input delivered n messages (or the test's deadline) and returns them.
func (r *inputRun) waitFor(t *testing.T, n int, within time.Duration) []string {
	t.Helper()
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		got, ch := append([]string(nil), r.got...), r.cond
		r.mu.Unlock()
		if len(got) >= n {
			return got
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("the input delivered %d messages within %v, want %d: %q", len(got), within, n, got)
		}
	}
}

// answering is a stdin whose first read runs before (a concurrent change made while the user is
// asked) and then answers answer.
type answering struct {
	before func()
	r      io.Reader
}

func (a *answering) Read(p []byte) (int, error) {
	if a.before != nil {
		a.before()
		a.before = nil
	}
	return a.r.Read(p)
}
