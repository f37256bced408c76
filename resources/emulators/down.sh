#!/usr/bin/env bash
# down.sh: stop the emulators started by up.sh, by their recorded pids (TERM, then KILL after a
# bounded wait, EMULATORS_STOP_TIMEOUT seconds, default 10), and remove the pid files and the env
# file (ENV_FILE argument, EMULATORS_ENV_FILE, <repo>/.emulators.env, and the one up.sh recorded).
# Logs stay in the state dir (EMULATORS_STATE_DIR, default <repo>/.emulators/).
#
# Usage: down.sh [ENV_FILE]
set -euo pipefail

EMU_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$EMU_DIR/../.." && pwd)"
# shellcheck source=common.sh
source "$EMU_DIR/common.sh"

ENV_FILE="${1:-${EMULATORS_ENV_FILE:-$REPO_ROOT/.emulators.env}}"

if [[ ! -d "$STATE_DIR" ]]; then
  rm -f "$ENV_FILE"
  log "nothing to stop (no $STATE_DIR)"
  exit 0
fi
lock_state_dir 180

for name in "${EMULATORS[@]}"; do
  pid="$(pid_of "$name")"
  if [[ -n "$pid" ]]; then
    log "stopping $name (pid $pid)"
    stop_pid "$name" "$pid"
  fi
  rm -f "$STATE_DIR/$name.pid"
done

recorded="$(cat "$STATE_DIR/env-file" 2>/dev/null || true)"
rm -f "$ENV_FILE" ${recorded:+"$recorded"} "$STATE_DIR/env-file"
log "stopped"
