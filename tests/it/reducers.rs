//! The reducers, end to end: incremental batches equal a recompute from scratch (on randomized
//! workloads with late and duplicate events) and the jobs CLI (list, status, run all, backfill, models, nodes).
//!
//! `OMNISTREAM_REDUCER_SEED` replays a randomized run (the seed is printed).

use std::process::Stdio;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use serde_json::{Map, Value};

use crate::{Env, describe, terminate};

/// Derived tables and the columns that identify a row.
pub(crate) const DERIVED: &[(&str, &str)] = &[
    (
        "model_performance",
        "granularity, window_start, model, node_type",
    ),
    (
        "generation_summary",
        "granularity, window_start, primary_model, node_type",
    ),
    ("stage_durations", "granularity, window_start, stage_name"),
    ("node_activity", "granularity, window_start, node_id"),
    (
        "pattern_candidates",
        "granularity, window_start, correlation_id",
    ),
];

const REDUCERS: &[&str] = &[
    "model_performance",
    "generation_summary",
    "stage_durations",
    "node_activity",
    "pattern_candidates",
];

fn rows(env: &Env, table: &str, keys: &str) -> Vec<Map<String, Value>> {
    env.sql(&format!("SELECT * FROM {table} ORDER BY {keys}"))
}

/// Equal, but for the last bits of floating-point sums taken in another order.
fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0)
        }
        _ => a == b,
    }
}

/// Every derived table of `a` equals that of `b`, row for row.
pub(crate) fn assert_same_derived_tables(a: &Env, b: &Env, context: &str) {
    for (table, keys) in DERIVED {
        let (ra, rb) = (rows(a, table, keys), rows(b, table, keys));
        assert_eq!(
            ra.len(),
            rb.len(),
            "{context}: {table} has {} rows incrementally, {} from scratch",
            ra.len(),
            rb.len()
        );
        for (x, y) in ra.iter().zip(&rb) {
            let differs = x.len() != y.len()
                || x.iter()
                    .any(|(k, v)| !y.get(k).is_some_and(|w| same_value(v, w)));
            assert!(
                !differs,
                "{context}: {table} differs:\nincremental  {x:?}\nfrom scratch {y:?}"
            );
        }
    }
    assert_unique_keys(a, context);
}

/// Every derived table has one row per key.
pub(crate) fn assert_unique_keys(env: &Env, context: &str) {
    for (table, keys) in DERIVED {
        let dupes = env.sql_int(&format!(
            "SELECT count(*) FROM (SELECT {keys} FROM {table} GROUP BY {keys} HAVING count(*) > 1)"
        ));
        assert_eq!(dupes, 0, "{context}: {table} has duplicate keys");
    }
}

/// Rows of a DuckDB query over the raw lake (`{lake}` in `sql` is the lake's directory), as JSON
/// objects: an oracle that shares no code with omnistream's SQL.
pub(crate) fn duckdb(env: &Env, sql: &str) -> Vec<Map<String, Value>> {
    let script = r#"
import duckdb, json, sys
con = duckdb.connect()
con.execute("SET TimeZone = 'UTC'")
cur = con.execute(sys.argv[1].replace("{lake}", sys.argv[2]))
names = [d[0] for d in cur.description]
print(json.dumps([dict(zip(names, row)) for row in cur.fetchall()], default=str))
"#;
    let out = std::process::Command::new("python3")
        .args(["-c", script, sql])
        .arg(env.data().join("lake"))
        .output()
        .unwrap();
    assert!(out.status.success(), "duckdb: {}", describe(&out));
    serde_json::from_slice::<Vec<Value>>(&out.stdout)
        .unwrap()
        .into_iter()
        .map(|v| v.as_object().unwrap().clone())
        .collect()
}

