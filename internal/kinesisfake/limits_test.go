package kinesisfake

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

const mib = 1 << 20

func TestPutRecordsRequestLimits(t *testing.T) {
	srv, c, _ := start(t, WithStream("s", 8), WithoutWriteLimits())

	rec := func(pk string, dataLen int) types.PutRecordsRequestEntry {
		return types.PutRecordsRequestEntry{PartitionKey: aws.String(pk), Data: make([]byte, dataLen)}
	}
	// n records of exactly `size` bytes of data plus a 1-byte key.
	sized := func(n, size int) []types.PutRecordsRequestEntry {
		out := make([]types.PutRecordsRequestEntry, n)
		for i := range out {
			out[i] = rec(string(rune('a'+i%26)), size-1)
		}
		return out
	}
	tests := []struct {
		name    string
		records []types.PutRecordsRequestEntry
		code    string // whole-request error, "" for success
		msg     string // substring of the error message
	}{
		{"500 records", entries(500, func(i int) string { return string(rune('a' + i%26)) }, bytesOf(10)), "", ""},
		{"501 records", entries(501, constKey("k"), bytesOf(10)), ErrValidation, "less than or equal to 500"},
		{"no records", []types.PutRecordsRequestEntry{}, ErrValidation, "greater than or equal to 1"},
		{"exactly 5 MiB", append(append(sized(4, mib), rec("x", mib-2)), rec("y", 0)), "", ""},
		{"5 MiB + 1 byte", append(sized(5, mib), rec("y", 0)), ErrInvalidArgument, "Records size exceeds 5 MB limit"},
		{"record exactly 1 MiB with key", []types.PutRecordsRequestEntry{rec("abc", mib-3)}, "", ""},
		{"record 1 MiB + 1 with key", []types.PutRecordsRequestEntry{rec("ok", 10), rec("abc", mib-2)}, ErrValidation, "records.2.member.data"},
		{"data alone over 1 MiB", []types.PutRecordsRequestEntry{rec("a", mib+1)}, ErrValidation, "less than or equal to 1048576"},
		{"empty data is fine", []types.PutRecordsRequestEntry{rec("a", 0)}, "", ""},
		{"partition key 256 chars", []types.PutRecordsRequestEntry{rec(strings.Repeat("é", 256), 1)}, "", ""},
		{"partition key 257 chars", []types.PutRecordsRequestEntry{rec(strings.Repeat("é", 257), 1)}, ErrValidation, "records.1.member.partitionKey"},
		{"empty partition key", []types.PutRecordsRequestEntry{rec("", 1)}, ErrValidation, "greater than or equal to 1"},
		{"explicit hash key max", []types.PutRecordsRequestEntry{{PartitionKey: aws.String("a"), Data: []byte("x"), ExplicitHashKey: aws.String("340282366920938463463374607431768211455")}}, "", ""},
		{"explicit hash key 2^128", []types.PutRecordsRequestEntry{{PartitionKey: aws.String("a"), Data: []byte("x"), ExplicitHashKey: aws.String("340282366920938463463374607431768211456")}}, ErrInvalidArgument, "ExplicitHashKey"},
		{"explicit hash key not decimal", []types.PutRecordsRequestEntry{{PartitionKey: aws.String("a"), Data: []byte("x"), ExplicitHashKey: aws.String("0x10")}}, ErrValidation, "explicitHashKey"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := srv.Stats().Stream("s").AcceptedRecords
			out, err := putRecords(t, c, "s", tc.records)
			if tc.code == "" {
				if err != nil {
					t.Fatalf("PutRecords: %v", err)
				}
				if *out.FailedRecordCount != 0 || len(out.Records) != len(tc.records) {
					t.Fatalf("FailedRecordCount=%d records=%d, want 0 and %d", *out.FailedRecordCount, len(out.Records), len(tc.records))
				}
				if got := srv.Stats().Stream("s").AcceptedRecords - before; got != int64(len(tc.records)) {
					t.Fatalf("accepted %d records, want %d", got, len(tc.records))
				}
				return
			}
			wantErr(t, err, tc.code)
			if !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("error %q does not mention %q", err, tc.msg)
			}
			if got := srv.Stats().Stream("s").AcceptedRecords - before; got != 0 {
				t.Fatalf("a rejected request stored %d records", got)
			}
		})
	}
	st := srv.Stats()
	if st.MaxRequestRecords != 501 {
		t.Errorf("MaxRequestRecords = %d, want 501", st.MaxRequestRecords)
	}
	if st.MaxRequestBytes != 5*mib+1 {
		t.Errorf("MaxRequestBytes = %d, want %d", st.MaxRequestBytes, 5*mib+1)
	}
}

