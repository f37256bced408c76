# common.sh: shared by up.sh and down.sh (sourced, not run). Expects EMU_DIR and REPO_ROOT.

KINESALITE_PORT="${KINESALITE_PORT:-4567}"
KINESIS_MOCK_PORT="${KINESIS_MOCK_PORT:-4568}"
DYNALITE_PORT="${DYNALITE_PORT:-4569}"
STATE_DIR="${EMULATORS_STATE_DIR:-$REPO_ROOT/.emulators}"
EMULATORS=(kinesalite kinesis-mock dynalite)

log() { echo "$(basename "$0"): $*" >&2; }
die() { log "error: $*"; exit 1; }

port_of() {
  case "$1" in
    kinesalite) echo "$KINESALITE_PORT" ;;
    kinesis-mock) echo "$KINESIS_MOCK_PORT" ;;
    dynalite) echo "$DYNALITE_PORT" ;;
  esac
}

port_var() {
  case "$1" in
    kinesalite) echo KINESALITE_PORT ;;
    kinesis-mock) echo KINESIS_MOCK_PORT ;;
    dynalite) echo DYNALITE_PORT ;;
  esac
}

# port_busy PORT: true when something accepts TCP connections on 127.0.0.1:PORT.
port_busy() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# The script each emulator runs; also how we recognise our own process behind a pid.
script_of() {
  case "$1" in
    kinesalite) echo "$EMU_DIR/node_modules/kinesalite/cli.js" ;;
    kinesis-mock) echo "$EMU_DIR/node_modules/kinesis-local/main.js" ;;
    dynalite) echo "$EMU_DIR/node_modules/dynalite/cli.js" ;;
  esac
}

# pid_of NAME: the recorded pid if that process is alive and is our emulator, else nothing.
pid_of() {
  local name="$1" pid
  pid="$(cat "$STATE_DIR/$name.pid" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 0
  kill -0 "$pid" 2>/dev/null || return 0
  if [[ -r "/proc/$pid/cmdline" ]]; then
    # A recycled pid belongs to some other program: not ours.
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$(script_of "$name")" || return 0
  fi
  echo "$pid"
}

# probe NAME PORT: true when the emulator answers a real API call (ListStreams / ListTables).
probe() {
  local name="$1" port="$2" target ctype service want
  case "$name" in
    dynalite)
      target=DynamoDB_20120810.ListTables ctype=application/x-amz-json-1.0 service=dynamodb
      want='"TableNames"' ;;
    *)
      target=Kinesis_20131202.ListStreams ctype=application/x-amz-json-1.1 service=kinesis
      want='"StreamNames"' ;;
  esac
  local body
  body="$(curl -sS --max-time 3 -X POST "http://127.0.0.1:$port/" \
    -H "X-Amz-Target: $target" -H "Content-Type: $ctype" \
    -H "X-Amz-Date: 20200101T000000Z" \
    -H "Authorization: AWS4-HMAC-SHA256 Credential=test/20200101/us-east-1/$service/aws4_request, SignedHeaders=host;x-amz-date, Signature=00" \
    -d '{}' 2>/dev/null)" || return 1
  [[ "$body" == *"$want"* ]]
}

# stop_pid NAME PID: TERM, then KILL after a bounded wait (EMULATORS_STOP_TIMEOUT, default 10 s).
stop_pid() {
  local name="$1" pid="$2" i
  local tries=$(( ${EMULATORS_STOP_TIMEOUT:-10} * 10 ))
  kill -TERM "$pid" 2>/dev/null || return 0
  for (( i = 0; i < tries; i++ )); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  log "$name (pid $pid) ignored TERM; sending KILL"
  kill -KILL "$pid" 2>/dev/null || true
  for (( i = 0; i < 50; i++ )); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  log "$name (pid $pid) still alive after KILL"
}

# lock_state_dir: one up.sh/down.sh at a time per state dir (fd 9; closed in the emulators).
lock_state_dir() {
  mkdir -p "$STATE_DIR"
  STATE_DIR="$(cd "$STATE_DIR" && pwd)"
  command -v flock >/dev/null || return 0
  exec 9>"$STATE_DIR/.lock"
  flock -w "${1:-180}" 9 || die "another up.sh/down.sh holds $STATE_DIR/.lock"
}
