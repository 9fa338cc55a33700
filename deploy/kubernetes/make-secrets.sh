#!/usr/bin/env bash
# Writes the files kustomization.yaml turns into Secrets, into secrets/ (or
# $SECRETS_DIR): the Redis URL, an all-scope token (kept for you in `token`,
# the servers get only its hash), a self-signed TLS certificate for the
# Services' names, and CURVE keys for the gateway and the workers with the
# worker key on the allow-list. Existing files are kept (a key that changed
# under running workers would lock them out); delete one to make it anew.
#
#   ./make-secrets.sh REDIS_URL [NAMESPACE]
#
# A certificate from your own CA is better than the self-signed one: put it
# in secrets/tls.crt and secrets/tls.key before running this.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
dir="${SECRETS_DIR:-$here/secrets}"
redis_url="${1:?usage: $0 REDIS_URL [NAMESPACE]  (e.g. redis://:PASSWORD@redis.example:6379)}"
ns="${2:-default}"
umask 077
mkdir -p "$dir"

new() { [[ ! -e "$dir/$1" ]]; }

# No newline: the URL reaches the servers as an environment variable.
if new redis-url; then printf '%s' "$redis_url" > "$dir/redis-url"; fi

if new tokens; then
  token="$(openssl rand -hex 32)"
  printf '%s\n' "$token" > "$dir/token"
  hash="$(printf '%s' "$token" | openssl dgst -sha256 -r | cut -d' ' -f1)"
  printf '# the all-scope token in ./token, kept as its hash\npredict,read,admin,deploy sha256:%s\n' "$hash" > "$dir/tokens"
fi

if new tls.crt && new tls.key; then
  names="DNS:localhost,IP:127.0.0.1"
  for svc in clipper-gateway clipper-management; do
    names="$names,DNS:$svc,DNS:$svc.$ns,DNS:$svc.$ns.svc,DNS:$svc.$ns.svc.cluster.local"
  done
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 365 \
    -subj "/CN=clipper-gateway.$ns.svc" -addext "subjectAltName=$names" \
    -keyout "$dir/tls.key" -out "$dir/tls.crt" 2>/dev/null
fi

clipper() { node "$root/bin/clipper.js" "$@" > /dev/null; }
if new gateway.key; then clipper keys generate gateway --dir "$dir"; fi
if new worker.key; then clipper keys generate worker --dir "$dir"; fi
if new worker-keys; then
  # Any model; write `<key> model,...` lines to confine a key to some models.
  printf '# <Z85 public key> [model,...]\n%s\n' "$(grep -v '^#' "$dir/worker.pub")" > "$dir/worker-keys"
fi

echo "secrets in $dir; your token is in $dir/token"