func TestConfigurableRequestLimits(t *testing.T) {
	srv, c, _ := start(t, WithStream("s", 1), WithoutWriteLimits(),
		WithMaxRecordsPerRequest(10), WithMaxRequestBytes(1000), WithMaxRecordSize(300))
	_ = srv
	tests := []struct {
		name string
		recs []types.PutRecordsRequestEntry
		code string
	}{
		{"10 records", entries(10, constKey("k"), bytesOf(1)), ""},
		{"11 records", entries(11, constKey("k"), bytesOf(1)), ErrValidation},
		{"record 300", entries(1, constKey("k"), bytesOf(299)), ""},
		{"record 301", entries(1, constKey("k"), bytesOf(300)), ErrValidation},
		{"request 1000", entries(4, constKey("k"), bytesOf(249)), ""},
		{"request 1001", append(entries(4, constKey("k"), bytesOf(249)), entries(1, constKey("k"), bytesOf(0))...), ErrInvalidArgument},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := putRecords(t, c, "s", tc.recs)
			wantErr(t, err, tc.code)
		})
	}
}

func TestPutRecordLimits(t *testing.T) {
	_, c, _ := start(t, WithStream("s", 1), WithoutWriteLimits())
	tests := []struct {
		name string
		pk   string
		n    int
		code string
	}{
		{"1 MiB with key", "pk", mib - 2, ""},
		{"1 MiB + 1 with key", "pk", mib - 1, ErrValidation},
		{"empty key", "", 1, ErrValidation},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := c.PutRecord(context.Background(), &kinesis.PutRecordInput{
				StreamName: aws.String("s"), PartitionKey: aws.String(tc.pk), Data: make([]byte, tc.n),
			})
			wantErr(t, err, tc.code)
			if err == nil && (aws.ToString(out.ShardId) != "shardId-000000000000" || len(aws.ToString(out.SequenceNumber)) != seqLen) {
				t.Fatalf("unexpected output %+v", out)
			}
		})
	}
}

func TestWriteThrottling(t *testing.T) {
	type step struct {
		advance   time.Duration
		n         int    // records in the request
		size      int    // data bytes per record (key is 1 byte)
		keys      string // partition keys cycle through these bytes
		wantOK    int
		wantThrot int
	}
	tests := []struct {
		name   string
		opts   []Option
		shards int
		steps  []step
	}{
		{
			name: "1001st record in one second", shards: 1,
			steps: []step{
				{n: 500, size: 10, keys: "a", wantOK: 500},
				{n: 500, size: 10, keys: "a", wantOK: 500},
				{n: 1, size: 10, keys: "a", wantThrot: 1},
				{advance: 999 * time.Millisecond, n: 1, size: 10, keys: "a", wantThrot: 1},
				{advance: time.Millisecond, n: 1, size: 10, keys: "a", wantOK: 1},
			},
		},
		{
			name: "partial request", shards: 1,
			steps: []step{
				{n: 500, size: 1, keys: "a", wantOK: 500},
				{n: 495, size: 1, keys: "a", wantOK: 495},
				{n: 10, size: 1, keys: "a", wantOK: 5, wantThrot: 5},
				{advance: time.Second, n: 10, size: 1, keys: "a", wantOK: 10},
			},
		},
		{
			name: "1 MiB per second", shards: 1,
			steps: []step{
				{n: 1, size: 600 << 10, keys: "a", wantOK: 1},
				{n: 1, size: 600 << 10, keys: "a", wantThrot: 1},
				{n: 1, size: mib - 600<<10 - 2, keys: "a", wantOK: 1}, // fills to exactly 1 MiB
				{n: 1, size: 0, keys: "a", wantThrot: 1},
				{advance: time.Second, n: 1, size: 600 << 10, keys: "a", wantOK: 1},
			},
		},
		{
			name: "a full-size record is never starved", shards: 1,
			steps: []step{
				{n: 1, size: mib - 1, keys: "a", wantOK: 1},
				{n: 1, size: mib - 1, keys: "a", wantThrot: 1},
				{advance: time.Second, n: 1, size: mib - 1, keys: "a", wantOK: 1},
			},
		},
		{
			// keys "a" (md5 0c..) and "b" (md5 92..) land on shards 0 and 1.
			name: "limits are per shard", shards: 2,
			steps: []step{
				{n: 500, size: 1, keys: "a", wantOK: 500},
				{n: 500, size: 1, keys: "a", wantOK: 500},
				{n: 10, size: 1, keys: "ab", wantOK: 5, wantThrot: 5},
			},
		},
		{
			name: "token bucket refills continuously", shards: 1, opts: []Option{WithTokenBucket()},
			steps: []step{
				{n: 500, size: 1, keys: "a", wantOK: 500},
				{n: 500, size: 1, keys: "a", wantOK: 500},
				{n: 1, size: 1, keys: "a", wantThrot: 1},
				{advance: 250 * time.Millisecond, n: 300, size: 1, keys: "a", wantOK: 250, wantThrot: 50},
				{advance: 5 * time.Second, n: 500, size: 1, keys: "a", wantOK: 500},
				{n: 500, size: 1, keys: "a", wantOK: 500},
				{n: 1, size: 1, keys: "a", wantThrot: 1},
			},
		},
		{
			name: "custom limits", shards: 1, opts: []Option{WithShardWriteLimits(10, 0)},
			steps: []step{
				{n: 15, size: 100 << 10, keys: "a", wantOK: 10, wantThrot: 5},
			},
		},
		{
			name: "no limits", shards: 1, opts: []Option{WithoutWriteLimits()},
			steps: []step{
				{n: 500, size: 4 << 10, keys: "a", wantOK: 500},
				{n: 500, size: 4 << 10, keys: "a", wantOK: 500},
				{n: 500, size: 4 << 10, keys: "a", wantOK: 500},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv, c, clk := start(t, append([]Option{WithStream("s", tc.shards)}, tc.opts...)...)
			for i, st := range tc.steps {
				clk.Advance(st.advance)
				recs := entries(st.n, func(i int) string { return string(st.keys[i%len(st.keys)]) }, bytesOf(st.size))
				out := mustPut(t, c, "s", recs)
				gotThrot := countCode(out, ErrProvisionedThroughput)
				gotOK := countCode(out, "")
				if gotOK != st.wantOK || gotThrot != st.wantThrot || int(*out.FailedRecordCount) != gotThrot {
					t.Fatalf("step %d: ok=%d throttled=%d failed=%d, want ok=%d throttled=%d",
						i, gotOK, gotThrot, *out.FailedRecordCount, st.wantOK, st.wantThrot)
				}
				for _, r := range out.Records {
					if r.ErrorCode != nil {
						if !strings.HasPrefix(aws.ToString(r.ErrorMessage), "Rate exceeded for shard shardId-") || r.SequenceNumber != nil {
							t.Fatalf("step %d: bad failed record %+v", i, r)
						}
					} else if r.SequenceNumber == nil || r.ShardId == nil {
						t.Fatalf("step %d: accepted record without sequence number", i)
					}
				}
			}
			st := srv.Stats()
			var ok, throt int
			for _, s := range tc.steps {
				ok += s.wantOK
				throt += s.wantThrot
			}
			tot := st.Stream("s")
			if tot.AcceptedRecords != int64(ok) || tot.ThrottledRecords != int64(throt) {
				t.Fatalf("stats accepted=%d throttled=%d, want %d %d", tot.AcceptedRecords, tot.ThrottledRecords, ok, throt)
			}
			if len(tc.opts) == 0 {
				for _, sh := range st.Shards {
					if sh.MaxAcceptedRecordsPerSecond > DefaultShardWriteRecords || sh.MaxAcceptedBytesPerSecond > DefaultShardWriteBytes+mib {
						t.Fatalf("%s accepted %d records / %d bytes in one second", sh.ShardID, sh.MaxAcceptedRecordsPerSecond, sh.MaxAcceptedBytesPerSecond)
					}
				}
			}
		})
	}
}

