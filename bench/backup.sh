#!/usr/bin/env bash
# Backup/restore benchmark on a big log. See bench/README.md.
#   bench/backup.sh [EVENTS=1000000]
# Fills a fresh data dir with EVENTS task creations through the real writer
# (examples/fill.rs, no HTTP), starts the release server on it and measures:
# backup time and size, write p99 with and without a backup running, `backup
# verify` time, hot restore time.
set -euo pipefail
for a in "$@"; do export "${a?}"; done
EVENTS=${EVENTS:-1000000}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
cargo build --release --bin taskledger --example fill >/dev/null
BIN=target/release/taskledger
WORK=$(mktemp -d /tmp/taskledger-backup-bench.XXXXXX)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
PID=""
trap '[ -n "$PID" ] && kill $PID 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"' EXIT
B="http://127.0.0.1:$PORT"
now() { date +%s.%N; }
secs() { python3 -c "print(f'{$2 - $1:.2f}')"; }

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), kernel $(uname -r)"
echo "fill: $(target/release/examples/fill "$WORK/storage" "$EVENTS")"
TASKLEDGER_ADMIN_PASSWORD=bench-password AUTO_BACKUP_ENABLED=false AUTO_RESTORE_ENABLED=false RUST_LOG=warn \
  $BIN serve --addr 127.0.0.1:$PORT --data-dir "$WORK/storage" --backup-dir "$WORK/backups" --restore-dir "$WORK/restore" \
  >"$WORK/server.log" 2>&1 &
PID=$!
until curl -sf $B/api/health >/dev/null; do sleep 0.05; done
TOKEN=$(curl -s $B/api/auth/login -d '{"username":"admin","password":"bench-password"}' | python3 -c 'import json,sys;print(json.load(sys.stdin)["token"])')
GID=$(curl -s -H "Authorization: Bearer $TOKEN" $B/api/groups -d '{"name":"w"}' | python3 -c 'import json,sys;print(json.load(sys.stdin)["group"]["_id"])')
export BENCH_TOKEN=$TOKEN BENCH_GROUP_ID=$GID BENCH_THREADS=1
p99() { grep -E '^ +99%' "$1" | awk '{print $2}'; }
rps() { grep Requests/sec "$1" | awk '{print $2}'; }

# Moderate write load (16 connections) without, then with, a backup running.
wrk -t1 -c16 -d8s --latency -s bench/create.lua $B >"$WORK/w-quiet.txt"
wrk -t1 -c16 -d8s --latency -s bench/create.lua $B >"$WORK/w-backup.txt" &
WRK=$!
sleep 1
T0=$(now)
BK=$(curl -s -H "Authorization: Bearer $TOKEN" $B/api/backup/create -d '{"label":"bench"}')
T1=$(now)
wait $WRK
NAME=$(echo "$BK" | python3 -c 'import json,sys;print(json.load(sys.stdin)["backup"]["name"])')
SIZE=$(echo "$BK" | python3 -c 'import json,sys;b=json.load(sys.stdin)["backup"];print(b["sizeMB"], "MB,", b["events"], "events")')
echo "backup: $(secs $T0 $T1) s, $SIZE (taken under write load)"
echo "write p99 without backup: $(p99 "$WORK/w-quiet.txt") ($(rps "$WORK/w-quiet.txt") req/s); during backup: $(p99 "$WORK/w-backup.txt") ($(rps "$WORK/w-backup.txt") req/s)"
T0=$(now); $BIN backup verify "$WORK/backups/$NAME" >/dev/null; T1=$(now)
echo "verify (full, replay into a scratch store): $(secs $T0 $T1) s"
T0=$(now)
R=$(curl -s -H "Authorization: Bearer $TOKEN" $B/api/backup/restore -d "{\"backupName\":\"$NAME\"}")
T1=$(now)
echo "hot restore (verify + replay + pre-restore backup + swap): $(secs $T0 $T1) s -> $(echo "$R" | head -c 200)"
echo "rss after restore: $(grep VmRSS /proc/$PID/status | awk '{print $2/1024 " MB"}')"
