package testenv

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
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

// SharedReference reads a reference config of the built-in components (their full default
// configs, as their `create` prints them), copied into this package's testdata/reference/ so
// that the repository stands alone.
func SharedReference(t testing.TB, name string) string {
	t.Helper()
	_, self, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("testenv: cannot locate the reference configs")
	}
	b, err := os.ReadFile(filepath.Join(filepath.Dir(self), "testdata", "reference", name))
	if err != nil {
		t.Fatalf("testenv: reference config: %v", err)
	}
	return string(b)
}
