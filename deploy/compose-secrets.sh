#!/bin/sh
# docker-compose.yml's first step: this stack's secrets, made once into the `secrets`
# volume and kept across restarts, so nothing secret is ever committed or typed. The
# services read agora.toml through AGORA_CONFIG; PostgreSQL reads postgres-password.
set -eu
dir=/run/agora-secrets
if [ -s "$dir/agora.toml" ]; then
  echo "secrets: already made"
  exit 0
fi
random() { head -c 32 /dev/urandom | base64 | tr -d '\n'; }
token() { head -c 32 /dev/urandom | base64 | tr -d '\n=+/'; }
umask 077
password="$(token)"
printf '%s' "$password" > "$dir/postgres-password"
cat > "$dir/agora.toml.new" <<TOML
[auth_peer]
secret = "$(token)"

[auth]
key_encryption_key = "$(random)"
database_url = "postgres://agora:$password@postgres:5432/auth"

[tickets]
database_url = "postgres://agora:$password@postgres:5432/tickets"

[analytics]
database_url = "postgres://agora:$password@postgres:5432/analytics"

[inventory_sync]
database_url = "postgres://agora:$password@postgres:5432/inventory_sync"
key_encryption_key = "$(random)"

[code_exec]
database_url = "postgres://agora:$password@postgres:5432/code_exec"

[realtime]
database_url = "postgres://agora:$password@postgres:5432/realtime"

[ai]
database_url = "postgres://agora:$password@postgres:5432/ai"
key_encryption_key = "$(random)"

[gateway]
ops_token = "$(token)"
TOML
mv "$dir/agora.toml.new" "$dir/agora.toml"
# Each file readable by its reader alone: agora (uid 10001) and postgres (uid 999 in the
# official image).
chown 10001:10001 "$dir/agora.toml" && chmod 0400 "$dir/agora.toml"
chown 999:999 "$dir/postgres-password" && chmod 0400 "$dir/postgres-password"
chmod 0755 "$dir"
echo "secrets: made"
