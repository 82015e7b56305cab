#!/usr/bin/env bash
# Load benchmark for taskledger. See bench/README.md.
#
#   bench/run.sh [--no-build] [--big] [--big-only] [VAR=VALUE ...]
#
# Settings (environment, or VAR=VALUE arguments):
#   DURATION=15       seconds per wrk run (create, get)
#   RUNS=3            wrk runs per scenario; the table shows the medians
#   THREADS=2 CONNS=64  wrk -t / -c
#   EVENTS=1000000    --big: fill the log to at least this many events
#   GET_LOAD_SECS=10  --big: GET load between the two memory readings
#   RESTARTS=3        --big: restarts (startup time) and rebuilds, medians
#   PORT=             port to listen on (default: a free one)
#   KEEP=0            1 keeps the temp dir (data, server log, raw wrk output)
#   STARTUP_TIMEOUT=300  seconds to wait for /api/health
#   BIN=              the server binary (default target/release/taskledger; --no-build implied
#                     when set; bench/ceiling.sh passes the ceiling server)
set -euo pipefail

ORIG_ARGS=("$@")
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
BUILD=1
BIG=0
SCENARIOS=1
usage() { sed -n '2,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
for a in "$@"; do
    case "$a" in
        --no-build) BUILD=0 ;;
        --big) BIG=1 ;;
        --big-only) BIG=1; SCENARIOS=0 ;;
        -h|--help) usage; exit 0 ;;
        BIN=*|DURATION=*|RUNS=*|THREADS=*|CONNS=*|EVENTS=*|GET_LOAD_SECS=*|RESTARTS=*|PORT=*|KEEP=*|STARTUP_TIMEOUT=*)
            export "${a?}" ;;
        *) echo "run.sh: unknown argument: $a" >&2; usage >&2; exit 2 ;;
    esac
done

# A binary given by BIN= is used as it is (nothing to build).
[[ -n "${BIN:-}" ]] && BUILD=0
BIN="${BIN:-$ROOT/target/release/taskledger}"
DURATION=${DURATION:-15}
RUNS=${RUNS:-3}
THREADS=${THREADS:-2}
CONNS=${CONNS:-64}
EVENTS=${EVENTS:-1000000}
GET_LOAD_SECS=${GET_LOAD_SECS:-10}
RESTARTS=${RESTARTS:-3}
KEEP=${KEEP:-0}
STARTUP_TIMEOUT=${STARTUP_TIMEOUT:-300}
PASSWORD=bench-password

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
die() {
    printf '[bench] ERROR: %s\n' "$*" >&2
    if [[ -n "${WORK:-}" && -s "$WORK/server.log" ]]; then
        echo "--- last 30 lines of the server log ($WORK/server.log) ---" >&2
        tail -n 30 "$WORK/server.log" >&2 || true
    fi
    exit 1
}
for tool in wrk curl python3 awk du; do
    command -v "$tool" >/dev/null || die "$tool is not installed"
done
[[ -x /usr/bin/time ]] || die "/usr/bin/time (GNU time) is not installed"

# ---------------------------------------------------------------- cleanup
WORK=$(mktemp -d "${TMPDIR:-/tmp}/taskledger-bench.XXXXXX")
SERVER_PID=""
WRK_PID=""

