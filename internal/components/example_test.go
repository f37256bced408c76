package components

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestEmbeddingExample builds config/examples/embedding, the runnable
// example of docs/EMBEDDING.md, and lints with it configs that only our
// components accept, and a field nobody's aws_kinesis has.
func TestEmbeddingExample(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "embedded")
	if out, err := exec.Command("go", "build", "-o", bin, "../../config/examples/embedding").CombinedOutput(); err != nil {
		t.Fatalf("build the example: %v\n%s", err, out)
	}
	cases := []struct {
		name    string
		config  string
		wantErr string // empty: lints clean
	}{
		{
			name: "our input and output",
			config: "input:\n" + indent(oursInputYAML) +
				"output:\n" + indent(oursOutputYAML),
		},
		{
			name:    "a field neither has",
			config:  "input:\n  aws_kinesis:\n    streams: [ s ]\n    dynamodb: { table: t }\n    no_such_field: 1\noutput:\n  drop: {}\n",
			wantErr: "no_such_field",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "_")+".yaml")
			if err := os.WriteFile(path, []byte(c.config), 0o600); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(bin, "lint", path).CombinedOutput()
			switch {
			case c.wantErr == "" && err != nil:
				t.Fatalf("lint: %v\n%s\nconfig:\n%s", err, out, c.config)
			case c.wantErr != "" && (err == nil || !strings.Contains(string(out), c.wantErr)):
				t.Fatalf("lint: %v, output %q, want a failure naming %q", err, out, c.wantErr)
			}
		})
	}
}

// indent puts a component config under its section key.
func indent(yaml string) string {
	lines := strings.SplitAfter(strings.TrimRight(yaml, "\n"), "\n")
	return "  " + strings.Join(lines, "  ") + "\n"
}
