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
set -euo pipefail

ORIG_ARGS=("$@")
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
BIN="$ROOT/target/release/taskledger"

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
        DURATION=*|RUNS=*|THREADS=*|CONNS=*|EVENTS=*|GET_LOAD_SECS=*|RESTARTS=*|PORT=*|KEEP=*|STARTUP_TIMEOUT=*)
            export "${a?}" ;;
        *) echo "run.sh: unknown argument: $a" >&2; usage >&2; exit 2 ;;
    esac
done

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
    echo "binary:  target/release/taskledger, modified $(date -u -r "$BIN" '+%Y-%m-%d %H:%M:%S UTC')$( [[ "$BUILD" == 0 ]] && echo ' (--no-build: it may be older than the source below)')"
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
    BENCH_TOKEN=$TOKEN BENCH_GROUP_ID=$GID BENCH_TASK_ID=$TID BENCH_THREADS=$THREADS \
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
log "server up in ${STARTUP_MS} ms (empty store), pid $SERVER_PID, RSS $(mb "$(rss_kb "$SERVER_PID" VmRSS)")"
login
GID=$(curl -sf -X POST "$URL/api/groups" -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
    -d '{"name":"bench"}' | json_get 'd["group"]["_id"]') || die "POST /api/groups failed"
TID=$(curl -sf -X POST "$URL/api/groups/$GID/tasks" -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
    -d '{"name":"the task GET reads"}' | json_get 'd["task"]["_id"]') || die "POST /api/groups/:id/tasks failed"
log "group $GID, task $TID"

TABLE_HEADER='| scenario | runs | req/s (median) | p50 (median) | p99 (median) | non-2xx (all runs) | socket errors |
|---|---|---|---|---|---|---|'
ROWS=()
FAILED=0

