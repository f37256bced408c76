// Package opscli holds the operator sub-commands of the benthos-kinesis binary: small tools to
// create, inspect and delete Kinesis streams without the AWS CLI, mainly for local emulators
// (kinesalite, kinesis-local) and test accounts. Command returns the `kinesis` command, added
// to the Benthos CLI with service.CLIOptAddCommand(opscli.Command()):
//
//	benthos-kinesis kinesis create-stream --stream NAME --shards N [--timeout 2m]
//	benthos-kinesis kinesis shards        --stream NAME [--count]
//	benthos-kinesis kinesis delete-stream --stream NAME [--timeout 2m]
//
// Every sub-command takes --endpoint (env KINESIS_ENDPOINT) and --region (env AWS_REGION,
// else the shared config's region, else us-east-1), on the `kinesis` command or on the
// sub-command itself; a flag on the sub-command wins over one on `kinesis`, which wins over the
// environment. Credentials come from the SDK default chain; when it finds none and an endpoint
// is set, the static pair "test"/"test" is used (emulators accept anything).
//
// A stream is addressed by StreamName, or by StreamARN when --stream starts with "arn:"
// (kinesalite rejects ARNs, kinesis-local accepts them).
//
// Output goes to the app's Writer (c.App.Writer), warnings to its ErrWriter; failures are
// returned as errors, so the binary exits non-zero. A stream that does not exist gives an error
// reading "stream NAME does not exist" that wraps the SDK's *types.ResourceNotFoundException.
package opscli
