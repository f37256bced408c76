package input

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/benthos-kinesis/benthos-kinesis/checkpointer/ack"
	"github.com/benthos-kinesis/benthos-kinesis/internal/kinesisapi"
	"github.com/benthos-kinesis/benthos-kinesis/internal/kinesisfake"
	"github.com/benthos-kinesis/benthos-kinesis/internal/kpl"
	"github.com/benthos-kinesis/benthos-kinesis/internal/testenv"
)

// aggregatedShard writes, to a one-shard stream of the in-process fake, a plain record "p0", a
// KPL aggregate of n user records "u0".."u<n-1>" (keys "k<i>", every third with an explicit
// hash key) and a plain record "p1". It returns the server and the messages in shard order.
func aggregatedShard(t *testing.T, n int) (*kinesisfake.Server, []string) {
	t.Helper()
	srv := kinesisfake.Start(t, kinesisfake.WithStream("s", 1), kinesisfake.WithoutReadLimit())
	want := []string{"p0"}
	if _, _, err := srv.Append("s", "plain", []byte("p0")); err != nil {
		t.Fatal(err)
	}
	agg, err := kpl.NewAggregator(1 << 20)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		u := kpl.UserRecord{PartitionKey: "k" + strconv.Itoa(i), Data: []byte("u" + strconv.Itoa(i))}
		if i%3 == 0 {
			u.ExplicitHashKey = strconv.Itoa(i)
		}
		if err := agg.Add(u); err != nil {
			t.Fatal(err)
		}
		want = append(want, string(u.Data))
	}
	a, ok := agg.Flush()
	if !ok || a.Records != n {
		t.Fatalf("aggregate of %d records: %v %d", n, ok, a.Records)
	}
	if _, _, err := srv.Append("s", a.PartitionKey, a.Data); err != nil {
		t.Fatal(err)
	}
	if _, _, err := srv.Append("s", "plain", []byte("p1")); err != nil {
		t.Fatal(err)
	}
	return srv, append(want, "p1")
}

// The input splits a KPL aggregate into its user records, each a message with its own partition
// key, explicit hash key and sub-sequence number, between plain records of the same shard.
func TestConsumerDeaggregatesKPLRecords(t *testing.T) {
	srv, want := aggregatedShard(t, 1000)
	out := make(chan delivery, 16)
	cons := newShardConsumer("s", testShard, newShardReader(srv.Client(), "s", testShard, startPosition{}, fastPacing()), ack.Position{}, testDeps(out, 5000, service.BatchPolicy{}))
	t.Cleanup(cons.stop)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cons.start(ctx, nil)
	var aggSeq string
	for i, w := range want {
		var d delivery
		select {
		case d = <-out:
		case <-ctx.Done():
			t.Fatalf("stuck after %d messages", i)
		}
		m := d.batch[0]
		b, _ := m.AsBytes()
		if string(b) != w {
			t.Fatalf("message %d is %q, want %q", i, b, w)
		}
		key, _ := m.MetaGet("kinesis_partition_key")
		sub, hasSub := m.MetaGet("kinesis_sub_sequence_number")
		ehk, hasEHK := m.MetaGet("kinesis_explicit_hash_key")
		seq, _ := m.MetaGet("kinesis_sequence_number")
		if w[0] == 'p' {
			if key != "plain" || hasSub || hasEHK {
				t.Fatalf("plain record %s: key %q, sub-sequence %q, explicit hash key %q", w, key, sub, ehk)
			}
		} else {
			u, _ := strconv.Atoi(w[1:])
			if key != "k"+w[1:] || sub != w[1:] || hasEHK != (u%3 == 0) || (hasEHK && ehk != w[1:]) {
				t.Fatalf("user record %s: key %q, sub-sequence %q, explicit hash key %q", w, key, sub, ehk)
			}
			if aggSeq == "" {
				aggSeq = seq
			} else if seq != aggSeq {
				t.Fatalf("user record %s has sequence number %s, the aggregate's is %s", w, seq, aggSeq)
			}
		}
		d.f.done()
	}
}

