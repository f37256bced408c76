#!/usr/bin/env bash
# bench.sh (make bench): run the benchmarks against the emulators and the
# limit-enforcing fake, and write the figures into docs/BENCHMARKS.md between
# the markers "<!-- bench:begin -->" and "<!-- bench:end -->". The text around
# the markers (targets, comparison) is kept.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
EMU="$ROOT/resources/emulators"
DOC="$ROOT/docs/BENCHMARKS.md"

started=
if ! bash "$EMU/running.sh"; then started=1; fi
trap '[[ -n "$started" ]] && bash "$EMU/down.sh"' EXIT
bash "$EMU/up.sh"
# shellcheck source=/dev/null
source "$ROOT/.emulators.env"
# The kinesis sub-commands send no made-up credentials: the emulators take any.
export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-test}" AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-test}"

raw="$(mktemp)"
run() {
  echo "\$ $*" | tee -a "$raw"
  "$@" 2>&1 | grep -E '^(Benchmark|goos|goarch|cpu|pkg)|^ +bench_test\.go:[0-9]+: (fleet settled|window)|^ +scale_bench_test\.go:[0-9]+: figures|^ +bench_test\.go:[0-9]+: 10,000 shards' | tee -a "$raw"
}
run go test -run '^$' -bench 'BenchmarkPackPerRecord' -benchmem -benchtime 2000000x ./plugin/output/
run go test -run '^$' -bench 'BenchmarkOutputKinesalite' -benchtime 50000x ./plugin/output/
run go test -run '^$' -bench 'BenchmarkOutputShardLimitFake' -benchtime 20000x ./plugin/output/
run go test -run '^$' -bench 'BenchmarkOutputShardLimitOutOfProcess' -benchtime 40000x ./plugin/output/
run go test -run '^$' -bench 'BenchmarkOutputAggregatedShardLimitFake' -benchtime 300000x ./plugin/output/

# The input (issue 3): one input reading 200,000 records of 100 B from
# kinesalite and from the in-process fake (op = one record); failover and
# join with the default lease settings, and the idle fleet's table writes
# (op = one whole scenario: -benchtime 1x).
run go test -run '^$' -bench '^BenchmarkInputKinesalite$' -benchtime 200000x ./plugin/input/
run go test -run '^$' -bench '^BenchmarkInputFake$' -benchtime 200000x ./plugin/input/
run go test -run '^$' -bench '^BenchmarkInputFakeKPL$' -benchtime 200000x ./plugin/input/
run go test -run '^$' -bench '^BenchmarkInputFailover$' -benchtime 1x ./plugin/input/
run go test -run '^$' -bench '^BenchmarkInputIdleFleetWrites$' -benchtime 1x ./plugin/input/
run go test -run '^$' -bench '^BenchmarkInputIdle$' -benchtime 1x ./plugin/input/

# The lease protocol at scale (issue 8), each a whole scenario (-benchtime 1x),
# each invocation a few minutes at most: one worker on 1,000 shards with every
# DynamoDB call slowed by 10 and 40 ms; a fleet of 4 on 3,000 shards losing a
# worker; and per lease_period (3s, 3.5s, 4.5s, 6s) the failover time (5 runs),
# an idle worker's table calls, and what a slow or stalled table does to one
# worker.
run go test -run '^$' -bench '^BenchmarkInputSlowTable$' -benchtime 1x ./plugin/input/
run go test -run '^$' -bench '^BenchmarkInputFleetKill$' -benchtime 1x ./plugin/input/
run go test -run '^$' -bench '^BenchmarkInputLeasePeriod$/^failover$' -benchtime 1x ./plugin/input/
run go test -run '^$' -bench '^BenchmarkInputLeasePeriod$/^idle$' -benchtime 1x ./plugin/input/
run go test -run '^$' -bench '^BenchmarkInputLeasePeriod$/^slow_peer$' -benchtime 1x ./plugin/input/
run go test -run '^$' -bench '^BenchmarkInputLeasePeriod$/^stalled_peer_(2\.5s|4s)$' -benchtime 1x ./plugin/input/

# The lease machine's deterministic simulation (issue 8): seeded runs per
# second, and the simulated time a 16-worker fleet takes to reach fair share
# on 10,000 shards.
run go test -run '^$' -bench '^BenchmarkSimulationRuns$' -benchtime 200x ./checkpointer/lease/
run go test -run '^$' -bench '^BenchmarkSimulationLargeFleet$' -benchtime 1x ./checkpointer/lease/

# The binary end to end: 200,000 records through a real pipeline, with the
# peak resident memory of the process (VmHWM) and its CPU time.
BIN="$ROOT/bin/benthos-kinesis"
STREAM="bench-$(date +%s)"
"$BIN" kinesis create-stream --endpoint "$KINESIS_ENDPOINT" --stream "$STREAM" --shards 4 >/dev/null
t0=$(date +%s.%N)
STREAM="$STREAM" "$BIN" run resources/dev/bench-output.yaml &
pid=$!
hwm=0 ticks=0
while kill -0 "$pid" 2>/dev/null; do
  if v=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status" 2>/dev/null) && [[ -n "$v" ]]; then hwm=$v; fi
  if v=$(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null) && [[ -n "$v" ]]; then ticks=$v; fi
  sleep 0.1
done
wait "$pid"
t1=$(date +%s.%N)
landed="$("$BIN" kinesis shards --endpoint "$KINESIS_ENDPOINT" --stream "$STREAM" --count | awk '$1 == "total" {print $2}')"
"$BIN" kinesis delete-stream --endpoint "$KINESIS_ENDPOINT" --stream "$STREAM" --yes >/dev/null
awk -v t0="$t0" -v t1="$t1" -v hwm="$hwm" -v ticks="$ticks" -v hz="$(getconf CLK_TCK)" -v n="$landed" 'BEGIN {
  printf "binary, 200k records of 100 B to kinesalite (4 shards, max_in_flight 64, batches of 500):\n"
  printf "  landed %d records in %.1f s: %.0f records/s; peak RSS %.0f MiB; CPU %.1f µs/record (the process, at least)\n",
    n, t1 - t0, n / (t1 - t0), hwm / 1024, ticks / hz * 1e6 / n
}' | tee -a "$raw"

section="$(mktemp)"
{
  echo "<!-- bench:begin -->"
  echo "Last \`make bench\`: $(date -u +%Y-%m-%dT%H:%MZ), $(go version | awk '{print $3}'),"
  echo "$(nproc) cores ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo) memory."
  echo
  echo '```'
  cat "$raw"
  echo '```'
  echo "<!-- bench:end -->"
} >"$section"

mkdir -p "$(dirname "$DOC")"
if [[ -f "$DOC" ]] && grep -q '<!-- bench:begin -->' "$DOC"; then
  awk -v sec="$section" '
    /<!-- bench:begin -->/ { while ((getline line < sec) > 0) print line; skip = 1; next }
    /<!-- bench:end -->/ { skip = 0; next }
    !skip { print }' "$DOC" >"$DOC.new"
  mv "$DOC.new" "$DOC"
else
  { echo "# Benchmarks"; echo; cat "$section"; } >>"$DOC"
fi
rm -f "$raw" "$section"
echo "bench: figures written to docs/BENCHMARKS.md"
