#!/usr/bin/env bash
# Gateway overhead on this machine, side by side in one run (loopback only, bounded in time):
#   1. straight to auth's /health/live
#   2. the same route through the gateway (HTTP/2 to auth, as it reaches Agora's services)
#   3. the same route through the gateway speaking HTTP/1.1 to auth, as nginx does
#   4. the same route through nginx as a reverse proxy (HTTP/1.1 keep-alive to auth)
#   5. an authenticated route through the gateway (JWT verified at the edge): GET /api/v1/auth/me
#   6. the same with the rate limiter and token denylist in Redis (a second platform instance
#      configured with [redis] url), as replicas of a distributed deployment run
#   7. the proxy's own cost: the gateway (HTTP/2 and HTTP/1.1 upstream) and nginx each proxying
#      to a static nginx answer of their own, with the proxy process's CPU time (user + system,
#      from /proc) per request beside requests/s; throughput on this shared machine moves by
#      tens of percent between runs, CPU per request much less
# Installs nginx and wrk from Debian packages when missing, and Redis through scripts/ci/redis.sh.
# Each target runs for [seconds] in every round, the targets interleaved, and the medians are
# compared: this machine's throughput drifts by 10% or more over a minute, which one run in
# a fixed order would attribute to whichever target ran at the time.
# Usage: scripts/bench/gateway.sh [seconds]   (BENCH_ROUNDS, default 3; BENCH_CONNECTIONS, default 32)
set -euo pipefail
cd "$(dirname "$0")/../.."

DURATION="${1:-10}"
CONNECTIONS="${BENCH_CONNECTIONS:-32}"
ROUNDS="${BENCH_ROUNDS:-3}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/agora-target}"

need=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx)
command -v wrk >/dev/null 2>&1 || need+=(wrk)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]} from Debian packages" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2 && apt-get install -y -qq "${need[@]}" >&2
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

cargo build --release -q
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null || true
  [ -f "$work/static.pid" ] && kill "$(cat "$work/static.pid")" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

AUTH=127.0.0.1:18181
GATEWAY=127.0.0.1:18180
NGINX_ADDR=127.0.0.1:18182
# A static answer, in an nginx of its own, behind both proxies for the CPU comparison.
STATIC=127.0.0.1:18184
STATIC_H2=127.0.0.1:18185
NGINX_STATIC_PROXY=127.0.0.1:18186
cat > "$work/agora.toml" <<TOML
data_dir = "$work/data"
log_level = "warn"
bootstrap_admin_password = "Bench-admin-1!"

[auth]
http_addr = "$AUTH"
grpc_addr = "127.0.0.1:19181"

[gateway]
http_addr = "$GATEWAY"
public_paths = ["/api/v1/auth/register", "/api/v1/auth/login", "/probe/", "/probe-h1/", "/static-h2/", "/static-h1/"]

[gateway.rate_limits.api]
limit = 1000000000
period_secs = 60

[gateway.services.probe]
url = "http://$AUTH"
prefixes = ["/probe/auth"]
strip_prefix = true
required = false
http2 = true

[gateway.services.probe-h1]
url = "http://$AUTH"
prefixes = ["/probe-h1/auth"]
strip_prefix = true
required = false

[gateway.services.static]
url = "http://$STATIC_H2"
prefixes = ["/static-h2"]
strip_prefix = true
required = false
http2 = true

[gateway.services.static-h1]
url = "http://$STATIC"
prefixes = ["/static-h1"]
strip_prefix = true
required = false
TOML
(cd "$work" && exec "$CARGO_TARGET_DIR/release/agora" --config "$work/agora.toml" > "$work/agora.log" 2>&1) &
pids+=($!)

# The same platform with the edge state in Redis, on other ports and stores.
REDIS_URL=$(bash scripts/ci/redis.sh)
REDIS_GATEWAY=127.0.0.1:18190
mkdir -p "$work/redis"
sed -e "s|$work/data|$work/redis/data|" -e "s|$AUTH|127.0.0.1:18191|g" -e "s|$GATEWAY|$REDIS_GATEWAY|" \
  -e "s|127.0.0.1:19181|127.0.0.1:19191|" "$work/agora.toml" > "$work/redis/agora.toml"
cat >> "$work/redis/agora.toml" <<TOML

[tickets]
http_addr = "127.0.0.1:18192"
grpc_addr = "127.0.0.1:19192"

[analytics]
http_addr = "127.0.0.1:18193"
grpc_addr = "127.0.0.1:19193"

