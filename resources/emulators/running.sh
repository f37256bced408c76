#!/usr/bin/env bash
# running.sh: exit 0 when all three emulators of ours are running and answering, 1 otherwise.
# `make test` uses it to stop afterwards only what it started itself.
set -euo pipefail
EMU_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$EMU_DIR/../.." && pwd)"
# shellcheck source=common.sh
source "$EMU_DIR/common.sh"
for name in "${EMULATORS[@]}"; do
  [[ -n "$(pid_of "$name")" ]] || exit 1
  probe "$name" "$(port_of "$name")" || exit 1
done
