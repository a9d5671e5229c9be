#!/usr/bin/env bash
# Makes a Kafka-protocol broker answer on 127.0.0.1:${AGORA_CI_KAFKA_PORT:-19092} for the test
# suites: uses one that answers, or starts tansu (in-memory storage) — installing it from
# crates.io first when missing (about 15 minutes the first time, then cached in ~/.cargo/bin).
# Prints the bootstrap address; when it started the broker, also writes its pid to
# ${AGORA_CI_KAFKA_PIDFILE:-/tmp/agora-ci-tansu.pid} so the caller can stop it.
set -euo pipefail

log() { echo "kafka: $*" >&2; }
PORT="${AGORA_CI_KAFKA_PORT:-19092}"
PIDFILE="${AGORA_CI_KAFKA_PIDFILE:-/tmp/agora-ci-tansu.pid}"
ready() { (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; }

if ! ready; then
  TANSU="$(command -v tansu || echo "$HOME/.cargo/bin/tansu")"
  if [ ! -x "$TANSU" ]; then
    log "tansu not installed; installing from crates.io"
    cargo install --locked tansu --features dynostore >&2
    TANSU="$HOME/.cargo/bin/tansu"
  fi
  log "starting tansu on 127.0.0.1:$PORT (memory storage)"
  nohup "$TANSU" broker \
    --listener-url "tcp://127.0.0.1:$PORT" \
    --advertised-listener-url "tcp://127.0.0.1:$PORT" \
    --storage-engine memory://tansu/ > "${PIDFILE%.pid}.log" 2>&1 &
  echo $! > "$PIDFILE"
  for _ in $(seq 1 60); do
    ready && break
    sleep 0.5
  done
  ready || { log "did not become ready"; cat "${PIDFILE%.pid}.log" >&2; exit 1; }
fi
echo "127.0.0.1:$PORT"
