-- reducer: node_activity
-- inputs:  node_heartbeat, node_introspection
-- output:  node_activity
-- windows: 1d
-- key:     granularity, window_start, node_id
--
-- Per node and day: what it announced (introspection) and how it beat (heartbeats): the last
-- values of each, counts, missed heartbeats (gaps in sequence_number), and contract-hash drift
-- (more than one hash in a day, or heartbeats running another contract than the one announced).
-- The node_registry view folds the days into the latest state per node with its liveness.
WITH beats AS (
    SELECT
        node_id,
        date_bin(INTERVAL $interval, emitted_at)                                   AS window_start,
        count(*)                                                                   AS heartbeats,
        min(emitted_at)                                                            AS first_heartbeat_at,
        max(emitted_at)                                                            AS last_heartbeat_at,
        max(sequence_number) - min(sequence_number) + 1 - count(DISTINCT sequence_number) AS missed_heartbeats,
        last_value(contract_hash ORDER BY emitted_at, event_id)                    AS heartbeat_contract_hash,
        count(DISTINCT contract_hash)                                              AS contract_hashes,
        last_value(node_type ORDER BY emitted_at, event_id)                        AS node_type,
        last_value(node_version ORDER BY emitted_at, event_id)                     AS node_version,
        max(uptime_seconds)                                                        AS uptime_seconds,
        last_value(memory_usage_mb ORDER BY emitted_at, event_id)                  AS memory_usage_mb,
        last_value(cpu_usage_percent ORDER BY emitted_at, event_id)                AS cpu_usage_percent,
        last_value(active_operations_count ORDER BY emitted_at, event_id)          AS active_operations_count
    FROM node_heartbeat
    WHERE emitted_at >= $window_start AND emitted_at < $window_end
    GROUP BY 1, 2
),
announcements AS (
    SELECT
        node_id,
        date_bin(INTERVAL $interval, emitted_at)                                   AS window_start,
        count(*)                                                                   AS introspections,
        max(emitted_at)                                                            AS last_introspection_at,
        last_value(node_name ORDER BY emitted_at, event_id)                        AS node_name,
        last_value(node_type ORDER BY emitted_at, event_id)                        AS node_type,
        last_value(node_version ORDER BY emitted_at, event_id)                     AS node_version,
        last_value(domain ORDER BY emitted_at, event_id)                           AS domain,
        last_value(service_name ORDER BY emitted_at, event_id)                     AS service_name,
        last_value(health_endpoint ORDER BY emitted_at, event_id)                  AS health_endpoint,
        last_value(contract_hash ORDER BY emitted_at, event_id)                    AS announced_contract_hash
    FROM node_introspection
    WHERE emitted_at >= $window_start AND emitted_at < $window_end
    GROUP BY 1, 2
)
SELECT
    $granularity                                                        AS granularity,
    coalesce(b.window_start, a.window_start)                            AS window_start,
    coalesce(b.window_start, a.window_start) + INTERVAL $interval       AS window_end,
    coalesce(b.node_id, a.node_id)                                      AS node_id,
    a.node_name,
    coalesce(a.node_type, b.node_type)                                  AS node_type,
    coalesce(b.node_version, a.node_version)                            AS node_version,
    a.domain,
    a.service_name,
    a.health_endpoint,
    coalesce(b.heartbeats, 0)                                           AS heartbeats,
    coalesce(a.introspections, 0)                                       AS introspections,
    b.first_heartbeat_at,
    b.last_heartbeat_at,
    a.last_introspection_at,
    b.missed_heartbeats,
    b.heartbeat_contract_hash,
    a.announced_contract_hash,
    coalesce(b.contract_hashes > 1, false)
        OR coalesce(b.heartbeat_contract_hash <> a.announced_contract_hash, false) AS contract_drift,
    b.uptime_seconds,
    b.memory_usage_mb,
    b.cpu_usage_percent,
    b.active_operations_count
FROM beats b
FULL OUTER JOIN announcements a ON a.node_id = b.node_id AND a.window_start = b.window_start
