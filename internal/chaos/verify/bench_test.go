package verify

import (
	"bytes"
	"fmt"
	"testing"
)

// benchRun is a run of a million deliveries: 1000 keys of 950 records on 8
// shards read by 4 readers, and 50,000 duplicates after a kill.
func benchRun() (Written, []Delivery, []Event) {
	w := Written{Keys: 1000, PerKey: 950}
	ds := make([]Delivery, 0, 1_000_000)
	shards := make([]string, 8)
	for i := range shards {
		shards[i] = fmt.Sprintf("shardId-%012d", i)
	}
	readers := []string{"r0.0", "r1.0", "r2.0", "r3.0"}
	for k := 0; k < w.Keys; k++ {
		key := w.Key(k)
		for n := 0; n < w.PerKey; n++ {
			ds = append(ds, Delivery{
				Key: key, N: n, Shard: shards[k%8], Seq: seqOf(k, n),
				At: t0 + int64(n)*1e6 + int64(k)*1e3, Incarnation: readers[k%4],
				Source: readers[k%4], Line: len(ds) + 1,
			})
		}
	}
	for i := 0; len(ds) < 1_000_000; i++ {
		d := ds[i*19]
		d.Incarnation, d.At = "r0.1", d.At+5e9
		ds = append(ds, d)
	}
	events := []Event{ev(0, "r0.0", Killed), ev(0, "r1.0", Killed), ev(0, "r2.0", Killed), ev(0, "r3.0", Killed)}
	return w, ds, events
}

func BenchmarkCheck(b *testing.B) {
	w, ds, events := benchRun()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		r := Check(w, ds, events, nil, Options{})
		if r.Lost != 0 || r.Duplicates != 50_000 || r.OutOfOrder != 0 {
			b.Fatalf("unexpected report:\n%s", r)
		}
	}
	b.ReportMetric(float64(len(ds)), "deliveries/op")
}

func BenchmarkParseDeliveries(b *testing.B) {
	_, ds, _ := benchRun()
	var buf bytes.Buffer
	var line []byte
	for _, d := range ds {
		line = append(d.AppendJSON(line[:0]), '\n')
		buf.Write(line)
	}
	data := buf.Bytes()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		got, _, err := ParseDeliveries(bytes.NewReader(data), "bench")
		if err != nil || len(got) != len(ds) {
			b.Fatal(len(got), err)
		}
	}
	b.ReportMetric(float64(len(ds)), "deliveries/op")
}
