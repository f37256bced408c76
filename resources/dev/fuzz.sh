#!/usr/bin/env bash
# fuzz.sh (make fuzz; make test with FUZZTIME=5s): run every Go fuzz target of the repository for
# FUZZTIME each (default 2m), one at a time (go test -fuzz takes one target per package run).
# New inputs that fail are written under the package's testdata/fuzz and fail the run.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
FUZZTIME="${FUZZTIME:-2m}"
mapfile -t targets < <(git ls-files '*_test.go' | xargs grep -H -o '^func Fuzz[A-Za-z0-9_]*' | sed 's/:func /:/' | sort)
if [[ ${#targets[@]} -eq 0 ]]; then
  echo "fuzz.sh: no fuzz targets found" >&2
  exit 1
fi
for t in "${targets[@]}"; do
  file="${t%%:*}" name="${t##*:}"
  pkg="./$(dirname "$file")/"
  echo "== $name in $pkg for $FUZZTIME"
  go test -run '^$' -fuzz "^${name}\$" -fuzztime "$FUZZTIME" "$pkg"
done
