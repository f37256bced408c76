package testenv

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

// EnsureStream makes sure a stream of that exact name exists (creating it
// with the given shards if not) and is ACTIVE. For configs that name their
// stream, such as the built-in components' reference configs; the stream is
// left in place for the next run.
func EnsureStream(t testing.TB, c *kinesis.Client, name string, shards int32) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), setupTimeout)
	defer cancel()
	if _, err := c.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String(name), ShardCount: aws.Int32(shards)}); err != nil {
		var inUse *types.ResourceInUseException
		if !errors.As(err, &inUse) {
			t.Fatalf("testenv: CreateStream %s: %v", name, err)
		}
	}
	if err := WaitStreamActive(ctx, c, name); err != nil {
		t.Fatalf("testenv: %v", err)
	}
}

// SharedReference reads a file of shared/reference/, which sits beside the
// repository (on a developer's machine and in CI alike).
func SharedReference(t testing.TB, name string) string {
	t.Helper()
	rel := filepath.Join("shared", "reference", name)
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, rel)); err == nil {
			return string(b)
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatalf("testenv: %s not found above %s", rel, dir)
		}
		dir = parent
	}
}
