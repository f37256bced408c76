#!/usr/bin/env bash
# demo.sh (make demo): install and start the local emulators, create a 4-shard
# stream, write 10,000 generated records through the aws_kinesis output with
# the benthos-kinesis binary, and print how many landed on each shard.
# It stops whatever it started, whatever happens.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
BIN="$ROOT/bin/benthos-kinesis"
EMU="$ROOT/resources/emulators"
COUNT="${COUNT:-10000}"
STREAM="demo-$(date +%s)"

started=
if ! bash "$EMU/running.sh"; then started=1; fi
cleanup() {
  "$BIN" kinesis delete-stream --endpoint "${KINESIS_ENDPOINT:-}" --stream "$STREAM" >/dev/null 2>&1 || true
  if [[ -n "$started" ]]; then bash "$EMU/down.sh"; fi
}
trap cleanup EXIT

bash "$EMU/up.sh"
# shellcheck source=/dev/null
source "$ROOT/.emulators.env"
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1

echo "== creating stream $STREAM (4 shards) on kinesalite at $KINESIS_ENDPOINT"
"$BIN" kinesis create-stream --endpoint "$KINESIS_ENDPOINT" --stream "$STREAM" --shards 4

echo "== writing $COUNT records with: benthos-kinesis run config/examples/output-demo.yaml"
start=$(date +%s.%N)
STREAM="$STREAM" COUNT="$COUNT" LOG_LEVEL=WARN "$BIN" run config/examples/output-demo.yaml
end=$(date +%s.%N)
awk -v s="$start" -v e="$end" 'BEGIN { printf "== done in %.1f s\n", e - s }'

echo "== records per shard"
out="$("$BIN" kinesis shards --endpoint "$KINESIS_ENDPOINT" --stream "$STREAM" --count)"
echo "$out"
total="$(awk '$1 == "total" { print $2 }' <<<"$out")"
if [[ "$total" != "$COUNT" ]]; then
  echo "demo: $total records landed, want $COUNT" >&2
  exit 1
fi
echo "== all $COUNT records landed"
