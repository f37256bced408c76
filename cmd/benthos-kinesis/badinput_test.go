package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/benthos-kinesis/benthos-kinesis/internal/chaos/faultproxy"
	"github.com/benthos-kinesis/benthos-kinesis/internal/testenv"
)

// Bounds of the waits on the binary. Generous: a case takes well under a
// second when all is well, and the whole test runs its cases in parallel.
const (
	lintTimeout = 20 * time.Second // lint, or a run that must fail at startup
	logTimeout  = 20 * time.Second // until the expected log line
	stopTimeout = 15 * time.Second // from SIGTERM to exit
	endTimeout  = 30 * time.Second // a run whose input ends, to exit
)

// How a case is judged.
type badKind int

const (
	// lintFails: `lint` exits non-zero and one line of its output holds every
	// want and, when at is set, the line:column of the config line holding at.
	lintFails badKind = iota
	// logsWhileRunning: `run` keeps running and logs, at least twice (it
	// retries, and says so each time), a line holding every want; SIGTERM then
	// stops it cleanly within stopTimeout.
	logsWhileRunning
	// runsToEnd: `run` exits 0 once its generate input has ended, after
	// logging a line holding every want; check then verifies what landed.
	runsToEnd
)

// setup is a case's config and what it made for it.
type setup struct {
	yaml string
	// names (of streams, tables) that the line of wants must hold too.
	names []string
	// check, for runsToEnd, verifies what landed.
	check func(t *testing.T)
}

type badCase struct {
	name string
	kind badKind
	// config returns the config, creating what it needs (deleted when the
	// test ends).
	config func(t *testing.T) setup
	at     string   // lintFails: the config text the error must point at
	want   []string // one line of the binary's output must hold all of them
}

