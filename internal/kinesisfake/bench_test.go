package kinesisfake

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
)

// discardWriter is a minimal http.ResponseWriter for handler benchmarks.
type discardWriter struct {
	h      http.Header
	status int
	n      int
}

func (w *discardWriter) Header() http.Header { return w.h }
func (w *discardWriter) WriteHeader(s int)   { w.status = s }
func (w *discardWriter) Write(p []byte) (int, error) {
	w.n += len(p)
	return len(p), nil
}

type benchEntry struct {
	Data         []byte
	PartitionKey string
}

func putRecordsBody(stream string, n, size int) []byte {
	recs := make([]benchEntry, n)
	for i := range recs {
		d := bytes.Repeat([]byte{byte('a' + i%26)}, size)
		recs[i] = benchEntry{Data: d, PartitionKey: fmt.Sprintf("partition-key-%d", i)}
	}
	b, err := json.Marshal(struct {
		Records    []benchEntry
		StreamName string
	}{recs, stream})
	if err != nil {
		panic(err)
	}
	return b
}

func serve(f *Fake, op string, body []byte, w *discardWriter) {
	r, _ := http.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
	r.Header.Set("X-Amz-Target", targetPrefix+op)
	r.Header.Set("Content-Type", contentType)
	r.ContentLength = int64(len(body))
	w.status, w.n = 0, 0
	f.ServeHTTP(w, r)
}

// BenchmarkPutRecords500 measures the fake's own cost of a 500-record
// PutRecords (handler only, no network), and end to end through the SDK.
func BenchmarkPutRecords500(b *testing.B) {
	const n, size = 500, 256
	body := putRecordsBody("s", n, size)
	for _, mode := range []struct {
		name string
		opts []Option
	}{
		{"handler/discard", []Option{WithDiscardData()}},
		{"handler/store", nil},
	} {
		b.Run(mode.name, func(b *testing.B) {
			f := New(append([]Option{WithStream("s", 4), WithoutWriteLimits()}, mode.opts...)...)
			w := &discardWriter{h: http.Header{}}
			b.SetBytes(int64(n * size))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if i%500 == 499 { // bound memory of the stored variant
					b.StopTimer()
					_ = f.DeleteStream("s")
					_ = f.CreateStream("s", 4)
					b.StartTimer()
				}
				serve(f, OpPutRecords, body, w)
				if w.status != http.StatusOK {
					b.Fatalf("status %d", w.status)
				}
			}
		})
	}
	b.Run("sdk", func(b *testing.B) {
		srv := Start(b, WithStream("s", 4), WithoutWriteLimits(), WithDiscardData())
		c := srv.Client(nopRetry)
		recs := entries(n, func(i int) string { return fmt.Sprintf("partition-key-%d", i) }, bytesOf(size))
		in := &kinesis.PutRecordsInput{StreamName: aws.String("s"), Records: recs}
		b.SetBytes(int64(n * size))
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			out, err := c.PutRecords(context.Background(), in)
			if err != nil || *out.FailedRecordCount != 0 {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkGetRecords measures serving 1000 records of 1 KiB per call.
func BenchmarkGetRecords(b *testing.B) {
	f := New(WithStream("s", 1), WithoutWriteLimits(), WithoutReadLimit())
	w := &discardWriter{h: http.Header{}}
	body := putRecordsBody("s", 500, 1024)
	serve(f, OpPutRecords, body, w)
	serve(f, OpPutRecords, body, w)
	it := iterator{gen: f.streams["s"].gen, pos: 1, stream: "s"}
	b.SetBytes(1000 * 1024)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		it.issued = f.now().UnixNano()
		req := []byte(`{"ShardIterator":"` + it.String() + `","Limit":1000}`)
		serve(f, OpGetRecords, req, w)
		if w.status != http.StatusOK {
			b.Fatalf("status %d", w.status)
		}
	}
}
