#!/usr/bin/env bash
# The main job on the embedded default: generate a node with the codegen job and start it, simulate
# a workload, land everything in the Parquet lake, run the SQL reducers, and print what each model
# cost and delivered and which nodes are alive. Run it again: the same seed lands nothing twice.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/omnistream-target}"
scripts/setup.sh
cargo build --quiet --bin omnistream
omnistream() { "$CARGO_TARGET_DIR/debug/omnistream" "$@"; }

echo "Generating a node (template model: no network), every stage shown:"
omnistream generate "Create PostgreSQL writer Effect node"
echo
echo "Starting it: it announces itself and sends heartbeats (spooled, then ingested):"
(cd generated/node_database_postgresql_writer_effect &&
  python3 start_node.py --heartbeats 3 --interval 0.2 --spool ../../omnistream-spool)
omnistream ingest node-introspection omnistream-spool/node-introspection.jsonl
omnistream ingest node-heartbeat omnistream-spool/node-heartbeat.jsonl
rm -rf omnistream-spool
echo

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
echo
echo "The node registry (the generated node is among the simulated ones):"
omnistream sql "SELECT node_name, node_type, liveness, heartbeats, contract_drift FROM node_registry
                WHERE node_name = 'NodePostgresqlWriterEffect'"
