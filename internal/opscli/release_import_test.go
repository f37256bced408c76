package opscli

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/benthos-kinesis/benthos-kinesis/internal/testenv"
)

// TestReleaseEndToEnd: a running input hands a shard over to the tool, which frees it; the input
// claims it again, and no record is delivered twice.
func TestReleaseEndToEnd(t *testing.T) {
	t.Parallel()
	e := newFakeLenv(t, 1)
	e.put(shardID(0), "A", "B", "C")
	in := e.startInput()
	in.waitFor(t, 3, 30*time.Second)
	owned := e.row(shardID(0))
	if owned.ClientID == "" {
		t.Fatalf("the input owns nothing: %s", owned)
	}
	var res releaseJSON
	if err := e.runJSON(&res, "leases", "release", "--table", e.table, "--stream", e.stream, "--shard", shardID(0), "--wait", "30s"); err != nil {
		t.Fatalf("release: %v (%+v)", err, res)
	}
	if res.Result != "released" || res.Owner != owned.ClientID || res.Epoch == nil || *res.Epoch != owned.Epoch+1 {
		t.Errorf("release = %+v, want released by %s at epoch %d", res, owned.ClientID, owned.Epoch+1)
	}
	e.put(shardID(0), "D")
	got := in.waitFor(t, 4, 30*time.Second)
	if strings.Join(got, ",") != "A,B,C,D" {
		t.Errorf("delivered %v, want A,B,C,D once each", got)
	}
	if l := e.row(shardID(0)); l.ClientID != owned.ClientID || l.Epoch <= owned.Epoch+1 {
		t.Errorf("row %s: want the input to own it again at a later epoch", l)
	}
	// The tool's worker row is gone.
	workers, err := e.worker("x").Workers(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range workers {
		if strings.HasPrefix(w.ID, "operator-") {
			t.Errorf("the tool's worker row %s is still there", w.ID)
		}
	}
}

// TestReleaseNothingToDo: a free shard and a dead owner's shard have nothing to hand over.
func TestReleaseNothingToDo(t *testing.T) {
	t.Parallel()
	e := newLenv(t, 2)
	dead := e.worker("dead")
	if err := dead.Heartbeat(t.Context(), 1, nil); err != nil {
		t.Fatal(err)
	}
	e.claim(dead, shardID(1))
	for shard, want := range map[string]string{shardID(0): "not-owned", shardID(1): "owner-dead"} {
		var res releaseJSON
		if err := e.runJSON(&res, "leases", "release", "--table", e.table, "--stream", e.stream, "--shard", shard); err != nil {
			t.Fatal(err)
		}
		if res.Result != want {
			t.Errorf("%s: %+v, want %s", shard, res, want)
		}
	}
	if l := e.row(shardID(1)); l.ClientID != "dead" || l.HandoffTo != "" {
		t.Errorf("row %s: changed", l)
	}
}

// kclTable creates a KCL lease table (hash key leaseKey) holding items.
func kclTable(t *testing.T, c *dynamodb.Client, items ...map[string]dtypes.AttributeValue) string {
	t.Helper()
	name := testenv.UniqueName(t, "kcl")
	if _, err := c.CreateTable(t.Context(), &dynamodb.CreateTableInput{
		TableName:            aws.String(name),
		AttributeDefinitions: []dtypes.AttributeDefinition{{AttributeName: aws.String(kclLeaseKey), AttributeType: dtypes.ScalarAttributeTypeS}},
		KeySchema:            []dtypes.KeySchemaElement{{AttributeName: aws.String(kclLeaseKey), KeyType: dtypes.KeyTypeHash}},
		BillingMode:          dtypes.BillingModePayPerRequest,
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = c.DeleteTable(t.Context(), &dynamodb.DeleteTableInput{TableName: aws.String(name)}) })
	if err := testenv.WaitTableActive(t.Context(), c, name); err != nil {
		t.Fatal(err)
	}
	for _, it := range items {
		if _, err := c.PutItem(t.Context(), &dynamodb.PutItemInput{TableName: aws.String(name), Item: it}); err != nil {
			t.Fatal(err)
		}
	}
	return name
}

func kclItem(key, checkpoint string, sub int, owner string) map[string]dtypes.AttributeValue {
	return map[string]dtypes.AttributeValue{
		kclLeaseKey:    &dtypes.AttributeValueMemberS{Value: key},
		kclCheckpoint:  &dtypes.AttributeValueMemberS{Value: checkpoint},
		kclSubSequence: &dtypes.AttributeValueMemberN{Value: strconv.Itoa(sub)},
		kclOwner:       &dtypes.AttributeValueMemberS{Value: owner},
		"leaseCounter": &dtypes.AttributeValueMemberN{Value: "42"},
	}
}

// TestImportEndToEnd: the KCL's checkpoints become the table's rows, and an input started on
// them resumes where the KCL application stopped.
func TestImportEndToEnd(t *testing.T) {
	t.Parallel()
	e := newFakeLenv(t, 3)
	recs := e.put(shardID(0), "a0", "a1", "a2")
	e.put(shardID(1), "b0", "b1")
	e.put(shardID(2), "c0")
	kcl := kclTable(t, e.ddb,
		kclItem(shardID(0), recs[1].Seq, 0, "kcl-worker-1"),                                            // single-stream key: after a1
		kclItem("111122223333:"+e.stream+":1700000000:"+shardID(1), "TRIM_HORIZON", 0, "kcl-worker-2"), // multi-stream key
		kclItem(shardID(2), "SHARD_END", 0, ""),
		kclItem("111122223333:another-stream:1700000000:"+shardID(0), "TRIM_HORIZON", 0, ""), // another stream: skipped
	)
	var plan planResult
	if err := e.runJSON(&plan, "leases", "import", "--from-kcl", "--kcl-table", kcl, "--table", e.table, "--stream", e.stream, "--dry-run"); err != nil {
		t.Fatal(err)
	}
	if len(plan.Changes) != 3 || plan.Applied {
		t.Fatalf("plan = %+v", plan)
	}
	if l := e.row(shardID(0)); l.Exists {
		t.Fatalf("the dry run wrote %s", l)
	}
	out, _, err := e.run(strings.NewReader(""), false, "leases", "import", "--from-kcl", "--kcl-table", kcl, "--table", e.table, "--stream", e.stream, "--yes")
	if err != nil {
		t.Fatalf("import: %v\n%s", err, out)
	}
	if l := e.row(shardID(0)); l.SequenceNumber != recs[1].Seq || l.SubSequence != nil {
		t.Errorf("shard 0: %s, want the checkpoint %s", l, recs[1].Seq)
	}
	if l := e.row(shardID(1)); l.SequenceNumber != "" || !l.StartAt.Equal(oldestStart) {
		t.Errorf("shard 1: %s (start %v), want the oldest start", l, l.StartAt)
	}
	if l := e.row(shardID(2)); !l.Finished {
		t.Errorf("shard 2: %s, want finished", l)
	}
	got := e.startInput().waitFor(t, 3, 30*time.Second)
	seen := map[string]bool{}
	for _, g := range got {
		seen[g] = true
	}
	if len(got) != 3 || !seen["a2"] || !seen["b0"] || !seen["b1"] {
		t.Errorf("delivered %v, want a2, b0, b1", got)
	}
}

// TestImportRefusesLiveOwners: shards the inputs' live workers own are not overwritten without
// --force.
func TestImportRefusesLiveOwners(t *testing.T) {
	t.Parallel()
	e := newLenv(t, 1)
	e.put(shardID(0), "x")
	w := e.worker("live")
	e.beating(w)
	e.claim(w, shardID(0))
	kcl := kclTable(t, e.ddb, kclItem(shardID(0), "TRIM_HORIZON", 0, "kcl"))
	_, _, err := e.run(strings.NewReader(""), false, "leases", "import", "--from-kcl", "--kcl-table", kcl, "--table", e.table, "--stream", e.stream, "--yes")
	if err == nil || !strings.Contains(err.Error(), "refusing: live workers own "+shardID(0)) {
		t.Fatalf("error = %v, want a refusal", err)
	}
	if l := e.row(shardID(0)); l.ClientID != "live" || !l.StartAt.IsZero() {
		t.Errorf("row %s changed", l)
	}
	_, _, err = e.run(strings.NewReader(""), false, "leases", "import", "--from-kcl", "--kcl-table", kcl, "--table", e.table, "--stream", e.stream, "--yes", "--kcl-timestamp", "bad")
	if err == nil || !strings.Contains(err.Error(), "--kcl-timestamp must be RFC 3339") {
		t.Errorf("error = %v", err)
	}
}
