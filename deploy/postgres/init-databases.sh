#!/bin/sh
# Run once by the postgres image on an empty data directory: one database per service, each
# owned by the stack's user (services never share a store).
set -eu
for db in auth tickets analytics inventory_sync code_exec realtime ai; do
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
    -c "CREATE DATABASE $db OWNER \"$POSTGRES_USER\""
done
