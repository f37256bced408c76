package opscli

import (
	"strings"
	"testing"

	"github.com/benthos-kinesis/benthos-kinesis/checkpointer"
	"github.com/benthos-kinesis/benthos-kinesis/internal/testenv"
)

func TestLeasesShowsOwnersEpochsAndWorkers(t *testing.T) {
	dc := testenv.DynamoDB(t)
	table := testenv.CreateTable(t, dc)
	w, err := checkpointer.New(dc, table, "worker-a")
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if err := w.Heartbeat(ctx, 3, []string{"s"}); err != nil {
		t.Fatal(err)
	}
	l, err := w.Claim(ctx, "s", "shardId-000000000001", checkpointer.Lease{Stream: "s", Shard: "shardId-000000000001"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Checkpoint(ctx, "s", "shardId-000000000001", l.Epoch, "4242", nil); err != nil {
		t.Fatal(err)
	}
	out, _, err := runCLI(t, Command(), "kinesis", "leases", "--table", table, "--stream", "s", "--dynamodb-endpoint", testenv.DynamoDBEndpoint(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range [][]string{
		{"s", "shardId-000000000001", "worker-a", "1", "leased", "-", "4242"},
		{"worker-a", "3", "1", "s"},
	} {
		found := false
		for _, line := range strings.Split(out, "\n") {
			if strings.Join(strings.Fields(line), " ") == strings.Join(want, " ") {
				found = true
			}
		}
		if !found {
			t.Errorf("output lacks the line %q:\n%s", strings.Join(want, " "), out)
		}
	}
}
