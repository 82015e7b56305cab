#!/usr/bin/env bash
# deploy/: the alert rules pass `promtool check rules`, and every metric the rules
# and the Grafana dashboard query is one that a live server exports (after a
# backup and a restore, so the labelled counters exist too).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v promtool >/dev/null 2>&1 || { echo "promtool missing (apt-get install prometheus)"; exit 1; }
promtool check rules deploy/prometheus/alerts.yml

cargo build --release --bin taskledger
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
WORK=$(mktemp -d)
cleanup() { [ -n "${PID:-}" ] && kill "$PID" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
TASKLEDGER_ADMIN_PASSWORD=deploy-check-admin AUTO_BACKUP_ENABLED=false AUTO_RESTORE_ENABLED=false RUST_LOG=warn \
  target/release/taskledger serve --addr "127.0.0.1:$PORT" --data-dir "$WORK/s" --backup-dir "$WORK/b" \
  --restore-dir "$WORK/r" >"$WORK/log" 2>&1 &
PID=$!
URL="http://127.0.0.1:$PORT"
for _ in $(seq 1 100); do curl -sf "$URL/api/health" >/dev/null && break; sleep 0.1; done
T=$(curl -sf "$URL/api/auth/login" -H 'Content-Type: application/json' \
  -d '{"username":"admin","password":"deploy-check-admin"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
curl -sf "$URL/api/groups" -H "Authorization: Bearer $T" -H 'Content-Type: application/json' -d '{"name":"g"}' >/dev/null
NAME=$(curl -sf "$URL/api/backup/create" -H "Authorization: Bearer $T" -H 'Content-Type: application/json' -d '{}' \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["backup"]["name"])')
curl -sf "$URL/api/backup/restore" -H "Authorization: Bearer $T" -H 'Content-Type: application/json' \
  -d "{\"backupName\":\"$NAME\"}" >/dev/null
curl -sf "$URL/metrics" >"$WORK/metrics.txt"

python3 - "$WORK/metrics.txt" deploy/prometheus/alerts.yml deploy/grafana/dashboards/taskledger.json <<'PY'
import json, re, sys
exported = set()
for line in open(sys.argv[1]):
    if line.startswith('# TYPE '):
        name, kind = line.split()[2:4]
        exported.add(name)
        if kind == 'histogram':
            exported.update({name + '_bucket', name + '_sum', name + '_count'})
queries = open(sys.argv[2]).read()
dash = json.load(open(sys.argv[3]))
exprs = [t['expr'] for p in dash['panels'] for t in p.get('targets', [])]
queries += '\n'.join(exprs)
used = set(re.findall(r'\btaskledger_[a-z_]+\b', queries))
missing = sorted(used - exported)
if missing:
    sys.exit(f"queried but not exported by /metrics: {missing}")
if len(exprs) < 8:
    sys.exit(f"the dashboard has only {len(exprs)} queries")
print(f"deploy: {len(used)} metrics queried, all exported; {len(exprs)} dashboard queries")
PY
