// Command createcli is the benthos-kinesis binary's Benthos CLI (the core
// pure and io components and this project's, registered as the binary
// registers them) without its operator command, for the tests of what
// `create` prints: create writes to the process's stdout, so it cannot run
// inside a test, and building this instead of cmd/benthos-kinesis keeps
// those tests independent of the operator command's code.
package main

import (
	"context"
	"fmt"
	"os"

	_ "github.com/redpanda-data/benthos/v4/public/components/io"
	_ "github.com/redpanda-data/benthos/v4/public/components/pure"
	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/benthos-kinesis/benthos-kinesis/internal/components"
)

func main() {
	if err := components.Register(service.GlobalEnvironment()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	service.RunCLI(context.Background(), service.CLIOptSetBinaryName("benthos-kinesis"))
}
