#!/usr/bin/env bash
# Checks formatting and lints (clippy with warnings as errors), then runs every test of the
# workspace: unit tests, the CLI and crash tests against the real binary, the SQL specification
# (tests/slt, one test per file), and the interop tests with DuckDB, polars and pyarrow.
# Extra arguments go to cargo nextest (e.g. `scripts/test.sh -p omnistream-streams`).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/omnistream-target}"
scripts/setup.sh
cargo fmt --all --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
exec cargo nextest run --workspace --no-fail-fast "$@"
