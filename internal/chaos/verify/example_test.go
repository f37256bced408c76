package verify_test

import (
	"fmt"
	"strings"
	"time"

	"github.com/benthos-kinesis/benthos-kinesis/internal/chaos/verify"
)

func ExampleCheck() {
	// Reader r1.0 delivered key-0/0..2, then was killed mid-line; r2.0 took
	// the shard over and delivered from the last checkpoint, key-0/1.
	files := map[string]string{
		"r1.0.jsonl": `{"k":"key-0","n":0,"seq":"100","shard":"shardId-000000000000","t":1000000000,"w":"r1.0"}
{"k":"key-0","n":1,"seq":"101","shard":"shardId-000000000000","t":1001000000,"w":"r1.0"}
{"k":"key-0","n":2,"seq":"102","shard":"shardId-000000000000","t":1002000000,"w":"r1.0"}
{"k":"key-0","n":3,"seq":"1`,
		"r2.0.jsonl": `{"k":"key-0","n":1,"seq":"101","shard":"shardId-000000000000","t":4000000000,"w":"r2.0"}
{"k":"key-0","n":2,"seq":"102","shard":"shardId-000000000000","t":4001000000,"w":"r2.0"}
{"k":"key-0","n":3,"seq":"103","shard":"shardId-000000000000","t":4002000000,"w":"r2.0"}
`,
	}
	var deliveries []verify.Delivery
	var stats []verify.FileStats
	for _, name := range []string{"r1.0.jsonl", "r2.0.jsonl"} {
		ds, st, err := verify.ParseDeliveries(strings.NewReader(files[name]), name)
		if err != nil {
			panic(err)
		}
		deliveries, stats = append(deliveries, ds...), append(stats, st)
	}
	events := []verify.Event{
		{At: time.Unix(0, 1_002_500_000), Incarnation: "r1.0", Kind: verify.Killed},
		{At: time.Unix(0, 3_000_000_000), Incarnation: "r2.0", Kind: verify.Started},
	}
	samples := []verify.LeaseSample{
		{At: time.Unix(1, 0), Stream: "s", Shard: "shardId-000000000000", Owner: "w1", Epoch: 1, Checkpoint: "100"},
		{At: time.Unix(5, 0), Stream: "s", Shard: "shardId-000000000000", Owner: "w2", Epoch: 2, Checkpoint: "103"},
	}

	r := verify.Check(verify.Written{Keys: 1, PerKey: 4}, deliveries, events, samples, verify.Options{Files: stats})
	fmt.Print(r)
	fmt.Println("err:", r.Err())
	// Output:
	// verify: PASS: written 4, delivered 6, distinct 4, torn lines 1 (ignored)
	// check             count  result  detail
	// lost              0      ok      of 4 written
	// unknown           0      ok      of 6 delivered
	// out of order      0      ok      first deliveries, per key
	// duplicates        2      ok      killed 2
	// unexplained       0      ok      at most 0 allowed
	// stale zombie      0      ok      grace 0s
	// lease violations  0      ok      2 samples
	//
	// incarnation  deliveries  duplicates  first  last     events
	// r1.0         3           0           +0s    +2ms     killed
	// r2.0         3           2           +3s    +3.002s  started
	//
	// shard                 records  deliveries  takeovers  max takeover gap
	// shardId-000000000000  4        6           1          3s (r1.0 -> r2.0)
	// err: <nil>
}
