#!/usr/bin/env bash
# Runs every test of the workspace: unit tests, the CLI and crash tests against the real binary,
# the SQL specification (tests/slt), and the interop tests with DuckDB, polars and pyarrow.
# Extra arguments go to cargo nextest (e.g. `scripts/test.sh -p omnistream-streams`).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/omnistream-target}"
scripts/setup.sh
exec cargo nextest run --workspace --no-fail-fast "$@"
