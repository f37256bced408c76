package output_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/benthos-kinesis/benthos-kinesis/internal/configtest"
	"github.com/benthos-kinesis/benthos-kinesis/internal/testenv"
)

// createExpr is what a user types to start a config that writes a stream.
const createExpr = "stdin//aws_kinesis"

// The config `create` prints lints as it is, and then runs against the
// emulators with every field at its printed default but the stream and the
// endpoint: one message is written.
func TestCreateOutputConfigLintsAndRuns(t *testing.T) {
	env := configtest.Env(t)
	printed := configtest.Created(t, createExpr)
	if lints := configtest.Lint(t, env, printed); len(lints) > 0 {
		t.Fatalf("lints of the printed config: %q\n%s", lints, printed)
	}
	// Optional fields print their defaults, never their examples.
	for _, example := range []string{"production", "AKIAIOSFODNN7EXAMPLE", "${AWS_SECRET}", "arn:aws:iam::", "eu-west-1", `meta("hash_key")`} {
		if strings.Contains(printed, example) {
			t.Errorf("the printed config holds the example %q", example)
		}
	}

	kc := testenv.Kinesalite(t)
	stream := testenv.CreateStream(t, kc, 1)
	// Credentials come from the environment, as they would for a user.
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	t.Setenv("AWS_REGION", "us-east-1")
	doc := configtest.ReplaceLine(t, printed, "    stream: foo # No default (required)", "    stream: "+stream)
	doc = configtest.ReplaceLine(t, doc, `    endpoint: ""`, "    endpoint: "+testenv.KinesaliteEndpoint(t))
	if lints := configtest.Lint(t, env, doc); len(lints) > 0 {
		t.Fatalf("lints: %q", lints)
	}

	sb := env.NewStreamBuilder()
	if err := sb.SetLoggerYAML("level: WARN"); err != nil {
		t.Fatal(err)
	}
	produce, err := sb.AddProducerFunc()
	if err != nil {
		t.Fatal(err)
	}
	if err := sb.AddOutputYAML(configtest.Section(t, doc, "output")); err != nil {
		t.Fatalf("output config: %v", err)
	}
	st, err := sb.Build()
	if err != nil {
		t.Fatal(err)
	}
	ran := make(chan error, 1)
	go func() { ran <- st.Run(t.Context()) }()
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := st.Stop(ctx); err != nil {
			t.Errorf("stop: %v", err)
		}
	}()
	want := "created-" + strconv.FormatInt(time.Now().UnixNano(), 10)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	// produce returns once the output has acknowledged the message.
	if err := produce(ctx, service.NewMessage([]byte(want))); err != nil {
		t.Fatalf("write: %v", err)
	}
	if got := readShard(ctx, t, kc, stream); len(got) != 1 || got[0] != want {
		t.Fatalf("the stream holds %q, want [%q]", got, want)
	}
}

// readShard is the data of every record of the first shard of a one-shard
// stream.
func readShard(ctx context.Context, t *testing.T, kc *kinesis.Client, stream string) []string {
	t.Helper()
	it, err := kc.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{
		StreamName: aws.String(stream), ShardId: aws.String("shardId-000000000000"), ShardIteratorType: types.ShardIteratorTypeTrimHorizon,
	})
	if err != nil {
		t.Fatalf("shard iterator: %v", err)
	}
	var got []string
	iter := it.ShardIterator
	for iter != nil {
		out, err := kc.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter})
		if err != nil {
			t.Fatalf("get records: %v", err)
		}
		for _, r := range out.Records {
			got = append(got, string(r.Data))
		}
		if len(out.Records) == 0 && aws.ToInt64(out.MillisBehindLatest) == 0 {
			break // at the tip of an open shard
		}
		iter = out.NextShardIterator
	}
	return got
}
