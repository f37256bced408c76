package kinesisfake

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

const shard0 = "shardId-000000000000"

func iter(t *testing.T, c *kinesis.Client, in kinesis.GetShardIteratorInput) string {
	t.Helper()
	if in.StreamName == nil {
		in.StreamName = aws.String("s")
	}
	if in.ShardId == nil {
		in.ShardId = aws.String(shard0)
	}
	out, err := c.GetShardIterator(context.Background(), &in)
	if err != nil {
		t.Fatalf("GetShardIterator: %v", err)
	}
	return *out.ShardIterator
}

func TestGetRecordsRoundTrip(t *testing.T) {
	_, c, clk := start(t, WithStream("s", 1), WithoutReadLimit())
	ctx := context.Background()
	// 30 records at t0, 20 more one minute later; keys with characters that
	// need JSON escaping survive the round trip.
	keys := []string{"plain", `quo"te`, "back\\slash", "ünïcødé", "tab\there", "\u2028"}
	first := mustPut(t, c, "s", entries(30, func(i int) string { return keys[i%len(keys)] }, func(i int) []byte { return []byte(fmt.Sprintf("first-%d", i)) }))
	clk.Advance(time.Minute)
	second := mustPut(t, c, "s", entries(20, constKey("k2"), func(i int) []byte { return []byte(fmt.Sprintf("second-%d", i)) }))
	seqs := make([]string, 0, 50)
	for _, r := range append(first.Records, second.Records...) {
		seqs = append(seqs, *r.SequenceNumber)
	}
	clk.Advance(time.Second)

	// Read everything from TRIM_HORIZON in pages of 7.
	it := iter(t, c, kinesis.GetShardIteratorInput{ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
	var got []types.Record
	var behind []int64
	for i := 0; i < 20; i++ {
		out, err := c.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: aws.String(it), Limit: aws.Int32(7)})
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, out.Records...)
		behind = append(behind, *out.MillisBehindLatest)
		it = *out.NextShardIterator
		if len(out.Records) == 0 {
			break
		}
	}
	if len(got) != 50 {
		t.Fatalf("read %d records, want 50", len(got))
	}
	for i, r := range got {
		wantData := fmt.Sprintf("first-%d", i)
		wantKey := keys[i%len(keys)]
		wantTime := t0
		if i >= 30 {
			wantData, wantKey, wantTime = fmt.Sprintf("second-%d", i-30), "k2", t0.Add(time.Minute)
		}
		if string(r.Data) != wantData || *r.PartitionKey != wantKey || *r.SequenceNumber != seqs[i] || !r.ApproximateArrivalTimestamp.Equal(wantTime) {
			t.Fatalf("record %d = {%q %q %s %v}, want {%q %q %s %v}", i, r.Data, *r.PartitionKey, *r.SequenceNumber, r.ApproximateArrivalTimestamp, wantData, wantKey, seqs[i], wantTime)
		}
	}
	// The first pages are a minute behind the tip, the last ones are at it.
	if behind[0] != 61000 || behind[len(behind)-1] != 0 {
		t.Fatalf("MillisBehindLatest %v", behind)
	}

	read := func(it string, limit int32) []string {
		t.Helper()
		out, err := c.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: aws.String(it), Limit: aws.Int32(limit)})
		if err != nil {
			t.Fatal(err)
		}
		var d []string
		for _, r := range out.Records {
			d = append(d, string(r.Data))
		}
		return d
	}
	tests := []struct {
		name string
		in   kinesis.GetShardIteratorInput
		want string
	}{
		{"at sequence number", kinesis.GetShardIteratorInput{ShardIteratorType: types.ShardIteratorTypeAtSequenceNumber, StartingSequenceNumber: aws.String(seqs[10])}, "[first-10 first-11]"},
		{"after sequence number", kinesis.GetShardIteratorInput{ShardIteratorType: types.ShardIteratorTypeAfterSequenceNumber, StartingSequenceNumber: aws.String(seqs[10])}, "[first-11 first-12]"},
		{"after last", kinesis.GetShardIteratorInput{ShardIteratorType: types.ShardIteratorTypeAfterSequenceNumber, StartingSequenceNumber: aws.String(seqs[49])}, "[]"},
		{"at timestamp", kinesis.GetShardIteratorInput{ShardIteratorType: types.ShardIteratorTypeAtTimestamp, Timestamp: aws.Time(t0.Add(time.Second))}, "[second-0 second-1]"},
		{"at timestamp before all", kinesis.GetShardIteratorInput{ShardIteratorType: types.ShardIteratorTypeAtTimestamp, Timestamp: aws.Time(t0.Add(-time.Hour))}, "[first-0 first-1]"},
		{"latest", kinesis.GetShardIteratorInput{ShardIteratorType: types.ShardIteratorTypeLatest}, "[]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := fmt.Sprint(read(iter(t, c, tc.in), 2)); got != tc.want {
				t.Fatalf("got %s, want %s", got, tc.want)
			}
		})
	}

	// LATEST sees only what is written after it.
	latest := iter(t, c, kinesis.GetShardIteratorInput{ShardIteratorType: types.ShardIteratorTypeLatest})
	mustPut(t, c, "s", entries(1, constKey("k"), func(int) []byte { return []byte("new") }))
	if got := fmt.Sprint(read(latest, 100)); got != "[new]" {
		t.Fatalf("LATEST read %s", got)
	}
}

