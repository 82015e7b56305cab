#!/usr/bin/env bash
# Time travel on a big store: wall time of whole-state and per-group answers at
# instants across the log. Usage: bench/timetravel.sh DATA_DIR [RUNS]
# DATA_DIR: a data dir such as the one `bench/run.sh --big` fills (it is copied,
# not changed). Needs the release binary (cargo build --release).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SRC=${1:?usage: bench/timetravel.sh DATA_DIR [RUNS]}
RUNS=${2:-3}
BIN="$ROOT/target/release/taskledger"
[[ -x "$BIN" ]] || { echo "build first: cargo build --release" >&2; exit 1; }
WORK=$(mktemp -d)
trap 'kill "$PID" 2>/dev/null || true; wait 2>/dev/null || true; [[ -n "${KEEP:-}" ]] || rm -rf "$WORK"' EXIT
cp -r "$SRC" "$WORK/data"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
URL="http://127.0.0.1:$PORT"
TASKLEDGER_ADMIN_PASSWORD=${PASSWORD:-bench-password} AUTO_BACKUP_ENABLED=false AUTO_RESTORE_ENABLED=false RUST_LOG=warn \
    "$BIN" serve --addr "127.0.0.1:$PORT" --data-dir "$WORK/data" --backup-dir "$WORK/backups" \
    --restore-dir "$WORK/restore" >"$WORK/server.log" 2>&1 &
PID=$!
for _ in $(seq 1 600); do curl -sf "$URL/api/health" >/dev/null 2>&1 && break; sleep 0.1; done
curl -sf "$URL/api/health" >/dev/null || { cat "$WORK/server.log"; exit 1; }
TOKEN=$(curl -sf "$URL/api/auth/login" -H "Content-Type: application/json" \
    -d "{\"username\":\"admin\",\"password\":\"${PASSWORD:-bench-password}\"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
LAST=$(curl -sf "$URL/api/health" | python3 -c 'import json,sys; print(json.load(sys.stdin)["events"])')
GID=$(curl -sf -H "Authorization: Bearer $TOKEN" "$URL/api/logs/groups" | python3 -c 'import json,sys; print(json.load(sys.stdin)["groups"][0]["group_id"])')
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
timed() { # timed PATH: median wall ms of RUNS GETs, and the answer's size
    local ts=() out
    for ((r = 1; r <= RUNS; r++)); do
        out=$(curl -sf -o "$WORK/answer.json" -w '%{time_total}' -H "Authorization: Bearer $TOKEN" "$URL$1") \
            || { echo "GET $1 failed" >&2; exit 1; }
        ts+=("$(awk -v s="$out" 'BEGIN { printf "%d", s * 1000 }')")
    done
    echo "| GET $2 | $(median "${ts[@]}") ms (runs: ${ts[*]}) | $(( $(stat -c %s "$WORK/answer.json") / 1024 )) KiB | $(( $(awk '/VmHWM/ {print $2}' "/proc/$PID/status") / 1024 )) MiB |"
}
echo "store: $LAST events; machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "server peak RSS after start: $(( $(awk '/VmHWM/ {print $2}' "/proc/$PID/status") / 1024 )) MiB"
echo "| request | median wall time | answer size | server peak RSS so far |"
echo "|---|---|---|---|"
timed "/api/snapshot" "/api/snapshot (now: the live image)"
timed "/api/snapshot?at=$((LAST / 2))" "/api/snapshot?at=<event $((LAST / 2))> (prefix replay)"
timed "/api/snapshot?at=$((LAST - 1))" "/api/snapshot?at=<event $((LAST - 1))> (prefix replay)"
timed "/api/groups/$GID?at=$((LAST / 2))" "/api/groups/:id?at=<middle> (one stream)"
timed "/api/v1/snapshots/$GID" "/api/v1/snapshots/:groupId (every month)"
