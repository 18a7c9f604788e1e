-- reducer: generation_summary
-- inputs:  generation_completed, generation_failed
-- output:  generation_summary
-- windows: 1h and 1d (rows told apart by `granularity`)
-- key:     granularity, window_start, primary_model, node_type
--
-- Per window, primary model and node type, over the generations that ended in [$window_start, $window_end):
-- how many ended, completed, failed and passed the quality gate, success and pass rates, mean
-- quality and duration, cost per generation and per passing generation, patterns applied; and,
-- over the generations whose request gave examples, how many passed every example
-- (functional_pass_rate), beside how many passed every gate whatever their examples said
-- (gate_pass_rate: passing, or failed only by their examples).
WITH ended AS (
    SELECT emitted_at, primary_model, node_type, true AS completed, passed,
           quality_score, total_duration_seconds AS duration_seconds, total_cost_usd,
           CAST(coalesce(cardinality(patterns_applied), 0) AS BIGINT) AS patterns_applied,
           coalesce(examples_total, 0) AS examples_total, examples_passed,
           CAST(NULL AS VARCHAR) AS error_code
    FROM generation_completed
    WHERE emitted_at >= $window_start AND emitted_at < $window_end
    UNION ALL
    SELECT emitted_at, primary_model, node_type, false, CAST(NULL AS BOOLEAN),
           CAST(NULL AS DOUBLE), partial_duration_seconds, total_cost_usd, CAST(0 AS BIGINT),
           coalesce(examples_total, 0), examples_passed, error_code
    FROM generation_failed
    WHERE emitted_at >= $window_start AND emitted_at < $window_end
)
SELECT
    $granularity                                                        AS granularity,
    date_bin(INTERVAL $interval, emitted_at)                            AS window_start,
    date_bin(INTERVAL $interval, emitted_at) + INTERVAL $interval       AS window_end,
    coalesce(primary_model, 'unknown')                                  AS primary_model,
    coalesce(node_type, 'unknown')                                      AS node_type,
    count(*)                                                            AS generations,
    count(*) FILTER (WHERE completed)                                   AS completed,
    count(*) FILTER (WHERE NOT completed)                               AS failed,
    count(*) FILTER (WHERE passed)                                      AS passing,
    CAST(count(*) FILTER (WHERE completed) AS DOUBLE) / count(*)        AS success_rate,
    CAST(count(*) FILTER (WHERE passed) AS DOUBLE) / count(*)           AS pass_rate,
    avg(quality_score)                                                  AS mean_quality,
    avg(duration_seconds)                                               AS mean_duration_seconds,
    sum(total_cost_usd)                                                 AS total_cost_usd,
    sum(total_cost_usd) / count(*)                                      AS cost_per_generation,
    sum(total_cost_usd) / nullif(count(*) FILTER (WHERE passed), 0)     AS cost_per_passing_generation,
    sum(patterns_applied)                                               AS patterns_applied,
    count(*) FILTER (WHERE passed OR error_code = 'EXAMPLES_FAILED')    AS gate_passing,
    CAST(count(*) FILTER (WHERE passed OR error_code = 'EXAMPLES_FAILED') AS DOUBLE) / count(*) AS gate_pass_rate,
    count(*) FILTER (WHERE examples_total > 0)                          AS with_examples,
    count(*) FILTER (WHERE examples_total > 0 AND examples_passed = examples_total) AS functional_passing,
    CAST(count(*) FILTER (WHERE examples_total > 0 AND examples_passed = examples_total) AS DOUBLE)
        / nullif(count(*) FILTER (WHERE examples_total > 0), 0)         AS functional_pass_rate
FROM ended
GROUP BY 1, 2, 3, 4, 5