// The binary with bad configs and bad data: each mistake gives an error that
// names its cause, and nothing else is lost.
func TestBadInputs(t *testing.T) {
	cases := []badCase{
		// 1. Unknown fields.
		{
			name: "input unknown field", kind: lintFails, at: "bogus_field",
			config: static(`
input:
  aws_kinesis:
    streams: [s]
    dynamodb: {table: t}
    bogus_field: 1
output:
  drop: {}
`),
			want: []string{"field bogus_field not recognised"},
		},
		{
			name: "input unknown field in dynamodb", kind: lintFails, at: "tabel",
			config: static(`
input:
  aws_kinesis:
    streams: [s]
    dynamodb:
      tabel: t
output:
  drop: {}
`),
			want: []string{"field tabel not recognised"},
		},
		{
			name: "output unknown field", kind: lintFails, at: "partitionkey",
			config: static(`
input:
  generate: {mapping: root = "x", count: 1}
output:
  aws_kinesis:
    stream: s
    partition_key: k
    partitionkey: k
`),
			want: []string{"field partitionkey not recognised"},
		},
		{
			name: "output unknown field in shard_limits", kind: lintFails, at: "record_per_second",
			config: static(`
input:
  generate: {mapping: root = "x", count: 1}
output:
  aws_kinesis:
    stream: s
    partition_key: k
    shard_limits:
      record_per_second: 10
`),
			want: []string{"field record_per_second not recognised"},
		},

		// 2. Missing stream.
		{
			name: "input without streams", kind: lintFails,
			config: static(`
input:
  aws_kinesis:
    dynamodb: {table: t}
output:
  drop: {}
`),
			want: []string{"field streams is required"},
		},
		{
			name: "input with an empty streams list", kind: lintFails,
			config: static(`
input:
  aws_kinesis:
    streams: []
    dynamodb: {table: t}
output:
  drop: {}
`),
			want: []string{"field streams is required"},
		},
		{
			name: "output without stream", kind: lintFails, at: "partition_key: k",
			config: static(`
input:
  generate: {mapping: root = "x", count: 1}
output:
  aws_kinesis:
    partition_key: k
`),
			want: []string{"field stream is required"},
		},
		{
			name: "output with an empty stream", kind: lintFails, at: `stream: ""`,
			config: static(`
input:
  generate: {mapping: root = "x", count: 1}
output:
  aws_kinesis:
    stream: ""
    partition_key: k
`),
			want: []string{"field stream must not be empty"},
		},

		// 3. A stream that does not exist.
		{
			name: "input stream does not exist", kind: logsWhileRunning,
			config: func(t *testing.T) setup {
				stream := testenv.UniqueName(t, "missing")
				table := testenv.CreateTable(t, testenv.DynamoDB(t))
				return setup{yaml: runConfig(inputYAML(testenv.KinesaliteEndpoint(t), testenv.DynamoDBEndpoint(t), stream, table, "create: false") + dropOutput), names: []string{"stream " + stream + " does not exist"}}
			},
			want: []string{"path=root.input", "Failed to connect to aws_kinesis"},
		},
		{
			name: "output stream does not exist", kind: logsWhileRunning,
			config: func(t *testing.T) setup {
				stream := testenv.UniqueName(t, "missing")
				return setup{yaml: runConfig(idleInput + outputYAML(testenv.KinesaliteEndpoint(t), stream, "k")), names: []string{"stream " + stream + " does not exist"}}
			},
			want: []string{"path=root.output", "Failed to connect to aws_kinesis"},
		},

		// 4. The lease table missing, and not to be created.
		{
			name: "lease table does not exist", kind: logsWhileRunning,
			config: func(t *testing.T) setup {
				stream := testenv.CreateStream(t, testenv.Kinesalite(t), 1)
				table := testenv.UniqueName(t, "nolease")
				return setup{yaml: runConfig(inputYAML(testenv.KinesaliteEndpoint(t), testenv.DynamoDBEndpoint(t), stream, table, "create: false") + dropOutput), names: []string{table}}
			},
			want: []string{"path=root.input", "Failed to connect to aws_kinesis", "dynamodb table", "does not exist", "set dynamodb.create: true to create it"},
		},

		// 6. A record over the max size among good ones.
		{
			name: "record over max size goes to the DLQ alone", kind: runsToEnd,
			config: func(t *testing.T) setup {
				return badRecordRun(t, `"k%d".format($n)`, fmt.Sprintf(`if $n == %d { "x".repeat(1048576) } else { "" }`, badN),
					"over the max record size of 1048576 bytes", "max_record_size")
			},
			want: []string{"path=root.output.fallback.0", "1 of 20 messages could not be written", "over the max record size"},
		},

		// 7. An empty partition key among good ones.
		{
			name: "empty partition key goes to the DLQ alone", kind: runsToEnd,
			config: func(t *testing.T) setup {
				return badRecordRun(t, fmt.Sprintf(`if $n == %d { "" } else { "k%%d".format($n) }`, badN), `""`,
					"partition key is empty")
			},
			want: []string{"path=root.output.fallback.0", "1 of 20 messages could not be written", "partition key is empty"},
		},

		// 8. Malformed interpolations: Benthos names the line and column of
		// the field and the Bloblang parse error, not the field's name.
		{
			name: "malformed partition_key interpolation", kind: lintFails, at: "partition_key:",
			config: static(`
input:
  generate: {mapping: root = "x", count: 1}
output:
  aws_kinesis:
    stream: s
    partition_key: ${! meta("k" }
`),
			want: []string{"expected comma or closing bracket"},
		},
		{
			name: "malformed hash_key interpolation", kind: lintFails, at: "hash_key:",
			config: static(`
input:
  generate: {mapping: root = "x", count: 1}
output:
  aws_kinesis:
    stream: s
    partition_key: k
    hash_key: ${! json("h") + }
`),
			want: []string{"expected query"},
		},
	}
	cases = append(cases, credentialCases()...) // 5.

	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s := c.config(t)
			path := writeConfig(t, s.yaml)
			want := append(append([]string(nil), c.want...), s.names...)
			switch c.kind {
			case lintFails:
				expectLintFailure(t, path, s.yaml, c.at, want)
			case logsWhileRunning:
				p := startBinary(t, "run", path)
				t.Logf("run: %s", p.waitForLines(t, 2, logTimeout, want...)[0])
				if p.exited() {
					t.Fatalf("the binary exited (%v) instead of retrying; output:\n%s", p.err, p.output())
				}
				stopped := time.Now()
				if err := p.stop(t, stopTimeout); err != nil {
					t.Fatalf("after SIGTERM the binary exited with %v, want 0; output:\n%s", err, p.output())
				}
				t.Logf("exited 0 %v after SIGTERM", time.Since(stopped).Round(time.Millisecond))
			case runsToEnd:
				p := startBinary(t, "run", path)
				if err := p.wait(t, endTimeout); err != nil {
					t.Fatalf("run exited with %v, want 0 once the input ended; output:\n%s", err, p.output())
				}
				t.Logf("run: %s", p.waitForLines(t, 1, 0, want...)[0])
				s.check(t)
			}
		})
	}
}

// static is the config of a case that needs no resources.
func static(yaml string) func(*testing.T) setup {
	return func(*testing.T) setup { return setup{yaml: yaml} }
}

