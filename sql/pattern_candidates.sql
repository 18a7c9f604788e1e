-- reducer: pattern_candidates
-- inputs:  generation_completed, pattern_stored (lookback 1d: a pattern stored just after
--          midnight removes its generation from the previous day's candidates)
-- output:  pattern_candidates
-- windows: 1d
-- key:     granularity, window_start, correlation_id
--
-- Completed generations at or above the learning threshold ($threshold, upstream 0.95: "only
-- learn from high-quality generations") that are not stored as patterns yet. A generation that
-- completed twice in a window (a re-run after a crash) is one candidate: its latest completion.
SELECT
    $granularity                                                        AS granularity,
    date_bin(INTERVAL $interval, g.emitted_at)                          AS window_start,
    date_bin(INTERVAL $interval, g.emitted_at) + INTERVAL $interval     AS window_end,
    g.correlation_id,
    g.emitted_at                                                        AS completed_at,
    g.node_type,
    g.service_name,
    g.domain,
    g.primary_model,
    g.quality_score,
    g.syntax_score,
    g.onex_compliance_score,
    g.contract_score,
    g.code_quality_score,
    g.output_directory
FROM (
    SELECT *,
           row_number() OVER (PARTITION BY correlation_id
                              ORDER BY emitted_at DESC, event_id DESC) AS completion_rank
    FROM generation_completed
    WHERE emitted_at >= $window_start AND emitted_at < $window_end
      AND quality_score >= $threshold
) g
WHERE g.completion_rank = 1
  -- Only a store of the generation's own code counts (a pattern-stored event of a later use
  -- carries the using generation's correlation id).
  AND NOT EXISTS (SELECT 1 FROM pattern_stored p
                  WHERE p.correlation_id = g.correlation_id
                    AND (p.change IS NULL OR p.change IN ('created', 'version_created')))
