package input

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/benthos-kinesis/benthos-kinesis/checkpointer"
	"github.com/benthos-kinesis/benthos-kinesis/internal/testenv"
)

// partitionable wraps the DynamoDB client and, while cut, fails every call
// at once, as a network partition between one worker and DynamoDB would:
// an in-process fault injection, since no emulator can cut one client off.
type partitionable struct {
	checkpointer.API
	cut atomic.Bool
}

var errPartitioned = errors.New("injected: DynamoDB unreachable")

func (p *partitionable) Query(ctx context.Context, in *dynamodb.QueryInput, o ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	if p.cut.Load() {
		return nil, errPartitioned
	}
	return p.API.Query(ctx, in, o...)
}

func (p *partitionable) PutItem(ctx context.Context, in *dynamodb.PutItemInput, o ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	if p.cut.Load() {
		return nil, errPartitioned
	}
	return p.API.PutItem(ctx, in, o...)
}

func (p *partitionable) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, o ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	if p.cut.Load() {
		return nil, errPartitioned
	}
	return p.API.UpdateItem(ctx, in, o...)
}

func (p *partitionable) GetItem(ctx context.Context, in *dynamodb.GetItemInput, o ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	if p.cut.Load() {
		return nil, errPartitioned
	}
	return p.API.GetItem(ctx, in, o...)
}

func (p *partitionable) DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, o ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error) {
	if p.cut.Load() {
		return nil, errPartitioned
	}
	return p.API.DeleteItem(ctx, in, o...)
}

// deliveryLog records which worker delivered which record, in the order of
// this process's clock.
type deliveryLog struct {
	mu     sync.Mutex
	events []deliveryEvent
}

type deliveryEvent struct {
	worker string
	record int
	at     time.Time
}

func (l *deliveryLog) add(worker string, batch service.MessageBatch) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	for _, m := range batch {
		b, _ := m.AsBytes()
		n, _ := strconv.Atoi(string(b))
		l.events = append(l.events, deliveryEvent{worker, n, now})
	}
}

// A worker cut off from DynamoDB stops delivering before the other takes
// its shard, and once the partition heals its stale lease is refused: no
// record is delivered by both workers after the take-over began.
func TestIntegrationPartitionedWorkerFencesItself(t *testing.T) {
	kc := testenv.Kinesalite(t)
	stream := testenv.CreateStream(t, kc, 1)
	table := testenv.CreateTable(t, testenv.DynamoDB(t))
	yaml := workerYAML(t, stream, table)
	log := &deliveryLog{}

	start := func(label string, api checkpointer.API) *kinesisInput {
		in := testInput(t, yaml, func(in *kinesisInput) {
			if api != nil {
				in.clients.dynamodb = func() checkpointer.API { return api }
				in.clients.heartbeats = nil // the heartbeat too: another client of api
			}
		}, true)
		done := make(chan struct{})
		go func() {
			defer close(done)
			for {
				b, ackFn, err := in.ReadBatch(context.Background())
				if err != nil {
					return
				}
				log.add(label, b)
				_ = ackFn(context.Background(), nil)
			}
		}()
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_ = in.Close(ctx)
			<-done
		})
		return in
	}

	cutA := &partitionable{API: testenv.DynamoDB(t)}
	a := start("a", cutA)
	putRecords(t, kc, stream, 0, 100)
	waitFor(t, 30*time.Second, "a to read the first records", func() bool {
		log.mu.Lock()
		defer log.mu.Unlock()
		return len(log.events) >= 100
	})
	b := start("b", nil)

	// Cut a off; keep writing while b takes over.
	cutA.cut.Store(true)
	cutAt := time.Now()
	next := 100
	waitFor(t, time.Minute, "b to own the shard", func() bool {
		putRecords(t, kc, stream, next, next+10)
		next += 10
		return b.ownedCount.Load() == 1
	})
	takeover := time.Since(cutAt)
	// Heal the partition: a must find its lease gone and deliver nothing.
	cutA.cut.Store(false)
	waitFor(t, time.Minute, "a to drop the lost shard", func() bool { return a.ownedCount.Load() == 0 })
	putRecords(t, kc, stream, next, next+100)
	next += 100
	waitFor(t, time.Minute, "every record", func() bool {
		log.mu.Lock()
		defer log.mu.Unlock()
		seen := map[int]bool{}
		for _, e := range log.events {
			seen[e.record] = true
		}
		return len(seen) == next
	})

	log.mu.Lock()
	defer log.mu.Unlock()
	var lastA, firstB time.Time
	for _, e := range log.events {
		if e.worker == "a" && e.at.After(lastA) {
			lastA = e.at
		}
		if e.worker == "b" && (firstB.IsZero() || e.at.Before(firstB)) {
			firstB = e.at
		}
	}
	if !lastA.Before(firstB) {
		t.Fatalf("a delivered at %v, after b began at %v: two workers delivered the shard", lastA.Sub(cutAt), firstB.Sub(cutAt))
	}
	t.Logf("a's last delivery %v after the cut, b's first %v, take-over %v", lastA.Sub(cutAt).Round(time.Millisecond), firstB.Sub(cutAt).Round(time.Millisecond), takeover.Round(time.Millisecond))
}
