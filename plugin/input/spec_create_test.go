package input_test

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/benthos-kinesis/benthos-kinesis/checkpointer"
	"github.com/benthos-kinesis/benthos-kinesis/internal/configtest"
	"github.com/benthos-kinesis/benthos-kinesis/internal/testenv"
)

// createExpr is what a user types to start a config that reads a stream.
const createExpr = "aws_kinesis//stdout"

// The printed config lints once the two things that have no default are
// filled in (a stream, a table), and only those are reported before: no
// example value stands in for an optional field.
func TestCreateInputConfigLints(t *testing.T) {
	env := configtest.Env(t)
	printed := configtest.Created(t, createExpr)
	if got, want := strings.Join(configtest.Lint(t, env, printed), "\n"),
		"field streams is required: at least one stream to read\ndynamodb.table is required: it holds the leases and checkpoints"; got != want {
		t.Fatalf("lints of the printed config:\n%s\nwant only:\n%s\nconfig:\n%s", got, want, printed)
	}
	filled := fillInput(t, printed, "foo", "foo_checkpoints", "", "")
	if lints := configtest.Lint(t, env, filled); len(lints) > 0 {
		t.Fatalf("lints of the printed config with a stream and a table: %q", lints)
	}
	// Optional fields print their defaults, never their examples.
	for _, example := range []string{"production", "AKIAIOSFODNN7EXAMPLE", "${AWS_SECRET}", "arn:aws:iam::", "eu-west-1", "2026-01-31"} {
		if strings.Contains(printed, example) {
			t.Errorf("the printed config holds the example %q", example)
		}
	}
}

// fillInput makes the only edits a user must make to the printed config:
// a stream and a table, and (against the emulators) the endpoints.
func fillInput(t *testing.T, printed, stream, table, kinesisEndpoint, dynamoEndpoint string) string {
	t.Helper()
	doc := configtest.ReplaceLine(t, printed, "    streams: [] # No default (required)", "    streams: [ "+stream+" ]")
	doc = configtest.ReplaceLine(t, doc, `      table: ""`, "      table: "+table)
	if kinesisEndpoint != "" {
		doc = configtest.ReplaceLine(t, doc, `    endpoint: ""`, "    endpoint: "+kinesisEndpoint)
	}
	if dynamoEndpoint != "" {
		doc = configtest.ReplaceLine(t, doc, `      endpoint: ""`, "      endpoint: "+dynamoEndpoint)
	}
	return doc
}

// The printed input, every field at its printed default but for the stream,
// the table and the emulators' endpoints, reads a record.
func TestCreateInputConfigRuns(t *testing.T) {
	kc := testenv.Kinesalite(t)
	dc := testenv.DynamoDB(t)
	stream := testenv.CreateStream(t, kc, 1)
	table := testenv.CreateTable(t, dc)
	// Credentials come from the environment, as they would for a user.
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	t.Setenv("AWS_REGION", "us-east-1")
	env := configtest.Env(t)
	doc := fillInput(t, configtest.Created(t, createExpr), stream, table, testenv.KinesaliteEndpoint(t), testenv.DynamoDBEndpoint(t))
	if lints := configtest.Lint(t, env, doc); len(lints) > 0 {
		t.Fatalf("lints: %q", lints)
	}
	want := "created-" + strconv.FormatInt(time.Now().UnixNano(), 10)
	putRecord(t, kc, stream, want)
	readOne(t, env, configtest.Section(t, doc, "input"), want)
}

// The built-in input's full default config of Redpanda Connect 4.107 (with
// poll_period and enhanced_fan_out) runs unchanged, its endpoints from the
// SDK's standard variables.
func TestReference4107InputConfigRuns(t *testing.T) {
	ref := testenv.SharedReference(t, "builtin-aws_kinesis-input-4.107.yaml")
	kc := testenv.Kinesalite(t)
	dc := testenv.DynamoDB(t)
	// The names the reference config holds; both are left in place for the
	// next run (the reader resumes after its checkpoints, and this run
	// looks for its own record only).
	testenv.EnsureStream(t, kc, "demo", 2)
	ensureTable(t, dc, "demo_checkpoints")
	t.Setenv("AWS_ENDPOINT_URL_KINESIS", testenv.KinesaliteEndpoint(t))
	t.Setenv("AWS_ENDPOINT_URL_DYNAMODB", testenv.DynamoDBEndpoint(t))
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	t.Setenv("AWS_REGION", "us-east-1")
	env := configtest.Env(t)
	if lints := configtest.Lint(t, env, ref+"output:\n  drop: {}\n"); len(lints) > 0 {
		t.Fatalf("lints: %q", lints)
	}
	want := "ref4107-" + strconv.FormatInt(time.Now().UnixNano(), 10)
	putRecord(t, kc, "demo", want)
	readOne(t, env, configtest.Section(t, ref, "input"), want)
}

// Every reference config of the built-in components lints unchanged in this
// project's environment.
func TestReferenceConfigsLint(t *testing.T) {
	env := configtest.Env(t)
	for _, c := range []struct{ file, complete string }{
		{"builtin-aws_kinesis-input.yaml", "output:\n  drop: {}\n"},
		{"builtin-aws_kinesis-input-4.107.yaml", "output:\n  drop: {}\n"},
		{"builtin-aws_kinesis-output.yaml", "input:\n  stdin: {}\n"},
	} {
		t.Run(c.file, func(t *testing.T) {
			if lints := configtest.Lint(t, env, testenv.SharedReference(t, c.file)+c.complete); len(lints) > 0 {
				t.Fatalf("lints: %q", lints)
			}
		})
	}
}

func putRecord(t *testing.T, kc *kinesis.Client, stream, data string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if _, err := kc.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String(stream), Data: []byte(data), PartitionKey: aws.String(data)}); err != nil {
		t.Fatalf("put a record to %s: %v", stream, err)
	}
}

// readOne runs the input config (a component, as under input:) until it
// delivers a message holding want.
func readOne(t *testing.T, env *service.Environment, inputYAML, want string) {
	t.Helper()
	sb := env.NewStreamBuilder()
	if err := sb.SetLoggerYAML("level: WARN"); err != nil {
		t.Fatal(err)
	}
	if err := sb.AddInputYAML(inputYAML); err != nil {
		t.Fatalf("input config: %v\n%s", err, inputYAML)
	}
	got := make(chan struct{})
	var once sync.Once
	if err := sb.AddConsumerFunc(func(_ context.Context, m *service.Message) error {
		if b, _ := m.AsBytes(); string(b) == want {
			once.Do(func() { close(got) })
		}
		return nil
	}); err != nil {
		t.Fatal(err)
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
	timeout := time.NewTimer(time.Minute)
	defer timeout.Stop()
	select {
	case <-got:
	case err := <-ran:
		t.Fatalf("the stream ended before the record was read: %v", err)
	case <-timeout.C:
		t.Fatal("the record was not read within a minute")
	}
}

// ensureTable creates the lease table name as dynamodb.create would, unless
// it exists.
func ensureTable(t *testing.T, dc *dynamodb.Client, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	tbl, err := checkpointer.New(dc, name, "test")
	if err != nil {
		t.Fatal(err)
	}
	if err := tbl.EnsureTable(ctx, true, checkpointer.BillingPayPerRequest, 0, 0); err != nil {
		t.Fatalf("ensure table %s: %v", name, err)
	}
}