func TestGetShardIteratorErrors(t *testing.T) {
	srv, c, _ := start(t, WithStream("s", 2), WithStream("other", 1))
	out := mustPut(t, c, "s", []types.PutRecordsRequestEntry{
		{PartitionKey: aws.String("a"), Data: []byte("x"), ExplicitHashKey: aws.String("0")},
		{PartitionKey: aws.String("a"), Data: []byte("x"), ExplicitHashKey: aws.String("340282366920938463463374607431768211455")},
	})
	otherOut := mustPut(t, c, "other", entries(1, constKey("k"), bytesOf(1)))
	_ = srv
	tests := []struct {
		name string
		in   kinesis.GetShardIteratorInput
		code string
	}{
		{"unknown shard", kinesis.GetShardIteratorInput{ShardId: aws.String("shardId-000000000007"), ShardIteratorType: types.ShardIteratorTypeLatest}, ErrResourceNotFound},
		{"unknown stream", kinesis.GetShardIteratorInput{StreamName: aws.String("nope"), ShardIteratorType: types.ShardIteratorTypeLatest}, ErrResourceNotFound},
		{"bad type", kinesis.GetShardIteratorInput{ShardIteratorType: "SOMEWHERE"}, ErrValidation},
		{"missing sequence number", kinesis.GetShardIteratorInput{ShardIteratorType: types.ShardIteratorTypeAtSequenceNumber}, ErrInvalidArgument},
		{"sequence number of another shard", kinesis.GetShardIteratorInput{ShardIteratorType: types.ShardIteratorTypeAtSequenceNumber, StartingSequenceNumber: out.Records[1].SequenceNumber}, ErrInvalidArgument},
		{"sequence number of another stream", kinesis.GetShardIteratorInput{ShardIteratorType: types.ShardIteratorTypeAtSequenceNumber, StartingSequenceNumber: otherOut.Records[0].SequenceNumber}, ErrInvalidArgument},
		{"garbage sequence number", kinesis.GetShardIteratorInput{ShardIteratorType: types.ShardIteratorTypeAtSequenceNumber, StartingSequenceNumber: aws.String("12345")}, ErrInvalidArgument},
		{"own sequence number", kinesis.GetShardIteratorInput{ShardIteratorType: types.ShardIteratorTypeAtSequenceNumber, StartingSequenceNumber: out.Records[0].SequenceNumber}, ""},
		{"missing timestamp", kinesis.GetShardIteratorInput{ShardIteratorType: types.ShardIteratorTypeAtTimestamp}, ErrInvalidArgument},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := tc.in
			if in.StreamName == nil {
				in.StreamName = aws.String("s")
			}
			if in.ShardId == nil {
				in.ShardId = aws.String(shard0)
			}
			_, err := c.GetShardIterator(context.Background(), &in)
			wantErr(t, err, tc.code)
		})
	}
}

