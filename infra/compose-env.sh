#!/usr/bin/env bash
# Writes the secrets docker-compose.yml needs into an env file (default .env beside it, which
# docker-compose reads), generating each one missing on first run and keeping those present:
# every ${NAME:?...} or ${NAME:-} variable of docker-compose.yml whose name ends in _PASSWORD
# or _KEY or holds _PASSWORD_, and each service's NATS nkey. Run it before every `docker-compose up`; new variables a
# release adds are generated, old values are never replaced (rotation: docs/security.md).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

out=${1:-.env}
umask 077
touch "$out"
names=$(grep -oE '\$\{[A-Z0-9_]*(_PASSWORD|_KEY|_PASSWORD_[A-Z0-9_]+)[:?}-]' docker-compose.yml | sed -E 's/^\$\{//; s/[:?}-]$//' | sort -u)
added=()
for name in $names; do
  grep -qE "^${name}=." "$out" && continue
  case $name in
    # pools' secretEnv is sealed with it: 32 bytes, base64 (SECRETS_KEY in docs/security.md).
    SECRETS_KEY) value=$(openssl rand -base64 32) ;;
    # Hex: safe inside URLs, shell and YAML.
    *) value=$(openssl rand -hex 24) ;;
  esac
  printf '%s=%s\n' "$name" "$value" >>"$out"
  added+=("$name")
done
# Each service's NATS nkey (public key for nats-server, seed for the service), appended when
# missing by the same script npm start uses; it needs the repository's node_modules (npm ci).
node infra/nats/identities.mjs env-file "$out"
if [ ${#added[@]} -gt 0 ]; then
  echo "compose-env: generated ${added[*]} into $out"
else
  echo "compose-env: $out has every secret already"
fi
