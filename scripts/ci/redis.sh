#!/usr/bin/env bash
# Makes a Redis server answer on 127.0.0.1:6379 for the test suites: uses a running one, starts
# an installed one (in memory only), or installs one from Debian packages. Prints the URL.
set -euo pipefail

log() { echo "redis: $*" >&2; }
ready() { [ "$(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" = "PONG" ]; }

if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
  log "not installed; installing from Debian packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq redis-server >&2
fi

if ! ready; then
  log "starting the installed server"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >&2
fi

for _ in $(seq 1 30); do
  ready && break
  sleep 1
done
ready || { log "did not become ready"; exit 1; }
echo "redis://127.0.0.1:6379"
