#!/usr/bin/env bash
# Property-based API testing: schemathesis (PyPI) generates requests from
# /api/openapi.json against a live server and fails on any 5xx, a response that
# does not match its documented schema, or a wrong content type. Bounded: a
# fixed number of examples per operation.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v schemathesis >/dev/null 2>&1 || {
  python3 -m pip install -q schemathesis
  command -v pyenv >/dev/null 2>&1 && pyenv rehash || true
}
ST=$(command -v schemathesis || echo "$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')/schemathesis")

cargo build --release --bin taskledger
BIN=target/release/taskledger
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
WORK=$(mktemp -d)
cleanup() { [ -n "${PID:-}" ] && kill "$PID" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

TASKLEDGER_ADMIN_PASSWORD=schemathesis-admin AUTO_BACKUP_ENABLED=false AUTO_RESTORE_ENABLED=false RUST_LOG=warn \
  "$BIN" serve --addr "127.0.0.1:$PORT" --data-dir "$WORK/storage" --backup-dir "$WORK/backups" \
  --restore-dir "$WORK/restore" >"$WORK/server.log" 2>&1 &
PID=$!
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/api/health" >/dev/null && break; sleep 0.1; done
TOKEN=$(curl -sf "http://127.0.0.1:$PORT/api/auth/login" -H 'Content-Type: application/json' \
  -d '{"username":"admin","password":"schemathesis-admin"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')

# Logout is left out: it would revoke the token every other operation uses. The
# event stream is too: it never ends (keep-alives every 14 s defeat the read
# timeout), so schemathesis would wait on it forever; tests/stream.rs covers it.
"$ST" run "http://127.0.0.1:$PORT/api/openapi.json" \
  -H "Authorization: Bearer $TOKEN" \
  --exclude-path /api/auth/logout \
  --exclude-path /api/events/stream \
  --checks not_a_server_error,response_schema_conformance,content_type_conformance \
  --phases examples,fuzzing -n "${EXAMPLES:-25}" --seed 1 --request-timeout 30
kill -0 "$PID" || { echo "the server died during the run"; cat "$WORK/server.log"; exit 1; }
if grep -q 'panicked' "$WORK/server.log"; then echo "a handler panicked:"; cat "$WORK/server.log"; exit 1; fi
echo "schemathesis: ok"
