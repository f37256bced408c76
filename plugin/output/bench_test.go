package output

import (
	"context"
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/benthos-kinesis/benthos-kinesis/internal/kinesisfake"
	"github.com/benthos-kinesis/benthos-kinesis/internal/testenv"
)

// instantKinesis answers every PutRecords with success at once, in process,
// so that a benchmark measures only the output's own work per record.
type instantKinesis struct {
	scriptedKinesis
	out kinesis.PutRecordsOutput
}

func (k *instantKinesis) PutRecords(_ context.Context, in *kinesis.PutRecordsInput, _ ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error) {
	if len(k.out.Records) < len(in.Records) {
		k.out.Records = make([]types.PutRecordsResultEntry, maxRequestRecords)
		for i := range k.out.Records {
			k.out.Records[i] = types.PutRecordsResultEntry{ShardId: aws.String("?"), SequenceNumber: aws.String("1")}
		}
	}
	return &kinesis.PutRecordsOutput{Records: k.out.Records[:len(in.Records)]}, nil
}

// BenchmarkPackPerRecord is the output's CPU cost per record, from a Benthos
// batch to PutRecords entries and the bookkeeping of their results: one op is
// one record. Shard limits are lifted so that pacing never waits.
func BenchmarkPackPerRecord(b *testing.B) {
	for _, c := range []struct{ name, key string }{
		{"static key", "static-key"},
		{"meta key", `${! meta("key") }`},  // read straight from metadata
		{"interpolated key", `${! @key }`}, // Benthos' general interpolation
	} {
		b.Run(c.name, func(b *testing.B) {
			w := connectedWriter(b, fmt.Sprintf(`
stream: bench
partition_key: '%s'
shard_limits: {records_per_second: 1000000000, bytes_per_second: 1000000000000}
`, c.key), &instantKinesis{scriptedKinesis: *newScripted()})
			batch := make(service.MessageBatch, 500)
			for i := range batch {
				batch[i] = service.NewMessage(make([]byte, 100))
				batch[i].MetaSetMut("key", fmt.Sprintf("key-%d", i))
			}
			b.ReportAllocs()
			b.ResetTimer()
			for done := 0; done < b.N; done += len(batch) {
				if err := w.WriteBatch(context.Background(), batch[:min(len(batch), b.N-done)]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// writeForBench writes n records of size bytes in batches of 500 from
// inFlight goroutines and reports records/s and CPU µs per record of this
// process (the emulator's CPU is not counted).
func writeForBench(b *testing.B, w *kinesisWriter, n, size, inFlight int) time.Duration {
	batches := make(chan service.MessageBatch, inFlight)
	go func() {
		defer close(batches)
		for start := 0; start < n; start += 500 {
			batch := make(service.MessageBatch, 0, 500)
			for i := start; i < min(start+500, n); i++ {
				m := service.NewMessage(make([]byte, size))
				m.MetaSetMut("key", fmt.Sprintf("key-%d", i))
				batch = append(batch, m)
			}
			batches <- batch
		}
	}()
	b.ResetTimer()
	cpu0, t0 := cpuTime(), time.Now()
	var wg sync.WaitGroup
	for g := 0; g < inFlight; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for batch := range batches {
				if err := w.WriteBatch(context.Background(), batch); err != nil {
					b.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	elapsed, cpu := time.Since(t0), cpuTime()-cpu0
	b.StopTimer()
	b.ReportMetric(float64(n)/elapsed.Seconds(), "records/s")
	b.ReportMetric(float64(cpu.Microseconds())/float64(n), "cpu-µs/record")
	return elapsed
}

// BenchmarkOutputKinesalite writes b.N records of 100 B to a 4-shard
// kinesalite stream with 16 batches in flight (limits lifted: kinesalite
// does not enforce them, and the point is the output's throughput).
func BenchmarkOutputKinesalite(b *testing.B) {
	client := testenv.Kinesalite(b)
	stream := testenv.CreateStream(b, client, 4)
	w := connectedWriter(b, fmt.Sprintf(`
stream: %s
partition_key: ${! meta("key") }
shard_limits: {records_per_second: 1000000, bytes_per_second: 1000000000}
`, stream), client)
	writeForBench(b, w, b.N, 100, 16)
}

// BenchmarkOutputShardLimitFake writes b.N records of 100 B to a 4-shard
// stream of the in-process fake (internal/kinesisfake) from 8 batches in
// flight, and reports the CPU per record of the whole process (user+sys,
// fake included) and the mean records per PutRecords request:
//
//   - at_limit: the fake enforces 1,000 records/s and 1 MiB/s per shard in
//     aligned one-second windows and the output has its default
//     shard_limits, so the run takes b.N/4,000 seconds; it also reports the
//     fraction of the per-shard record limit reached and the share of
//     records throttled. Waiting for a shard's budget should cost nothing:
//   - limits_lifted: neither side limits, the same records as fast as they
//     go; the CPU per record here is the floor for at_limit.
func BenchmarkOutputShardLimitFake(b *testing.B) {
	for _, c := range []struct {
		name        string
		fakeOpts    []kinesisfake.Option
		limitsField string
	}{
		{"at_limit", nil, ""},
		{"limits_lifted", []kinesisfake.Option{kinesisfake.WithoutWriteLimits()},
			"shard_limits: {records_per_second: 1000000, bytes_per_second: 1000000000}\n"},
	} {
		b.Run(c.name, func(b *testing.B) {
			srv := kinesisfake.Start(b, append([]kinesisfake.Option{kinesisfake.WithStream("limit", 4)}, c.fakeOpts...)...)
			w := connectedWriter(b, "stream: limit\npartition_key: ${! meta(\"key\") }\n"+c.limitsField, srv.Client())
			elapsed := writeForBench(b, w, b.N, 100, 8)
			st := srv.Stats()
			var accepted, throttled int64
			for _, sh := range st.Shards {
				accepted += sh.AcceptedRecords
				throttled += sh.ThrottledRecords
			}
			if requests := st.Requests[kinesisfake.OpPutRecords]; requests > 0 {
				b.ReportMetric(float64(accepted+throttled)/float64(requests), "records/request")
			}
			if c.limitsField == "" {
				b.ReportMetric(float64(accepted)/elapsed.Seconds()/4/1000, "limit-fraction")
				b.ReportMetric(100*float64(throttled)/float64(accepted), "throttled-%")
			}
		})
	}
}

// BenchmarkFakePutRecordsFloor is the CPU per record of the SDK client and
// the fake alone, without the output, for the two request patterns of
// BenchmarkOutputShardLimitFake: 200-record requests 20 times a second (the
// shape of at_limit: 4 shards × most of a 50-record burst, about every
// 50ms) and 500-record requests back to back (limits_lifted). The process
// idles between paced requests, and waking for each costs the runtime, the
// HTTP stack and the fake more than a request that follows another: this is
// the floor under the at_limit figure.
func BenchmarkFakePutRecordsFloor(b *testing.B) {
	for _, c := range []struct {
		name string
		size int
		gap  time.Duration
	}{
		{"paced_200_every_50ms", 200, 50 * time.Millisecond},
		{"back_to_back_500", 500, 0},
	} {
		b.Run(c.name, func(b *testing.B) {
			srv := kinesisfake.Start(b, kinesisfake.WithStream("floor", 4), kinesisfake.WithoutWriteLimits())
			client := srv.Client(noSDKRetries)
			entries := make([]types.PutRecordsRequestEntry, c.size)
			for i := range entries {
				entries[i] = types.PutRecordsRequestEntry{Data: make([]byte, 100), PartitionKey: aws.String(fmt.Sprintf("key-%d", i))}
			}
			var tick <-chan time.Time
			if c.gap > 0 {
				ticker := time.NewTicker(c.gap)
				defer ticker.Stop()
				tick = ticker.C
			}
			b.ResetTimer()
			cpu0 := cpuTime()
			for done := 0; done < b.N; done += c.size {
				if tick != nil {
					<-tick
				}
				in := &kinesis.PutRecordsInput{StreamName: aws.String("floor"), Records: entries[:min(c.size, b.N-done)]}
				if _, err := client.PutRecords(context.Background(), in); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/record")
		})
	}
}

// BenchmarkOutputAggregatedShardLimitFake writes b.N messages through the
// aggregating output (aggregation.enabled, defaults otherwise) to a 4-shard
// stream of the in-process fake enforcing the default limits (1,000 records/s
// and 1 MiB/s per shard), from 8 batches of 500 in flight, each message with
// its own partition key. It reports messages/s per shard, the share of
// Kinesis records throttled, the CPU per message of the whole process (fake
// included) and the fraction of the byte limit used. With aggregation the
// byte limit binds: 100-byte messages take about 118 bytes each in an
// aggregate (their key in its table, framing), so 1 MiB/s holds about 8,900
// of them per second; 20-byte messages show the record side.
func BenchmarkOutputAggregatedShardLimitFake(b *testing.B) {
	for _, size := range []int{100, 20} {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			srv := kinesisfake.Start(b, kinesisfake.WithStream("agg", 4), kinesisfake.WithDiscardData())
			w := connectedWriter(b, "stream: agg\npartition_key: ${! meta(\"key\") }\naggregation: {enabled: true}\n", srv.Client())
			elapsed := writeForBench(b, w, b.N, size, 8)
			var accepted, throttled, bytes int64
			for _, sh := range srv.Stats().Shards {
				accepted += sh.AcceptedRecords
				throttled += sh.ThrottledRecords
				bytes += sh.AcceptedBytes
			}
			b.ReportMetric(float64(b.N)/elapsed.Seconds()/4, "user-records/s/shard")
			b.ReportMetric(float64(accepted)/elapsed.Seconds()/4, "kinesis-records/s/shard")
			b.ReportMetric(float64(bytes)/elapsed.Seconds()/4/(1<<20), "byte-limit-fraction")
			b.ReportMetric(100*float64(throttled)/float64(accepted), "throttled-%")
		})
	}
}
