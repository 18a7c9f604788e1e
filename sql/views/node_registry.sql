-- view: node_registry
-- inputs: node_activity
--
-- The latest state of every node, folded over its days of activity, with contract drift (a
-- day with two hashes, or heartbeats running another contract than the one last announced) and
-- liveness by the
-- upstream rule (heartbeat interval 60 s, liveness window 90 s): `active` when the last heartbeat
-- is at most 90 s old at $now, `stale` up to two windows (180 s), `expired` after that.
-- $now is now() in the registered view; `omnistream nodes --at TIME` evaluates at another time.
SELECT
    *,
    drift_within_a_day OR coalesce(contract_hash <> announced_contract_hash, false)        AS contract_drift
FROM (
SELECT
    node_id,
    last_value(node_name ORDER BY window_start) FILTER (WHERE node_name IS NOT NULL)         AS node_name,
    last_value(node_type ORDER BY window_start) FILTER (WHERE node_type IS NOT NULL)         AS node_type,
    last_value(node_version ORDER BY window_start) FILTER (WHERE node_version IS NOT NULL)   AS node_version,
    last_value(domain ORDER BY window_start) FILTER (WHERE domain IS NOT NULL)               AS domain,
    last_value(service_name ORDER BY window_start) FILTER (WHERE service_name IS NOT NULL)   AS service_name,
    CASE
        WHEN max(last_heartbeat_at) >= $now - INTERVAL '90 seconds' THEN 'active'
        WHEN max(last_heartbeat_at) >= $now - INTERVAL '180 seconds' THEN 'stale'
        ELSE 'expired'
    END                                                                                      AS liveness,
    max(last_heartbeat_at)                                                                   AS last_heartbeat_at,
    max(last_introspection_at)                                                               AS last_introspection_at,
    sum(heartbeats)                                                                          AS heartbeats,
    sum(missed_heartbeats)                                                                   AS missed_heartbeats,
    last_value(heartbeat_contract_hash ORDER BY window_start)
        FILTER (WHERE heartbeat_contract_hash IS NOT NULL)                                   AS contract_hash,
    last_value(announced_contract_hash ORDER BY window_start)
        FILTER (WHERE announced_contract_hash IS NOT NULL)                                   AS announced_contract_hash,
    bool_or(contract_drift)                                                                  AS drift_within_a_day,
    last_value(memory_usage_mb ORDER BY window_start) FILTER (WHERE memory_usage_mb IS NOT NULL) AS memory_usage_mb,
    last_value(cpu_usage_percent ORDER BY window_start) FILTER (WHERE cpu_usage_percent IS NOT NULL) AS cpu_usage_percent
FROM node_activity
GROUP BY node_id
)
