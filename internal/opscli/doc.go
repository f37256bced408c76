// Package opscli holds the operator sub-commands of the benthos-kinesis binary. Command returns
// the `kinesis` command, added to the Benthos CLI with service.CLIOptAddCommand(opscli.Command()):
//
//	benthos-kinesis kinesis create-stream --stream NAME --shards N [--timeout 2m]
//	benthos-kinesis kinesis shards        --stream NAME [--count]
//	benthos-kinesis kinesis delete-stream --stream NAME [--yes]
//	benthos-kinesis kinesis leases list    --table T --stream S [--stream S2 ...]
//	benthos-kinesis kinesis leases reset   --table T --stream S --to oldest|latest|timestamp=RFC3339|sequence=N [--shard X ...] [--dry-run] [--force] [--yes]
//	benthos-kinesis kinesis leases release --table T --stream S --shard X [--wait 1m]
//	benthos-kinesis kinesis leases import  --from-kcl --kcl-table K --table T --stream S [--dry-run] [--force] [--yes]
//
// The AWS settings are the components': --region, --profile, --role, --role-external-id and the
// SDK's default chain and variables, including its endpoint variables AWS_ENDPOINT_URL_KINESIS,
// AWS_ENDPOINT_URL_DYNAMODB and AWS_ENDPOINT_URL, which config.LoadDefaultConfig and the
// clients' NewFromConfig honour; --kinesis-endpoint (old name --endpoint) and --dynamodb-endpoint
// override them. They can be given on the `kinesis` command or on a sub-command; the nearer
// wins. The variables KINESIS_ENDPOINT and DYNAMODB_ENDPOINT of the first releases are still
// read, with a warning, when nothing else names an endpoint. Credentials are checked before the
// first call: without any, the command fails saying what to set (it never makes some up, even
// for an emulator). Every command that prints takes --format table|json.
//
// Destructive commands (delete-stream, leases reset, leases import) ask for confirmation on a
// terminal and need --yes otherwise. The lease commands follow docs/LEASES.md: liveness is judged
// from the worker rows' heartbeats (checkpointer.Table.WatchWorkers), every write is conditional
// on the row as read and bumps the epoch (checkpointer.Table.Place), and release goes through
// the protocol's hand-off request with the tool as a short-lived worker.
//
// A stream is addressed by StreamName, or by StreamARN when --stream starts with "arn:". Output
// goes to the app's Writer, warnings and questions to its ErrWriter; failures are returned as
// errors, so the binary exits non-zero.
package opscli
