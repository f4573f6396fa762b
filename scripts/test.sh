#!/usr/bin/env bash
# Runs every test of the project: unit, property, store (SQLite and PostgreSQL),
# scenario files and end-to-end tests of the `jiuzhu` binary, then the API fuzz pass.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/services.sh
cargo test --workspace --all-targets --no-fail-fast
scripts/api-fuzz.sh
