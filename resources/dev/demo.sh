#!/usr/bin/env bash
# demo.sh (make demo): install and start the local emulators, then run real
# pipelines with the benthos-kinesis binary:
#   1. create a 4-shard stream;
#   2. start two readers (the aws_kinesis input, sharing the shards through
#      leases in DynamoDB) and write 10,000 records with the aws_kinesis output;
#   3. show the shards spread over both readers;
#   4. kill -9 one reader, write 10,000 more, show the other taking its shards;
#   5. print written / read / duplicates / lost.
# It stops whatever it started, whatever happens, and fails if a record is lost.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
BIN="$ROOT/bin/benthos-kinesis"
EMU="$ROOT/resources/emulators"
COUNT="${COUNT:-10000}"
STREAM="demo-$(date +%s)"
TABLE="$STREAM-leases"
WORK="$(mktemp -d)"
PIDS=()

started=
if ! bash "$EMU/running.sh"; then started=1; fi
cleanup() {
  for pid in "${PIDS[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  "$BIN" kinesis delete-stream --stream "$STREAM" --yes >/dev/null 2>&1 || true
  if [[ -n "$started" ]]; then bash "$EMU/down.sh"; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

bash "$EMU/up.sh"
# shellcheck source=/dev/null
source "$ROOT/.emulators.env"
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1
# The kinesis sub-commands take the SDK's endpoint variables (the pipelines' configs read
# KINESIS_ENDPOINT and DYNAMODB_ENDPOINT).
export AWS_ENDPOINT_URL_KINESIS="$KINESIS_ENDPOINT" AWS_ENDPOINT_URL_DYNAMODB="$DYNAMODB_ENDPOINT"
export STREAM TABLE

# distinct FILE...: the number of distinct record ids in the readers' output.
distinct() { cat "$@" 2>/dev/null | grep -o '"id":[0-9]*' | sort -u | wc -l; }
# wait_for N: until the readers have read N distinct records (at most 2 minutes).
wait_for() {
  local i
  for (( i = 0; i < 1200; i++ )); do
    [[ "$(distinct "$WORK"/*.jsonl)" -ge "$1" ]] && return 0
    sleep 0.1
  done
  echo "demo: only $(distinct "$WORK"/*.jsonl) of $1 records read after 2 minutes" >&2
  return 1
}
leases() { "$BIN" kinesis leases --table "$TABLE" --stream "$STREAM"; }
worker_of() { grep -o 'as worker [0-9a-f]*' "$WORK/$1.log" | head -n1 | awk '{print $3}'; }
start_reader() {
  OUT="$WORK/$1.jsonl" LOG_LEVEL=INFO "$BIN" run config/examples/input-demo.yaml >"$WORK/$1.log" 2>&1 &
  PIDS+=($!)
  eval "PID_$1=$!"
  disown
}
# checkpointed: every owned shard has a checkpoint (written each commit_period, 5s). The columns
# are found by name in the shard table's header.
checkpointed() {
  ! leases | awk -v s="$STREAM" '
    $1 == "STREAM" { for (i = 1; i <= NF; i++) col[$i] = i; next }
    $1 == s && $col["OWNER"] != "-" && $col["CHECKPOINT"] == "-"' | grep -q .
}
# stop PID: SIGTERM, then wait (at most 30 s) for a graceful exit.
stop() {
  local i
  kill -TERM "$1" 2>/dev/null || return 0
  for (( i = 0; i < 300; i++ )); do
    kill -0 "$1" 2>/dev/null || return 0
    sleep 0.1
  done
  echo "demo: reader $1 did not stop within 30 s" >&2
  return 1
}

echo "== creating stream $STREAM (4 shards) on kinesalite at $KINESIS_ENDPOINT"
"$BIN" kinesis create-stream --stream "$STREAM" --shards 4

echo "== starting two readers (aws_kinesis input, leases in dynamodb table $TABLE)"
start_reader a
start_reader b

echo "== writing $COUNT records with the aws_kinesis output"
STREAM="$STREAM" COUNT="$COUNT" ID_OFFSET=0 LOG_LEVEL=WARN "$BIN" run config/examples/output-demo.yaml
wait_for "$COUNT"
echo "== all $COUNT records read; the shards are spread over both readers (a = $(worker_of a), b = $(worker_of b)):"
leases

for (( i = 0; i < 300; i++ )); do checkpointed && break; sleep 0.1; done
echo "== after the next commit (commit_period 5s), every shard has a checkpoint:"
leases | sed -n 1,5p

echo "== kill -9 reader b, then write $COUNT more records"
kill -9 "$PID_b"
killed_at=$(date +%s.%N)
STREAM="$STREAM" COUNT="$COUNT" ID_OFFSET="$COUNT" LOG_LEVEL=WARN "$BIN" run config/examples/output-demo.yaml
wait_for $(( 2 * COUNT ))
took_at=$(date +%s.%N)
echo "== reader a took b's shards:"
grep -h 'Took shard' "$WORK/a.log" | sed 's/^/   /' || true
awk -v k="$killed_at" -v t="$took_at" 'BEGIN { printf "== every record read %.1f s after the kill (lease_period 3.5s)\n", t - k }'
leases

echo "== stopping reader a gracefully"
stop "$PID_a"

written=$(( 2 * COUNT ))
read_total=$(cat "$WORK"/*.jsonl | wc -l)
read_distinct=$(distinct "$WORK"/*.jsonl)
echo "== written $written, read $read_total, distinct $read_distinct, duplicates $(( read_total - read_distinct )), lost $(( written - read_distinct ))"
echo "   (duplicates come only from what b delivered after its last checkpoint, before it was killed)"
if [[ "$read_distinct" -ne "$written" ]]; then
  echo "demo: records were lost" >&2
  exit 1
fi
