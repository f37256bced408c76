package input

import (
	"context"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/benthos-kinesis/benthos-kinesis/checkpointer"
	"github.com/benthos-kinesis/benthos-kinesis/internal/testenv"
)

// Found by the fault suite (internal/chaos, kill -9 every 10 s): a dead
// worker's shard waited 21 s for a new reader instead of about 7. Once a
// worker had judged the owner dead, an observer removed the dead worker's
// row (two lease periods after its last beat), and this worker then saw
// an owner without a row: the grace period of an owner never seen, one
// more lease period. A worker judged dead must stay dead when its row goes.
func TestLivenessDeadWorkerStaysDeadWhenItsRowIsRemoved(t *testing.T) {
	ddb := testenv.DynamoDB(t)
	name := testenv.CreateTable(t, ddb)
	ctx := context.Background()
	const lease = 6 * time.Second
	table := func(id string) *checkpointer.Table {
		tb, err := checkpointer.New(ddb, name, id, checkpointer.WithLeasePeriod(lease))
		if err != nil {
			t.Fatal(err)
		}
		return tb
	}
	self, other := table("self"), table("other")
	for _, tb := range []*checkpointer.Table{self, other} {
		if err := tb.Heartbeat(ctx, 1, []string{"s"}); err != nil {
			t.Fatal(err)
		}
	}
	conf := inputConfig{leasePeriod: lease, rebalancePeriod: time.Second, commitPeriod: time.Second}
	c := newCoordinator(conf, service.MockResources(), newInputMetrics(service.MockResources().Metrics()), nil, self, &consumerDeps{gate: newGate()})
	now := time.Unix(1_000_000, 0)
	c.now = func() time.Time { return now }

	if err := c.observe(ctx); err != nil {
		t.Fatal(err)
	}
	if alive, grace := c.liveness("other", now); !alive || grace {
		t.Fatalf("other just beat: alive %v grace %v", alive, grace)
	}
	now = now.Add(lease + time.Second) // other's counter has not moved since
	if err := c.observe(ctx); err != nil {
		t.Fatal(err)
	}
	if alive, grace := c.liveness("other", now); alive || grace {
		t.Fatalf("other still for a lease period: alive %v grace %v, want dead", alive, grace)
	}
	// Another observer removes the dead worker's row.
	if err := self.RemoveDeadWorker(ctx, "other", 1); err != nil {
		t.Fatal(err)
	}
	now = now.Add(time.Second)
	if err := c.observe(ctx); err != nil {
		t.Fatal(err)
	}
	if alive, grace := c.liveness("other", now); alive || grace {
		t.Fatalf("after its row was removed: alive %v grace %v, want still dead", alive, grace)
	}
	// An owner this worker never saw keeps its grace period.
	if alive, grace := c.liveness("never-seen", now); alive || !grace {
		t.Fatalf("never seen owner: alive %v grace %v, want in grace", alive, grace)
	}
}
