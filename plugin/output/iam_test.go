package output

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/benthos-kinesis/benthos-kinesis/internal/awsdefs"
	"github.com/benthos-kinesis/benthos-kinesis/internal/awssession"
	"github.com/benthos-kinesis/benthos-kinesis/internal/testenv"
)

// TestMain checks, after the whole suite passed against the emulators, that resources/iam/
// output.json allows exactly the calls the output made (awsdefs.Main).
func TestMain(m *testing.M) {
	os.Exit(awsdefs.Main(m, awsdefs.Component{
		Name:     "aws_kinesis output",
		Services: []string{"Kinesis"},
		Policies: []awsdefs.PolicyCheck{{File: "output.json"}},
	}))
}

// A record over the PutRecords request budget goes alone through PutRecord. The fake-based tests
// (records_fake_test.go) cover that path with a client of their own; this one makes the call
// through the client the output builds from its config (awssession), so that the IAM check sees
// PutRecord. kinesalite's records are at most 1 MiB, so it refuses the record (ValidationException):
// the record fails alone, saying why, and the rest of the batch lands.
func TestIntegrationRecordOverRequestBudgetUsesPutRecord(t *testing.T) {
	kc := testenv.Kinesalite(t)
	stream := testenv.CreateStream(t, kc, 1)
	yaml := fmt.Sprintf(`
stream: %s
partition_key: ${! meta("key") }
max_record_size: 10485760
endpoint: %s
region: %s
credentials: {id: %s, secret: %s}
`, stream, testenv.KinesaliteEndpoint(t), testenv.Region, testenv.AccessKeyID, testenv.SecretAccessKey)
	pConf, err := Spec().ParseYAML(yaml, nil)
	if err != nil {
		t.Fatal(err)
	}
	sess, err := awssession.FromParsed(context.Background(), pConf)
	if err != nil {
		t.Fatal(err)
	}
	w := connectedWriter(t, yaml, kinesis.NewFromConfig(sess.Config))
	b := service.MessageBatch{sizedMsg("a1", "A", 100), sizedMsg("a2", "A", 5*mib+1), sizedMsg("a3", "A", 100)}
	failed := failedIndexes(t, b.Index(), writeFake(t, w, b))
	if len(failed) != 1 || !strings.Contains(failed[1], "refused by PutRecord") {
		t.Fatalf("failed %v, want message 1 alone, refused by PutRecord", failed)
	}
	recs := readStream(t, kc, stream)
	var got []string
	for _, shard := range recs {
		for _, r := range shard {
			tag, _, _ := strings.Cut(string(r.Data), "|")
			got = append(got, tag)
		}
	}
	if fmt.Sprint(got) != "[a1 a3]" {
		t.Fatalf("landed %v, want [a1 a3]", got)
	}
}