// runConfig adds what every run needs: no HTTP server (no port to share
// between parallel runs), INFO logs, and a short shutdown_timeout. Benthos
// stops an output's connect retries only once graceful shutdown is given up,
// at three quarters of shutdown_timeout (15s by default): an output that
// cannot connect holds SIGTERM that long.
func runConfig(body string) string {
	return "http: {enabled: false}\nlogger: {level: INFO, format: logfmt}\nshutdown_timeout: 3s\n" + body
}

// idleInput never produces (a cron interval's first tick is an hour away),
// so an output can be checked alone and stopped with nothing in flight.
const idleInput = `
input:
  generate:
    interval: "@every 1h"
    mapping: root = "never"
`

const dropOutput = `
output:
  drop: {}
`

// inputYAML is an aws_kinesis input reading stream with its leases in table;
// dynamodb holds extra fields of the dynamodb object.
func inputYAML(kinesisEndpoint, dynamodbEndpoint, stream, table, dynamodb string) string {
	return fmt.Sprintf(`
input:
  aws_kinesis:
    streams: [ %s ]
    endpoint: %s
    region: %s
    credentials: {id: %s, secret: %s}
    dynamodb: {table: %s, endpoint: %s, %s}
`, stream, kinesisEndpoint, testenv.Region, testenv.AccessKeyID, testenv.SecretAccessKey, table, dynamodbEndpoint, dynamodb)
}

// outputYAML is an aws_kinesis output writing to stream.
func outputYAML(endpoint, stream, partitionKey string) string {
	return fmt.Sprintf(`
output:
  aws_kinesis:
    stream: %s
    partition_key: '%s'
    endpoint: %s
    region: %s
    credentials: {id: %s, secret: %s}
`, stream, partitionKey, endpoint, testenv.Region, testenv.AccessKeyID, testenv.SecretAccessKey)
}

// The records of badRecordRun: 20, numbered from 1; record badN is the bad one.
const (
	badRecords = 20
	badN       = 7
)

// badRecordRun is a pipeline of badRecords generated records, record badN of
// which cannot be written, to a fallback of the aws_kinesis output and a
// file DLQ that records fallback_error. key and pad are Bloblang
// expressions of $n for the record's partition key and padding. The check
// reads the stream back: every other record exactly once, under its key; and
// the DLQ: record badN alone, its error holding every wantErr.
func badRecordRun(t *testing.T, key, pad string, wantErr ...string) setup {
	kc := testenv.Kinesalite(t)
	stream := testenv.CreateStream(t, kc, 2)
	dlq := filepath.Join(t.TempDir(), "dlq.jsonl")
	yaml := runConfig(fmt.Sprintf(`
input:
  generate:
    count: %d
    interval: ""
    mapping: |
      let n = counter()
      root.n = $n
      root.key = %s
      root.pad = %s
output:
  fallback:
    - aws_kinesis:
        stream: %s
        partition_key: ${! json("key") }
        endpoint: %s
        region: %s
        credentials: {id: %s, secret: %s}
        max_retries: 3
        batching: {count: %d, period: 10s}
    - file: {path: %s, codec: lines}
      processors:
        - mapping: 'root = {"n": this.n, "bytes": content().length(), "error": @fallback_error}'
`, badRecords, key, pad, stream, testenv.KinesaliteEndpoint(t), testenv.Region, testenv.AccessKeyID, testenv.SecretAccessKey, badRecords, dlq))

	check := func(t *testing.T) {
		const bad = badN
		// The stream: every good record once, under its own key.
		seen := map[int]int{}
		for _, r := range readAll(t, kc, stream) {
			var rec struct {
				N   int    `json:"n"`
				Key string `json:"key"`
			}
			if err := json.Unmarshal(r.Data, &rec); err != nil {
				t.Fatalf("record %q in the stream is not the generated JSON: %v", r.Data, err)
			}
			if want := fmt.Sprintf("k%d", rec.N); rec.Key != want || aws.ToString(r.PartitionKey) != want {
				t.Errorf("record %d: key %q, partition key %q; want %q", rec.N, rec.Key, aws.ToString(r.PartitionKey), want)
			}
			seen[rec.N]++
		}
		for n := 1; n <= badRecords; n++ {
			switch {
			case n == bad && seen[n] != 0:
				t.Errorf("the bad record %d landed in the stream %d times", n, seen[n])
			case n != bad && seen[n] != 1:
				t.Errorf("good record %d landed in the stream %d times, want once", n, seen[n])
			}
			delete(seen, n)
		}
		if len(seen) > 0 {
			t.Errorf("unexpected records in the stream: %v", seen)
		}

		// The DLQ: the bad record alone, with the reason.
		b, err := os.ReadFile(dlq)
		if err != nil {
			t.Fatalf("read the DLQ: %v", err)
		}
		var lines []string
		for l := range strings.SplitSeq(string(b), "\n") {
			if strings.TrimSpace(l) != "" {
				lines = append(lines, l)
			}
		}
		if len(lines) != 1 {
			t.Fatalf("the DLQ holds %d lines, want exactly the bad record:\n%.2000s", len(lines), b)
		}
		var got struct {
			N     int    `json:"n"`
			Bytes int    `json:"bytes"`
			Error string `json:"error"`
		}
		if err := json.Unmarshal([]byte(lines[0]), &got); err != nil {
			t.Fatalf("DLQ line %.500q: %v", lines[0], err)
		}
		if got.N != bad {
			t.Errorf("the DLQ holds record %d, want %d", got.N, bad)
		}
		for _, w := range wantErr {
			if !strings.Contains(got.Error, w) {
				t.Errorf("the DLQ's error %q does not say %q", got.Error, w)
			}
		}
		t.Logf("DLQ: record %d (%d bytes): %s", got.N, got.Bytes, got.Error)
	}
	return setup{yaml: yaml, names: []string{stream}, check: check}
}

