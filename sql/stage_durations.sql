-- reducer: stage_durations
-- inputs:  stage_completed
-- output:  stage_durations
-- windows: 1h (rows told apart by `granularity`)
-- key:     granularity, window_start, stage_name
--
-- Per pipeline stage, over the stages that ended in [$window_start, $window_end): how many ran
-- and failed, p50 and p95 duration from every value, mean duration.
SELECT
    $granularity                                                        AS granularity,
    date_bin(INTERVAL $interval, emitted_at)                            AS window_start,
    date_bin(INTERVAL $interval, emitted_at) + INTERVAL $interval       AS window_end,
    stage_name,
    count(*)                                                            AS runs,
    count(*) FILTER (WHERE NOT success)                                 AS failures,
    percentile_cont(0.50) WITHIN GROUP (ORDER BY duration_seconds)      AS p50_duration_seconds,
    percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_seconds)      AS p95_duration_seconds,
    avg(duration_seconds)                                               AS mean_duration_seconds
FROM stage_completed
WHERE emitted_at >= $window_start AND emitted_at < $window_end
GROUP BY 1, 2, 3, 4
