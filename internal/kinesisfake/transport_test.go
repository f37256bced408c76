package kinesisfake

import (
	"context"
	"fmt"
	"runtime"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
)

// TestClientSurvivesFastResponses guards awssession.ReadOnlyBodies: without
// it, about one request in a thousand or two fails with "use of closed
// network connection" when retries are off. GC between calls makes the race
// likelier.
func TestClientSurvivesFastResponses(t *testing.T) {
	srv := Start(t, WithStream("s", 4), WithoutWriteLimits(), WithDiscardData())
	c := srv.Client(nopRetry)
	recs := entries(500, func(i int) string { return fmt.Sprintf("partition-key-%d", i) }, bytesOf(256))
	in := &kinesis.PutRecordsInput{StreamName: aws.String("s"), Records: recs}
	for i := 0; i < 1000; i++ {
		if i%10 == 0 {
			runtime.GC()
		}
		if _, err := c.PutRecords(context.Background(), in); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
}
