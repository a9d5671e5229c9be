#!/usr/bin/env bash
# Contract fuzzing: starts the embedded platform (the `agora` binary given as $1, or the debug
# build) on free ports in a temporary directory, signs up a tenant admin with an API key, and
# runs schemathesis (installed from PyPI into a venv this script makes) over the gateway's
# merged /openapi.json: no 5xx, only documented status codes, responses that match their
# schemas. Then, on the same platform, checks that inventory-sync's Stripe webhook endpoint
# accepts and refuses exactly the signatures the official `stripe` library (also from PyPI)
# accepts and refuses (scripts/ci/stripe_signatures.py), and that Judge0's own Python client
# (`judge0` from PyPI) runs programs through code-exec (scripts/ci/judge0_client.py; the
# sandbox needs root, as CI has), and that Socket.IO's own client (`socket.io-client` from npm,
# with Node.js) and a plain WebSocket client (`ws`) talk to realtime through the gateway
# (scripts/ci/socketio/check.mjs), and that the official OpenAI Python SDK (`openai` from PyPI)
# talks to the ai service's OpenAI-compatible API (scripts/ci/openai_client.py), embeddings by
# static models that Model2Vec (`model2vec` from PyPI) wrote and encoded first
# (scripts/ci/model2vec_models.py) included. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/../.."

BIN="${1:-${CARGO_TARGET_DIR:-target}/debug/agora}"
VENV="${AGORA_FUZZ_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/agora-schemathesis}"
SCHEMATHESIS_VERSION="${SCHEMATHESIS_VERSION:-4.32.5}"
STRIPE_VERSION="${STRIPE_VERSION:-16.1.0}"
JUDGE0_VERSION="${JUDGE0_VERSION:-0.0.8}"
OPENAI_VERSION="${OPENAI_VERSION:-3.63.0}"
MODEL2VEC_VERSION="${MODEL2VEC_VERSION:-0.10.0}"
EXAMPLES="${AGORA_FUZZ_EXAMPLES:-25}"
log() { echo "contract-fuzz: $*" >&2; }

if [ ! -x "$VENV/bin/schemathesis" ] || ! "$VENV/bin/schemathesis" --version | grep -q "$SCHEMATHESIS_VERSION"; then
  log "installing schemathesis $SCHEMATHESIS_VERSION into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet "schemathesis==$SCHEMATHESIS_VERSION"
fi
if ! "$VENV/bin/python" -c "import stripe, sys; sys.exit(stripe.VERSION != '$STRIPE_VERSION')" 2>/dev/null; then
  log "installing stripe $STRIPE_VERSION into $VENV"
  "$VENV/bin/pip" install --quiet "stripe==$STRIPE_VERSION"
fi

if ! "$VENV/bin/pip" show judge0 2>/dev/null | grep -q "^Version: $JUDGE0_VERSION$"; then
  log "installing judge0 $JUDGE0_VERSION into $VENV"
  "$VENV/bin/pip" install --quiet "judge0==$JUDGE0_VERSION"
fi

if ! "$VENV/bin/pip" show openai 2>/dev/null | grep -q "^Version: $OPENAI_VERSION$"; then
  log "installing openai $OPENAI_VERSION into $VENV"
  "$VENV/bin/pip" install --quiet "openai==$OPENAI_VERSION"
fi

if ! "$VENV/bin/pip" show model2vec 2>/dev/null | grep -q "^Version: $MODEL2VEC_VERSION$"; then
  log "installing model2vec $MODEL2VEC_VERSION into $VENV"
  "$VENV/bin/pip" install --quiet "model2vec==$MODEL2VEC_VERSION"
fi

# socket.io-client and ws from npm, as the lock file pins them, beside a copy of the check.
SOCKETIO="${AGORA_SOCKETIO_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/agora-socketio}"
mkdir -p "$SOCKETIO"
if ! cmp -s scripts/ci/socketio/package-lock.json "$SOCKETIO/package-lock.json" || [ ! -d "$SOCKETIO/node_modules" ]; then
  log "installing socket.io-client and ws (npm ci) into $SOCKETIO"
  cp scripts/ci/socketio/package.json scripts/ci/socketio/package-lock.json "$SOCKETIO/"
  (cd "$SOCKETIO" && npm ci --no-audit --no-fund --silent)
fi
cp scripts/ci/socketio/check.mjs "$SOCKETIO/check.mjs"

