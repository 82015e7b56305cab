#!/usr/bin/env bash
# Web UI tests: unit tests of the client logic, then the end-to-end run of the real
# binary in Debian's headless Chromium (playwright-core drives it; no browser download).
# Uses target/release/taskledger (or $TASKLEDGER_BIN); builds it only when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
for p in chromium chromium-driver; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "== installing ${missing[*]}"
  (apt-get update -qq || true) && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi

bin="${TASKLEDGER_BIN:-${CARGO_TARGET_DIR:-target}/release/taskledger}"
if [ ! -x "$bin" ]; then
  echo "== $bin missing: cargo build --release"
  cargo build --release
fi
export TASKLEDGER_BIN="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"

cd tests/e2e
echo "== npm ci (tests/e2e)"
npm ci --no-audit --no-fund --prefer-offline
echo "== UI unit tests"
node --test unit.test.mjs
echo "== UI end-to-end tests against $TASKLEDGER_BIN"
node --test --test-concurrency=1 ui.test.mjs
echo "== UI tests passed"