// readAll reads every record of every shard of stream, from TRIM_HORIZON to
// the tip (the writer has exited: nothing more is coming).
func readAll(t *testing.T, c *kinesis.Client, stream string) []types.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	shards, err := c.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(stream)})
	if err != nil {
		t.Fatalf("list shards of %s: %v", stream, err)
	}
	var all []types.Record
	for _, s := range shards.Shards {
		it, err := c.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{
			StreamName: aws.String(stream), ShardId: s.ShardId, ShardIteratorType: types.ShardIteratorTypeTrimHorizon,
		})
		if err != nil {
			t.Fatalf("shard iterator of %s: %v", aws.ToString(s.ShardId), err)
		}
		for iter := it.ShardIterator; iter != nil; {
			page, err := c.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter, Limit: aws.Int32(10000)})
			if err != nil {
				t.Fatalf("get records of %s: %v", aws.ToString(s.ShardId), err)
			}
			all = append(all, page.Records...)
			if len(page.Records) == 0 {
				break
			}
			iter = page.NextShardIterator
		}
	}
	return all
}

// expectLintFailure runs lint on path: it must fail, and one line of its
// output must hold every want and, when at is set, the line:column of the
// config line holding at.
func expectLintFailure(t *testing.T, path, yaml, at string, want []string) {
	t.Helper()
	p := startBinary(t, "lint", path)
	if p.wait(t, lintTimeout) == nil {
		t.Fatalf("lint passed, want a failure saying %q; output:\n%s", want, p.output())
	}
	if at != "" {
		line := 0
		for i, l := range strings.Split(yaml, "\n") {
			if strings.Contains(l, at) {
				line = i + 1
				break
			}
		}
		if line == 0 {
			t.Fatalf("bad case: %q is not in the config", at)
		}
		want = append([]string{fmt.Sprintf("%s(%d,", path, line)}, want...)
	}
	t.Logf("lint: %s", strings.TrimSpace(p.waitForLines(t, 1, 0, want...)[0]))
}

// syncBuffer collects a process's combined output; it is safe for the
// writes of exec's copying goroutines and the test's reads, and wakes a
// reader on every write.
type syncBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{} // closed and replaced on every write
}

func newSyncBuffer() *syncBuffer { return &syncBuffer{changed: make(chan struct{})} }

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n, err := b.buf.Write(p)
	close(b.changed)
	b.changed = make(chan struct{})
	return n, err
}

// snapshot returns the output so far and a channel closed at the next write.
func (b *syncBuffer) snapshot() (string, <-chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String(), b.changed
}

// process is the binary running in the background.
type process struct {
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
	err  error // Wait's result; read only after done is closed
}

