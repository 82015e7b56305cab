#!/usr/bin/env bash
# Replica bootstrap time (SPEC §12): a primary publishing to the log topic is
# filled with creates (wrk, FILL_SECS), a backup is taken, TAIL_SECS more creates
# follow, then a new replica starts with that backup in its restore dir. Prints the
# event counts and the time from the replica's start to "state":"live" with every
# event applied; then the same for a replica with no backup (the whole log from the
# topic). Needs tansu and wrk, like bench/replica.sh.
#
#   bench/replica_bootstrap.sh [--no-build] [FILL_SECS=60] [TAIL_SECS=5]
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
BIN="$ROOT/target/release/taskledger"
BUILD=1
for a in "$@"; do
  case "$a" in
    --no-build) BUILD=0 ;;
    FILL_SECS=*|TAIL_SECS=*) export "${a?}" ;;
    *) echo "unknown argument $a" >&2; exit 2 ;;
  esac
done
FILL_SECS=${FILL_SECS:-60}; TAIL_SECS=${TAIL_SECS:-5}
TANSU=$(command -v tansu || echo "$HOME/.cargo/bin/tansu")
[[ $BUILD == 1 ]] && (cd "$ROOT" && cargo build --release --bin taskledger)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
WORK=$(mktemp -d); PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
KPORT=$(free_port); PP=$(free_port)
"$TANSU" broker --listener-url "tcp://127.0.0.1:$KPORT" --advertised-listener-url "tcp://127.0.0.1:$KPORT" \
  --storage-engine memory://tansu/ >"$WORK/tansu.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do (echo >"/dev/tcp/127.0.0.1/$KPORT") 2>/dev/null && break; sleep 0.2; done
export TASKLEDGER_ADMIN_PASSWORD=bench-password AUTO_BACKUP_ENABLED=false KAFKA_BROKER="127.0.0.1:$KPORT" \
  KAFKA_LOG_TOPIC=boot-log RUST_LOG=warn,taskledger=info
"$BIN" serve --addr "127.0.0.1:$PP" --data-dir "$WORK/p/storage" --backup-dir "$WORK/p/backups" \
  --restore-dir "$WORK/p/restore" >"$WORK/p.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PP/api/health" >/dev/null && break; sleep 0.1; done
T=$(curl -s "http://127.0.0.1:$PP/api/auth/login" -d '{"username":"admin","password":"bench-password"}' | python3 -c 'import json,sys;print(json.load(sys.stdin)["token"])')
G=$(curl -s -H "Authorization: Bearer $T" "http://127.0.0.1:$PP/api/groups" -d '{"name":"g"}' | python3 -c 'import json,sys;print(json.load(sys.stdin)["group"]["_id"])')
fill() { BENCH_TOKEN=$T BENCH_GROUP_ID=$G BENCH_THREADS=2 wrk -t2 -c64 "-d${1}s" -s "$BENCH_DIR/create.lua" "http://127.0.0.1:$PP" >/dev/null 2>&1; }
fill "$FILL_SECS"
B=$(curl -s -H "Authorization: Bearer $T" "http://127.0.0.1:$PP/api/backup/create" -d '{}' | python3 -c 'import json,sys;print(json.load(sys.stdin)["backup"]["name"])')
fill "$TAIL_SECS"
python3 - "$PP" <<'PY'
import json, sys, time, urllib.request
h = lambda: json.load(urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/api/health"))
while h()["logTopic"]["lag"] > 0:
    time.sleep(0.2)
PY
# replica NAME [backup]: writes the seconds from start to live (every event
# applied) to $WORK/NAME.secs. Not in a subshell: PIDS must learn the process.
replica() {
  local port; port=$(free_port)
  mkdir -p "$WORK/$1/restore"
  [[ -n "${2:-}" ]] && cp "$WORK/p/backups/$2" "$WORK/$1/restore/"
  local t0; t0=$(date +%s.%N)
  "$BIN" replica --addr "127.0.0.1:$port" --data-dir "$WORK/$1/storage" --backup-dir "$WORK/$1/backups" \
    --restore-dir "$WORK/$1/restore" >"$WORK/$1.log" 2>&1 &
  PIDS+=($!)
  python3 - "$PP" "$port" "$t0" >"$WORK/$1.secs" <<'PY'
import json, sys, time, urllib.request
p, r, t0 = sys.argv[1], sys.argv[2], float(sys.argv[3])
def h(port):
    try:
        return json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=2))
    except Exception:
        return {}
want = h(p)["lastEventId"]
while True:
    x = h(r)
    if x.get("state") == "live" and x.get("appliedSeq") == want:
        print(f"{time.time() - t0:.1f}")
        break
    time.sleep(0.05)
PY
}
EVENTS=$(curl -s "http://127.0.0.1:$PP/api/health" | python3 -c 'import json,sys;print(json.load(sys.stdin)["lastEventId"])')
BEV=$(tar -xzOf "$WORK/p/backups/$B" manifest.json | python3 -c 'import json,sys;print(json.load(sys.stdin)["lastEventId"])')
replica r1 "$B"; WITH=$(cat "$WORK/r1.secs")
replica r2; WITHOUT=$(cat "$WORK/r2.secs")
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); $(date -u +%Y-%m-%d)"
echo "log: $EVENTS events; backup ends at $BEV ($(du -h "$WORK/p/backups/$B" | cut -f1))"
echo "replica from the backup plus the topic tail: live in $WITH s"
echo "replica from the topic alone: live in $WITHOUT s"
for r in r1 r2; do
  echo "--- $r: where the time went"
  grep -E "bootstrap|memory image|placed|reading it|found where|generation" "$WORK/$r.log" | sed 's/\x1b\[[0-9;]*m//g' | cut -c1-220
done
