package opscli

import (
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
