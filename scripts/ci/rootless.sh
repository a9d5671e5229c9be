#!/usr/bin/env bash
# code-exec's escape suite again as an unprivileged user (nobody): the sandbox rootless, in
# user namespaces without cgroups (weaker isolation accepted, as a laptop runs it without
# root). Every escape case must still hold; the test binary runs from a copy its user can read.
set -euo pipefail
cd "$(dirname "$0")/../.."

log() { echo "rootless: $*" >&2; }

binary="$(cargo test -p agora-code-exec --test it --no-run --message-format=json 2>/dev/null \
  | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") \
            and m["target"]["name"] == "it" and "code-exec" in m["package_id"]:
        print(m["executable"])
')"
[ -n "$binary" ] || { log "cannot find code-exec's test binary"; exit 1; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
chmod 0755 "$work"
cp "$binary" "$work/it"
chmod 0755 "$work/it"
log "the escape suite as uid 65534"
cd "$work"
env -i PATH="/usr/bin:/bin" TMPDIR=/tmp AGORA_TEST_REQUIRE_INFRA=1 RUST_BACKTRACE=1 \
  setpriv --reuid=65534 --regid=65534 --clear-groups \
  ./it --skip api:: --skip exercises:: --test-threads 2
