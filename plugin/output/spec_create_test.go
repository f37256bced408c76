package output_test

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	_ "github.com/redpanda-data/benthos/v4/public/components/io"
	_ "github.com/redpanda-data/benthos/v4/public/components/pure"
	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/benthos-kinesis/benthos-kinesis/internal/components"
	"github.com/benthos-kinesis/benthos-kinesis/internal/testenv"
)

// createExpr is what a user types to start a config that writes a stream.
const createExpr = "stdin//aws_kinesis"

// created is what `benthos-kinesis create stdin//aws_kinesis` prints: the
// binary's CLI, built from the input's testdata/createcli (create writes to
// the process's stdout, so it cannot run in this process).
func created(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "benthos-kinesis")
	if out, err := exec.Command("go", "build", "-o", bin, "../input/testdata/createcli").CombinedOutput(); err != nil {
		t.Fatalf("build createcli: %v\n%s", err, out)
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(bin, "create", createExpr)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("create %s: %v\n%s", createExpr, err, stderr.String())
	}
	return stdout.String()
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

// section is the component under a top-level key of a config (e.g.
// output:), dedented to stand alone.
func section(t *testing.T, doc, key string) string {
	t.Helper()
	_, rest, ok := strings.Cut(doc, "\n"+key+":\n")
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

// The config `create` prints lints as it is, and then runs against the
// emulators with every field at its printed default but the stream and the
// endpoint: one message is written.
func TestCreateOutputConfigLintsAndRuns(t *testing.T) {
	env := newEnv(t)
	printed := created(t)
	if lints := lintConfig(t, env, printed); len(lints) > 0 {
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
	doc := replaceLine(t, printed, "    stream: foo # No default (required)", "    stream: "+stream)
	doc = replaceLine(t, doc, `    endpoint: ""`, "    endpoint: "+testenv.KinesaliteEndpoint(t))
	if lints := lintConfig(t, env, doc); len(lints) > 0 {
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
	if err := sb.AddOutputYAML(section(t, doc, "output")); err != nil {
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
