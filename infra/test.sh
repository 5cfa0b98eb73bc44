#!/usr/bin/env bash
# The one command that runs every test (npm test; CI runs it from a fresh clone via .ci/run).
# Arguments go to vitest, e.g. `npm test -- libs/bus`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

source infra/prepare.sh

export TEST_DATABASE_URL=${TEST_DATABASE_URL:-postgres://switchyard:switchyard@127.0.0.1:5432/switchyard_test}
export NATS_URL=${NATS_URL:-nats://127.0.0.1:4222}
export REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}
export EXIT_NODE_IMAGE=${EXIT_NODE_IMAGE:-switchyard/exit-node:dev}
exec npx vitest run "$@"
