#!/usr/bin/env bash
# Installs what building and testing omnistream need on a fresh machine. Idempotent: quick when
# everything is already there. Called by scripts/test.sh and scripts/demo.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

# Python packages: DuckDB and polars (benchmark peers, interop tests), pyarrow (interop, notebooks).
if ! python3 -c "import duckdb, polars, pyarrow" 2>/dev/null; then
  echo "setup: installing Python packages (scripts/requirements.txt)" >&2
  python3 -m pip install --quiet --disable-pip-version-check -r scripts/requirements.txt
fi

# The Rust test runner is on the machine image; install it if a machine lacks it.
if ! cargo nextest --version >/dev/null 2>&1; then
  echo "setup: installing cargo-nextest" >&2
  cargo install --locked cargo-nextest
fi
