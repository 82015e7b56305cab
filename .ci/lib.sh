# Shared by the CI scripts that need a Kafka-protocol broker process.
# Sets TANSU to the broker binary, building it once when missing (about 15
# minutes on 2 cores; reused from ~/.cargo/bin afterwards).
ensure_tansu() {
  if ! command -v tansu >/dev/null 2>&1 && [ ! -x "$HOME/.cargo/bin/tansu" ]; then
    echo "== installing tansu (one-time build)"
    cargo install tansu --features dynostore --locked || cargo install tansu --features dynostore
  fi
  TANSU=$(command -v tansu || echo "$HOME/.cargo/bin/tansu")
}

# free_port: a TCP port that was free a moment ago.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start_tansu PORT LOG: a tansu broker on 127.0.0.1:PORT (memory storage); sets BROKER_PID.
start_tansu() {
  "$TANSU" broker --listener-url "tcp://127.0.0.1:$1" --advertised-listener-url "tcp://127.0.0.1:$1" \
    --storage-engine memory://tansu/ >"$2" 2>&1 &
  BROKER_PID=$!
  for _ in $(seq 100); do (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.2; done
  echo "tansu did not listen on $1"; return 1
}
