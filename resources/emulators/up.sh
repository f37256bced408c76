#!/usr/bin/env bash
# up.sh: start the local emulators used by the tests and the demo, bound to 127.0.0.1.
#
#   kinesalite    (Kinesis, fast)                  KINESALITE_PORT   default 4567
#   kinesis-local (kinesis-mock: UpdateShardCount) KINESIS_MOCK_PORT default 4568
#   dynalite      (DynamoDB)                       DYNALITE_PORT     default 4569
#
# Usage: up.sh [ENV_FILE]
#
# Idempotent: an emulator of ours that is already running (pid file alive and answering) is
# reused. Installs the pinned packages with `npm ci` when node_modules is missing or older than
# package-lock.json. Waits (bounded, EMULATORS_START_TIMEOUT seconds, default 60) until each
# emulator answers a real API call, then writes ENV_FILE (default <repo>/.emulators.env, or
# EMULATORS_ENV_FILE) with
#   export KINESIS_ENDPOINT=http://127.0.0.1:4567
#   export KINESIS_MOCK_ENDPOINT=http://127.0.0.1:4568
#   export DYNAMODB_ENDPOINT=http://127.0.0.1:4569
# Pid files and logs go to EMULATORS_STATE_DIR (default <repo>/.emulators/).
# Stop them with down.sh.
#
# Other knobs: EMULATORS_DELAY_MS (CREATING/DELETING/UPDATING time, default 50),
# EMULATORS_SHARD_LIMIT (default 1000), KINESIS_MOCK_LOG_LEVEL (ERROR|WARN|INFO|DEBUG|TRACE,
# default ERROR), KINESIS_MOCK_TLS_PORT (kinesis-local always opens a TLS port too; default 0,
# an ephemeral loopback port).
set -euo pipefail

EMU_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$EMU_DIR/../.." && pwd)"
# shellcheck source=common.sh
source "$EMU_DIR/common.sh"

ENV_FILE="${1:-${EMULATORS_ENV_FILE:-$REPO_ROOT/.emulators.env}}"
START_TIMEOUT="${EMULATORS_START_TIMEOUT:-60}"
DELAY_MS="${EMULATORS_DELAY_MS:-50}"
SHARD_LIMIT="${EMULATORS_SHARD_LIMIT:-1000}"
KINESIS_MOCK_LOG_LEVEL="${KINESIS_MOCK_LOG_LEVEL:-ERROR}"
KINESIS_MOCK_TLS_PORT="${KINESIS_MOCK_TLS_PORT:-0}"

for v in KINESALITE_PORT KINESIS_MOCK_PORT DYNALITE_PORT KINESIS_MOCK_TLS_PORT DELAY_MS SHARD_LIMIT START_TIMEOUT; do
  [[ "${!v}" =~ ^[0-9]+$ ]] || die "$v must be a number, got '${!v}'"
done
if [[ "$KINESALITE_PORT" == "$KINESIS_MOCK_PORT" || "$KINESALITE_PORT" == "$DYNALITE_PORT" ||
      "$KINESIS_MOCK_PORT" == "$DYNALITE_PORT" ]]; then
  die "ports must differ: KINESALITE_PORT=$KINESALITE_PORT KINESIS_MOCK_PORT=$KINESIS_MOCK_PORT DYNALITE_PORT=$DYNALITE_PORT"
fi
command -v node >/dev/null || die "node is not installed"
command -v curl >/dev/null || die "curl is not installed"

lock_state_dir "$((START_TIMEOUT + 120))"
[[ -f "$STATE_DIR/.gitignore" ]] || echo '*' >"$STATE_DIR/.gitignore"

# ---- install --------------------------------------------------------------------------------
if [[ ! -f "$EMU_DIR/node_modules/.package-lock.json" ||
      "$EMU_DIR/package-lock.json" -nt "$EMU_DIR/node_modules/.package-lock.json" ]]; then
  command -v npm >/dev/null || die "npm is not installed"
  # Running emulators of ours run the code being replaced: stop them, they restart below.
  for name in "${EMULATORS[@]}"; do
    pid="$(pid_of "$name")"
    if [[ -n "$pid" ]]; then
      log "$name: stopping pid $pid, its packages are being reinstalled"
      stop_pid "$name" "$pid"
      rm -f "$STATE_DIR/$name.pid"
    fi
  done
  log "installing emulators: npm ci in $EMU_DIR"
  (cd "$EMU_DIR" && npm ci --no-audit --no-fund >"$STATE_DIR/npm-ci.log" 2>&1) || {
    tail -n 40 "$STATE_DIR/npm-ci.log" >&2
    die "npm ci failed (log: $STATE_DIR/npm-ci.log)"
  }
