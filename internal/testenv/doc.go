// Package testenv lets tests reach the local emulators started by resources/emulators/up.sh
// (`make emulators-up`): kinesalite and kinesis-local (kinesis-mock) for Kinesis, dynalite for
// DynamoDB, all on 127.0.0.1.
//
// Endpoints come from the environment variables KINESIS_ENDPOINT (kinesalite),
// KINESIS_MOCK_ENDPOINT (kinesis-local) and DYNAMODB_ENDPOINT (dynalite); a variable that is unset
// or empty is taken from the `.emulators.env` file that up.sh writes, found by walking up from the
// working directory to the directory holding go.mod.
//
// Each emulator is checked once per process with a cheap API call. When one is missing or does
// not answer, a test that asks for it is skipped, except under CI=true, where it fails: in CI an
// emulator that is not there is a broken build, never a reason to skip.
//
// Clients use static credentials ("test"/"test"), region us-east-1, the endpoint as BaseEndpoint
// and a retryer suited to a local server (3 attempts, short backoff, no retry quota). They are
// built with kinesis.New / dynamodb.New, not config.LoadDefaultConfig, so AWS_PROFILE,
// AWS_CA_BUNDLE, AWS_REGION or shared config files in the environment cannot change them.
//
// The helpers CreateStream and CreateTable create uniquely named resources (UniqueName), wait
// until they are ACTIVE and delete them when the test ends.
//
// Know the emulators' limits (see DESIGN.md, "Testing"): kinesalite has no UpdateShardCount, no
// ChildShards and rejects StreamARN; kinesis-local is slow with many records per shard; dynalite
// has no transactions and no TTL; none throttles or enforces request size limits.
package testenv
