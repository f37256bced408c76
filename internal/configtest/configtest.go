// Package configtest helps tests check configs as the benthos-kinesis binary sees them: what its
// `create` command prints, what its `lint` says of a config, and small edits to a printed config.
// Tests of both components use it; it is not part of the binary.
package configtest

import (
	"bytes"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	_ "github.com/redpanda-data/benthos/v4/public/components/io"
	_ "github.com/redpanda-data/benthos/v4/public/components/pure"
	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/benthos-kinesis/benthos-kinesis/internal/components"
)

// createCLI is the package of the binary's CLI without its operator command (./createcli).
const createCLI = "github.com/benthos-kinesis/benthos-kinesis/internal/configtest/createcli"

var (
	mu      sync.Mutex
	printed = map[string]string{} // by expr: create's output, made once per test binary
)

// Created is what `benthos-kinesis create expr` prints (e.g. "stdin//aws_kinesis"). create writes
// to the process's stdout, so it runs in a child process: createcli, built into a temporary
// directory removed again.
func Created(t testing.TB, expr string) string {
	t.Helper()
	mu.Lock()
	defer mu.Unlock()
	if out, ok := printed[expr]; ok {
		return out
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "createcli")
	if out, err := exec.Command("go", "build", "-o", bin, createCLI).CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", createCLI, err, out)
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(bin, "create", expr)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("create %s: %v\n%s", expr, err, stderr.String())
	}
	printed[expr] = stdout.String()
	return printed[expr]
}

// Env is the binary's environment: the core pure and io components and this project's.
func Env(t testing.TB) *service.Environment {
	t.Helper()
	env := service.NewEnvironment()
	if err := components.Register(env); err != nil {
		t.Fatal(err)
	}
	return env
}

// Lint lints a whole config file's text as `benthos-kinesis lint` does, and returns what each
// lint says.
func Lint(t testing.TB, env *service.Environment, yaml string) []string {
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

// ReplaceLine replaces the one line of doc that is exactly old (indentation included) with repl,
// so that a test states each edit it makes to a printed config and no other.
func ReplaceLine(t testing.TB, doc, old, repl string) string {
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

// Section is the component under a top-level key of a config (e.g. input:), dedented to stand
// alone.
func Section(t testing.TB, doc, key string) string {
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