[inventory_sync]
http_addr = "127.0.0.1:18194"
grpc_addr = "127.0.0.1:19194"

[redis]
url = "$REDIS_URL"
key_prefix = "agora-bench-$$:"
TOML
cat >> "$work/agora.toml" <<TOML

[tickets]
http_addr = "127.0.0.1:18183"
grpc_addr = "127.0.0.1:19183"
TOML
(cd "$work/redis" && exec "$CARGO_TARGET_DIR/release/agora" --config "$work/redis/agora.toml" > "$work/redis/agora.log" 2>&1) &
pids+=($!)

cat > "$work/static.conf" <<NGINX
worker_processes 1;
pid $work/static.pid;
error_log $work/static-error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $work/static-body;
  proxy_temp_path $work/static-proxy;
  # Connections stay up: nginx otherwise ends one after 1,000 requests (an HTTP/2 GOAWAY).
  keepalive_requests 100000000;
  server {
    listen $STATIC;
    listen $STATIC_H2 http2;
    location / { return 200 "ok"; }
  }
}
NGINX
"$NGINX" -c "$work/static.conf"

cat > "$work/nginx.conf" <<NGINX
worker_processes 2;
pid $work/nginx.pid;
error_log $work/nginx-error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $work/nginx-body;
  proxy_temp_path $work/nginx-proxy;
  upstream auth { server $AUTH; keepalive 64; }
  upstream static { server $STATIC; keepalive 64; }
  server {
    listen $NGINX_ADDR;
    location / {
      proxy_pass http://auth;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-Forwarded-For \$remote_addr;
    }
  }
  server {
    listen $NGINX_STATIC_PROXY;
    location / {
      proxy_pass http://static;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-Forwarded-For \$remote_addr;
    }
  }
}
NGINX
"$NGINX" -c "$work/nginx.conf"

for _ in $(seq 1 100); do
  curl -sf "http://$GATEWAY/health" >/dev/null 2>&1 && break
  sleep 0.2
done
curl -sf "http://$GATEWAY/health" >/dev/null || { cat "$work/agora.log"; exit 1; }
for _ in $(seq 1 100); do
  curl -sf "http://$REDIS_GATEWAY/health" >/dev/null 2>&1 && break
  sleep 0.2
done
curl -sf "http://$REDIS_GATEWAY/health" >/dev/null || { cat "$work/redis/agora.log"; exit 1; }

TOKEN=$(curl -sf -X POST "http://$GATEWAY/api/v1/auth/register" -H 'Content-Type: application/json' \
  -d '{"email":"bench@example.test","password":"Bench-pass-1!","name":"Bench","tenant_name":"Bench"}' \
  | sed -E 's/.*"access_token":"([^"]+)".*/\1/')
REDIS_TOKEN=$(curl -sf -X POST "http://$REDIS_GATEWAY/api/v1/auth/register" -H 'Content-Type: application/json' \
  -d '{"email":"bench@example.test","password":"Bench-pass-1!","name":"Bench","tenant_name":"Bench"}' \
  | sed -E 's/.*"access_token":"([^"]+)".*/\1/')

# CPU time (user + system, in clock ticks) of the processes named by their pids, and of their
# children (nginx's workers).
TICKS_PER_SEC=$(getconf CLK_TCK)
cpu_ticks() {
  local total=0 pid child
  for pid in "$@"; do
    for child in "$pid" $(pgrep -P "$pid" || true); do
      [ -r "/proc/$child/stat" ] || continue
      total=$((total + $(awk '{sub(/^.*\) /, ""); print $12 + $13}' "/proc/$child/stat")))
    done
  done
  echo "$total"
}

