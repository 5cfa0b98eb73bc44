#!/usr/bin/env bash
# The one command that runs every test (npm test; CI runs it from a fresh clone via .ci/run).
# Arguments go to vitest, e.g. `npm test -- libs/bus`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

source infra/prepare.sh
# Lint rules and formatting (biome.jsonc): import boundaries, no cycles, one style.
npm run lint
# Tests and benchmarks are type-checked too; vitest itself only strips types.
npx tsc -p tests/tsconfig.json

export TEST_DATABASE_URL=${TEST_DATABASE_URL:-postgres://switchyard:switchyard@127.0.0.1:5432/switchyard_test}
# No NATS_URL: every test system (and every test that starts a server) runs a nats-server of its
# own on a free port with the generated configuration, infra/nats/nats-server.conf, and fresh
# nkeys for each service (libs/testkit/src/nats-server.ts); the machine's NATS is not used.
export REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}
export EXIT_NODE_IMAGE=${EXIT_NODE_IMAGE:-switchyard/exit-node:dev}
mkdir -p .run && rm -f .run/vitest-report.json
status=0
npx vitest run --reporter=default --reporter=json --outputFile.json=.run/vitest-report.json "$@" || status=$?
# A closing line any CI reads, whatever it knows of vitest.
node -e '
  const r = JSON.parse(require("fs").readFileSync(".run/vitest-report.json", "utf8"));
  console.log(`${r.numPassedTests} passed, ${r.numFailedTests} failed, ${r.numPendingTests + r.numTodoTests} skipped`);
' || true
exit "$status"
