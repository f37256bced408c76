package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

const (
	// pollInterval is how often WaitStreamActive and WaitTableActive look; the emulators started
	// by up.sh keep a resource CREATING for about 50 ms.
	pollInterval = 25 * time.Millisecond
	// setupTimeout bounds creating a stream or table and waiting for it to be ACTIVE.
	setupTimeout = 60 * time.Second
	// cleanupTimeout bounds deleting it when the test ends.
	cleanupTimeout = 30 * time.Second
)

var (
	nameSeq atomic.Uint64
	// processTag tells this process's names from those of other processes and earlier runs
	// (the emulators outlive test processes, and pids are reused).
	processTag = sync.OnceValue(func() string {
		b := make([]byte, 4)
		if _, err := rand.Read(b); err != nil {
			return fmt.Sprintf("%x%x", os.Getpid(), time.Now().UnixNano()&0xffff)
		}
		return hex.EncodeToString(b)
	})
)

// UniqueName returns a name unique per call, test and process, valid as a Kinesis stream name
// and a DynamoDB table name ([a-zA-Z0-9_.-], at most 128 characters): prefix, the test's name,
// a per-process random tag and a sequence number.
func UniqueName(t testing.TB, prefix string) string {
	t.Helper()
	p := sanitizeName(prefix, 32)
	if p == "" {
		p = "t"
	}
	name := fmt.Sprintf("%s-%s-%s-%d", p, sanitizeName(t.Name(), 48), processTag(), nameSeq.Add(1))
	return strings.ReplaceAll(name, "--", "-")
}

// sanitizeName maps runs of characters outside [a-zA-Z0-9_.] to one '-' and keeps at most max
// characters.
func sanitizeName(s string, max int) string {
	var b strings.Builder
	dash := false
	for _, c := range s {
		if c == '_' || c == '.' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
			b.WriteRune(c)
			dash = false
		} else if !dash {
			b.WriteByte('-')
			dash = true
		}
	}
	out := strings.Trim(b.String(), "-")
	if len(out) > max {
		out = strings.TrimRight(out[:max], "-")
	}
	return out
}

// CreateStream creates a uniquely named provisioned stream with the given number of shards on c,
// waits until it is ACTIVE and deletes it when the test ends. It returns the stream name.
func CreateStream(t testing.TB, c *kinesis.Client, shards int32) string {
	t.Helper()
	if shards < 1 {
		t.Fatalf("testenv: CreateStream: shards must be at least 1, got %d", shards)
	}
	name := UniqueName(t, "stream")
	ctx, cancel := context.WithTimeout(t.Context(), setupTimeout)
	defer cancel()
	if _, err := c.CreateStream(ctx, &kinesis.CreateStreamInput{
		StreamName: aws.String(name),
		ShardCount: aws.Int32(shards),
	}); err != nil {
		t.Fatalf("testenv: CreateStream %s: %v", name, err)
	}
	t.Cleanup(func() { deleteStream(t, c, name) })
	if err := WaitStreamActive(ctx, c, name); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return name
}

// WaitStreamActive polls DescribeStreamSummary until the stream is ACTIVE, ctx ends (bound it
// with a timeout), the stream is DELETING, or a call fails other than with ResourceNotFound.
func WaitStreamActive(ctx context.Context, c *kinesis.Client, name string) error {
	last := "not described yet"
	for {
		out, err := c.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(name)})
		var notFound *types.ResourceNotFoundException
		switch {
		case err == nil:
			status := out.StreamDescriptionSummary.StreamStatus
			if status == types.StreamStatusActive {
				return nil
			}
			if status == types.StreamStatusDeleting {
				return fmt.Errorf("stream %s is DELETING, it will not become ACTIVE", name)
			}
			last = "status " + string(status)
		case errors.As(err, &notFound):
			last = "not found"
		case ctx.Err() != nil:
			return fmt.Errorf("stream %s not ACTIVE (last: %s): %w", name, last, ctx.Err())
		default:
			return fmt.Errorf("waiting for stream %s to be ACTIVE: %w", name, err)
		}
		if err := sleep(ctx, pollInterval); err != nil {
			return fmt.Errorf("stream %s not ACTIVE (last: %s): %w", name, last, err)
		}
	}
}

