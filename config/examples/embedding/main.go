// Command embedding is a Benthos distribution that takes this project's
// aws_kinesis input and output in place of whatever aws_kinesis its other
// imports registered: the pattern of docs/EMBEDDING.md, runnable as it is.
//
//	go build -o embedded ./config/examples/embedding
//	./embedded lint config/examples/input-demo.yaml
//
// A Redpanda Connect custom build imports its component packages (for example
// github.com/redpanda-data/connect/v4/public/components/all) where this one
// imports Benthos' pure and io; nothing else changes.
package main

import (
	"context"
	"fmt"
	"os"

	// The distribution's own components. Their init functions register
	// them on service.GlobalEnvironment() before main runs.
	_ "github.com/redpanda-data/benthos/v4/public/components/io"
	_ "github.com/redpanda-data/benthos/v4/public/components/pure"
	"github.com/redpanda-data/benthos/v4/public/service"

	kinesisinput "github.com/benthos-kinesis/benthos-kinesis/plugin/input"
	kinesisoutput "github.com/benthos-kinesis/benthos-kinesis/plugin/output"
)

func main() {
	// In main, so after every init: Benthos keeps the last registration of a
	// name, and ours must be that one.
	env := service.GlobalEnvironment()
	if err := kinesisinput.Register(env, "aws_kinesis"); err != nil {
		fmt.Fprintf(os.Stderr, "register the aws_kinesis input: %v\n", err)
		os.Exit(1)
	}
	if err := kinesisoutput.Register(env, "aws_kinesis"); err != nil {
		fmt.Fprintf(os.Stderr, "register the aws_kinesis output: %v\n", err)
		os.Exit(1)
	}
	// RunCLI uses the global environment unless told otherwise
	// (service.CLIOptSetEnvironment).
	service.RunCLI(context.Background())
}
