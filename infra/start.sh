#!/usr/bin/env bash
# The one command that starts Switchyard on this machine: infrastructure, build, the exit-node
# image, then all eight services under one supervisor with prefixed logs.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

source infra/prepare.sh

export NATS_URL=${NATS_URL:-nats://127.0.0.1:4222}
export DATABASE_URL=${DATABASE_URL:-postgres://switchyard:switchyard@127.0.0.1:5432/switchyard}
export REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}
export API_HOST=${API_HOST:-127.0.0.1}
export API_PORT=${API_PORT:-8080}
export EXIT_NODE_IMAGE=${EXIT_NODE_IMAGE:-switchyard/exit-node:dev}
export LB_LISTEN_HOST=${LB_LISTEN_HOST:-127.0.0.1}
export LB_PROXY_PORT=${LB_PROXY_PORT:-1080}
# A development run on this machine: the proxy ports serve without proxy users (the load
# balancer warns). Set LB_PROXY_USERS, or LB_OPEN_PROXY=false, to close them.
export LB_OPEN_PROXY=${LB_OPEN_PROXY:-true}
if [ -z "${ADMIN_API_KEY:-}" ]; then
  # Generated once and kept, so the key stays the same across restarts.
  if [ ! -s .run/admin-api-key ]; then
    mkdir -p .run
    (umask 077 && openssl rand -hex 24 >.run/admin-api-key)
  fi
  ADMIN_API_KEY=$(cat .run/admin-api-key)
fi
export ADMIN_API_KEY

services=(api-gateway health-monitor load-balancer exit-node-manager sleep-controller
  socket-activator tunnel-manager storage-sync)
commands=()
for s in "${services[@]}"; do commands+=("node services/$s/dist/main.js"); done

echo "Switchyard API: http://$API_HOST:$API_PORT  (admin key: $ADMIN_API_KEY)"
echo "Proxy (HTTP and SOCKS5): $LB_LISTEN_HOST:$LB_PROXY_PORT  (username country-<cc> picks the country)"
exec npx concurrently --kill-others-on-fail --prefix-colors auto \
  --names "$(IFS=,; echo "${services[*]}")" "${commands[@]}"
