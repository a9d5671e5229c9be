#!/usr/bin/env bash
# Makes a PostgreSQL server answer on 127.0.0.1:5432 for the test suites: uses a running one,
# starts an installed one, or installs one from Debian packages. Prints the URL to use.
set -euo pipefail

log() { echo "postgres: $*" >&2; }
ready() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }

if ! command -v pg_isready >/dev/null 2>&1 || ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
  log "not installed; installing from Debian packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq postgresql >&2
fi

if ! ready; then
  log "starting the installed cluster"
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  pg_ctlcluster --skip-systemctl-redirect "$version" main start >&2 || true
fi

for _ in $(seq 1 60); do
  ready && break
  sleep 1
done
ready || { log "did not become ready"; exit 1; }

# Connections over TCP use a password unless the server trusts them; set one we know.
if command -v runuser >/dev/null 2>&1; then
  runuser -u postgres -- psql -q -c "ALTER USER postgres PASSWORD 'postgres'" >/dev/null 2>&1 || true
fi
echo "postgres://postgres:postgres@127.0.0.1:5432/postgres"
