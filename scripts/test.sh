#!/usr/bin/env bash
# The whole test suite: unit and integration tests against real PostgreSQL, RabbitMQ and pgw-sim,
# plus the offline deployment checks.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/services.sh
cargo test --locked --all-targets
if [ -x scripts/check-deploy.sh ]; then
  scripts/check-deploy.sh
fi
