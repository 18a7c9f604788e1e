#!/usr/bin/env bash
# The main job on the embedded default: simulate a workload, land it in the Parquet lake, run the
# SQL reducers, and print what each model cost and delivered. Run it again: the same seed lands
# nothing twice.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/omnistream-target}"
cargo build --quiet --bin omnistream
omnistream() { "$CARGO_TARGET_DIR/debug/omnistream" "$@"; }

omnistream simulate --generations "${GENERATIONS:-2000}"
omnistream jobs run all --once
echo
echo "Model leaderboard (from the generation_summary and model_performance reducers):"
omnistream models
echo
echo "Per-model calls over the raw model_call table:"
omnistream sql "
  SELECT model,
         count(*)                                                   AS calls,
         round(avg(CASE WHEN success THEN 1.0 ELSE 0.0 END), 3)     AS success_rate,
         round(approx_percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms))  AS p50_ms,
         round(approx_percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms)) AS p95_ms,
         sum(total_tokens)                                          AS tokens,
         round(sum(cost_usd), 2)                                    AS cost_usd,
         round(avg(quality_score), 3)                               AS mean_quality
  FROM model_call
  GROUP BY model
  ORDER BY cost_usd DESC"
omnistream lake tables
