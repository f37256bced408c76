package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// binary is the benthos-kinesis binary built once for these tests, so that
// lint runs exactly as a user runs it.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "benthos-kinesis-test")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "benthos-kinesis")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		panic("build benthos-kinesis: " + err.Error() + "\n" + string(out))
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func writeConfig(t *testing.T, yaml string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestExamplesLint(t *testing.T) {
	files, err := filepath.Glob("../../config/examples/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples found: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			if out, err := run(t, "lint", f); err != nil {
				t.Fatalf("lint %s: %v\n%s", f, err, out)
			}
		})
	}
}

// The built-in components' full default configs, as their `create` prints
// them, must lint unchanged (copies in internal/testenv/testdata/reference/).
func TestBuiltinConfigsLint(t *testing.T) {
	for _, ref := range []string{
		"../../internal/testenv/testdata/reference/builtin-aws_kinesis-output.yaml",
		"../../internal/testenv/testdata/reference/builtin-aws_kinesis-input.yaml",
		"../../internal/testenv/testdata/reference/builtin-aws_kinesis-input-4.107.yaml",
	} {
		if _, err := os.Stat(ref); err != nil {
			t.Fatalf("reference config missing: %v", err)
		}
		if out, err := run(t, "lint", ref); err != nil {
			t.Fatalf("lint %s: %v\n%s", ref, err, out)
		}
	}
}

func TestBadOutputConfigsFailLint(t *testing.T) {
	cases := []struct {
		name, output string
		want         []string
	}{
		{"no stream", "partition_key: k", []string{"field stream is required"}},
		{"no partition key", "stream: s", []string{"field partition_key is required"}},
		{"bad interpolation", "stream: s\n    partition_key: ${! nope( }", []string{"(4,"}},
		{"negative records limit", "stream: s\n    partition_key: k\n    shard_limits: {records_per_second: -1}", []string{"shard_limits.records_per_second must be greater than zero"}},
		{"zero bytes limit", "stream: s\n    partition_key: k\n    shard_limits: {bytes_per_second: 0}", []string{"shard_limits.bytes_per_second must be greater than zero"}},
		{"record size over 10 MiB", "stream: s\n    partition_key: k\n    max_record_size: 20000000", []string{"max_record_size must be between"}},
		{"negative retries", "stream: s\n    partition_key: k\n    max_retries: -1", []string{"max_retries must not be negative"}},
		{"unknown field", "stream: s\n    partition_key: k\n    shard_limit: 3", []string{"field shard_limit not recognised"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := writeConfig(t, "output:\n  aws_kinesis:\n    "+c.output+"\n")
			out, err := run(t, "lint", p)
			if err == nil {
				t.Fatalf("lint passed, want a failure saying %q", c.want)
			}
			for _, w := range c.want {
				if !strings.Contains(out, w) {
					t.Errorf("lint output %q does not say %q", out, w)
				}
			}
		})
	}
}

func TestCLIBasics(t *testing.T) {
	out, err := run(t, "--version")
	if err != nil || !strings.Contains(out, "Version:") {
		t.Fatalf("--version: %v %q", err, out)
	}
	out, err = run(t, "list", "outputs")
	if err != nil || !strings.Contains(out, "aws_kinesis") || !strings.Contains(out, "drop") {
		t.Fatalf("list outputs lacks aws_kinesis or drop: %v\n%s", err, out)
	}
	out, err = run(t, "list", "inputs")
	if err != nil || !strings.Contains(out, "aws_kinesis") {
		t.Fatalf("list inputs lacks aws_kinesis: %v\n%s", err, out)
	}
	out, err = run(t, "list", "metrics")
	if err != nil || !strings.Contains(out, "prometheus") {
		t.Fatalf("list metrics lacks prometheus: %v\n%s", err, out)
	}
	out, err = run(t, "create", "stdin//aws_kinesis")
	if err != nil || !strings.Contains(out, "aws_kinesis:") || !strings.Contains(out, "shard_limits") {
		t.Fatalf("create stdin//aws_kinesis: %v\n%s", err, out)
	}
}

// The binary serves Prometheus text on the Benthos HTTP server.
func TestPrometheusServedOnHTTPServer(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	p := writeConfig(t, `
http:
  address: `+addr+`
input:
  generate:
    interval: 1ms
    mapping: root = "x"
output:
  drop: {}
metrics:
  prometheus: {}
logger:
  level: WARN
`)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, "run", p)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
	}()
	// Poll until the server is up and the counter has counted something.
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			_ = cmd.Wait() // the context killed it; its output is complete
			t.Fatalf("no output_sent on http://%s/metrics within a minute; output:\n%s", addr, out.String())
		case <-tick.C:
		}
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode == http.StatusOK && strings.Contains(string(body), "# TYPE output_sent counter") &&
			strings.Contains(string(body), `output_sent{label="",path="root.output"}`) {
			return
		}
	}
}
