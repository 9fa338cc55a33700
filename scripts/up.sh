#!/usr/bin/env bash
# The README's first command. From a fresh clone it installs what the local
# stack needs (npm packages, generated and compiled code when node_modules is
# missing or stale, a new dist/ build when a source changed, redis-server
# through apt-get when it is missing), then runs `clipper up` with the flags
# given here (see `bash scripts/up.sh --help`).
# Ctrl-C stops everything it started.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "clipper up: installing npm packages, generating and compiling code (npm ci, about a minute)…"
  npm ci --no-audit --no-fund --loglevel=error
else
  # An edited checkout: recompile dist/ if a source changed. Not fatal: the
  # bins run the TypeScript sources (tsx) while dist/ is stale.
  node scripts/build.mjs --if-stale || echo "clipper up: build failed, running from the TypeScript sources"
fi

if ! command -v redis-server >/dev/null 2>&1 && [[ " $* " != *" --redis-url"* ]] && [ -z "${CLIPPER_REDIS_URL:-}" ]; then
  if command -v apt-get >/dev/null 2>&1; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    echo "clipper up: installing redis-server with apt-get…"
    $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server >/dev/null
  fi
  # Elsewhere `clipper up` itself says how to get it.
fi

exec node bin/clipper.js up "$@"