func deleteStream(t testing.TB, c *kinesis.Client, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	for {
		_, err := c.DeleteStream(ctx, &kinesis.DeleteStreamInput{
			StreamName:              aws.String(name),
			EnforceConsumerDeletion: aws.Bool(true),
		})
		var notFound *types.ResourceNotFoundException
		var inUse *types.ResourceInUseException
		switch {
		case err == nil, errors.As(err, &notFound):
			return
		case errors.As(err, &inUse) && sleep(ctx, pollInterval) == nil:
			// CREATING or UPDATING: try again when it settles.
		default:
			t.Errorf("testenv: cleanup: DeleteStream %s: %v", name, err)
			return
		}
	}
}

// CreateTable creates a uniquely named PAY_PER_REQUEST table on c with hash key StreamID (S) and
// range key ShardID (S), waits until it is ACTIVE and deletes it when the test ends. It returns
// the table name.
func CreateTable(t testing.TB, c *dynamodb.Client) string {
	t.Helper()
	name := UniqueName(t, "table")
	ctx, cancel := context.WithTimeout(t.Context(), setupTimeout)
	defer cancel()
	if _, err := c.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName: aws.String(name),
		AttributeDefinitions: []ddbtypes.AttributeDefinition{
			{AttributeName: aws.String("StreamID"), AttributeType: ddbtypes.ScalarAttributeTypeS},
			{AttributeName: aws.String("ShardID"), AttributeType: ddbtypes.ScalarAttributeTypeS},
		},
		KeySchema: []ddbtypes.KeySchemaElement{
			{AttributeName: aws.String("StreamID"), KeyType: ddbtypes.KeyTypeHash},
			{AttributeName: aws.String("ShardID"), KeyType: ddbtypes.KeyTypeRange},
		},
		BillingMode: ddbtypes.BillingModePayPerRequest,
	}); err != nil {
		t.Fatalf("testenv: CreateTable %s: %v", name, err)
	}
	t.Cleanup(func() { deleteTable(t, c, name) })
	if err := WaitTableActive(ctx, c, name); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return name
}

// WaitTableActive polls DescribeTable until the table is ACTIVE, ctx ends (bound it with a
// timeout), the table is DELETING, or a call fails other than with ResourceNotFound.
func WaitTableActive(ctx context.Context, c *dynamodb.Client, name string) error {
	last := "not described yet"
	for {
		out, err := c.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(name)})
		var notFound *ddbtypes.ResourceNotFoundException
		switch {
		case err == nil:
			status := out.Table.TableStatus
			if status == ddbtypes.TableStatusActive {
				return nil
			}
			if status == ddbtypes.TableStatusDeleting {
				return fmt.Errorf("table %s is DELETING, it will not become ACTIVE", name)
			}
			last = "status " + string(status)
		case errors.As(err, &notFound):
			last = "not found"
		case ctx.Err() != nil:
			return fmt.Errorf("table %s not ACTIVE (last: %s): %w", name, last, ctx.Err())
		default:
			return fmt.Errorf("waiting for table %s to be ACTIVE: %w", name, err)
		}
		if err := sleep(ctx, pollInterval); err != nil {
			return fmt.Errorf("table %s not ACTIVE (last: %s): %w", name, last, err)
		}
	}
}

func deleteTable(t testing.TB, c *dynamodb.Client, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	for {
		_, err := c.DeleteTable(ctx, &dynamodb.DeleteTableInput{TableName: aws.String(name)})
		var notFound *ddbtypes.ResourceNotFoundException
		var inUse *ddbtypes.ResourceInUseException
		switch {
		case err == nil, errors.As(err, &notFound):
			return
		case errors.As(err, &inUse) && sleep(ctx, pollInterval) == nil:
			// CREATING or UPDATING: try again when it settles.
		default:
			t.Errorf("testenv: cleanup: DeleteTable %s: %v", name, err)
			return
		}
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}
