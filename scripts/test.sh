#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs what it needs (npm
# packages, generated code, redis-server, redis-sentinel, haproxy), then runs the contract checks
# (buf lint, buf breaking), the type check and every ava test. Its last line
# is "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

step "system packages"
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
# Redis high availability (test/e2e/redis-sentinel.test.ts) and the load balancer in front of gateways (test/e2e/haproxy.test.ts).
command -v redis-sentinel >/dev/null 2>&1 || missing+=(redis-sentinel)
command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || missing+=(haproxy)
# Test certificates (a private CA per run) and `clipper up --tls`.
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
# Python stubs (gen/python) and the Python client test: generators and Debian's grpcio runtime.
command -v protoc >/dev/null 2>&1 || missing+=(protobuf-compiler)
command -v grpc_python_plugin >/dev/null 2>&1 || missing+=(protobuf-compiler-grpc)
/usr/bin/python3 -c "import grpc, google.protobuf" >/dev/null 2>&1 || missing+=(python3-grpcio python3-protobuf)
# The Open Inference Protocol test builds raw tensors with numpy, as tritonclient does.
/usr/bin/python3 -c "import numpy" >/dev/null 2>&1 || missing+=(python3-numpy)
# The Python model worker (worker/python) and its tests: ZeroMQ, numpy, X25519 for CURVE, the
# metrics port; scikit-learn for examples/iris.
/usr/bin/python3 -c "import zmq, numpy, cryptography, prometheus_client, sklearn" >/dev/null 2>&1 \
  || missing+=(python3-zmq python3-numpy python3-cryptography python3-prometheus-client python3-sklearn)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" || { echo "could not install ${missing[*]}"; echo "0 passed, 1 failed"; exit 1; }
fi
echo "redis-server: $(redis-server --version | head -c 40)"
echo "haproxy: $({ command -v haproxy >/dev/null 2>&1 && haproxy -v || /usr/sbin/haproxy -v; } | head -n 1)"

step "npm packages, generated code and build"
# npm ci also runs "prepare", which generates gen/ from proto/ and compiles
# dist/ (what the bins run while it is fresh; see bin/launch.js).
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund || { echo "0 passed, 1 failed"; exit 1; }
else
  { npm run --silent gen && npm run --silent build; } || { echo "0 passed, 1 failed"; exit 1; }
fi

failed=0
step "buf lint"
npx buf lint || failed=$((failed + 1))
step "buf breaking"
node scripts/breaking.mjs || failed=$((failed + 1))
step "typecheck"
npx tsc --noEmit -p . || failed=$((failed + 1))

step "ava"
npx ava --tap 2>&1 | tee .ava.tap
ava_rc=${PIPESTATUS[0]}
passed=$(grep -c '^ok ' .ava.tap || true)
test_failed=$(grep -c '^not ok ' .ava.tap || true)
if [ "$ava_rc" -ne 0 ] && [ "$test_failed" -eq 0 ]; then test_failed=1; fi
# The checks above count as tests too: each one that failed is one failure.
echo
echo "${passed} passed, $((test_failed + failed)) failed"
[ "$ava_rc" -eq 0 ] && [ "$failed" -eq 0 ]