/// The hourly measures of model_performance and generation_summary, computed by DuckDB from the
/// raw tables, equal the derived tables omnistream kept current batch by batch.
pub(crate) fn assert_reducers_agree_with_duckdb(env: &Env, context: &str) {
    let cases = [
        (
            "SELECT epoch_us(date_trunc('hour', emitted_at)) AS w, model AS m, \
                    coalesce(node_type, 'unknown') AS t, count(*) AS calls, \
                    count(*) FILTER (WHERE NOT success) AS failures, \
                    quantile_cont(latency_ms, 0.5) AS p50, quantile_cont(latency_ms, 0.99) AS p99, \
                    max(latency_ms) AS hi, \
                    sum(input_tokens) AS input_tokens, sum(cost_usd) AS cost \
             FROM read_parquet('{lake}/model_call/*/*.parquet', hive_partitioning = true) \
             GROUP BY ALL ORDER BY w, m, t",
            "SELECT CAST(window_start AS BIGINT) AS w, model AS m, node_type AS t, calls, failures, \
                    p50_latency_ms AS p50, p99_latency_ms AS p99, input_tokens, total_cost_usd AS cost \
             FROM model_performance WHERE granularity = '1h' ORDER BY w, m, t",
        ),
        (
            "WITH ended AS ( \
                SELECT emitted_at, primary_model, node_type, true AS completed, passed, quality_score \
                FROM read_parquet('{lake}/generation_completed/*/*.parquet', hive_partitioning = true) \
                UNION ALL \
                SELECT emitted_at, primary_model, node_type, false, NULL, NULL \
                FROM read_parquet('{lake}/generation_failed/*/*.parquet', hive_partitioning = true)) \
             SELECT epoch_us(date_trunc('hour', emitted_at)) AS w, coalesce(primary_model, 'unknown') AS m, \
                    coalesce(node_type, 'unknown') AS t, count(*) AS generations, \
                    count(*) FILTER (WHERE completed) AS completed, \
                    count(*) FILTER (WHERE passed) AS passing, avg(quality_score) AS quality \
             FROM ended GROUP BY ALL ORDER BY w, m, t",
            "SELECT CAST(window_start AS BIGINT) AS w, primary_model AS m, node_type AS t, generations, \
                    completed, passing, mean_quality AS quality \
             FROM generation_summary WHERE granularity = '1h' ORDER BY w, m, t",
        ),
    ];
    for (peer, ours) in cases {
        let (expected, actual) = (duckdb(env, peer), env.sql(ours));
        assert!(!expected.is_empty(), "{context}: the oracle found nothing");
        assert_eq!(expected.len(), actual.len(), "{context}: {ours}");
        for (e, a) in expected.iter().zip(&actual) {
            // DataFusion 54's percentile_cont truncates the interpolation weight to 1e-6, so a
            // percentile may be off by up to 1e-6 of the gap between its neighbours (<= the max).
            let gap = e.get("hi").and_then(Value::as_f64).unwrap_or(0.0) * 1e-6;
            let differs = e.iter().filter(|(k, _)| *k != "hi").any(|(k, v)| {
                let w = a.get(k).unwrap_or(&Value::Null);
                let near = matches!(k.as_str(), "p50" | "p99")
                    && (v.as_f64().unwrap() - w.as_f64().unwrap()).abs() <= gap;
                !(near || same_value(v, w) || (v.is_null() && w.is_null()))
            });
            assert!(!differs, "{context}:\nduckdb     {e:?}\nomnistream {a:?}");
        }
    }
}

/// A copy of an environment's data, for a recompute from scratch next to the incremental result.
fn copy_of(env: &Env) -> Env {
    let copy = Env::new();
    let status = std::process::Command::new("cp")
        .arg("-r")
        .arg(env.data())
        .arg(copy.data())
        .status()
        .unwrap();
    assert!(status.success());
    copy
}

fn backfill_all(env: &Env) {
    for reducer in REDUCERS {
        env.ok(&["backfill", reducer]);
    }
}

