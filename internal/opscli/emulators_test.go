package opscli

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/benthos-kinesis/benthos-kinesis/internal/testenv"
)

// The emulators of resources/emulators/up.sh, by the variable naming their endpoint.
const (
	envKinesalite  = "KINESIS_ENDPOINT"
	envKinesisMock = "KINESIS_MOCK_ENDPOINT"
)

// emulatorEndpoint returns the endpoint of the emulator named by envVar once
// it answers; testenv fails the test under CI=true when it does not, and
// skips it otherwise.
func emulatorEndpoint(t *testing.T, envVar string) string {
	t.Helper()
	if envVar == envKinesisMock {
		return testenv.KinesisMockEndpoint(t)
	}
	return testenv.KinesaliteEndpoint(t)
}

// testClient returns an SDK client for an emulator.
func testClient(endpoint string) *kinesis.Client {
	return testenv.NewKinesisClient(endpoint)
}

// TestMain gives the commands the credentials a user of an emulator gives them (the tool never
// makes any up) and keeps the developer's own AWS settings out of the tests.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "opscli-aws")
	if err != nil {
		panic(err)
	}
	for k, v := range map[string]string{
		envAccessKeyID:                testenv.AccessKeyID,
		envSecretAccessKey:            testenv.SecretAccessKey,
		envRegion:                     testenv.Region,
		"AWS_CONFIG_FILE":             filepath.Join(dir, "config"),
		"AWS_SHARED_CREDENTIALS_FILE": filepath.Join(dir, "credentials"),
		"AWS_EC2_METADATA_DISABLED":   "true",
	} {
		os.Setenv(k, v)
	}
	for _, k := range []string{"AWS_PROFILE", envSessionToken, envEndpointURL, envKinesisURL, envDynamoDBURL} {
		os.Unsetenv(k)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