fi

# ---- start ----------------------------------------------------------------------------------
now_ms() { date +%s%3N; }

# The emulators get a clean environment: kinesis-local reads its whole configuration from
# environment variables (AWS_ACCOUNT_ID, AWS_REGION, INITIALIZE_STREAMS, SHOULD_PERSIST_DATA...),
# and NODE_OPTIONS or similar in the caller's environment must not change them either.
# command_of NAME: sets CMD to the emulator's command line.
command_of() {
  local name="$1" d="${DELAY_MS}ms"
  CMD=(env -i "PATH=$PATH" "HOME=${HOME:-/tmp}")
  case "$name" in
    kinesalite)
      CMD+=(node -r "$EMU_DIR/loopback.js" "$(script_of kinesalite)"
        --port "$KINESALITE_PORT" --createStreamMs "$DELAY_MS" --deleteStreamMs "$DELAY_MS"
        --updateStreamMs "$DELAY_MS" --shardLimit "$SHARD_LIMIT") ;;
    kinesis-mock)
      CMD+=(KINESIS_MOCK_PLAIN_PORT="$KINESIS_MOCK_PORT"
        KINESIS_MOCK_TLS_PORT="$KINESIS_MOCK_TLS_PORT"
        KINESIS_MOCK_CERT_PATH="$EMU_DIR/node_modules/kinesis-local/server.json"
        CREATE_STREAM_DURATION="$d" DELETE_STREAM_DURATION="$d"
        REGISTER_STREAM_CONSUMER_DURATION="$d" DEREGISTER_STREAM_CONSUMER_DURATION="$d"
        START_STREAM_ENCRYPTION_DURATION="$d" STOP_STREAM_ENCRYPTION_DURATION="$d"
        MERGE_SHARDS_DURATION="$d" SPLIT_SHARD_DURATION="$d"
        UPDATE_SHARD_COUNT_DURATION="$d" UPDATE_STREAM_MODE_DURATION="$d"
        SHARD_LIMIT="$SHARD_LIMIT" ON_DEMAND_STREAM_COUNT_LIMIT="$SHARD_LIMIT"
        AWS_ACCOUNT_ID=000000000000 AWS_REGION=us-east-1
        SHOULD_PERSIST_DATA=false LOAD_DATA_IF_EXISTS=false
        LOG_LEVEL="$KINESIS_MOCK_LOG_LEVEL" ROOT_LOG_LEVEL=ERROR
        node -r "$EMU_DIR/loopback.js" "$(script_of kinesis-mock)") ;;
    dynalite)
      CMD+=(node -r "$EMU_DIR/loopback.js" "$(script_of dynalite)"
        --host 127.0.0.1 --port "$DYNALITE_PORT" --createTableMs "$DELAY_MS"
        --deleteTableMs "$DELAY_MS" --updateTableMs "$DELAY_MS") ;;
  esac
}

declare -A started_at=()
declare -A reused=()

# check NAME: reuse a healthy emulator of ours (marks it reused), or make sure its port is free
# for a fresh one. A live pid of ours that does not answer gets a short grace (it may still be
# starting), then is stopped.
check() {
  local name="$1" port pid i
  port="$(port_of "$name")"
  pid="$(pid_of "$name")"
  if [[ -n "$pid" ]]; then
    for (( i = 0; i < 50; i++ )); do
      if probe "$name" "$port"; then
        log "$name: already running (pid $pid) on http://127.0.0.1:$port"
        reused[$name]=1
        return 0
      fi
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    log "$name: pid $pid does not answer on port $port; restarting it"
    stop_pid "$name" "$pid"
  fi
  rm -f "$STATE_DIR/$name.pid"
  if port_busy "$port"; then
    die "$name: port $port on 127.0.0.1 is taken by another process (not ours: no live pid in $STATE_DIR/$name.pid); stop it or choose another port ($(port_var "$name"))"
  fi
}