// startBinary starts the binary with args; it is killed when the test ends
// if it has not exited by then.
func startBinary(t *testing.T, args ...string) *process {
	t.Helper()
	p := &process{cmd: exec.Command(binary, args...), out: newSyncBuffer(), done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s %v: %v", binary, args, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		if !p.exited() {
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

func (p *process) output() string {
	s, _ := p.out.snapshot()
	return s
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// wait waits up to timeout for the process to exit and returns how it did;
// past timeout the test fails (and the cleanup kills the process).
func (p *process) wait(t *testing.T, timeout time.Duration) error {
	t.Helper()
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
		t.Fatalf("%v did not exit within %v; output:\n%s", p.cmd.Args[1:], timeout, p.output())
		return nil
	}
}

// stop sends SIGTERM and waits up to timeout for the exit.
func (p *process) stop(t *testing.T, timeout time.Duration) error {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Fatalf("SIGTERM: %v", err)
	}
	return p.wait(t, timeout)
}

// waitForLines waits up to timeout (0: only what is already there, for a
// process that has exited) until n lines of the output each hold every one
// of subs, and returns them. It fails the test if the process exits first or
// time runs out.
func (p *process) waitForLines(t *testing.T, n int, timeout time.Duration, subs ...string) []string {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		out, changed := p.out.snapshot()
		if lines := matchingLines(out, subs); len(lines) >= n {
			return lines
		}
		if timeout == 0 {
			t.Fatalf("no %d line(s) of the output hold all of %q; output:\n%s", n, subs, out)
		}
		select {
		case <-changed:
		case <-p.done:
			// Exec's copy goroutines are done too: the output is complete.
			if lines := matchingLines(p.output(), subs); len(lines) >= n {
				return lines
			}
			t.Fatalf("the binary exited (%v) before %d line(s) held all of %q; output:\n%s", p.err, n, subs, p.output())
		case <-deadline.C:
			t.Fatalf("no %d line(s) held all of %q within %v; output:\n%s", n, subs, timeout, p.output())
		}
	}
}

func matchingLines(out string, subs []string) []string {
	var lines []string
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 0, 64*1024), 16<<20)
	for sc.Scan() {
		l := sc.Text()
		all := true
		for _, s := range subs {
			if !strings.Contains(l, s) {
				all = false
				break
			}
		}
		if all {
			lines = append(lines, l)
		}
	}
	return lines
}

// credentialCases are case 5: the emulators take any credentials, so a
// proxy in front of them rejects every request as AWS does bad ones.
func credentialCases() []badCase {
	rejected := []string{"Failed to connect to aws_kinesis", "UnrecognizedClientException", "The security token included in the request is invalid"}
	return []badCase{
		{
			name: "input Kinesis credentials rejected", kind: logsWhileRunning,
			config: func(t *testing.T) setup {
				stream := testenv.CreateStream(t, testenv.Kinesalite(t), 1)
				table := testenv.CreateTable(t, testenv.DynamoDB(t))
				kin := rejectingProxy(t, faultproxy.Kinesis, testenv.KinesaliteEndpoint(t))
				return setup{yaml: runConfig(inputYAML(kin, testenv.DynamoDBEndpoint(t), stream, table, "create: false") + dropOutput), names: []string{"stream " + stream}}
			},
			want: append([]string{"path=root.input"}, rejected...),
		},
		{
			name: "input DynamoDB credentials rejected", kind: logsWhileRunning,
			config: func(t *testing.T) setup {
				stream := testenv.CreateStream(t, testenv.Kinesalite(t), 1)
				table := testenv.CreateTable(t, testenv.DynamoDB(t))
				ddb := rejectingProxy(t, faultproxy.DynamoDB, testenv.DynamoDBEndpoint(t))
				return setup{yaml: runConfig(inputYAML(testenv.KinesaliteEndpoint(t), ddb, stream, table, "create: false") + dropOutput), names: []string{"dynamodb table", table}}
			},
			want: append([]string{"path=root.input"}, rejected...),
		},
		{
			name: "output credentials rejected", kind: logsWhileRunning,
			config: func(t *testing.T) setup {
				stream := testenv.CreateStream(t, testenv.Kinesalite(t), 1)
				kin := rejectingProxy(t, faultproxy.Kinesis, testenv.KinesaliteEndpoint(t))
				return setup{yaml: runConfig(idleInput + outputYAML(kin, stream, "k")), names: []string{"stream " + stream}}
			},
			want: append([]string{"path=root.output"}, rejected...),
		},
	}
}

// rejectingProxy starts a proxy in front of target that answers every
// request UnrecognizedClientException, closed when the test ends, and
// returns its URL.
func rejectingProxy(t *testing.T, svc faultproxy.Service, target string) string {
	t.Helper()
	p, err := faultproxy.New(svc, target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	p.SetFaults(faultproxy.Faults{RejectCredentials: true})
	return p.URL()
}