// A restart, hand-off or take-over inside an aggregate resumes at the next user record: none
// skipped, none repeated. One consumer reads in batches of 7 and has its batches acknowledged
// up to a stop point; the checkpoint it drains to starts a second consumer, which must deliver
// exactly the rest. Stop points: before the aggregate, at its first, a middle and its last user
// record, the end of a batch inside it, and a nack inside it (the nacked batch is never
// acknowledged, the ones after it are: the checkpoint stays before the nacked one).
func TestConsumerResumesInsideAnAggregate(t *testing.T) {
	const n = 1000
	srv, want := aggregatedShard(t, n)
	for _, c := range []struct {
		name   string
		batch  int  // messages a batch
		acked  int  // messages acknowledged, in order, before the stop (whole batches)
		more   int  // then, after a batch left unacknowledged (a nack), this many more
		inside bool // the checkpoint is inside the aggregate (has a sub-sequence number)
	}{
		{"before the aggregate", 1, 1, 0, false},
		{"at the first user record", 2, 2, 0, true},
		{"in the middle", 7, 7 * 71, 0, true},
		{"at the last user record", 1, 1 + n, 0, false},
		{"at the end of a batch inside it", 10, 10 * 40, 0, true},
		{"at a nack inside it", 7, 7 * 50, 7 * 9, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			out := make(chan delivery, 4096)
			first := newShardConsumer("s", testShard, newShardReader(srv.Client(), "s", testShard, startPosition{}, fastPacing()), ack.Position{}, testDeps(out, 5000, service.BatchPolicy{Count: c.batch}))
			t.Cleanup(first.stop)
			first.start(ctx, nil)
			// Acknowledge whole batches while they stay within c.acked messages; the
			// rest stay unacknowledged (a nack without replay would count as done).
			got := 0
			var unacked []delivery
			for got < len(want) {
				var d delivery
				select {
				case d = <-out:
				case <-ctx.Done():
					t.Fatalf("first consumer stuck after %d messages", got)
				}
				switch {
				case got+len(d.batch) <= c.acked:
					d.f.done()
				case got >= c.acked+c.batch && got+len(d.batch) <= c.acked+c.batch+c.more:
					d.f.done() // acknowledged after the nacked batch: the checkpoint stays before it
				default:
					unacked = append(unacked, d)
				}
				got += len(d.batch)
			}
			first.stop()
			for _, d := range unacked {
				d.f.abandon() // the pipeline dropped them, as Benthos does when it stops
			}
			pos, ok, err := first.drain(ctx)
			if err != nil {
				t.Fatal(err)
			}
			acked := c.acked
			if _, sub := pos.SubSequence(); !ok || sub != c.inside {
				t.Fatalf("drained to %v (%v): want a checkpoint inside the aggregate: %v", pos, ok, c.inside)
			}
			start := startPosition{}
			if ok {
				start.afterSequence = pos.SequenceNumber()
				_, start.insideAggregate = pos.SubSequence()
			}
			out2 := make(chan delivery, 4096)
			second := newShardConsumer("s", testShard, newShardReader(srv.Client(), "s", testShard, start, fastPacing()), pos, testDeps(out2, 5000, service.BatchPolicy{}))
			t.Cleanup(second.stop)
			second.start(ctx, nil)
			for i := acked; i < len(want); i++ {
				var d delivery
				select {
				case d = <-out2:
				case <-ctx.Done():
					t.Fatalf("second consumer (from %v) stuck at message %d of %d", pos, i, len(want))
				}
				b, _ := d.batch[0].AsBytes()
				if string(b) != want[i] {
					t.Fatalf("resumed from checkpoint %v after %d acknowledged: message %q, want %q", pos, acked, b, want[i])
				}
				d.f.done()
			}
			select {
			case d := <-out2:
				b, _ := d.batch[0].AsBytes()
				t.Fatalf("resumed from %v: %q delivered past the end", pos, b)
			default:
			}
		})
	}
}