#[test]
fn incremental_batches_equal_a_recompute_from_scratch() {
    let seed = crate::replay_seed("OMNISTREAM_REDUCER_SEED", "reducers");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let env = Env::new();
    let batches = rng.random_range(3..6);
    let mut seeds = Vec::new();
    for batch in 0..batches {
        // Overlapping time ranges (a later batch brings events for windows already computed),
        // late deliveries, retried event ids, and now and then a whole batch sent twice.
        let workload_seed = if batch > 0 && rng.random_bool(0.25) {
            seeds[0]
        } else {
            rng.random::<u32>() as u64
        };
        seeds.push(workload_seed);
        let start = format!(
            "2026-11-01T{:02}:{:02}:00Z",
            rng.random_range(0..3),
            rng.random_range(0..60)
        );
        let generations = rng.random_range(20..120).to_string();
        env.ok(&[
            "simulate",
            "--generations",
            &generations,
            "--nodes",
            "6",
            "--seed",
            &workload_seed.to_string(),
            "--start",
            &start,
            "--rate",
            "20",
            "--late-fraction",
            "0.05",
            "--duplicate-fraction",
            "0.03",
        ]);
        let max_batch = rng.random_range(50..3000).to_string();
        let out = env
            .cmd(&["jobs", "run", "all", "--once"])
            .env("OMNISTREAM_REDUCER__MAX_BATCH_ROWS", &max_batch)
            .output()
            .unwrap();
        assert!(out.status.success(), "seed {seed}: {}", describe(&out));
    }
    // The independent oracle: DuckDB over the raw lake.
    assert_reducers_agree_with_duckdb(&env, &format!("seed {seed}"));
    let scratch = copy_of(&env);
    backfill_all(&scratch);
    assert_same_derived_tables(&env, &scratch, &format!("seed {seed}"));
    // The tables are not trivially empty.
    // Row counts against DuckDB: one row per minute, model and node type that had calls, and
    // one per day and node that announced or beat.
    let minutes = duckdb(
        &env,
        "SELECT count(*) AS n FROM (SELECT DISTINCT date_trunc('minute', emitted_at), model, \
         coalesce(node_type, 'unknown') FROM read_parquet('{lake}/model_call/*/*.parquet'))",
    );
    assert_eq!(
        Some(env.sql_int("SELECT count(*) FROM model_performance WHERE granularity = '1m'")),
        minutes[0]["n"].as_i64()
    );
    let node_days = duckdb(
        &env,
        "SELECT count(*) AS n FROM (SELECT DISTINCT date_trunc('day', emitted_at), node_id FROM ( \
             SELECT emitted_at, node_id FROM read_parquet('{lake}/node_introspection/*/*.parquet') \
             UNION ALL SELECT emitted_at, node_id FROM read_parquet('{lake}/node_heartbeat/*/*.parquet')))",
    );
    assert_eq!(
        Some(env.sql_int("SELECT count(*) FROM node_activity")),
        node_days[0]["n"].as_i64()
    );
}

#[test]
fn a_pattern_stored_after_midnight_removes_the_previous_days_candidate() {
    let env = Env::new();
    let completed = r#"{"event_id":"00000000-0000-7000-8000-000000000001","correlation_id":"g4","emitted_at":"2026-11-20T23:59:59Z","total_duration_seconds":1,"quality_score":0.99}"#;
    let stored = r#"{"event_id":"00000000-0000-7000-8000-000000000002","correlation_id":"g4","emitted_at":"2026-11-21T00:00:01Z","pattern_id":"p4"}"#;
    env.run_with_stdin(
        &["ingest", "generation-completed", "-"],
        completed.as_bytes(),
    );
    env.ok(&["jobs", "run", "all", "--once"]);
    assert_eq!(env.sql_int("SELECT count(*) FROM pattern_candidates"), 1);
    // The pattern arrives in a later batch, on the next day: the lookback recomputes the 20th.
    env.run_with_stdin(&["ingest", "pattern-stored", "-"], stored.as_bytes());
    env.ok(&["jobs", "run", "all", "--once"]);
    assert_eq!(env.sql_int("SELECT count(*) FROM pattern_candidates"), 0);
}

