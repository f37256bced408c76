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

raw="$(mktemp)"
run() {
  echo "\$ $*" | tee -a "$raw"
  "$@" 2>&1 | grep -E '^(Benchmark|goos|goarch|cpu|pkg)' | tee -a "$raw"
}
run go test -run '^$' -bench 'BenchmarkPackPerRecord' -benchmem -benchtime 2000000x ./plugin/output/
run go test -run '^$' -bench 'BenchmarkOutputKinesalite' -benchtime 50000x ./plugin/output/
run go test -run '^$' -bench 'BenchmarkOutputShardLimitFake' -benchtime 20000x ./plugin/output/

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
