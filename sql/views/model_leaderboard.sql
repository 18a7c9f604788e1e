-- view: model_leaderboard
-- inputs: generation_summary (hourly rows), model_performance (hourly rows)
--
-- Per primary model, over every hour since $since (and of node type $node_type, when not NULL):
-- generations, pass rate, functional pass rate (over generations whose request gave examples:
-- every example passed), gate pass rate, mean quality (generation-weighted), cost per passing
-- generation, and p95 latency of its calls (the call-weighted mean of hourly p95s).
-- `omnistream models --since DUR --node-type T` sets the parameters; the registered view covers
-- all of history and every node type.
WITH outcomes AS (
    SELECT primary_model AS model,
           sum(generations)                                         AS generations,
           sum(passing)                                             AS passing,
           sum(mean_quality * completed) / nullif(sum(CASE WHEN mean_quality IS NULL THEN 0 ELSE completed END), 0) AS mean_quality,
           sum(total_cost_usd)                                      AS total_cost_usd,
           sum(gate_passing)                                        AS gate_passing,
           sum(with_examples)                                       AS with_examples,
           sum(functional_passing)                                  AS functional_passing
    FROM generation_summary
    WHERE granularity = '1h' AND window_start >= $since AND ($node_type IS NULL OR node_type = $node_type)
    GROUP BY 1
),
latency AS (
    SELECT model,
           sum(calls)                                               AS calls,
           sum(p95_latency_ms * calls) / sum(calls)                 AS p95_latency_ms,
           sum(failures)                                            AS failed_calls
    FROM model_performance
    WHERE granularity = '1h' AND window_start >= $since AND ($node_type IS NULL OR node_type = $node_type)
    GROUP BY 1
)
SELECT
    o.model,
    o.generations,
    CAST(o.passing AS DOUBLE) / nullif(o.generations, 0)            AS pass_rate,
    CAST(o.functional_passing AS DOUBLE) / nullif(o.with_examples, 0) AS functional_pass_rate,
    CAST(o.gate_passing AS DOUBLE) / nullif(o.generations, 0)       AS gate_pass_rate,
    o.mean_quality,
    o.total_cost_usd / nullif(o.passing, 0)                         AS cost_per_passing_generation,
    l.p95_latency_ms,
    l.calls,
    CAST(l.failed_calls AS DOUBLE) / nullif(l.calls, 0)             AS call_error_rate,
    o.total_cost_usd
FROM outcomes o
LEFT JOIN latency l ON l.model = o.model
