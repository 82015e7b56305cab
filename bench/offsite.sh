#!/usr/bin/env bash
# Writes while the off-site bucket is down: durable creates (wrk, bench/create.lua)
# with a backup taken every 2 s, once with off-site copies pointed at a dead
# endpoint (every copy fails and is retried with backoff) and once with them off.
# Prints one table row per case (medians over RUNS) and the p99 ratio.
#   bench/offsite.sh [DURATION=10] [RUNS=3]
set -euo pipefail
for a in "$@"; do export "${a?}"; done
DURATION=${DURATION:-10}
RUNS=${RUNS:-3}
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
BIN="$ROOT/target/release/taskledger"
[[ -x "$BIN" ]] || { echo "build first: cargo build --release" >&2; exit 1; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT

one_case() { # one_case NAME [S3 env...]: RUNS wrk runs, backups every 2 s meanwhile
    local name=$1 r port url token gid
    shift
    for ((r = 1; r <= RUNS; r++)); do
        rm -rf "$WORK/d"; mkdir -p "$WORK/d"
        port=$(free_port); url="http://127.0.0.1:$port"
        env TASKLEDGER_ADMIN_PASSWORD=bench-password AUTO_BACKUP_ENABLED=false AUTO_RESTORE_ENABLED=false \
            RUST_LOG=warn "$@" "$BIN" serve --addr "127.0.0.1:$port" --data-dir "$WORK/d/s" \
            --backup-dir "$WORK/d/b" --restore-dir "$WORK/d/r" >"$WORK/server.log" 2>&1 &
        local pid=$!
        for _ in $(seq 1 100); do curl -sf "$url/api/health" >/dev/null && break; sleep 0.1; done
        token=$(curl -sf "$url/api/auth/login" -H 'Content-Type: application/json' \
            -d '{"username":"admin","password":"bench-password"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
        gid=$(curl -sf "$url/api/groups" -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
            -d '{"name":"bench"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["group"]["_id"])')
        ( while sleep 2; do curl -s -o /dev/null "$url/api/backup/create" -H "Authorization: Bearer $token" \
            -H 'Content-Type: application/json' -d '{}'; done ) &
        local backups=$!
        BENCH_TOKEN=$token BENCH_GROUP_ID=$gid BENCH_THREADS=2 \
            wrk -t2 -c64 -d"${DURATION}s" --latency -s "$BENCH_DIR/create.lua" "$url" >"$WORK/$name-$r.txt" 2>&1
        kill "$backups"; wait "$backups" 2>/dev/null || true
        curl -sf "$url/api/health" | python3 -c 'import json,sys; o=json.load(sys.stdin)["backup"]; print("    backups:", o["count"], "off-site:", o["offsite"])' >&2
        kill "$pid"; wait "$pid" 2>/dev/null || true
    done
    python3 "$BENCH_DIR/wrkstat.py" row "$name" "$WORK/$name"-*.txt
}

echo "| scenario | runs | req/s (median) | p50 (median) | p99 (median) | non-2xx (all runs) | socket errors |"
echo "|---|---|---|---|---|---|---|"
one_case "creates + backups every 2 s, off-site off"
one_case "creates + backups every 2 s, bucket down" S3_BUCKET_NAME=bench AWS_ENDPOINT_URL="http://127.0.0.1:$(free_port)" \
    AWS_ACCESS_KEY_ID=x AWS_SECRET_ACCESS_KEY=y
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); DURATION=$DURATION RUNS=$RUNS"