#[test]
fn the_jobs_cli_lists_runs_reports_and_backfills() {
    let env = Env::new();
    let list = env.ok(&["jobs", "list", "--format", "csv"]);
    // Every built-in job is listed.
    for spec in omnistream_jobs::spec::load_all(None).unwrap() {
        assert!(list.contains(&spec.name), "{} missing:\n{list}", spec.name);
    }
    env.ok(&["simulate", "--generations", "60", "--nodes", "5"]);
    let status: Vec<Value> =
        serde_json::from_str(&env.ok(&["jobs", "status", "--format", "json"])).unwrap();
    let mp = status
        .iter()
        .find(|s| s["job"] == "model_performance")
        .unwrap();
    assert_eq!(mp["state"], "never run");
    env.ok(&["jobs", "run", "lake-sink", "--once"]);
    let status: Vec<Value> =
        serde_json::from_str(&env.ok(&["jobs", "status", "model_performance", "--format", "json"]))
            .unwrap();
    assert!(status[0]["lag"].as_i64().unwrap() > 0, "{status:?}");
    let out = env.ok(&["jobs", "run", "model_performance", "--once"]);
    assert!(out.contains("model_performance:"), "{out}");
    let status: Vec<Value> =
        serde_json::from_str(&env.ok(&["jobs", "status", "model_performance", "--format", "json"]))
            .unwrap();
    assert_eq!(status[0]["lag"], 0);
    assert_eq!(status[0]["state"], "stopped");
    assert!(!status[0]["last_batch_at"].as_str().unwrap().is_empty());

    // Backfill rebuilds the same table; --from recomputes a suffix.
    let before = env.sql(
        "SELECT * FROM model_performance ORDER BY granularity, window_start, model, node_type",
    );
    let out = env.ok(&["backfill", "model_performance", "--from", "2026-11-01"]);
    assert!(out.contains("windows recomputed"), "{out}");
    assert_eq!(
        env.sql(
            "SELECT * FROM model_performance ORDER BY granularity, window_start, model, node_type"
        ),
        before
    );
    let out = env.run(&["backfill", "lake-sink"]);
    assert_eq!(out.status.code(), Some(1));
    let out = env.run(&["backfill", "model_performance", "--from", "yesterday"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not a date"),
        "{}",
        describe(&out)
    );

    // The leaderboard and the registry.
    env.ok(&["jobs", "run", "all", "--once"]);
    let models: Vec<Value> =
        serde_json::from_str(&env.ok(&["models", "--format", "json"])).unwrap();
    // The workload of seed 42 (simulate's default): six models, 21 Effect generations of 60.
    assert_eq!(models.len(), 6, "{models:?}");
    let total: i64 = models
        .iter()
        .map(|m| m["generations"].as_i64().unwrap())
        .sum();
    assert_eq!(total, 60);
    for m in &models {
        let rate = m["pass_rate"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&rate));
        assert!(m["trend_pass_rate_8h"].as_str().is_some());
    }
    let effect: Vec<Value> =
        serde_json::from_str(&env.ok(&["models", "--node-type", "effect", "--format", "json"]))
            .unwrap();
    let effect_total: i64 = effect
        .iter()
        .map(|m| m["generations"].as_i64().unwrap())
        .sum();
    assert_eq!(effect_total, 21);
    let last = env.sql("SELECT CAST(max(emitted_at) AS VARCHAR) AS t FROM node_heartbeat")[0]["t"]
        .as_str()
        .unwrap()
        .to_string();
    let nodes: Vec<Value> =
        serde_json::from_str(&env.ok(&["nodes", "--at", &last, "--format", "json"])).unwrap();
    assert_eq!(nodes.len(), 5);
    assert!(nodes.iter().any(|n| n["liveness"] == "active"), "{nodes:?}");
    let now: Vec<Value> = serde_json::from_str(&env.ok(&["nodes", "--format", "json"])).unwrap();
    assert!(
        now.iter().all(|n| n["liveness"] == "expired"),
        "a workload of 2026-11-01 is long dead by now"
    );
    // The views are tables for `omnistream sql` too.
    assert_eq!(env.sql_int("SELECT count(*) FROM node_registry"), 5);
    assert_eq!(env.sql_int("SELECT count(*) FROM model_leaderboard"), 6);
}

#[test]
fn a_bad_job_file_names_the_file_and_the_field() {
    let env = Env::new();
    let dir = env.path("myjobs");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("broken.toml"), "name = \"broken\"\nkind = \"reducer\"\ninputs = [\"model_call\"]\nsql = \"model_performance.sql\"\noutput = \"x\"\nwindows = [\"7 minutes\"]\n").unwrap();
    let out = env
        .cmd(&["jobs", "list"])
        .env("OMNISTREAM_JOBS_DIR", &dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("broken.toml")
            && stderr.contains("field `windows`")
            && stderr.contains("divide a day"),
        "{stderr}"
    );
}

