#!/usr/bin/env bash
# Live-update benchmark (issue 23): create throughput (wrk, full speed) with no
# streams, then with STREAMS open event streams on one group; the p99 from a
# write's acknowledgement to its arrival on every stream (probe writes into the
# watched group by examples/stream_load.rs, one per PROBE_MS); the server's RSS per
# open stream. wrk writes into another group, so each stream gets the probes;
# SAME_GROUP=1 makes wrk write into the watched group (every write to every stream:
# more than the clients can read, so they are dropped as slow, by design).
#
#   bench/stream.sh [--no-build] [VAR=VALUE ...]
#
# Settings: STREAMS=1000 DURATION=20 THREADS=2 CONNS=64 PROBE_MS=100 SAME_GROUP=0 KEEP=0
# Needs wrk, curl, python3 and target/release/taskledger (built unless --no-build);
# builds the load client with `cargo build --release --example stream_load`.
set -euo pipefail

ORIG_ARGS=("$@")
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BIN="$TARGET/release/taskledger"
LOAD="$TARGET/release/examples/stream_load"
BUILD=1
for a in "$@"; do
    case "$a" in
        --no-build) BUILD=0 ;;
        STREAMS=*|DURATION=*|THREADS=*|CONNS=*|PROBE_MS=*|SAME_GROUP=*|KEEP=*) export "${a?}" ;;
        -h|--help) sed -n '2,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "stream.sh: unknown argument: $a" >&2; exit 2 ;;
    esac
done
STREAMS=${STREAMS:-1000}
DURATION=${DURATION:-20}
THREADS=${THREADS:-2}
CONNS=${CONNS:-64}
PROBE_MS=${PROBE_MS:-100}
KEEP=${KEEP:-0}
SAME_GROUP=${SAME_GROUP:-0}
PASSWORD=bench-password