// An aggregate whose checksum is wrong is delivered as one plain record, flagged, and counted.
func TestConsumerPassesMalformedAggregatesThrough(t *testing.T) {
	srv := kinesisfake.Start(t, kinesisfake.WithStream("s", 1), kinesisfake.WithoutReadLimit())
	agg, _ := kpl.NewAggregator(1 << 20)
	for i := range 3 {
		if err := agg.Add(kpl.UserRecord{PartitionKey: fmt.Sprint(i), Data: []byte{byte(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	a, _ := agg.Flush()
	bad := append([]byte(nil), a.Data...)
	bad[len(bad)-1] ^= 0xff // the MD5's last byte
	if _, _, err := srv.Append("s", "k", bad); err != nil {
		t.Fatal(err)
	}
	out := make(chan delivery, 4)
	cons := newShardConsumer("s", testShard, newShardReader(srv.Client(), "s", testShard, startPosition{}, fastPacing()), ack.Position{}, testDeps(out, 100, service.BatchPolicy{}))
	t.Cleanup(cons.stop)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cons.start(ctx, nil)
	select {
	case d := <-out:
		b, _ := d.batch[0].AsBytes()
		why, ok := d.batch[0].MetaGet("kinesis_kpl_error")
		if string(b) != string(bad) || !ok || why == "" {
			t.Fatalf("got %d bytes, kinesis_kpl_error %q; want the record as it is, flagged", len(b), why)
		}
		d.f.done()
	case <-ctx.Done():
		t.Fatal("nothing delivered")
	}
}

func fastPacing() pacing {
	p := defaultPacing
	p.minInterval, p.idleWait = time.Millisecond, time.Millisecond
	return p
}

// After a split, a producer that aggregated user records for the parent may put an aggregate
// holding user records of both children; it lands on the child its first user record belongs
// to. The KCL checks each user record's hash key against the shard's range and, finding one
// outside, drops the whole aggregate (AggregatorUtil.deaggregate), losing the ones inside it
// too, since the KPL puts again only those that do not belong (awslabs/kinesis-aggregation,
// potential_data_loss.md). This input skips only the user records outside the shard's range
// (counted in kinesis_input_kpl_out_of_range) and delivers the others. On kinesis-local, the
// emulator that splits shards.
func TestConsumerSkipsUserRecordsOutsideTheShardAfterASplit(t *testing.T) {
	client := testenv.KinesisMock(t)
	stream := testenv.CreateStream(t, client, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const mid = "170141183460469231731687303715884105728" // 2^127
	if _, err := client.SplitShard(ctx, &kinesis.SplitShardInput{
		StreamName: aws.String(stream), ShardToSplit: aws.String("shardId-000000000000"), NewStartingHashKey: aws.String(mid),
	}); err != nil {
		t.Fatal(err)
	}
	if err := testenv.WaitStreamActive(ctx, client, stream); err != nil {
		t.Fatal(err)
	}
	shards, err := kinesisapi.ListShards(ctx, client, kinesisapi.Stream(stream), 0)
	if err != nil {
		t.Fatal(err)
	}
	var low *types.Shard // the child holding [0, 2^127)
	for i := range shards {
		if aws.ToString(shards[i].HashKeyRange.StartingHashKey) == "0" && shards[i].SequenceNumberRange.EndingSequenceNumber == nil {
			low = &shards[i]
		}
	}
	if low == nil {
		t.Fatalf("no open child starting at 0 among %d shards", len(shards))
	}
	// User records alternating between the low child (hash keys 1000+i) and the high one
	// (2^127 + i): the aggregate's hash key is the first's, so it lands on the low child.
	agg, _ := kpl.NewAggregator(1 << 20)
	var want []string
	for i := range 40 {
		u := kpl.UserRecord{PartitionKey: "k", Data: []byte(fmt.Sprint("u", i))}
		if i%2 == 0 {
			u.ExplicitHashKey = fmt.Sprint(1000 + i)
			want = append(want, string(u.Data))
		} else {
			u.ExplicitHashKey = mid[:len(mid)-3] + fmt.Sprintf("%03d", 728+i)
		}
		if err := agg.Add(u); err != nil {
			t.Fatal(err)
		}
	}
	a, _ := agg.Flush()
	put, err := client.PutRecord(ctx, &kinesis.PutRecordInput{
		StreamName: aws.String(stream), PartitionKey: aws.String(a.PartitionKey), ExplicitHashKey: aws.String(a.ExplicitHashKey), Data: a.Data,
	})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(put.ShardId) != aws.ToString(low.ShardId) {
		t.Fatalf("the aggregate went to %s, not the low child %s", aws.ToString(put.ShardId), aws.ToString(low.ShardId))
	}
	r, err := parseHashRange(aws.ToString(low.HashKeyRange.StartingHashKey), aws.ToString(low.HashKeyRange.EndingHashKey))
	if err != nil || !r.known {
		t.Fatalf("range of the low child: %+v, %v", r, err)
	}
	out := make(chan delivery, 64)
	shard := aws.ToString(low.ShardId)
	deps := testDeps(out, 1000, service.BatchPolicy{})
	cons := newShardConsumer(stream, shard, newShardReader(client, stream, shard, startPosition{}, fastPacing()), ack.Position{}, deps)
	cons.hashRange = r
	t.Cleanup(cons.stop)
	cons.start(ctx, nil)
	for i, w := range want {
		select {
		case d := <-out:
			b, _ := d.batch[0].AsBytes()
			if string(b) != w {
				t.Fatalf("message %d is %q, want %q (only the low child's user records, in order)", i, b, w)
			}
			d.f.done()
		case <-ctx.Done():
			t.Fatalf("stuck after %d of %d messages", i, len(want))
		}
	}
	// The last user record (odd: the high child's) was skipped: the checkpoint stays inside
	// the aggregate at the last delivered one, and a resume skips the rest again.
	pos, ok, err := cons.drain(ctx)
	if sub, has := pos.SubSequence(); err != nil || !ok || !has || sub != 38 {
		t.Fatalf("drained to %v (%v, %v); want user record 38 of the aggregate", pos, ok, err)
	}
}