# start NAME: start it in the background.
start() {
  local name="$1"
  command_of "$name"
  started_at[$name]="$(now_ms)"
  # setsid: its own session and process group, so a Ctrl-C or the end of the caller's job does
  # not take it down. bash writes its own pid, then execs node under that pid. fd 9 (the lock)
  # is not inherited.
  local setsid=()
  command -v setsid >/dev/null && setsid=(setsid)
  (
    cd "$STATE_DIR"
    exec "${setsid[@]}" bash -c 'echo $$ >"$0.pid" && exec "$@"' "$name" "${CMD[@]}"
  ) </dev/null >"$STATE_DIR/$name.log" 2>&1 9>&- &
}

# On failure or interruption, stop what this run started (never what it reused).
cleanup() {
  local rc=$? name pid i
  trap - EXIT
  if (( rc != 0 )); then
    for name in "${!started_at[@]}"; do
      for (( i = 0; i < 20; i++ )); do
        [[ -s "$STATE_DIR/$name.pid" ]] && break
        sleep 0.1
      done
      pid="$(pid_of "$name")"
      [[ -z "$pid" ]] || stop_pid "$name" "$pid"
      rm -f "$STATE_DIR/$name.pid"
    done
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# wait_ready: bounded wait until every started emulator answers (polled together, so each one's
# startup time is its own); on failure print the log tail and exit.
wait_ready() {
  local name port pid deadline pending=()
  for name in "${EMULATORS[@]}"; do
    [[ -n "${reused[$name]:-}" ]] || pending+=("$name")
  done
  deadline=$(( $(now_ms) + START_TIMEOUT * 1000 ))
  while (( ${#pending[@]} > 0 )); do
    local still=()
    for name in "${pending[@]}"; do
      port="$(port_of "$name")"
      pid="$(cat "$STATE_DIR/$name.pid" 2>/dev/null || true)"
      if [[ -z "$pid" ]]; then
        (( $(now_ms) - started_at[$name] < 10000 )) || fail "$name" "did not start (no pid file after 10 s)"
      elif ! kill -0 "$pid" 2>/dev/null; then
        fail "$name" "exited during startup"
      elif probe "$name" "$port"; then
        log "$name: ready on http://127.0.0.1:$port (pid $pid, started in $(( $(now_ms) - started_at[$name] )) ms)"
        continue
      fi
      still+=("$name")
    done
    pending=("${still[@]}")
    (( ${#pending[@]} > 0 )) || break
    (( $(now_ms) < deadline )) || fail "${pending[0]}" "did not answer within ${START_TIMEOUT}s"
    sleep 0.1
  done
}

fail() {
  local name="$1" why="$2"
  log "error: $name $why; last lines of $STATE_DIR/$name.log:"
  tail -n 40 "$STATE_DIR/$name.log" >&2 2>/dev/null || true
  exit 1
}

for name in "${EMULATORS[@]}"; do check "$name"; done
for name in "${EMULATORS[@]}"; do
  [[ -n "${reused[$name]:-}" ]] || start "$name"
done
wait_ready

# ---- env file -------------------------------------------------------------------------------
mkdir -p "$(dirname "$ENV_FILE")"
tmp="$(mktemp "$ENV_FILE.XXXXXX")"
cat >"$tmp" <<EOF
# Written by resources/emulators/up.sh; removed by down.sh.
export KINESIS_ENDPOINT=http://127.0.0.1:$KINESALITE_PORT
export KINESIS_MOCK_ENDPOINT=http://127.0.0.1:$KINESIS_MOCK_PORT
export DYNAMODB_ENDPOINT=http://127.0.0.1:$DYNALITE_PORT
EOF
chmod 644 "$tmp"
mv -f "$tmp" "$ENV_FILE"
# down.sh removes the env file we wrote even when it was given elsewhere.
(cd "$(dirname "$ENV_FILE")" && echo "$(pwd)/$(basename "$ENV_FILE")") >"$STATE_DIR/env-file"
log "wrote $ENV_FILE"
