#!/usr/bin/env bash
# The whole test suite: installs what it needs, then runs every test of the
# workspace with cargo-nextest (profile `ci` when CI=true).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
profile=default
[ "${CI:-}" = "true" ] && profile=ci
exec cargo nextest run --workspace --profile "$profile" "$@"