log() { printf '[stream-bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; [[ -s "${WORK:-/nonexistent}/server.log" ]] && tail -n 20 "$WORK/server.log" >&2; exit 1; }
for tool in wrk curl python3; do command -v "$tool" >/dev/null || die "$tool is not installed"; done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/taskledger-stream-bench.XXXXXX")
SERVER_PID=""
LOAD_PID=""
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    [[ -n "$LOAD_PID" ]] && kill "$LOAD_PID" 2>/dev/null && wait "$LOAD_PID" 2>/dev/null
    [[ -n "$SERVER_PID" ]] && kill -TERM "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
    if [[ "$KEEP" == 1 ]]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

json_get() { python3 -c 'import json, sys; d = json.load(sys.stdin); print(eval(sys.argv[1]))' "$1"; }
rss_kb() { awk '$1 == "VmRSS:" { print $2 }' "/proc/$1/status"; }
rate() { awk '/^Requests\/sec:/ { print $2 }' "$1"; }
metric() { curl -sf "$URL/metrics" | awk -v k="$1" '$1 == k { print $2 }'; }

if [[ "$BUILD" == 1 ]]; then
    log "cargo build --release (server and load client)"
    (cd "$ROOT" && cargo build --release && cargo build --release --example stream_load) || die "build failed"
fi
[[ -x "$BIN" && -x "$LOAD" ]] || die "$BIN or $LOAD missing (drop --no-build)"

PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
URL="http://127.0.0.1:$PORT"
TASKLEDGER_ADMIN_PASSWORD=$PASSWORD AUTO_BACKUP_ENABLED=false AUTO_RESTORE_ENABLED=false KAFKA_ENABLED=false RUST_LOG=warn \
    "$BIN" serve --data-dir "$WORK/data" --backup-dir "$WORK/backups" --restore-dir "$WORK/restore" \
    --addr "127.0.0.1:$PORT" >>"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 600); do curl -sf -o /dev/null "$URL/api/health" && break; sleep 0.05; done
TOKEN=$(curl -sf -X POST "$URL/api/auth/login" -H 'Content-Type: application/json' \
    -d "{\"username\":\"admin\",\"password\":\"$PASSWORD\"}" | json_get 'd["token"]') || die "login failed"
GID=$(curl -sf -X POST "$URL/api/groups" -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
    -d '{"name":"stream bench"}' | json_get 'd["group"]["_id"]') || die "create group failed"
WID=$GID
if [[ "$SAME_GROUP" != 1 ]]; then
    WID=$(curl -sf -X POST "$URL/api/groups" -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
        -d '{"name":"wrk load"}' | json_get 'd["group"]["_id"]') || die "create group failed"
fi

run_wrk() { # NAME
    BENCH_TOKEN=$TOKEN BENCH_GROUP_ID=$WID BENCH_THREADS=$THREADS \
        wrk "-t$THREADS" "-c$CONNS" "-d${DURATION}s" --latency -s "$BENCH_DIR/create.lua" "$URL" >"$WORK/wrk-$1.txt" 2>&1 \
        || { cat "$WORK/wrk-$1.txt" >&2; die "wrk failed"; }
    grep -q 'non2xx=0 ' "$WORK/wrk-$1.txt" || log "WARNING: non-2xx answers in the $1 run: $(grep 'bench:' "$WORK/wrk-$1.txt")"
}

log "warm-up and baseline: creates with no stream open (${DURATION}s)"
run_wrk warmup
run_wrk base
BASE_RATE=$(rate "$WORK/wrk-base.txt")
sleep 3
RSS0=$(rss_kb "$SERVER_PID")

log "opening $STREAMS streams on the group"
READY="$WORK/ready"
BASE="$URL" ADMIN_PASSWORD=$PASSWORD GROUP=$GID STREAMS=$STREAMS SECONDS=$((DURATION + 8)) PROBE_MS=$PROBE_MS \
    READY_FILE=$READY "$LOAD" >"$WORK/load.txt" 2>"$WORK/load.err" &
LOAD_PID=$!
for _ in $(seq 1200); do [[ -f "$READY" ]] && break; kill -0 "$LOAD_PID" 2>/dev/null || { cat "$WORK/load.err" >&2; die "load client died"; }; sleep 0.1; done
[[ -f "$READY" ]] || die "streams did not open within 120 s"
sleep 3
RSS1=$(rss_kb "$SERVER_PID")
OPEN=$(metric taskledger_stream_open)
log "creates with $OPEN streams open (${DURATION}s)"
run_wrk streams
STREAM_RATE=$(rate "$WORK/wrk-streams.txt")
wait "$LOAD_PID" || die "load client failed: $(cat "$WORK/load.err")"
LOAD_PID=""
# Again without streams: the store grows during the runs (each create adds a
# task to the same group), so the baseline is the mean of before and after.
sleep 2
log "creates with no stream open, again (${DURATION}s)"
run_wrk after
AFTER_RATE=$(rate "$WORK/wrk-after.txt")
BASE_MEAN=$(awk -v a="$BASE_RATE" -v b="$AFTER_RATE" 'BEGIN { printf "%.0f", (a + b) / 2 }')
DROPPED=$(metric taskledger_stream_dropped_slow_total)
SENT=$(metric taskledger_stream_entries_sent_total)

echo "## live-update benchmark"
echo "command: bench/stream.sh${ORIG_ARGS[*]:+ ${ORIG_ARGS[*]}}  (STREAMS=$STREAMS DURATION=$DURATION THREADS=$THREADS CONNS=$CONNS PROBE_MS=$PROBE_MS SAME_GROUP=$SAME_GROUP)"
echo "date:    $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "machine: nproc=$(nproc), $(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo), kernel $(uname -r); load client and wrk on the same machine"
echo "source:  $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')"
echo
echo "| measure | value |"
echo "|---|---|"
echo "| creates/s, no stream open (before / after) | $BASE_RATE / $AFTER_RATE |"
echo "| creates/s, $OPEN streams open on $([[ "$SAME_GROUP" == 1 ]] && echo 'the written group' || echo 'another group') | $STREAM_RATE |"
echo "| ratio to the mean without streams (goal ≥ 0.8) | $(awk -v a="$STREAM_RATE" -v b="$BASE_MEAN" 'BEGIN { printf "%.2f", a / b }') |"
echo "| ack → arrival on the streams (probes) | $(sed 's/ /, /g' "$WORK/load.txt") |"
echo "| server RSS: no streams → $OPEN open | $((RSS0 / 1024)) MB → $((RSS1 / 1024)) MB, $(awk -v a="$RSS0" -v b="$RSS1" -v n="$OPEN" 'BEGIN { printf "%.1f KB", (b - a) / n }') per stream |"
echo "| entries sent / clients dropped as slow | $SENT / $DROPPED |"