work="$(mktemp -d)"
# Static embedding models written by Model2Vec itself, for the ai service to load.
"$VENV/bin/python" scripts/ci/model2vec_models.py "$work/m2v"
# The gateway's port, and where stripe_signatures.py answers as Stripe's API.
{ read -r GATEWAY_PORT; read -r STRIPE_PORT; } < <(python3 scripts/ci/free_ports.py 2)
cat > "$work/fuzz.toml" <<TOML
data_dir = "$work/data"
[auth]
http_addr = "127.0.0.1:0"
grpc_addr = "127.0.0.1:0"
# The fuzzer's credential requests all come from one address.
credential_requests_per_minute = 0
[tickets]
http_addr = "127.0.0.1:0"
grpc_addr = "127.0.0.1:0"
[analytics]
http_addr = "127.0.0.1:0"
grpc_addr = "127.0.0.1:0"
[inventory_sync]
http_addr = "127.0.0.1:0"
grpc_addr = "127.0.0.1:0"
[inventory_sync.stripe]
api_url = "http://127.0.0.1:$STRIPE_PORT"
# Gmail consents can start (the authorization URL is made locally; nothing calls Google).
[inventory_sync.google]
client_id = "fuzz.apps.googleusercontent.com"
client_secret = "fuzz-secret"
redirect_url = "http://localhost:3000/gmail/callback"
token_url = "http://127.0.0.1:$STRIPE_PORT/token"
revoke_url = "http://127.0.0.1:$STRIPE_PORT/revoke"
gmail_url = "http://127.0.0.1:$STRIPE_PORT"
[code_exec]
http_addr = "127.0.0.1:0"
grpc_addr = "127.0.0.1:0"
[realtime]
http_addr = "127.0.0.1:0"
grpc_addr = "127.0.0.1:0"
[ai]
http_addr = "127.0.0.1:0"
grpc_addr = "127.0.0.1:0"
embedding_models = { m2v = { path = "$work/m2v/m2v" }, "m2v-quantized" = { path = "$work/m2v/m2v-quantized" } }
[gateway]
http_addr = "127.0.0.1:$GATEWAY_PORT"
# The fuzzer sends thousands of requests a minute from one caller.
[gateway.rate_limits]
credential = { limit = 1000000, period_secs = 60 }
credential_ip = { limit = 1000000, period_secs = 60 }
register = { limit = 1000000, period_secs = 60 }
api = { limit = 1000000, period_secs = 60 }
upload = { limit = 1000000, period_secs = 60 }
auth_failures = { limit = 1000000, period_secs = 60 }
TOML
RUST_LOG=warn "$BIN" --config "$work/fuzz.toml" > "$work/agora.log" 2>&1 &
pid=$!
cleanup() { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
B="http://127.0.0.1:$GATEWAY_PORT"
for _ in $(seq 1 100); do
  curl -fsS "$B/health/live" >/dev/null 2>&1 && break
  kill -0 "$pid" 2>/dev/null || { cat "$work/agora.log" >&2; exit 1; }
  sleep 0.2
done

json() { python3 -c "import sys,json; print(json.load(sys.stdin)$1)"; }
ACCESS="$(curl -fsS -X POST "$B/api/v1/auth/register" -H 'content-type: application/json' \
  -d '{"email":"fuzz@example.test","password":"Fuzz-passw0rd!","name":"Fuzz","tenant_name":"Fuzz"}' | json '["access_token"]')"
# An API key: the fuzzer may call logout or change-password, which end sessions, not keys.
KEY="$(curl -fsS -X POST "$B/api/v1/api-keys" -H "Authorization: Bearer $ACCESS" \
  -H 'content-type: application/json' -d '{"name":"fuzz","role":"TENANT_ADMIN"}' | json '["key"]')"

# One worker: with two threads, Hypothesis's concurrent ast.parse calls can trip CPython
# 3.11's thread-unsafe AST recursion counter ("AST constructor recursion depth mismatch", a
# SystemError inside the fuzzer that fails the run with nothing wrong in the API).
log "fuzzing every operation of $B/openapi.json ($EXAMPLES examples each)"
status=0
"$VENV/bin/schemathesis" run "$B/openapi.json" \
  --header "Authorization: Bearer $KEY" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,unsupported_method \
  --phases examples,coverage,fuzzing \
  --max-examples "$EXAMPLES" \
  --generation-with-security-parameters false \
  --seed "${AGORA_FUZZ_SEED:-20261130}" \
  --workers 1 \
  --no-color || status=$?
log "Stripe webhook signatures against the official stripe library"
GATEWAY="$B" STRIPE_PORT="$STRIPE_PORT" "$VENV/bin/python" scripts/ci/stripe_signatures.py || status=1
log "Judge0's Python client through the gateway"
# A tenant of its own: the fuzzer's submissions may still fill its tenant's queue.
J_ACCESS="$(curl -fsS -X POST "$B/api/v1/auth/register" -H 'content-type: application/json' \
  -d '{"email":"judge0@example.test","password":"Judge0-passw0rd!","name":"Judge0","tenant_name":"Judge0"}' | json '["access_token"]')"
GATEWAY="$B" API_KEY="$J_ACCESS" "$VENV/bin/python" scripts/ci/judge0_client.py || status=1
log "Socket.IO's own client and a plain WebSocket client through the gateway"
GATEWAY="$B" node "$SOCKETIO/check.mjs" || status=1
log "the official OpenAI Python SDK through the gateway"
O_ACCESS="$(curl -fsS -X POST "$B/api/v1/auth/register" -H 'content-type: application/json' \
  -d '{"email":"openai@example.test","password":"OpenAI-passw0rd!","name":"OpenAI","tenant_name":"OpenAI"}' | json '["access_token"]')"
GATEWAY="$B" ACCESS="$O_ACCESS" M2V="$work/m2v" "$VENV/bin/python" scripts/ci/openai_client.py || status=1
if grep -q 'panicked' "$work/agora.log"; then
  log "the platform panicked:"; grep -A5 panicked "$work/agora.log" >&2; status=1
fi
kill -0 "$pid" 2>/dev/null || { log "the platform died during the run"; status=1; }
exit $status
