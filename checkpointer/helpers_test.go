package checkpointer

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/benthos-kinesis/benthos-kinesis/internal/testenv"
)

// env is one fresh lease table on dynalite and three workers on it.
type env struct {
	t          *testing.T
	c          *dynamodb.Client
	table      string
	w1, w2, w3 *Table
}

func newEnv(t *testing.T) *env {
	t.Helper()
	c := testenv.DynamoDB(t)
	e := &env{t: t, c: c, table: testenv.CreateTable(t, c)}
	e.w1 = e.worker("w1")
	e.w2 = e.worker("w2")
	e.w3 = e.worker("w3")
	return e
}

func (e *env) worker(id string, opts ...Option) *Table {
	return e.workerOn(e.c, id, opts...)
}

func (e *env) workerOn(api API, id string, opts ...Option) *Table {
	e.t.Helper()
	w, err := New(api, e.table, id, opts...)
	if err != nil {
		e.t.Fatal(err)
	}
	return w
}

func ctxOf(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// row reads a shard row (Exists false when there is none).
func (e *env) row(stream, shard string) Lease {
	e.t.Helper()
	l, err := e.w1.Get(ctxOf(e.t), stream, shard)
	if err != nil {
		e.t.Fatalf("read row %s/%s: %v", stream, shard, err)
	}
	return l
}

// claim makes w claim a shard as observed now, and fails the test if it cannot.
func (e *env) claim(w *Table, stream, shard string) Lease {
	e.t.Helper()
	l, err := w.Claim(ctxOf(e.t), stream, shard, e.row(stream, shard))
	if err != nil {
		e.t.Fatalf("%s: %v", w.worker, err)
	}
	return l
}

// put writes a raw item, e.g. a row in the built-in input's format.
func (e *env) put(item map[string]types.AttributeValue) {
	e.t.Helper()
	if _, err := e.c.PutItem(ctxOf(e.t), &dynamodb.PutItemInput{TableName: aws.String(e.table), Item: item}); err != nil {
		e.t.Fatal(err)
	}
}

// builtinRow is a row exactly as the built-in aws_kinesis input writes it while it owns a shard;
// an empty clientID gives the row of its final checkpoint (no ClientID, no LeaseTimeout).
func builtinRow(stream, shard, seq, clientID string, leaseTimeout time.Time) map[string]types.AttributeValue {
	item := map[string]types.AttributeValue{
		"StreamID":       &types.AttributeValueMemberS{Value: stream},
		"ShardID":        &types.AttributeValueMemberS{Value: shard},
		"SequenceNumber": &types.AttributeValueMemberS{Value: seq},
	}
	if clientID != "" {
		item["ClientID"] = &types.AttributeValueMemberS{Value: clientID}
		item["LeaseTimeout"] = &types.AttributeValueMemberS{Value: leaseTimeout.Format(time.RFC3339Nano)}
	}
	return item
}

func wantErr(t *testing.T, err, want error) {
	t.Helper()
	switch {
	case want == nil && err != nil:
		t.Fatalf("unexpected error: %v", err)
	case want != nil && !errors.Is(err, want):
		t.Fatalf("error = %v, want one wrapping %v", err, want)
	}
}

func u64(n uint64) *uint64 { return &n }

// equalRows compares two rows, LeaseTimeout by instant.
func equalRows(a, b Lease) bool {
	if !a.LeaseTimeout.Equal(b.LeaseTimeout) {
		return false
	}
	a.LeaseTimeout, b.LeaseTimeout = time.Time{}, time.Time{}
	if (a.SubSequence == nil) != (b.SubSequence == nil) || a.SubSequence != nil && *a.SubSequence != *b.SubSequence {
		return false
	}
	a.SubSequence, b.SubSequence = nil, nil
	return a == b
}