#[test]
fn run_all_follows_new_events_and_stops_cleanly_on_sigterm() {
    let env = Env::new();
    let jobs = crate::Running::spawn(
        env.cmd(&["jobs", "run", "all", "--follow"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    env.ok(&["simulate", "--generations", "20", "--nodes", "2"]);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let done = env.run(&[
            "sql",
            "--format",
            "csv",
            "SELECT sum(calls) AS n FROM model_performance WHERE granularity = '1h'",
        ]);
        let landed = String::from_utf8_lossy(&done.stdout)
            .lines()
            .nth(1)
            .and_then(|l| l.parse::<i64>().ok())
            .unwrap_or(0);
        if done.status.success()
            && landed > 0
            && landed == env.sql_int("SELECT count(*) FROM model_call")
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the reducers did not catch up in follow mode"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    terminate(&jobs);
    let out = jobs.wait_with_output();
    assert!(out.status.success(), "{}", describe(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    for job in REDUCERS {
        assert!(stdout.contains(&format!("{job}:")), "{stdout}");
    }
}

#[test]
fn following_jobs_survive_compactions_committed_under_them() {
    let env = Env::new();
    let mut jobs = crate::Running::spawn(
        env.cmd(&["jobs", "run", "all", "--follow"])
            .env("OMNISTREAM_SINK__ROLL_FILES", "3")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    for seed in 0..8 {
        env.ok(&[
            "simulate",
            "--generations",
            "40",
            "--nodes",
            "3",
            "--seed",
            &seed.to_string(),
        ]);
        // Another writer swaps files while the sink and the reducers read them.
        // A partition the sink merged meanwhile is skipped, never an error.
        env.ok(&["lake", "compact"]);
        if jobs.try_wait().is_some() {
            let out = jobs.wait_with_output();
            panic!("the jobs stopped after a compaction: {}", describe(&out));
        }
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while env.sql_int("SELECT count(*) FROM model_call") == 0
        || env.sql("SELECT sum(calls) AS n FROM model_performance WHERE granularity = '1h'")[0]["n"]
            .as_i64()
            != Some(env.sql_int("SELECT count(*) FROM model_call"))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the reducers did not catch up"
        );
        assert!(jobs.try_wait().is_none(), "the jobs stopped");
        std::thread::sleep(Duration::from_millis(200));
    }
    terminate(&jobs);
    let out = jobs.wait_with_output();
    assert!(out.status.success(), "{}", describe(&out));
    // Only model_performance was waited for: the other reducers carry on from what they committed.
    env.ok(&["jobs", "run", "all", "--once"]);
    let scratch = copy_of(&env);
    backfill_all(&scratch);
    assert_same_derived_tables(&env, &scratch, "after concurrent compactions");
}

#[test]
fn a_reducer_whose_columns_changed_stops_and_asks_for_a_backfill() {
    let env = Env::new();
    env.ok(&["simulate", "--generations", "10", "--nodes", "1"]);
    env.ok(&["jobs", "run", "all", "--once"]);
    // The same job with a SQL file whose result has other columns.
    let jobs = env.path("my-jobs");
    std::fs::create_dir_all(&jobs).unwrap();
    std::fs::write(
        jobs.join("model_performance.toml"),
        "name = \"model_performance\"\nkind = \"reducer\"\ninputs = [\"model_call\"]\n\
         sql = \"narrow.sql\"\noutput = \"model_performance\"\nwindows = [\"1m\", \"1h\"]\n",
    )
    .unwrap();
    std::fs::write(
        jobs.join("narrow.sql"),
        "SELECT $granularity AS granularity, date_bin(INTERVAL $interval, emitted_at) AS window_start, \
         model, count(*) AS calls FROM model_call \
         WHERE emitted_at >= $window_start AND emitted_at < $window_end GROUP BY 1, 2, 3",
    )
    .unwrap();
    let before = env.sql_int("SELECT count(*) FROM model_performance");
    env.ok(&[
        "simulate",
        "--generations",
        "5",
        "--nodes",
        "1",
        "--seed",
        "7",
    ]);
    env.ok(&["jobs", "run", "lake-sink", "--once"]);
    let jobs_dir = jobs.to_str().unwrap();
    let out = env
        .cmd(&["jobs", "run", "model_performance", "--once"])
        .env("OMNISTREAM_JOBS_DIR", jobs_dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "error: model_performance: the SQL's result no longer matches table 'model_performance' \
         (its columns changed); rebuild it with `omnistream backfill model_performance`"
    );
    // Nothing was rewritten: the table is as it was.
    assert_eq!(
        env.sql_int("SELECT count(*) FROM model_performance"),
        before
    );
    // The backfill it names replaces the table with the new columns.
    let out = env
        .cmd(&["backfill", "model_performance"])
        .env("OMNISTREAM_JOBS_DIR", jobs_dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let row = &env.sql("SELECT * FROM model_performance LIMIT 1")[0];
    let mut columns: Vec<&str> = row.keys().map(String::as_str).collect();
    columns.sort();
    assert_eq!(
        columns,
        ["calls", "date", "granularity", "model", "window_start"]
    );
}

#[test]
fn models_since_counts_only_the_recent_generations() {
    let env = Env::new();
    let at = |ago: chrono::Duration| {
        (chrono::Utc::now() - ago).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    };
    // 20 generations ten days ago, 30 in the last hour (30 a minute: a minute and a bit each).
    for (generations, seed, start) in [
        ("20", "1", at(chrono::Duration::days(10))),
        ("30", "2", at(chrono::Duration::minutes(50))),
    ] {
        let args = ["simulate", "--generations", generations, "--nodes", "1"];
        env.ok(&[&args[..], &["--seed", seed, "--start", start.as_str()]].concat());
    }
    env.ok(&["jobs", "run", "all", "--once"]);
    let total = |args: &[&str]| -> i64 {
        let out = env.ok(&[&["models", "--format", "json"], args].concat());
        serde_json::from_str::<Vec<Value>>(&out)
            .unwrap()
            .iter()
            .map(|m| m["generations"].as_i64().unwrap())
            .sum()
    };
    assert_eq!(total(&[]), 50);
    assert_eq!(total(&["--since", "7d"]), 30);
    assert_eq!(total(&["--since", "30d"]), 50);
    let out = env.run(&["models", "--since", "lately"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .starts_with("error: --since 'lately' is not a duration like 24h or 7d"),
        "{}",
        describe(&out)
    );
}

#[test]
fn one_job_failing_stops_the_others_and_names_itself() {
    let env = Env::new();
    env.ok(&["simulate", "--generations", "5", "--nodes", "1"]);
    let jobs = env.path("my-jobs");
    std::fs::create_dir_all(&jobs).unwrap();
    std::fs::write(
        jobs.join("broken.toml"),
        "name = \"broken\"\nkind = \"reducer\"\ninputs = [\"model_call\"]\nsql = \"broken.sql\"\n\
         output = \"broken\"\nwindows = [\"1h\"]\n",
    )
    .unwrap();
    std::fs::write(
        jobs.join("broken.sql"),
        "SELECT $granularity AS granularity, date_bin(INTERVAL $interval, emitted_at) AS window_start, \
         no_such_column FROM model_call WHERE emitted_at >= $window_start AND emitted_at < $window_end",
    )
    .unwrap();
    // Follow mode: without the failure, every job would run until told to stop.
    let mut all = crate::Running::spawn(
        env.cmd(&["jobs", "run", "all", "--follow"])
            .env("OMNISTREAM_JOBS_DIR", &jobs)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while all.try_wait().is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "the other jobs kept running"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = all.wait_with_output();
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let mut lines = stderr
        .lines()
        .filter(|l| l.starts_with("error") || l.starts_with("  caused by"));
    assert_eq!(lines.next(), Some("error: job broken"), "{stderr}");
    let cause = lines.next().unwrap_or_default();
    assert!(
        cause.starts_with("  caused by: broken: ") && cause.ends_with("broken.sql failed"),
        "{stderr}"
    );
    assert!(stderr.contains("no_such_column"), "{stderr}");
    // The others stopped cleanly: what they committed is there.
    assert!(env.sql_int("SELECT count(*) FROM model_call") > 0);
}
