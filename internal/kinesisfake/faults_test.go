package kinesisfake

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

func TestFailNext(t *testing.T) {
	tests := []struct {
		name   string
		op     string
		n      int
		status int
		typ    string
		call   func(c *kinesis.Client) error
	}{
		{"PutRecords internal failure", OpPutRecords, 2, 500, ErrInternalFailure, func(c *kinesis.Client) error {
			_, err := c.PutRecords(context.Background(), &kinesis.PutRecordsInput{StreamName: aws.String("s"), Records: entries(1, constKey("k"), bytesOf(1))})
			return err
		}},
		{"PutRecords throttled as a whole", OpPutRecords, 1, 400, ErrProvisionedThroughput, func(c *kinesis.Client) error {
			_, err := c.PutRecords(context.Background(), &kinesis.PutRecordsInput{StreamName: aws.String("s"), Records: entries(1, constKey("k"), bytesOf(1))})
			return err
		}},
		{"GetRecords throttled", OpGetRecords, 3, 400, ErrProvisionedThroughput, func(c *kinesis.Client) error {
			it, err := c.GetShardIterator(context.Background(), &kinesis.GetShardIteratorInput{StreamName: aws.String("s"), ShardId: aws.String(shard0), ShardIteratorType: types.ShardIteratorTypeLatest})
			if err != nil {
				return err
			}
			_, err = c.GetRecords(context.Background(), &kinesis.GetRecordsInput{ShardIterator: it.ShardIterator})
			return err
		}},
		{"any op unavailable", "*", 1, 503, ErrServiceUnavailable, func(c *kinesis.Client) error {
			_, err := c.ListShards(context.Background(), &kinesis.ListShardsInput{StreamName: aws.String("s")})
			return err
		}},
		{"KMS throttling on PutRecord", OpPutRecord, 1, 400, ErrKMSThrottling, func(c *kinesis.Client) error {
			_, err := c.PutRecord(context.Background(), &kinesis.PutRecordInput{StreamName: aws.String("s"), PartitionKey: aws.String("k"), Data: []byte("x")})
			return err
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv, c, _ := start(t, WithStream("s", 1), WithoutReadLimit())
			srv.FailNext(tc.op, tc.n, tc.status, tc.typ, "")
			for i := 0; i < tc.n; i++ {
				err := tc.call(c)
				wantErr(t, err, tc.typ)
				var re interface{ HTTPStatusCode() int }
				if !asHTTP(err, &re) || re.HTTPStatusCode() != tc.status {
					t.Fatalf("status of %v is not %d", err, tc.status)
				}
			}
			if err := tc.call(c); err != nil {
				t.Fatalf("call after the faults: %v", err)
			}
			if srv.PendingFaults() != 0 {
				t.Fatalf("faults left: %d", srv.PendingFaults())
			}
			if got := srv.Stats().Errors[tc.typ]; got != int64(tc.n) {
				t.Fatalf("Errors[%s] = %d, want %d", tc.typ, got, tc.n)
			}
		})
	}
}

func TestFailNextWithRetries(t *testing.T) {
	srv := Start(t, WithStream("s", 1))
	c := srv.Client(func(o *kinesis.Options) {
		o.Retryer = retry.NewStandard(func(so *retry.StandardOptions) {
			so.MaxAttempts = 5
			so.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return 0, nil })
		})
	})
	srv.FailNext(OpListShards, 3, 500, ErrInternalFailure, "")
	if _, err := c.ListShards(context.Background(), &kinesis.ListShardsInput{StreamName: aws.String("s")}); err != nil {
		t.Fatal(err)
	}
	if n := srv.Stats().Requests[OpListShards]; n != 4 {
		t.Fatalf("ListShards requests = %d, want 4 (3 failed + 1)", n)
	}
}

func TestRecordFault(t *testing.T) {
	srv, c, _ := start(t, WithStream("s", 2))
	srv.SetRecordFault(FailPartitionKey("bad", 2, ErrInternalFailure))
	recs := entries(3, func(i int) string { return []string{"a", "bad", "c"}[i] }, bytesOf(1))
	for round, want := range []string{"[ InternalFailure ]", "[ InternalFailure ]", "[  ]"} {
		out := mustPut(t, c, "s", recs)
		if got := fmt.Sprint(failedCodes(out)); got != want {
			t.Fatalf("round %d: codes %s, want %s", round, got, want)
		}
		if round < 2 && (*out.FailedRecordCount != 1 || aws.ToString(out.Records[1].ErrorMessage) != "Internal service failure.") {
			t.Fatalf("round %d: %+v", round, out.Records[1])
		}
	}
	st := srv.Stats().Stream("s")
	if st.FailedRecords != 2 || st.AcceptedRecords != 7 {
		t.Fatalf("stats %+v", st)
	}
	// PutRecord fails as a whole.
	srv.SetRecordFault(FailPartitionKey("k", 1, ErrProvisionedThroughput))
	_, err := c.PutRecord(context.Background(), &kinesis.PutRecordInput{StreamName: aws.String("s"), PartitionKey: aws.String("k"), Data: []byte("x")})
	wantErr(t, err, ErrProvisionedThroughput)
	srv.ClearFaults()
	if _, err := c.PutRecord(context.Background(), &kinesis.PutRecordInput{StreamName: aws.String("s"), PartitionKey: aws.String("k"), Data: []byte("x")}); err != nil {
		t.Fatal(err)
	}
}

// TestConcurrentProducers runs producers and stats readers in parallel
// (meaningful under -race) and checks every accepted record is stored once,
// in per-producer order within each shard.
func TestConcurrentProducers(t *testing.T) {
	srv := Start(t, WithStream("s", 4), WithoutWriteLimits())
	c := srv.Client(nopRetry)
	const producers, batches, per = 4, 10, 100
	var wg sync.WaitGroup
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				return
			default:
				_ = srv.Stats()
			}
		}
	}()
	errs := make(chan error, producers)
	for p := 0; p < producers; p++ {
		wg.Add(1)
		go func(p int) {
			defer wg.Done()
			for b := 0; b < batches; b++ {
				recs := entries(per, func(i int) string { return fmt.Sprintf("p%d-%d", p, i%8) },
					func(i int) []byte { return []byte(fmt.Sprintf("%d/%06d", p, b*per+i)) })
				out, err := c.PutRecords(context.Background(), &kinesis.PutRecordsInput{StreamName: aws.String("s"), Records: recs})
				if err == nil && *out.FailedRecordCount != 0 {
					err = fmt.Errorf("%d failed", *out.FailedRecordCount)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}(p)
	}
	wg.Wait()
	close(done)
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	all, err := srv.Records("s")
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for shardID, recs := range all {
		last := map[byte]string{}
		for _, r := range recs {
			p := r.Data[0]
			if string(r.Data) <= last[p] {
				t.Fatalf("%s: %s after %s", shardID, r.Data, last[p])
			}
			last[p] = string(r.Data)
		}
		total += len(recs)
	}
	if total != producers*batches*per {
		t.Fatalf("stored %d records, want %d", total, producers*batches*per)
	}
}
