package checkpointer

import (
	"context"
	"sync/atomic"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
)

// CountingClient wraps an API and counts the calls made through it, successful or not (a failed
// conditional write is billed too). Retries made by the SDK inside one call count once. Tests and
// benchmarks use it to measure the table traffic, e.g. writes per shard per second.
type CountingClient struct {
	API

	puts, updates, deletes, queries, gets atomic.Int64
}

// NewCountingClient returns a CountingClient around api.
func NewCountingClient(api API) *CountingClient { return &CountingClient{API: api} }

// Counts is a snapshot of a CountingClient's counters.
type Counts struct {
	PutItem, UpdateItem, DeleteItem, Query, GetItem int64
}

// Writes is the number of write calls: PutItem + UpdateItem + DeleteItem.
func (c Counts) Writes() int64 { return c.PutItem + c.UpdateItem + c.DeleteItem }

// Reads is the number of read calls: Query (pages) + GetItem.
func (c Counts) Reads() int64 { return c.Query + c.GetItem }

// Counts returns the counters.
func (c *CountingClient) Counts() Counts {
	return Counts{
		PutItem:    c.puts.Load(),
		UpdateItem: c.updates.Load(),
		DeleteItem: c.deletes.Load(),
		Query:      c.queries.Load(),
		GetItem:    c.gets.Load(),
	}
}

// Writes returns the number of write calls so far.
func (c *CountingClient) Writes() int64 { return c.Counts().Writes() }

// Reset sets every counter to zero.
func (c *CountingClient) Reset() {
	c.puts.Store(0)
	c.updates.Store(0)
	c.deletes.Store(0)
	c.queries.Store(0)
	c.gets.Store(0)
}

// PutItem counts and forwards.
func (c *CountingClient) PutItem(ctx context.Context, in *dynamodb.PutItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	c.puts.Add(1)
	return c.API.PutItem(ctx, in, optFns...)
}

// UpdateItem counts and forwards.
func (c *CountingClient) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	c.updates.Add(1)
	return c.API.UpdateItem(ctx, in, optFns...)
}

// DeleteItem counts and forwards.
func (c *CountingClient) DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error) {
	c.deletes.Add(1)
	return c.API.DeleteItem(ctx, in, optFns...)
}

// Query counts (one per page) and forwards.
func (c *CountingClient) Query(ctx context.Context, in *dynamodb.QueryInput, optFns ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	c.queries.Add(1)
	return c.API.Query(ctx, in, optFns...)
}

// GetItem counts and forwards.
func (c *CountingClient) GetItem(ctx context.Context, in *dynamodb.GetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	c.gets.Add(1)
	return c.API.GetItem(ctx, in, optFns...)
}
