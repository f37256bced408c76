package kinesisfake

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"math/big"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

func TestShardHashRanges(t *testing.T) {
	tests := []struct {
		shards int
		want   [][2]string
	}{
		{1, [][2]string{{"0", "340282366920938463463374607431768211455"}}},
		{2, [][2]string{
			{"0", "170141183460469231731687303715884105727"},
			{"170141183460469231731687303715884105728", "340282366920938463463374607431768211455"},
		}},
		{3, [][2]string{
			{"0", "113427455640312821154458202477256070484"},
			{"113427455640312821154458202477256070485", "226854911280625642308916404954512140969"},
			{"226854911280625642308916404954512140970", "340282366920938463463374607431768211455"},
		}},
		{4, [][2]string{
			{"0", "85070591730234615865843651857942052863"},
			{"85070591730234615865843651857942052864", "170141183460469231731687303715884105727"},
			{"170141183460469231731687303715884105728", "255211775190703847597530955573826158591"},
			{"255211775190703847597530955573826158592", "340282366920938463463374607431768211455"},
		}},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprint(tc.shards), func(t *testing.T) {
			_, c, _ := start(t, WithStream("s", tc.shards))
			out, err := c.ListShards(context.Background(), &kinesis.ListShardsInput{StreamName: aws.String("s")})
			if err != nil {
				t.Fatal(err)
			}
			if len(out.Shards) != tc.shards {
				t.Fatalf("%d shards, want %d", len(out.Shards), tc.shards)
			}
			for i, sh := range out.Shards {
				if id := fmt.Sprintf("shardId-%012d", i); aws.ToString(sh.ShardId) != id {
					t.Errorf("shard %d id %s, want %s", i, aws.ToString(sh.ShardId), id)
				}
				r := sh.HashKeyRange
				if *r.StartingHashKey != tc.want[i][0] || *r.EndingHashKey != tc.want[i][1] {
					t.Errorf("shard %d range [%s, %s], want %v", i, *r.StartingHashKey, *r.EndingHashKey, tc.want[i])
				}
				if sh.ParentShardId != nil || sh.SequenceNumberRange.EndingSequenceNumber != nil {
					t.Errorf("shard %d looks closed or has a parent", i)
				}
			}
		})
	}
}

func TestRouting(t *testing.T) {
	_, c, _ := start(t, WithStream("s", 4), WithoutWriteLimits())
	quarter := new(big.Int).Lsh(big.NewInt(1), 126)
	tests := []struct {
		pk, md5hex string // md5 computed by hand, checked below
		ehk        string
		shard      string
	}{
		{pk: "a", md5hex: "0cc175b9c0f1b6a831c399e269772661", shard: "shardId-000000000000"},
		{pk: "b", md5hex: "92eb5ffee6ae2fec3ad71c777531578f", shard: "shardId-000000000002"},
		{pk: "c", md5hex: "4a8a08f09d37b73795649038408b5f33", shard: "shardId-000000000001"},
		{pk: "e", md5hex: "e1671797c52e15f763380b45e841ec32", shard: "shardId-000000000003"},
		{pk: "hello", md5hex: "5d41402abc4b2a76b9719d911017c592", shard: "shardId-000000000001"},
		{pk: "b", ehk: "0", shard: "shardId-000000000000"},
		{pk: "a", ehk: "85070591730234615865843651857942052863", shard: "shardId-000000000000"},
		{pk: "a", ehk: "85070591730234615865843651857942052864", shard: "shardId-000000000001"},
		{pk: "a", ehk: "340282366920938463463374607431768211455", shard: "shardId-000000000003"},
	}
	var recs []types.PutRecordsRequestEntry
	for _, tc := range tests {
		if tc.md5hex != "" {
			sum := md5.Sum([]byte(tc.pk))
			if hex.EncodeToString(sum[:]) != tc.md5hex {
				t.Fatalf("md5(%q) = %x, test table says %s", tc.pk, sum, tc.md5hex)
			}
			h := new(big.Int).SetBytes(sum[:])
			if idx := new(big.Int).Div(h, quarter).Int64(); fmt.Sprintf("shardId-%012d", idx) != tc.shard {
				t.Fatalf("table: %q hashes to quarter %d, not %s", tc.pk, idx, tc.shard)
			}
		}
		e := types.PutRecordsRequestEntry{PartitionKey: aws.String(tc.pk), Data: []byte(tc.pk + "|" + tc.ehk)}
		if tc.ehk != "" {
			e.ExplicitHashKey = aws.String(tc.ehk)
		}
		recs = append(recs, e)
	}
	out := mustPut(t, c, "s", recs)
	for i, tc := range tests {
		if got := aws.ToString(out.Records[i].ShardId); got != tc.shard {
			t.Errorf("record %d (pk %q ehk %q) went to %s, want %s", i, tc.pk, tc.ehk, got, tc.shard)
		}
	}
	// One PutRecord per key goes the same way.
	for _, tc := range tests {
		in := &kinesis.PutRecordInput{StreamName: aws.String("s"), PartitionKey: aws.String(tc.pk), Data: []byte("x")}
		if tc.ehk != "" {
			in.ExplicitHashKey = aws.String(tc.ehk)
		}
		o, err := c.PutRecord(context.Background(), in)
		if err != nil {
			t.Fatal(err)
		}
		if aws.ToString(o.ShardId) != tc.shard {
			t.Errorf("PutRecord pk %q ehk %q went to %s, want %s", tc.pk, tc.ehk, aws.ToString(o.ShardId), tc.shard)
		}
	}
}

func TestSequenceNumbersAndStoredOrder(t *testing.T) {
	srv, c, _ := start(t, WithStream("s", 3), WithoutWriteLimits())
	var sent []types.PutRecordsRequestEntry
	for round := 0; round < 3; round++ {
		recs := entries(200, func(i int) string { return fmt.Sprintf("key-%d", i%37) },
			func(i int) []byte { return []byte(fmt.Sprintf("r%d-%d", round, i)) })
		out := mustPut(t, c, "s", recs)
		for i, r := range out.Records {
			if len(*r.SequenceNumber) != seqLen {
				t.Fatalf("sequence number %q has length %d", *r.SequenceNumber, len(*r.SequenceNumber))
			}
			recs[i].ExplicitHashKey = r.SequenceNumber // remember it
		}
		sent = append(sent, recs...)
	}
	all, err := srv.Records("s")
	if err != nil {
		t.Fatal(err)
	}
	// Records per shard are in send order, with increasing sequence numbers
	// matching what PutRecords returned.
	bySeq := map[string]types.PutRecordsRequestEntry{}
	for _, e := range sent {
		bySeq[*e.ExplicitHashKey] = e
	}
	total := 0
	for shardID, recs := range all {
		prev := big.NewInt(-1)
		for _, r := range recs {
			e, ok := bySeq[r.SequenceNumber]
			if !ok || string(e.Data) != string(r.Data) || *e.PartitionKey != r.PartitionKey || r.ShardID != shardID {
				t.Fatalf("stored record %+v does not match what was sent", r)
			}
			seq := bigDec(r.SequenceNumber)
			if seq.Cmp(prev) <= 0 {
				t.Fatalf("%s: sequence number %s not above %s", shardID, seq, prev)
			}
			prev = seq
			if !r.ApproximateArrivalTimestamp.Equal(t0) {
				t.Fatalf("arrival %v, want %v", r.ApproximateArrivalTimestamp, t0)
			}
		}
		total += len(recs)
	}
	if total != len(sent) {
		t.Fatalf("stored %d records, sent %d", total, len(sent))
	}
}