run() { # name url [header [pid...]] — with pids, the proxy's CPU per request is printed too
  local name=$1 url=$2 header=${3:-} out before=0 after=0
  shift 3 2>/dev/null || shift $#
  [ $# -gt 0 ] && before=$(cpu_ticks "$@")
  if [ -n "$header" ]; then
    out=$(wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --latency -H "$header" "$url")
  else
    out=$(wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --latency "$url")
  fi
  [ $# -gt 0 ] && after=$(cpu_ticks "$@")
  local rps p50 p99 errors requests cpu_us=""
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  p50=$(echo "$out" | awk '$1 == "50%" {print $2}')
  p99=$(echo "$out" | awk '$1 == "99%" {print $2}')
  errors=$(echo "$out" | awk '/Non-2xx/ {print $NF}')
  requests=$(echo "$out" | awk '/requests in/ {print $1}')
  if [ $# -gt 0 ] && [ "${requests:-0}" -gt 0 ]; then
    cpu_us=$(awk -v t=$((after - before)) -v hz="$TICKS_PER_SEC" -v n="$requests" \
      'BEGIN { printf "%.1f", t / hz * 1000000 / n }')
  fi
  printf '%-5s %-44s %12s %10s %10s %8s %10s\n' "$ROUND" "$name" "$rps" "$p50" "$p99" "${errors:-0}" "$cpu_us"
  echo "$name|$rps|$p50|$p99|$cpu_us" >> "$work/results"
}

GATEWAY_PID=${pids[0]}
NGINX_PID=$(cat "$work/nginx.pid")
echo "wrk: 2 threads, $CONNECTIONS connections, ${DURATION}s each, $ROUNDS rounds (targets interleaved), $(nproc) cores"
printf '%-5s %-44s %12s %10s %10s %8s %10s\n' "round" "target" "requests/s" "p50" "p99" "non-2xx" "cpu us/req"
for round in $(seq 1 "$ROUNDS"); do
  ROUND=$round
  run "direct: auth /health/live" "http://$AUTH/health/live"
  run "gateway: /health/live on auth" "http://$GATEWAY/probe/auth/health/live"
  run "gateway-h1: /health/live on auth (HTTP/1.1)" "http://$GATEWAY/probe-h1/auth/health/live"
  run "nginx: /health/live on auth" "http://$NGINX_ADDR/health/live"
  run "gateway: GET /api/v1/auth/me (JWT verified)" "http://$GATEWAY/api/v1/auth/me" "Authorization: Bearer $TOKEN"
  run "gateway+redis: GET /api/v1/auth/me" "http://$REDIS_GATEWAY/api/v1/auth/me" "Authorization: Bearer $REDIS_TOKEN"
  run "proxy gateway: static answer (HTTP/2 up)" "http://$GATEWAY/static-h2/ok" "" "$GATEWAY_PID"
  run "proxy gateway-h1: static answer (HTTP/1.1 up)" "http://$GATEWAY/static-h1/ok" "" "$GATEWAY_PID"
  run "proxy nginx: static answer" "http://$NGINX_STATIC_PROXY/ok" "" "$NGINX_PID"
done

python3 - "$work/results" <<'PY'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    name, rps, p50, p99, cpu = line.strip().split("|")
    def ms(v):
        return float(v[:-2]) if v.endswith("ms") else float(v[:-2]) / 1000 if v.endswith("us") else float(v[:-1]) * 1000
    runs.setdefault(name, []).append((float(rps), ms(p50), ms(p99), float(cpu) if cpu else 0.0))
print()
print(f"median of {len(next(iter(runs.values())))} rounds:")
print(f"{'target':44s} {'requests/s':>12s} {'p50 ms':>10s} {'p99 ms':>10s} {'cpu us/req':>10s}")
rows = {}
cpu = {}
for name, rs in runs.items():
    med = tuple(statistics.median(r[i] for r in rs) for i in range(4))
    shown = f"{med[3]:10.1f}" if med[3] else ""
    print(f"{name:44s} {med[0]:12.0f} {med[1]:10.2f} {med[2]:10.2f} {shown}")
    if name.startswith("proxy "):
        cpu[name.split(":")[0][len("proxy "):]] = med[3]
        continue
    rows[name.split(":")[0] + ("-auth" if "me" in name else "")] = (med[0], med[2])
d, g, h, n = rows["direct"], rows["gateway"], rows["gateway-h1"], rows["nginx"]
print(f"gateway/nginx throughput {g[0] / n[0]:.2f}x, p99 {g[1] / n[1]:.2f}x;"
      f" gateway/direct throughput {g[0] / d[0]:.2f}x, p99 {g[1] / d[1]:.2f}x")
print(f"gateway with HTTP/1.1 upstream/nginx throughput {h[0] / n[0]:.2f}x, p99 {h[1] / n[1]:.2f}x")
m, r = rows["gateway-auth"], rows["gateway+redis-auth"]
print(f"authenticated route, Redis limiter and denylist vs in memory: throughput {r[0] / m[0]:.2f}x,"
      f" p99 {r[1] / m[1]:.2f}x")
print(f"proxy CPU per request: gateway {cpu['gateway']:.1f} us (HTTP/2 upstream),"
      f" {cpu['gateway-h1']:.1f} us (HTTP/1.1 upstream); nginx {cpu['nginx']:.1f} us")
PY
