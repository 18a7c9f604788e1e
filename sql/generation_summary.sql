-- reducer: generation_summary
-- inputs:  generation_completed, generation_failed
-- output:  generation_summary
-- windows: 1h and 1d (rows told apart by `granularity`)
-- key:     granularity, window_start, primary_model, node_type
--
-- Per window, primary model and node type, over the generations that ended in [$window_start, $window_end):
-- how many ended, completed, failed and passed the quality gate, success and pass rates, mean
-- quality and duration, cost per generation and per passing generation, patterns applied.
WITH ended AS (
    SELECT emitted_at, primary_model, node_type, true AS completed, passed,
           quality_score, total_duration_seconds AS duration_seconds, total_cost_usd,
           CAST(coalesce(cardinality(patterns_applied), 0) AS BIGINT) AS patterns_applied
    FROM generation_completed
    WHERE emitted_at >= $window_start AND emitted_at < $window_end
    UNION ALL
    SELECT emitted_at, primary_model, node_type, false, CAST(NULL AS BOOLEAN),
           CAST(NULL AS DOUBLE), partial_duration_seconds, total_cost_usd, CAST(0 AS BIGINT)
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
    sum(patterns_applied)                                               AS patterns_applied
FROM ended
GROUP BY 1, 2, 3, 4, 5