func TestWriteStatsPerSecond(t *testing.T) {
	srv, c, clk := start(t, WithStream("s", 1))
	mustPut(t, c, "s", entries(500, constKey("a"), bytesOf(1)))
	mustPut(t, c, "s", entries(500, constKey("a"), bytesOf(1)))
	mustPut(t, c, "s", entries(100, constKey("a"), bytesOf(1))) // all throttled
	clk.Advance(time.Second)
	mustPut(t, c, "s", entries(300, constKey("a"), bytesOf(1)))
	sh, _ := srv.Stats().Shard("s", "shardId-000000000000")
	want := ShardStats{
		Stream: "s", ShardID: "shardId-000000000000",
		AcceptedRecords: 1300, AcceptedBytes: 2600, ThrottledRecords: 100, ThrottledBytes: 200,
		MaxAcceptedRecordsPerSecond: 1000, MaxAcceptedBytesPerSecond: 2000,
		MaxOfferedRecordsPerSecond: 1100, MaxOfferedBytesPerSecond: 2200,
	}
	if sh != want {
		t.Fatalf("stats\n got %+v\nwant %+v", sh, want)
	}
	if n := srv.Stats().Requests[OpPutRecords]; n != 4 {
		t.Fatalf("PutRecords requests = %d, want 4", n)
	}
}

func TestPutRecordThrottled(t *testing.T) {
	_, c, clk := start(t, WithStream("s", 1), WithShardWriteLimits(2, 0))
	put := func() error {
		_, err := c.PutRecord(context.Background(), &kinesis.PutRecordInput{StreamName: aws.String("s"), PartitionKey: aws.String("k"), Data: []byte("x")})
		return err
	}
	for i, want := range []string{"", "", ErrProvisionedThroughput} {
		if err := put(); errorCode(err) != want {
			t.Fatalf("put %d: %v, want %q", i, err, want)
		}
	}
	clk.Advance(time.Second)
	if err := put(); err != nil {
		t.Fatal(err)
	}
}
