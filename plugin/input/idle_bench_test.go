package input

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/benthos-kinesis/benthos-kinesis/internal/testenv"
)

// BenchmarkInputIdle is the cost of an input with nothing to read (issue 9): one worker, every
// setting at its default, reading an empty 4-shard kinesalite stream with leases in dynalite,
// inside a Benthos stream built as the binary builds it (the input's own SDK clients from its
// config, a consumer that acks at once). Once it owns the 4 shards it is left alone for
// BENCH_IDLE_FOR (default 30s) and reports
//
//   - cpu-%: this process's CPU time (getrusage: user + system) over that window, as a
//     percentage of one core (start-up's garbage collected before it);
//   - allocs/s: heap objects allocated per second in that window;
//
// then a record is put BENCH_IDLE_SAMPLES times (default 10), each after a random pause of up
// to 1.5 s so that it lands at any point of the readers' polling cycle, and it reports
//
//   - first-record-ms and first-record-max-ms: the mean and the largest time from the
//     PutRecord call to the record reaching the consumer.
//
// The emulators' CPU is not counted; neither is a Prometheus exporter (the binary's default
// metrics), which costs nothing until scraped. BENCH_IDLE_FIELDS adds input fields. Each op is the whole scenario: run it once
// (-benchtime 1x), without -race.
func BenchmarkInputIdle(b *testing.B) {
	idleFor := 30 * time.Second
	if v := os.Getenv("BENCH_IDLE_FOR"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			b.Fatalf("BENCH_IDLE_FOR: %v", err)
		}
		idleFor = d
	}
	samples := 10
	if v := os.Getenv("BENCH_IDLE_SAMPLES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			b.Fatalf("BENCH_IDLE_SAMPLES: %q is not a number of samples", v)
		}
		samples = n
	}
	kc := testenv.Kinesalite(b)
	dc := testenv.DynamoDB(b)
	for range b.N {
		b.StopTimer()
		stream := testenv.CreateStream(b, kc, 4)
		table := testenv.CreateTable(b, dc)
		r := benchIdleOnce(b, kc, stream, table, idleFor, samples)
		b.ReportMetric(100*r.cpu.Seconds()/r.elapsed.Seconds(), "cpu-%")
		b.ReportMetric(float64(r.allocs)/r.elapsed.Seconds(), "allocs/s")
		b.ReportMetric(float64(r.meanFirst.Microseconds())/1e3, "first-record-ms")
		b.ReportMetric(float64(r.maxFirst.Microseconds())/1e3, "first-record-max-ms")
	}
}

type benchIdleResult struct {
	elapsed, cpu        time.Duration
	allocs              uint64
	meanFirst, maxFirst time.Duration
}

func benchIdleOnce(b *testing.B, kc *kinesis.Client, stream, table string, idleFor time.Duration, samples int) benchIdleResult {
	// The input as Register builds it, kept to see how many shards it owns.
	var (
		mu sync.Mutex
		in *kinesisInput
	)
	env := service.NewEnvironment()
	err := env.RegisterBatchInput("aws_kinesis", Spec(), func(pConf *service.ParsedConfig, res *service.Resources) (service.BatchInput, error) {
		k, err := newKinesisInputFromParsed(pConf, res)
		if err != nil {
			return nil, err
		}
		mu.Lock()
		in = k
		mu.Unlock()
		return registered(pConf, k)
	})
	if err != nil {
		b.Fatal(err)
	}
	sb := env.NewStreamBuilder()
	// Nothing is logged at INFO while idle; WARN keeps the benchmark's line whole.
	if err := sb.SetLoggerYAML("level: WARN"); err != nil {
		b.Fatal(err)
	}
	conf := fmt.Sprintf(`aws_kinesis:
  streams: [%s]
  endpoint: %s
  region: us-east-1
  credentials: {id: test, secret: test}
  dynamodb: {table: %s, endpoint: %s}
`, stream, testenv.KinesaliteEndpoint(b), table, testenv.DynamoDBEndpoint(b))
	// BENCH_IDLE_FIELDS adds input fields (YAML lines at the input's indentation), to measure
	// what settings other than the defaults cost, e.g. "  lease_period: 30s".
	conf += os.Getenv("BENCH_IDLE_FIELDS")
	if err := sb.AddInputYAML(conf); err != nil {
		b.Fatal(err)
	}
	arrived := make(chan time.Time, 1)
	if err := sb.AddBatchConsumerFunc(func(context.Context, service.MessageBatch) error {
		select {
		case arrived <- time.Now():
		default:
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
	go func() { ran <- st.Run(context.Background()) }()
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := st.Stop(ctx); err != nil {
			b.Logf("stop: %v", err)
		}
	}()
	benchPoll(b, time.Minute, "the input owns the 4 shards", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return in != nil && in.ownedCount.Load() == 4
	})

	// Start-up's garbage is not the idle input's: collect it before the window.
	runtime.GC()
	var r benchIdleResult
	m0, cpu0, t0 := benchMallocs(), benchCPU(), time.Now()
	b.StartTimer()
	time.Sleep(idleFor) // the measured window: nothing to wait for
	b.StopTimer()
	r.cpu, r.elapsed, r.allocs = benchCPU()-cpu0, time.Since(t0), benchMallocs()-m0

	var firsts []time.Duration
	for i := range samples {
		time.Sleep(time.Duration(rand.Int64N(int64(1500 * time.Millisecond)))) // a random phase
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		put := time.Now() // the record exists somewhere within the call: count from its start
		_, err := kc.PutRecord(ctx, &kinesis.PutRecordInput{
			StreamName: aws.String(stream), PartitionKey: aws.String("k" + strconv.Itoa(i)), Data: []byte("x"),
		})
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		select {
		case at := <-arrived:
			firsts = append(firsts, at.Sub(put))
		case err := <-ran:
			b.Fatalf("the stream ended: %v", err)
		case <-time.After(30 * time.Second):
			b.Fatalf("record %d not read within 30s", i)
		}
	}
	if len(firsts) > 0 {
		var sum time.Duration
		for _, d := range firsts {
			sum += d
		}
		r.meanFirst, r.maxFirst = sum/time.Duration(len(firsts)), slices.Max(firsts)
	}
	return r
}
