#!/usr/bin/env bash
# Installs, from Debian packages, the toolchains code-exec's suite runs programs with (each is
# offered as a language when its files exist): Python 3, GCC (C and C++), OpenJDK, Node.js, Go.
set -euo pipefail

log() { echo "toolchains: $*" >&2; }

missing=()
for pair in python3:python3 gcc:gcc g++:g++ javac:openjdk-17-jdk-headless node:nodejs go:golang-go; do
  tool="${pair%%:*}"
  package="${pair#*:}"
  [ -e "/usr/bin/$tool" ] || missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq "${missing[@]}" >&2
fi