stop_pid() { # pid signal grace-seconds: signal, wait, then SIGKILL
    local pid=$1 sig=$2 grace=$3 i
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
    kill "-$sig" "$pid" 2>/dev/null || true
    for ((i = 0; i < grace * 20; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    if kill -0 "$pid" 2>/dev/null; then
        echo "[bench] pid $pid did not stop after SIG$sig within ${grace}s: SIGKILL" >&2
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    [[ -n "$WRK_PID" ]] && stop_pid "$WRK_PID" INT 5
    [[ -n "$SERVER_PID" ]] && stop_pid "$SERVER_PID" TERM 30
    if [[ "$KEEP" == 1 ]]; then
        echo "[bench] kept $WORK (data/, server.log, wrk-*.txt)"
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- helpers
ms_since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f", (b - a) * 1000 }'; }
median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.0f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
json_get() { # json_get 'd["group"]["_id"]' < body
    python3 -c 'import json, sys; d = json.load(sys.stdin); print(eval(sys.argv[1]))' "$1"
}
rss_kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }
mb() { awk -v k="$1" 'BEGIN { printf "%.1f MB", k / 1024 }'; }

MACHINE_INFO=""
machine_info() { # computed once, after the build, so it names the benchmarked source
    [[ -n "$MACHINE_INFO" ]] && { echo "$MACHINE_INFO"; return; }
    MACHINE_INFO=$(machine_info_now)
    echo "$MACHINE_INFO"
}
machine_info_now() {
    local model
    model=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo)
    echo "machine: nproc=$(nproc), cpu=\"${model:-unknown}\", kernel $(uname -r), $(awk '/^MemTotal/ { printf "%.1f GB RAM", $2 / 1048576 }' /proc/meminfo)"
    echo "tools:   $(wrk -v 2>&1 | head -n 1 | awk '{ print $1, $2 }'), $(rustc --version 2>/dev/null || echo 'rustc ?')"
    echo "binary:  ${BIN#"$ROOT"/}, modified $(date -u -r "$BIN" '+%Y-%m-%d %H:%M:%S UTC')$( [[ "$BUILD" == 0 ]] && echo ' (--no-build: it may be older than the source below)')"
    echo "source:  $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$( [[ -n "$(git -C "$ROOT" status --porcelain 2>/dev/null)" ]] && echo ' (work tree has uncommitted changes)')"
}

COMMAND="DURATION=$DURATION RUNS=$RUNS THREADS=$THREADS CONNS=$CONNS"
[[ "$BIG" == 1 ]] && COMMAND+=" EVENTS=$EVENTS GET_LOAD_SECS=$GET_LOAD_SECS RESTARTS=$RESTARTS"
COMMAND+=" bench/run.sh${ORIG_ARGS[*]:+ ${ORIG_ARGS[*]}}"

echo "## taskledger load benchmark"
echo "command: $COMMAND"
echo "temp dir: $WORK"
echo

# ---------------------------------------------------------------- build
if [[ "$BUILD" == 1 ]]; then
    log "cargo build --release"
    (cd "$ROOT" && cargo build --release) || die "cargo build --release failed"
fi
[[ -x "$BIN" ]] || die "$BIN not found (build it, or drop --no-build)"
machine_info

# ---------------------------------------------------------------- server
if [[ -z "${PORT:-}" ]]; then
    PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
fi
URL="http://127.0.0.1:$PORT"
DATA="$WORK/data"
if curl -s -o /dev/null --max-time 1 "$URL/api/health"; then
    die "something already answers on $URL: pick another PORT"
fi

STARTUP_MS=0
start_server() {
    local t0
    t0=$EPOCHREALTIME
    TASKLEDGER_ADMIN_PASSWORD=$PASSWORD AUTO_BACKUP_ENABLED=false AUTO_RESTORE_ENABLED=false \
        KAFKA_ENABLED=false RUST_LOG=warn \
        "$BIN" serve --data-dir "$DATA" --backup-dir "$WORK/backups" --restore-dir "$WORK/restore" \
        --addr "127.0.0.1:$PORT" >>"$WORK/server.log" 2>&1 &
    SERVER_PID=$!
    until curl -sf -o /dev/null --max-time 2 "$URL/api/health"; do
        kill -0 "$SERVER_PID" 2>/dev/null || { wait "$SERVER_PID" || true; SERVER_PID=""; die "the server exited during startup"; }
        (( $(ms_since "$t0") < STARTUP_TIMEOUT * 1000 )) || die "no answer from /api/health after ${STARTUP_TIMEOUT}s"
        sleep 0.005
    done
    STARTUP_MS=$(ms_since "$t0")
}

SHUTDOWN_MS=0
stop_server() {
    local t0 rc=0
    t0=$EPOCHREALTIME
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" || rc=$?
    SHUTDOWN_MS=$(ms_since "$t0")
    SERVER_PID=""
    [[ "$rc" == 0 ]] || log "WARNING: the server exited with code $rc after SIGTERM"
}

health_events() { curl -sf --max-time 5 "$URL/api/health" | json_get 'd["events"]'; }

TOKEN=""
login() {
    local body
    body=$(curl -sf -X POST "$URL/api/auth/login" -H 'Content-Type: application/json' \
        -d "{\"username\":\"admin\",\"password\":\"$PASSWORD\"}") || die "login failed"
    TOKEN=$(json_get 'd["token"]' <<<"$body")
}

# run_wrk NAME LUA SECONDS: writes $WORK/wrk-NAME.txt, prints it indented
run_wrk() {
    local name=$1 lua=$2 secs=$3 out="$WORK/wrk-$1.txt" rc=0
    # In the background + wait, so that Ctrl-C or SIGTERM runs the trap at once
    # (bash would otherwise carry on once wrk, which catches SIGINT, exits 0).
    BENCH_TOKEN=$TOKEN BENCH_GROUP_ID=$GID BENCH_TASK_ID=$TID BENCH_GROUP20_ID=${G20:-} BENCH_THREADS=$THREADS \
        wrk "-t$THREADS" "-c$CONNS" "-d${secs}s" --latency -s "$BENCH_DIR/$lua" "$URL" >"$out" 2>&1 &
    WRK_PID=$!
    wait "$WRK_PID" || rc=$?
    WRK_PID=""
    [[ "$rc" == 0 ]] || { cat "$out"; die "wrk failed ($name), exit code $rc"; }
    sed 's/^/    /' "$out"
    kill -0 "$SERVER_PID" 2>/dev/null || die "the server died during $name"
}

log "starting the server on $URL, data dir $DATA"
start_server
RSS_EMPTY=("$(rss_kb "$SERVER_PID" VmRSS)")
log "server up in ${STARTUP_MS} ms (empty store), pid $SERVER_PID, RSS $(mb "${RSS_EMPTY[0]}")"
login
GID=$(curl -sf -X POST "$URL/api/groups" -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
    -d '{"name":"bench"}' | json_get 'd["group"]["_id"]') || die "POST /api/groups failed"
TID=$(curl -sf -X POST "$URL/api/groups/$GID/tasks" -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
    -d '{"name":"the task GET reads"}' | json_get 'd["task"]["_id"]') || die "POST /api/groups/:id/tasks failed"
G20=$(curl -sf -X POST "$URL/api/groups" -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
    -d '{"name":"twenty tasks"}' | json_get 'd["group"]["_id"]') || die "POST /api/groups failed"
for ((i = 0; i < 20; i++)); do
    curl -sf -o /dev/null -X POST "$URL/api/groups/$G20/tasks" -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
        -d "{\"name\":\"task $i of twenty\",\"description\":\"a description of about sixty characters for the task $i\"}" || die "task create failed"
done
log "group $GID, task $TID, group of 20 tasks $G20"

TABLE_HEADER='| scenario | runs | req/s (median) | p50 (median) | p99 (median) | non-2xx (all runs) | socket errors |
|---|---|---|---|---|---|---|'
ROWS=()
FAILED=0

# ---------------------------------------------------------------- create, get
if [[ "$SCENARIOS" == 1 ]]; then
    for scenario in create get get_group; do
        files=()
        for ((r = 1; r <= RUNS; r++)); do
            log "scenario $scenario, run $r/$RUNS: wrk -t$THREADS -c$CONNS -d${DURATION}s --latency -s bench/$scenario.lua"
            run_wrk "$scenario-$r" "$scenario.lua" "$DURATION"
            files+=("$WORK/wrk-$scenario-$r.txt")
        done
        row=$(python3 "$BENCH_DIR/wrkstat.py" row "$scenario" "${files[@]}")
        ROWS+=("$row")
        [[ "$row" == *"| 0 of "* ]] || FAILED=1
    done
    log "events in the log now: $(health_events)"
fi

# ---------------------------------------------------------------- big
# A realistic store (examples/fill.rs: ~1,000 groups, ~40% task creations, ~40%
# comments, ~15% status changes, the rest updates per 1M events) written through
# the real writer, then: startups, memory, GET load, check, backup create, backup
# verify, and a hot restore of that backup, uploaded into an empty server.
BIG_ROWS=()
if [[ "$BIG" == 1 ]]; then
    FILL="$ROOT/target/release/examples/fill"
    if [[ "$BUILD" == 1 ]]; then
        (cd "$ROOT" && cargo build --release --example fill) || die "building examples/fill failed"
    fi
    [[ -x "$FILL" ]] || die "$FILL not found (cargo build --release --example fill)"
    log "stopping the small server"
    stop_server
    rss_empty=$(median "${RSS_EMPTY[@]}")
    DATA="$WORK/big"
    log "big: writing $EVENTS events of the realistic profile into $DATA (examples/fill)"
    "$FILL" "$DATA" "$EVENTS" >"$WORK/fill.txt" 2>&1 || { cat "$WORK/fill.txt"; die "fill failed"; }
    sed 's/^/    /' "$WORK/fill.txt"
    fill_line=$(tail -n 1 "$WORK/fill.txt")
    offline() { # offline NAME ARGS...: runs the binary on $DATA, prints wall ms
        local name=$1 t0
        shift
        t0=$EPOCHREALTIME
        TASKLEDGER_ADMIN_PASSWORD=$PASSWORD RUST_LOG=warn \
            /usr/bin/time -f '%M' -o "$WORK/$name.maxrss" \
            "$BIN" "$@" --data-dir "$DATA" --backup-dir "$WORK/backups" --restore-dir "$WORK/restore" \
            >"$WORK/$name.txt" 2>&1 || { cat "$WORK/$name.txt"; die "taskledger $* failed"; }
        ms_since "$t0"
    }

    startups=()
    rss_start=()
    for ((r = 1; r <= RESTARTS; r++)); do
        start_server
        startups+=("$STARTUP_MS")
        rss_start+=("$(rss_kb "$SERVER_PID" VmRSS)")
        ev=$(health_events)
        log "restart $r/$RESTARTS: /api/health answered after $STARTUP_MS ms, RSS $(mb "${rss_start[-1]}"), events $ev"
        if (( r == RESTARTS )); then
            login
            GID=$(curl -sf "$URL/api/groups/$(curl -sf -H "Authorization: Bearer $TOKEN" "$URL/api/logs/groups" | json_get 'd["groups"][0]["group_id"]')" \
                -H "Authorization: Bearer $TOKEN" | json_get 'd["group"]["_id"]')
            TID=$(curl -sf -H "Authorization: Bearer $TOKEN" "$URL/api/groups/$GID" | json_get 'd["group"]["tasks"][0]["_id"]')
            log "GET load for ${GET_LOAD_SECS}s on the big store (task $TID)"
            run_wrk big-get get.lua "$GET_LOAD_SECS"
            big_get=$(python3 "$BENCH_DIR/wrkstat.py" row "get task (big store)" "$WORK/wrk-big-get.txt")
            [[ "$big_get" == *"| 0 of "* ]] || FAILED=1
            rss_load=$(rss_kb "$SERVER_PID" VmRSS)
            hwm_load=$(rss_kb "$SERVER_PID" VmHWM)
            log "after GET load: RSS $(mb "$rss_load"), peak RSS (VmHWM) $(mb "$hwm_load")"
        fi
        stop_server
    done
    du_big=$(du -sb "$DATA" | cut -f1)

    checks=()
    for ((r = 1; r <= RESTARTS; r++)); do
        checks+=("$(offline "check-$r" check)")
        log "check $r/$RESTARTS: ${checks[-1]} ms: $(tail -n 1 "$WORK/check-$r.txt")"
    done
    check_rss=$(cat "$WORK/check-1.maxrss")
    tasks=$(sed -n 's/.* \([0-9]*\) tasks.*/\1/p' "$WORK/check-1.txt")
    backup_ms=$(offline backup backup create --label big)
    backup_file=$(ls "$WORK/backups"/backup_*_big.tar.gz | head -n 1)
    backup_size=$(stat -c %s "$backup_file")
    log "backup create: $backup_ms ms, $(basename "$backup_file") $(mb $((backup_size / 1024)))"
    verifies=()
    for ((r = 1; r <= RESTARTS; r++)); do
        verifies+=("$(offline "verify-$r" backup verify "$backup_file")")
        log "backup verify $r/$RESTARTS: ${verifies[-1]} ms"
    done
    verify_rss=$(cat "$WORK/verify-1.maxrss")

    log "hot restore: an empty server, upload, restore"
    DATA="$WORK/restored"
    mv "$backup_file" "$WORK/big-backup.tar.gz"
    backup_file="$WORK/big-backup.tar.gz"
    rm -rf "$WORK/backups"
    start_server
    login
    backup_name=backup_2026-01-01_000000_big.tar.gz
    curl -sf -X POST "$URL/api/backup/upload?name=$backup_name" -H "Authorization: Bearer $TOKEN" \
        -H 'Content-Type: application/gzip' --data-binary "@$backup_file" >/dev/null || die "upload failed"
    rss_before=$(rss_kb "$SERVER_PID" VmRSS)
    t0=$EPOCHREALTIME
    curl -sf -X POST "$URL/api/backup/restore" -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
        -d "{\"backupName\":\"$backup_name\"}" >"$WORK/restore.json" || die "restore failed"
    restore_ms=$(ms_since "$t0")
    restore_hwm=$(rss_kb "$SERVER_PID" VmHWM)
    sleep 2
    rss_after_restore=$(rss_kb "$SERVER_PID" VmRSS)
    log "restore: $restore_ms ms, $(cat "$WORK/restore.json")"
    stop_server
    du_restored=$(du -sb "$DATA" | cut -f1)

    BIG_ROWS+=("| events in the log | $ev ($tasks live tasks) |")
    BIG_ROWS+=("| fill through the writer (64 concurrent callers, no HTTP) | $fill_line |")
    BIG_ROWS+=("| startup to first /api/health answer (median of $RESTARTS) | $(median "${startups[@]}") ms (runs: ${startups[*]} ms) |")
    BIG_ROWS+=("| RSS right after startup (median of $RESTARTS); empty server | $(mb "$(median "${rss_start[@]}")"); $(mb "$rss_empty") |")
    BIG_ROWS+=("| memory per live task ((RSS after start - empty RSS) / tasks) | $(awk -v a="$(median "${rss_start[@]}")" -v e="$rss_empty" -v t="$tasks" 'BEGIN { printf "%.0f bytes", (a - e) * 1024 / t }') |")
    BIG_ROWS+=("| RSS after ${GET_LOAD_SECS} s of GET load (peak VmHWM) | $(mb "$rss_load") ($(mb "$hwm_load")) |")
    BIG_ROWS+=("| \`taskledger check\` (median of $RESTARTS; peak RSS) | $(median "${checks[@]}") ms (runs: ${checks[*]} ms; $(mb "$check_rss")) |")
    BIG_ROWS+=("| \`taskledger backup create\` (offline) | $backup_ms ms, $(mb $((backup_size / 1024))) |")
    BIG_ROWS+=("| \`taskledger backup verify\` (median of $RESTARTS; peak RSS) | $(median "${verifies[@]}") ms (runs: ${verifies[*]} ms; $(mb "$verify_rss")) |")
    BIG_ROWS+=("| hot restore through the API into an empty server | $restore_ms ms, peak RSS $(mb "$restore_hwm"), RSS after $(mb "$rss_after_restore") |")
    BIG_ROWS+=("| data dir (du -sb): filled / restored | $(mb $((du_big / 1024))) / $(mb $((du_restored / 1024))) ($(awk -v b="$du_big" -v n="$ev" 'BEGIN { printf "%.0f", b / n }') bytes per event) |")
fi

# ---------------------------------------------------------------- report
echo
echo "## Results"
echo
machine_info
echo "command: $COMMAND"
echo
if ((${#ROWS[@]})); then
    echo "$TABLE_HEADER"
    printf '%s\n' "${ROWS[@]}"
    echo
fi
if [[ "$BIG" == 1 ]]; then
    echo "$TABLE_HEADER"
    echo "$big_get"
    echo
    echo "| big store (realistic profile) | value |"
    echo "|---|---|"
    printf '%s\n' "${BIG_ROWS[@]}"
    echo
fi
if [[ "$FAILED" == 1 ]]; then
    echo "WARNING: some requests were not 2xx, or the event count changed across a restart (see above)."
    exit 3
fi
