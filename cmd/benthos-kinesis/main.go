// Command benthos-kinesis is a Benthos distribution with this project's
// aws_kinesis input and output, the core pure and io components and a
// Prometheus metrics exporter. It runs the standard Benthos CLI (run, lint,
// list, create, test, streams).
package main

import (
	"context"

	_ "github.com/redpanda-data/benthos/v4/public/components/io"
	_ "github.com/redpanda-data/benthos/v4/public/components/pure"
	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/benthos-kinesis/benthos-kinesis/internal/components"
	"github.com/benthos-kinesis/benthos-kinesis/internal/opscli"
)

// Set at build time by the Makefile (-ldflags -X).
var (
	version   = "dev"
	dateBuilt = "unknown"
)

func main() {
	if err := components.Register(service.GlobalEnvironment()); err != nil {
		panic(err)
	}
	service.RunCLI(context.Background(),
		service.CLIOptSetBinaryName("benthos-kinesis"),
		service.CLIOptSetProductName("benthos-kinesis"),
		service.CLIOptSetVersion(version, dateBuilt),
		service.CLIOptAddCommand(opscli.Command()),
	)
}
