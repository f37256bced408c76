package input_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	_ "github.com/redpanda-data/benthos/v4/public/components/io"
	_ "github.com/redpanda-data/benthos/v4/public/components/pure"
	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/benthos-kinesis/benthos-kinesis/checkpointer"
	"github.com/benthos-kinesis/benthos-kinesis/internal/components"
	"github.com/benthos-kinesis/benthos-kinesis/internal/testenv"
)

// createExpr is what a user types to start a config that reads a stream.
const createExpr = "aws_kinesis//stdout"

var (
	createOnce sync.Once
	createOut  string
	createErr  error
)

// created is what `benthos-kinesis create aws_kinesis//stdout` prints: the
// binary's CLI, built from testdata/createcli (create writes to the
// process's stdout, so it cannot run in this process).
func created(t *testing.T) string {
	t.Helper()
	createOnce.Do(func() {
		dir, err := os.MkdirTemp("", "benthos-kinesis-create")
		if err != nil {
			createErr = err
			return
		}
		defer func() { _ = os.RemoveAll(dir) }()
		bin := filepath.Join(dir, "benthos-kinesis")
		if out, err := exec.Command("go", "build", "-o", bin, "./testdata/createcli").CombinedOutput(); err != nil {
			createErr = errors.New("build testdata/createcli: " + err.Error() + "\n" + string(out))
			return
		}
		var stdout, stderr bytes.Buffer
		cmd := exec.Command(bin, "create", createExpr)
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			createErr = errors.New("create " + createExpr + ": " + err.Error() + "\n" + stderr.String())
			return
		}
		createOut = stdout.String()
	})
	if createErr != nil {
		t.Fatal(createErr)
	}
	return createOut
}

// newEnv is the binary's environment: the core pure and io components and
// this project's.
func newEnv(t *testing.T) *service.Environment {
	t.Helper()
	env := service.NewEnvironment()
	if err := components.Register(env); err != nil {
		t.Fatal(err)
	}
	return env
}

// lintConfig lints a whole config file's text as `benthos-kinesis lint`
// does, and returns what each lint says.
func lintConfig(t *testing.T, env *service.Environment, yaml string) []string {
	t.Helper()
	err := env.NewStreamBuilder().SetYAML(yaml)
	if err == nil {
		return nil
	}
	var lints service.LintError
	if !errors.As(err, &lints) {
		t.Fatalf("config does not parse: %v", err)
	}
	var whats []string
	for _, l := range lints {
		whats = append(whats, l.What)
	}
	return whats
}

// replaceLine replaces the one line of doc that is exactly old (indentation
// included) with repl, so that a test states each edit it makes to a printed
// config and no other.
func replaceLine(t *testing.T, doc, old, repl string) string {
	t.Helper()
	lines := strings.Split(doc, "\n")
	at := -1
	for i, l := range lines {
		if l == old {
			if at >= 0 {
				t.Fatalf("line %q appears more than once", old)
			}
			at = i
		}
	}
	if at < 0 {
		t.Fatalf("line %q not found in:\n%s", old, doc)
	}
	lines[at] = repl
	return strings.Join(lines, "\n")
}

// section is the component under a top-level key of a config (e.g. input:),
// dedented to stand alone.
func section(t *testing.T, doc, key string) string {
	t.Helper()
	_, rest, ok := strings.Cut(doc, "\n"+key+":\n")
	if !ok && strings.HasPrefix(doc, key+":\n") {
		rest, ok = strings.TrimPrefix(doc, key+":\n"), true
	}
	if !ok {
		t.Fatalf("config has no %s section", key)
	}
	var out []string
	for _, l := range strings.Split(rest, "\n") {
		if l != "" && !strings.HasPrefix(l, " ") {
			break // the next top-level key
		}
		out = append(out, strings.TrimPrefix(l, "  "))
	}
	return strings.Join(out, "\n")
}

// The printed config lints once the two things that have no default are
// filled in (a stream, a table), and only those are reported before: no
// example value stands in for an optional field.
func TestCreateInputConfigLints(t *testing.T) {
	env := newEnv(t)
	printed := created(t)
	if got, want := strings.Join(lintConfig(t, env, printed), "\n"),
		"field streams is required: at least one stream to read\ndynamodb.table is required: it holds the leases and checkpoints"; got != want {
		t.Fatalf("lints of the printed config:\n%s\nwant only:\n%s\nconfig:\n%s", got, want, printed)
	}
	filled := fillInput(t, printed, "foo", "foo_checkpoints", "", "")
	if lints := lintConfig(t, env, filled); len(lints) > 0 {
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
	doc := replaceLine(t, printed, "    streams: [] # No default (required)", "    streams: [ "+stream+" ]")
	doc = replaceLine(t, doc, `      table: ""`, "      table: "+table)
	if kinesisEndpoint != "" {
		doc = replaceLine(t, doc, `    endpoint: ""`, "    endpoint: "+kinesisEndpoint)
	}
	if dynamoEndpoint != "" {
		doc = replaceLine(t, doc, `      endpoint: ""`, "      endpoint: "+dynamoEndpoint)
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
	env := newEnv(t)
	doc := fillInput(t, created(t), stream, table, testenv.KinesaliteEndpoint(t), testenv.DynamoDBEndpoint(t))
	if lints := lintConfig(t, env, doc); len(lints) > 0 {
		t.Fatalf("lints: %q", lints)
	}
	want := "created-" + strconv.FormatInt(time.Now().UnixNano(), 10)
	putRecord(t, kc, stream, want)
	readOne(t, env, section(t, doc, "input"), want)
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
	env := newEnv(t)
	if lints := lintConfig(t, env, ref+"output:\n  drop: {}\n"); len(lints) > 0 {
		t.Fatalf("lints: %q", lints)
	}
	want := "ref4107-" + strconv.FormatInt(time.Now().UnixNano(), 10)
	putRecord(t, kc, "demo", want)
	readOne(t, env, section(t, ref, "input"), want)
}

// Every reference config of the built-in components lints unchanged in this
// project's environment.
func TestReferenceConfigsLint(t *testing.T) {
	env := newEnv(t)
	for _, c := range []struct{ file, complete string }{
		{"builtin-aws_kinesis-input.yaml", "output:\n  drop: {}\n"},
		{"builtin-aws_kinesis-input-4.107.yaml", "output:\n  drop: {}\n"},
		{"builtin-aws_kinesis-output.yaml", "input:\n  stdin: {}\n"},
	} {
		t.Run(c.file, func(t *testing.T) {
			if lints := lintConfig(t, env, testenv.SharedReference(t, c.file)+c.complete); len(lints) > 0 {
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
