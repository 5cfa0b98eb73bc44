#!/usr/bin/env bash
# What both `npm start` and `npm test` need first: infrastructure, dependencies, a build and
# the locally built images. Sourced by infra/start.sh and infra/test.sh.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash infra/setup.sh
[ -d node_modules ] || npm ci --no-audit --no-fund
export TURBO_TELEMETRY_DISABLED=${TURBO_TELEMETRY_DISABLED:-1}
npm run build
bash infra/images/build.sh