func TestGetRecordsLimitsAndExpiry(t *testing.T) {
	srv, c, clk := start(t, WithStream("s", 1))
	ctx := context.Background()
	mustPut(t, c, "s", entries(3, constKey("k"), bytesOf(1)))
	it := iter(t, c, kinesis.GetShardIteratorInput{ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
	get := func(it string, limit int32) (*kinesis.GetRecordsOutput, error) {
		return c.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: aws.String(it), Limit: aws.Int32(limit)})
	}
	// 5 calls per second per shard.
	for i := 0; i < 5; i++ {
		if _, err := get(it, 1); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	_, err := get(it, 1)
	wantErr(t, err, ErrProvisionedThroughput)
	clk.Advance(time.Second)
	out, err := get(it, 1)
	if err != nil {
		t.Fatal(err)
	}
	// Limit bounds.
	_, err = get(it, 10001)
	wantErr(t, err, ErrValidation)
	_, err = get(it, 0)
	wantErr(t, err, ErrValidation)
	// Bad iterator.
	_, err = get("not-an-iterator", 1)
	wantErr(t, err, ErrInvalidArgument)
	// Iterators expire after 5 minutes.
	clk.Advance(IteratorTTL + time.Millisecond)
	_, err = get(*out.NextShardIterator, 1)
	wantErr(t, err, ErrExpiredIterator)
	// Iterators of a deleted stream are dead even if it is recreated.
	fresh := iter(t, c, kinesis.GetShardIteratorInput{ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
	if err := srv.DeleteStream("s"); err != nil {
		t.Fatal(err)
	}
	if err := srv.CreateStream("s", 1); err != nil {
		t.Fatal(err)
	}
	_, err = get(fresh, 1)
	wantErr(t, err, ErrResourceNotFound)

	sh, _ := srv.Stats().Shard("s", shard0)
	if sh.GetRecordsCalls != 0 {
		t.Fatalf("recreated stream has stats %+v", sh)
	}
}

func TestGetRecordsByteCap(t *testing.T) {
	_, c, _ := start(t, WithStream("s", 1), WithoutWriteLimits(), WithoutReadLimit())
	// 12 records of 1 MiB: one call returns at most 10 MiB.
	for i := 0; i < 3; i++ {
		mustPut(t, c, "s", entries(4, constKey("k"), bytesOf(mib-1)))
	}
	it := iter(t, c, kinesis.GetShardIteratorInput{ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
	out, err := c.GetRecords(context.Background(), &kinesis.GetRecordsInput{ShardIterator: aws.String(it)})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Records) != 10 {
		t.Fatalf("got %d records, want 10", len(out.Records))
	}
	out, err = c.GetRecords(context.Background(), &kinesis.GetRecordsInput{ShardIterator: out.NextShardIterator})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Records) != 2 {
		t.Fatalf("got %d records, want 2", len(out.Records))
	}
}

func TestAppendSeedsReaders(t *testing.T) {
	srv, c, _ := start(t, WithStream("s", 2), WithShardWriteLimits(1, 1), WithoutReadLimit())
	var want []string
	for i := 0; i < 50; i++ {
		shard, seq, err := srv.Append("s", "k", []byte(fmt.Sprint(i)))
		if err != nil {
			t.Fatal(err)
		}
		if exp, _ := srv.ShardFor("s", "k"); shard != exp || len(seq) != seqLen {
			t.Fatalf("Append -> %s %s, want shard %s", shard, seq, exp)
		}
		want = append(want, fmt.Sprint(i))
	}
	shard, _ := srv.ShardFor("s", "k")
	it := iter(t, c, kinesis.GetShardIteratorInput{ShardId: aws.String(shard), ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
	out, err := c.GetRecords(context.Background(), &kinesis.GetRecordsInput{ShardIterator: aws.String(it)})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range out.Records {
		got = append(got, string(r.Data))
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("read %v", got)
	}
	if st := srv.Stats().Stream("s"); st.AcceptedRecords != 0 || st.RecordsRead != 50 {
		t.Fatalf("stats %+v", st)
	}
}
