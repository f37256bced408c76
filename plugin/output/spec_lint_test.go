package output

import (
	"strings"
	"testing"

	"github.com/redpanda-data/benthos/v4/public/service"
)

// An empty stream can never be written to: lint says so, as it does for a
// missing one, rather than the config failing only when run.
func TestLintEmptyStream(t *testing.T) {
	env := service.NewEmptyEnvironment()
	if err := Register(env, "aws_kinesis"); err != nil {
		t.Fatal(err)
	}
	linter := env.NewComponentConfigLinter()
	for _, c := range []struct {
		name, yaml, want string
	}{
		{"empty", "aws_kinesis:\n  stream: \"\"\n  partition_key: k\n", "field stream must not be empty"},
		{"missing", "aws_kinesis:\n  partition_key: k\n", "field stream is required"},
		{"set", "aws_kinesis:\n  stream: s\n  partition_key: k\n", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			lints, err := linter.LintOutputYAML([]byte(c.yaml))
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, l := range lints {
				got = append(got, l.What)
			}
			if c.want == "" {
				if len(got) > 0 {
					t.Fatalf("lints %q, want none", got)
				}
				return
			}
			if !strings.Contains(strings.Join(got, "\n"), c.want) {
				t.Fatalf("lints %q, want one saying %q", got, c.want)
			}
		})
	}
}
