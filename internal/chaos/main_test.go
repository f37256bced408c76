package chaos

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

var (
	full       = flag.Bool("chaos.full", false, "run the full scenarios (minutes each) instead of the short ones")
	reportPath = flag.String("chaos.report", "", "append each scenario's figures (markdown) to this file")
)

// binary is the benthos-kinesis binary under test, built once.
var binary string

func TestMain(m *testing.M) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "benthos-kinesis-chaos")
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		os.Exit(2)
	}
	binary = filepath.Join(dir, "benthos-kinesis")
	build := exec.Command("go", "build", "-o", binary, "../../cmd/benthos-kinesis")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "chaos: build benthos-kinesis: %v\n%s", err, out)
		os.Exit(2)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}
