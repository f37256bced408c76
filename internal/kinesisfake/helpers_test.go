package kinesisfake

import (
	"context"
	"errors"
	"math/big"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"
)

var t0 = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

func nopRetry(o *kinesis.Options) { o.Retryer = aws.NopRetryer{} }

// start serves a fake with a manual clock at t0 and returns a client with
// retries disabled.
func start(t *testing.T, opts ...Option) (*Server, *kinesis.Client, *ManualClock) {
	t.Helper()
	clk := NewManualClock(t0)
	srv := Start(t, append([]Option{WithClock(clk)}, opts...)...)
	return srv, srv.Client(nopRetry), clk
}

func errorCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	if err != nil {
		return "non-API error: " + err.Error()
	}
	return ""
}

func entries(n int, pk func(i int) string, data func(i int) []byte) []types.PutRecordsRequestEntry {
	out := make([]types.PutRecordsRequestEntry, n)
	for i := range out {
		out[i] = types.PutRecordsRequestEntry{PartitionKey: aws.String(pk(i)), Data: data(i)}
	}
	return out
}

func constKey(k string) func(int) string { return func(int) string { return k } }

func bytesOf(n int) func(int) []byte {
	return func(int) []byte { return make([]byte, n) }
}

func putRecords(t *testing.T, c *kinesis.Client, stream string, recs []types.PutRecordsRequestEntry) (*kinesis.PutRecordsOutput, error) {
	t.Helper()
	return c.PutRecords(context.Background(), &kinesis.PutRecordsInput{StreamName: aws.String(stream), Records: recs})
}

func mustPut(t *testing.T, c *kinesis.Client, stream string, recs []types.PutRecordsRequestEntry) *kinesis.PutRecordsOutput {
	t.Helper()
	out, err := putRecords(t, c, stream, recs)
	if err != nil {
		t.Fatalf("PutRecords: %v", err)
	}
	return out
}

func bigDec(s string) *big.Int {
	v, ok := new(big.Int).SetString(s, 10)
	if !ok {
		panic("bad decimal " + s)
	}
	return v
}

func failedCodes(out *kinesis.PutRecordsOutput) []string {
	var codes []string
	for _, r := range out.Records {
		codes = append(codes, aws.ToString(r.ErrorCode))
	}
	return codes
}

func countCode(out *kinesis.PutRecordsOutput, code string) int {
	n := 0
	for _, c := range failedCodes(out) {
		if c == code {
			n++
		}
	}
	return n
}

func wantErr(t *testing.T, err error, code string) {
	t.Helper()
	if got := errorCode(err); got != code {
		t.Fatalf("error code = %q (%v), want %q", got, err, code)
	}
}

func asHTTP(err error, target *interface{ HTTPStatusCode() int }) bool {
	return errors.As(err, target)
}
