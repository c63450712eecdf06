#!/usr/bin/env bash
# The whole test suite: unit and integration tests against real PostgreSQL, RabbitMQ and pgw-sim,
# plus the offline deployment checks. The tools that check the published documents (schemathesis,
# the AsyncAPI schema) are installed once by scripts/doc-tools.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/services.sh
PGW_RELAY_DOC_TOOLS=$(scripts/doc-tools.sh)
export PGW_RELAY_DOC_TOOLS
cargo test --locked --all-targets
# The service without pgw-sim (the `sim` feature), as a deployment may build it. A build rather
# than a check: it reuses the dependencies the tests just built (under a minute), where a check
# would first check every dependency again.
cargo build --locked --no-default-features --bin pgw-relay
if [ -x scripts/check-deploy.sh ]; then
  scripts/check-deploy.sh
fi
