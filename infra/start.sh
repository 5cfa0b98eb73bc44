#!/usr/bin/env bash
# The one command that starts Switchyard on this machine: infrastructure, build, the exit-node
# image, then all eight services under one supervisor with prefixed logs.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

source infra/prepare.sh

# Switchyard's own NATS (the machine's on 4222 has no auth): see start_nats below.
SWITCHYARD_NATS_PORT=${SWITCHYARD_NATS_PORT:-4223}
export NATS_URL=${NATS_URL:-nats://127.0.0.1:$SWITCHYARD_NATS_PORT}
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
if [ -z "${SECRETS_KEY:-}" ]; then
  # Seals pools' secretEnv (api-gateway) and opens it (exit-node-manager). Kept like the admin
  # key: a new one could not open the secrets sealed under the old.
  if [ ! -s .run/secrets-key ]; then
    mkdir -p .run
    (umask 077 && openssl rand -base64 32 >.run/secrets-key)
  fi
  SECRETS_KEY=$(cat .run/secrets-key)
fi
export SECRETS_KEY

# Each service connects to NATS as its own nkey user, whose permissions infra/nats/nats-server.conf
# derives from the catalog (docs/security.md, "Service identities on NATS"). The seeds are
# generated on first run into .run/nats/ (mode 0600) and kept; nats-server reads the public keys
# from SY_NKEY_<SERVICE>. Its JetStream store is .run/nats/store.
nats_names=()
nats_commands=()
start_nats() {
  local seeds
  seeds=$(umask 077 && node infra/nats/identities.mjs seeds .run/nats)
  eval "$seeds"
  if [ "$NATS_URL" = "nats://127.0.0.1:$SWITCHYARD_NATS_PORT" ]; then
    nats_names=(nats)
    nats_commands=("nats-server -c infra/nats/nats-server.conf -a 127.0.0.1 -p $SWITCHYARD_NATS_PORT -js -sd .run/nats/store")
  fi
}
start_nats

# Each service connects as its own Postgres role and Redis user (libs/roles, docs/security.md).
# Applied as the admin at every start (this Redis keeps no ACL file); the passwords are
# generated once into .run/service-passwords.json, and each service's DATABASE_URL and
# REDIS_URL written to .run/env/<service>.env. DATABASE_URL and REDIS_URL, if set, are the
# admin's: the database's owner (with CREATEROLE) and a Redis user that may ACL SETUSER.
service_access() {
  ADMIN_DATABASE_URL=${DATABASE_URL:-postgres://switchyard:switchyard@127.0.0.1:5432/switchyard} \
    ADMIN_REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379} RUN_DIR=.run \
    node libs/roles/dist/cli.js local
  # Node gives the environment precedence over --env-file: the services' own must win.
  unset DATABASE_URL REDIS_URL
}
service_access

services=(api-gateway health-monitor load-balancer exit-node-manager sleep-controller
  socket-activator tunnel-manager storage-sync)
names=("${nats_names[@]}" "${services[@]}")
commands=("${nats_commands[@]}")
for s in "${services[@]}"; do
  commands+=("NATS_NKEY_SEED_FILE=.run/nats/$s.nk node --env-file=.run/env/$s.env services/$s/dist/main.js")
done

# The key itself stays out of the output (and so out of any log it is piped to).
if [ -s .run/admin-api-key ] && [ "$(cat .run/admin-api-key)" = "$ADMIN_API_KEY" ]; then
  echo "Switchyard API: http://$API_HOST:$API_PORT  (admin key in .run/admin-api-key)"
else
  echo "Switchyard API: http://$API_HOST:$API_PORT  (admin key: the ADMIN_API_KEY you set)"
fi
echo "NATS: $NATS_URL  (one nkey per service, seeds in .run/nats/)"
echo "Proxy (HTTP and SOCKS5): $LB_LISTEN_HOST:$LB_PROXY_PORT  (username country-<cc> picks the country)"
exec npx concurrently --kill-others-on-fail --prefix-colors auto \
  --names "$(IFS=,; echo "${names[*]}")" "${commands[@]}"
