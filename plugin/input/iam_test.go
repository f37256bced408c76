package input

import (
	"context"
	"errors"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/benthos-kinesis/benthos-kinesis/checkpointer"
	"github.com/benthos-kinesis/benthos-kinesis/internal/awsdefs"
	"github.com/benthos-kinesis/benthos-kinesis/internal/testenv"
)

// fanOutNotBuilt is why the fan-out actions of input-fanout.json are never called: reading with
// SubscribeToShard is not built yet; the policy is ready for when it is.
const fanOutNotBuilt = "enhanced fan-out reading (SubscribeToShard) is not built yet"

// TestMain checks, after the whole suite passed against the emulators, that resources/iam allows
// exactly the calls the input made (awsdefs.Main). The two tests below make the calls that the
// rest of the suite makes only by chance or not at all: CreateTable and the read-back after a
// failed condition.
func TestMain(m *testing.M) {
	os.Exit(awsdefs.Main(m, awsdefs.Component{
		Name:     "aws_kinesis input",
		Services: []string{"Kinesis", "DynamoDB"},
		Policies: []awsdefs.PolicyCheck{
			{File: "input-polling.json"},
			{File: "input-fanout.json", Exempt: map[string]string{
				"kinesis:DescribeStreamConsumer": fanOutNotBuilt,
				"kinesis:ListStreamConsumers":    fanOutNotBuilt,
				"kinesis:RegisterStreamConsumer": fanOutNotBuilt,
				"kinesis:SubscribeToShard":       fanOutNotBuilt,
			}},
		},
	}))
}

// With dynamodb.create: true the input creates a missing table and reads through it.
func TestIntegrationCreatesItsTable(t *testing.T) {
	kc := testenv.Kinesalite(t)
	db := testenv.DynamoDB(t)
	stream := testenv.CreateStream(t, kc, 1)
	table := testenv.UniqueName(t, "created")
	t.Cleanup(func() { // registered first: runs after the worker has stopped
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := db.DeleteTable(ctx, &dynamodb.DeleteTableInput{TableName: aws.String(table)}); err != nil {
			t.Errorf("delete table %s: %v", table, err)
		}
	})
	yaml := strings.Replace(workerYAML(t, stream, table), "\ndynamodb:\n", "\ndynamodb:\n  create: true\n", 1)
	got := newReceived()
	startWorker(t, "a", yaml, got)
	putRecords(t, kc, stream, 0, 10)
	waitFor(t, time.Minute, "10 records", func() bool { d, _ := got.snapshot(); return d == 10 })
}

// stealOnCheckpoint is the input's lease-table client with a twist: just before the first
// checkpoint it gives the row to another owner (as a worker that judged this one dead would), so
// that the checkpoint's condition fails, deterministically. It reports the input's read-back.
type stealOnCheckpoint struct {
	checkpointer.API
	db    *dynamodb.Client // the test's own
	table string

	mu       sync.Mutex
	stolen   bool
	writeErr error         // what the checkpoint after the theft returned
	readBack chan struct{} // closed at the first GetItem after the theft
}

func (s *stealOnCheckpoint) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, o ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	s.mu.Lock()
	steal := !s.stolen && slices.Contains(slices.Collect(maps.Values(in.ExpressionAttributeNames)), checkpointer.AttrSequenceNumber)
	s.stolen = s.stolen || steal
	s.mu.Unlock()
	if !steal {
		return s.API.UpdateItem(ctx, in, o...)
	}
	if _, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:        aws.String(s.table),
		Key:              in.Key,
		UpdateExpression: aws.String("SET #c = :c, #e = #e + :one"),
		ExpressionAttributeNames: map[string]string{
			"#c": checkpointer.AttrClientID, "#e": checkpointer.AttrEpoch,
		},
		ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{
			":c": &ddbtypes.AttributeValueMemberS{Value: "intruder"}, ":one": &ddbtypes.AttributeValueMemberN{Value: "1"},
		},
	}); err != nil {
		return nil, err
	}
	out, err := s.API.UpdateItem(ctx, in, o...)
	s.mu.Lock()
	s.writeErr = err
	s.mu.Unlock()
	return out, err
}

func (s *stealOnCheckpoint) GetItem(ctx context.Context, in *dynamodb.GetItemInput, o ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	s.mu.Lock()
	if s.stolen {
		select {
		case <-s.readBack:
		default:
			close(s.readBack)
		}
	}
	s.mu.Unlock()
	return s.API.GetItem(ctx, in, o...)
}

// A checkpoint whose condition fails (the shard changed owner in the table) reads the row back to
// learn what became of it, through the input's own client (so that the IAM check sees GetItem).
func TestIntegrationFailedCheckpointReadsTheRowBack(t *testing.T) {
	kc := testenv.Kinesalite(t)
	db := testenv.DynamoDB(t)
	stream := testenv.CreateStream(t, kc, 1)
	table := testenv.CreateTable(t, db)
	steal := &stealOnCheckpoint{db: db, table: table, readBack: make(chan struct{})}
	in := testInput(t, workerYAML(t, stream, table), func(in *kinesisInput) {
		steal.API = in.clients.dynamodb()
		in.clients.dynamodb = func() checkpointer.API { return steal }
	}, true)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			_, ackFn, err := in.ReadBatch(context.Background())
			if err != nil {
				return
			}
			_ = ackFn(context.Background(), nil)
		}
	}()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = in.Close(ctx) // its lease is lost: the release may fail, which is not what this tests
		<-done
	})
	putRecords(t, kc, stream, 0, 10)
	select {
	case <-steal.readBack:
	case <-time.After(time.Minute):
		t.Fatal("no GetItem within a minute of the stolen checkpoint")
	}
	steal.mu.Lock()
	defer steal.mu.Unlock()
	var ccf *ddbtypes.ConditionalCheckFailedException
	if !errors.As(steal.writeErr, &ccf) {
		t.Fatalf("the checkpoint after the theft returned %v, want a failed condition", steal.writeErr)
	}
}
