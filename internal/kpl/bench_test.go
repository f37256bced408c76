package kpl

import (
	"fmt"
	"testing"
)

// benchRecords are 500 user records of 100 bytes with distinct partition keys, as a KPL producer
// with random keys makes them.
func benchRecords() []UserRecord {
	recs := make([]UserRecord, 500)
	for i := range recs {
		data := make([]byte, 100)
		for j := range data {
			data[j] = byte(i + j)
		}
		recs[i] = UserRecord{PartitionKey: fmt.Sprintf("partition-key-%08d", i), Data: data}
	}
	return recs
}

// BenchmarkDeaggregate reads an aggregate of 500 user records of 100 bytes; ns/record and
// allocs/record are per user record.
func BenchmarkDeaggregate(b *testing.B) {
	recs := benchRecords()
	data := mustAggregate(b, recs...)
	dst := make([]UserRecord, 0, len(recs))
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	allocs := testing.AllocsPerRun(10, func() {
		if _, err := AppendDeaggregate(dst[:0], data); err != nil {
			b.Fatal(err)
		}
	})
	fresh := testing.AllocsPerRun(10, func() {
		if _, err := Deaggregate(data); err != nil {
			b.Fatal(err)
		}
	})
	for b.Loop() {
		if _, err := AppendDeaggregate(dst[:0], data); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(recs)), "ns/record")
	b.ReportMetric(allocs/float64(len(recs)), "allocs/record")
	b.ReportMetric(fresh/float64(len(recs)), "allocs/record-new-slice")
}

// BenchmarkAggregate packs the same 500 user records into one aggregate and flushes it.
func BenchmarkAggregate(b *testing.B) {
	recs := benchRecords()
	a, err := NewAggregator(1 << 20)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	var size int
	for b.Loop() {
		for _, r := range recs {
			if err := a.Add(r); err != nil {
				b.Fatal(err)
			}
		}
		out, _ := a.Flush()
		size = len(out.Data)
	}
	b.SetBytes(int64(size))
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(recs)), "ns/record")
}
