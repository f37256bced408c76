package opscli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
)

// The emulators of resources/emulators/up.sh, by the variable naming their endpoint.
const (
	envKinesalite  = "KINESIS_ENDPOINT"
	envKinesisMock = "KINESIS_MOCK_ENDPOINT"
)

// emulatorCheck is the outcome of looking for one emulator, computed once per process.
type emulatorCheck struct {
	endpoint string
	err      error
}

var (
	emulatorsMu sync.Mutex
	emulators   = map[string]*emulatorCheck{}
)

// emulatorEndpoint returns the endpoint of the emulator named by envVar after checking that it
// answers. When it does not: under CI=true the test fails, otherwise it is skipped.
func emulatorEndpoint(t *testing.T, envVar string) string {
	t.Helper()
	emulatorsMu.Lock()
	chk, ok := emulators[envVar]
	if !ok {
		chk = &emulatorCheck{}
		chk.endpoint, chk.err = findEndpoint(envVar)
		if chk.err == nil {
			chk.err = ping(chk.endpoint)
		}
		emulators[envVar] = chk
	}
	emulatorsMu.Unlock()
	if chk.err != nil {
		msg := fmt.Sprintf("emulator %s unavailable: %v; start the emulators with `make emulators-up`", envVar, chk.err)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return chk.endpoint
}

// findEndpoint reads envVar from the environment, else from the .emulators.env file found by
// walking up from the working directory to the directory holding go.mod.
func findEndpoint(envVar string) (string, error) {
	if v := strings.TrimSpace(os.Getenv(envVar)); v != "" {
		return v, nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		vars, err := readEnvFile(filepath.Join(dir, ".emulators.env"))
		switch {
		case err == nil:
			if v := vars[envVar]; v != "" {
				return v, nil
			}
			return "", fmt.Errorf("%s is not set and %s does not name it", envVar, filepath.Join(dir, ".emulators.env"))
		case !errors.Is(err, os.ErrNotExist):
			return "", err
		}
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return "", fmt.Errorf("%s is not set and there is no .emulators.env up to %s", envVar, dir)
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("%s is not set and no .emulators.env was found", envVar)
		}
		dir = parent
	}
}

// readEnvFile parses the `export K=V` (or `K=V`) lines of an env file.
func readEnvFile(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	vars := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		line = strings.TrimSpace(strings.TrimPrefix(line, "export "))
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		vars[strings.TrimSpace(k)] = strings.Trim(strings.TrimSpace(v), `"'`)
	}
	return vars, sc.Err()
}

// testClient returns an SDK client for an emulator, built without config.LoadDefaultConfig so
// that nothing in the environment changes it.
func testClient(endpoint string) *kinesis.Client {
	return kinesis.New(kinesis.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(endpoint),
		Credentials:  credentials.NewStaticCredentialsProvider("test", "test", ""),
		Retryer: retry.NewStandard(func(o *retry.StandardOptions) {
			o.MaxAttempts = 3
			o.MaxBackoff = 100 * time.Millisecond
			o.RateLimiter = ratelimit.None
		}),
	})
}

// ping checks that a Kinesis emulator answers a cheap call.
func ping(endpoint string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_, err := testClient(endpoint).ListStreams(ctx, &kinesis.ListStreamsInput{Limit: aws.Int32(1)},
		func(o *kinesis.Options) { o.RetryMaxAttempts = 1 })
	if err != nil {
		return fmt.Errorf("%s does not answer: %w", endpoint, err)
	}
	return nil
}
