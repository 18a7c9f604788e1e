-- reducer: model_performance
-- inputs:  model_call
-- output:  model_performance
-- windows: 1m and 1h (rows told apart by `granularity`); window_start aligned to the epoch
-- key:     granularity, window_start, model, node_type
--
-- Per model and node type, over the model calls emitted in [$window_start, $window_end):
-- calls, successes, failures, error rate, latency percentiles from every value (DataFusion
-- truncates the interpolation weight to 1e-6 of the gap between neighbours), tokens, output tokens per
-- second of successful calls, cost and mean quality. The runtime fills in $granularity (e.g.
-- '1m'), $interval (e.g. '60 seconds') and the window bounds.
SELECT
    $granularity                                                        AS granularity,
    date_bin(INTERVAL $interval, emitted_at)                            AS window_start,
    date_bin(INTERVAL $interval, emitted_at) + INTERVAL $interval       AS window_end,
    model,
    coalesce(node_type, 'unknown')                                      AS node_type,
    count(*)                                                            AS calls,
    count(*) FILTER (WHERE success)                                     AS successes,
    count(*) FILTER (WHERE NOT success)                                 AS failures,
    CAST(count(*) FILTER (WHERE NOT success) AS DOUBLE) / count(*)      AS error_rate,
    percentile_cont(0.50) WITHIN GROUP (ORDER BY latency_ms)            AS p50_latency_ms,
    percentile_cont(0.90) WITHIN GROUP (ORDER BY latency_ms)            AS p90_latency_ms,
    percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms)            AS p95_latency_ms,
    percentile_cont(0.99) WITHIN GROUP (ORDER BY latency_ms)            AS p99_latency_ms,
    sum(input_tokens)                                                   AS input_tokens,
    sum(output_tokens)                                                  AS output_tokens,
    sum(coalesce(total_tokens, input_tokens + output_tokens))           AS total_tokens,
    sum(output_tokens) FILTER (WHERE success)
        / nullif(sum(latency_ms) FILTER (WHERE success) / 1000.0, 0)    AS tokens_per_second,
    sum(cost_usd)                                                       AS total_cost_usd,
    avg(cost_usd)                                                       AS mean_cost_usd,
    avg(quality_score)                                                  AS mean_quality
FROM model_call
WHERE emitted_at >= $window_start AND emitted_at < $window_end
GROUP BY 1, 2, 3, 4, 5