# ---------------------------------------------------------------- create, get
if [[ "$SCENARIOS" == 1 ]]; then
    for scenario in create get; do
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
BIG_ROWS=()
if [[ "$BIG" == 1 ]]; then
    fill_out="$WORK/wrk-fill.txt"
    t_fill=$EPOCHREALTIME
    ev0=$(health_events)
    fill_rate="n/a: the log already had $ev0 events"
    fill_non2xx=0
    if (( ev0 < EVENTS )); then
        log "big: filling the log from $ev0 to $EVENTS events with create load (wrk -t$THREADS -c$CONNS, stopped with SIGINT once reached)"
        BENCH_TOKEN=$TOKEN BENCH_GROUP_ID=$GID BENCH_TASK_ID=$TID BENCH_THREADS=$THREADS \
            wrk "-t$THREADS" "-c$CONNS" -d100000s --latency -s "$BENCH_DIR/create.lua" "$URL" >"$fill_out" 2>&1 &
        WRK_PID=$!
        last_t=$EPOCHREALTIME
        last_ev=$ev0
        while :; do
            sleep 1
            kill -0 "$WRK_PID" 2>/dev/null || { cat "$fill_out"; die "wrk stopped during the fill"; }
            kill -0 "$SERVER_PID" 2>/dev/null || die "the server died during the fill"
            ev=$(health_events) || die "/api/health failed during the fill"
            (( ev >= EVENTS )) && break
            if (( $(ms_since "$last_t") >= 10000 )); then
                log "  events $ev ($(awk -v a="$last_ev" -v b="$ev" -v ms="$(ms_since "$last_t")" 'BEGIN { printf "%.0f", (b - a) * 1000 / ms }') events/s over the last 10 s)"
                last_t=$EPOCHREALTIME
                last_ev=$ev
            fi
        done
        kill -INT "$WRK_PID" 2>/dev/null || true
        wait "$WRK_PID" || true
        WRK_PID=""
        fill_ms=$(ms_since "$t_fill")
        sed 's/^/    /' "$fill_out"
        ev=$(health_events)
        fill_rate="$(awk -v n="$((ev - ev0))" -v ms="$fill_ms" 'BEGIN { printf "%.0f", n * 1000 / ms }') events/s ($((ev - ev0)) events in $((fill_ms / 1000)) s)"
        fill_non2xx=$(sed -n 's/^bench: responses=[0-9]* non2xx=\([0-9]*\).*/\1/p' "$fill_out")
        [[ "$fill_non2xx" == 0 ]] || FAILED=1
        log "filled: $ev events, $fill_rate, non-2xx: ${fill_non2xx:-?}"
    else
        ev=$ev0
        log "big: the log already has $ev0 >= $EVENTS events, no fill needed"
    fi

    log "stopping the server (SIGTERM)"
    stop_server
    log "stopped in $SHUTDOWN_MS ms"
    du_fill=$(du -sh "$DATA" | cut -f1)
    du_fill_bytes=$(du -sb "$DATA" | cut -f1)

    startups=()
    rss_start=()
    for ((r = 1; r <= RESTARTS; r++)); do
        start_server
        startups+=("$STARTUP_MS")
        rss_start+=("$(rss_kb "$SERVER_PID" VmRSS)")
        ev_after=$(health_events)
        log "restart $r/$RESTARTS: /api/health answered after $STARTUP_MS ms, RSS $(mb "${rss_start[-1]}"), events $ev_after"
        [[ "$ev_after" == "$ev" ]] || { log "WARNING: $ev events before the restart, $ev_after after"; FAILED=1; }
        if (( r == RESTARTS )); then
            login
            log "GET load for ${GET_LOAD_SECS}s on the big store"
            run_wrk big-get get.lua "$GET_LOAD_SECS"
            big_get=$(python3 "$BENCH_DIR/wrkstat.py" row "get (big store)" "$WORK/wrk-big-get.txt")
            [[ "$big_get" == *"| 0 of "* ]] || FAILED=1
            rss_load=$(rss_kb "$SERVER_PID" VmRSS)
            hwm_load=$(rss_kb "$SERVER_PID" VmHWM)
            log "after GET load: RSS $(mb "$rss_load"), peak RSS (VmHWM) $(mb "$hwm_load")"
        fi
        stop_server
    done

    rebuilds=()
    for ((r = 1; r <= RESTARTS; r++)); do
        log "rebuild $r/$RESTARTS: taskledger rebuild --data-dir $DATA"
        t0=$EPOCHREALTIME
        TASKLEDGER_ADMIN_PASSWORD=$PASSWORD AUTO_BACKUP_ENABLED=false AUTO_RESTORE_ENABLED=false RUST_LOG=warn \
            "$BIN" rebuild --data-dir "$DATA" --backup-dir "$WORK/backups" --restore-dir "$WORK/restore" \
            >"$WORK/rebuild-$r.txt" 2>&1 || { cat "$WORK/rebuild-$r.txt"; die "taskledger rebuild failed"; }
        rebuilds+=("$(ms_since "$t0")")
        sed 's/^/    /' "$WORK/rebuild-$r.txt"
        log "  wall time ${rebuilds[-1]} ms"
    done
    du_end=$(du -sh "$DATA" | cut -f1)

    BIG_ROWS+=("| events in the log | $ev |")
    BIG_ROWS+=("| fill rate (create load, wrk -t$THREADS -c$CONNS) | $fill_rate |")
    BIG_ROWS+=("| startup to first /api/health answer (median of $RESTARTS) | $(median "${startups[@]}") ms (runs: ${startups[*]} ms) |")
    BIG_ROWS+=("| \`taskledger rebuild\` wall time (median of $RESTARTS) | $(median "${rebuilds[@]}") ms (runs: ${rebuilds[*]} ms) |")
    BIG_ROWS+=("| RSS right after startup (median of $RESTARTS) | $(mb "$(median "${rss_start[@]}")") |")
    BIG_ROWS+=("| RSS after ${GET_LOAD_SECS} s of GET load (peak VmHWM) | $(mb "$rss_load") ($(mb "$hwm_load")) |")
    BIG_ROWS+=("| data dir on disk (du -sh) after fill / after rebuilds | $du_fill / $du_end ($(awk -v b="$du_fill_bytes" -v n="$ev" 'BEGIN { printf "%.0f", b / n }') bytes per event) |")
    BIG_ROWS+=("| SIGTERM to exit (last stop) | $SHUTDOWN_MS ms |")
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
    echo "| big store | value |"
    echo "|---|---|"
    printf '%s\n' "${BIG_ROWS[@]}"
    echo
fi
if [[ "$FAILED" == 1 ]]; then
    echo "WARNING: some requests were not 2xx, or the event count changed across a restart (see above)."
    exit 3
fi
