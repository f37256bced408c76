// Package components registers everything this project adds to a Benthos
// environment under the names the benthos-kinesis binary uses: the
// aws_kinesis input and output, and the prometheus metrics exporter. Tests
// use it to build the same environment as the binary.
package components

import (
	"fmt"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/benthos-kinesis/benthos-kinesis/internal/prometheus"
	"github.com/benthos-kinesis/benthos-kinesis/plugin/input"
	"github.com/benthos-kinesis/benthos-kinesis/plugin/output"
)

// Register adds the project's components to env.
func Register(env *service.Environment) error {
	if err := input.Register(env, "aws_kinesis"); err != nil {
		return fmt.Errorf("register aws_kinesis input: %w", err)
	}
	if err := output.Register(env, "aws_kinesis"); err != nil {
		return fmt.Errorf("register aws_kinesis output: %w", err)
	}
	if err := prometheus.Register(env); err != nil {
		return fmt.Errorf("register prometheus exporter: %w", err)
	}
	return nil
}
