//! Benchmarks of the reducers: the model_performance query against DuckDB and polars on the same
//! Parquet files, the cost of an incremental batch as history grows, and freshness in follow mode.

use std::collections::VecDeque;
use std::fs;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use omnistream_jobs::runner::{self, JobContext, Mode};
use omnistream_jobs::spec;
use omnistream_jobs::status::StatusStore;
use omnistream_jobs::{LAKE_SINK, LakeSink, Reducer};
use omnistream_lake::Lake;
use omnistream_streams::{EmbeddedLog, Topic};

use super::stats::{median, min};
use super::temp_dir;
use super::thousands;
use crate::cli::{BenchBatchArgs, BenchFreshnessArgs, BenchQueryArgs};
use crate::config::Config;
use crate::error::{CliError, Result};
use crate::output::outln;
use crate::workload::{Workload, WorkloadConfig};
use omnistream_streams::io::IoContext;

/// Simulated model calls, in time order, as JSON lines.
struct ModelCalls {
    workload: Workload,
    pending: VecDeque<String>,
}

impl ModelCalls {
    fn new(start: chrono::DateTime<chrono::Utc>) -> Self {
        let workload = Workload::new(WorkloadConfig {
            generations: u64::MAX / 2,
            seed: 7,
            start,
            nodes: 0,
            rate_per_minute: 60.0,
            late_fraction: 0.0,
            duplicate_fraction: 0.0,
        });
        ModelCalls {
            workload,
            pending: VecDeque::new(),
        }
    }

    /// The next `n` events as one JSONL buffer.
    fn take(&mut self, n: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity(n as usize * 700);
        for _ in 0..n {
            while self.pending.is_empty() {
                let chunk = self.workload.next_chunk(1000);
                self.pending
                    .extend(chunk.get(&Topic::ModelCall).into_iter().flatten().cloned());
            }
            out.extend_from_slice(self.pending.pop_front().unwrap().as_bytes());
            out.push(b'\n');
        }
        out
    }
}

fn bench_config(config: &Config, data: &Path) -> Config {
    let mut c = config.clone();
    c.data_dir = data.to_path_buf();
    c
}

/// Ingest `n` events from the stream (in chunks) and land them.
fn land(
    config: &Config,
    log: &EmbeddedLog,
    lake: &Lake,
    calls: &mut ModelCalls,
    n: u64,
) -> Result<()> {
    let mut left = n;
    while left > 0 {
        let take = left.min(500_000);
        let buf = calls.take(take);
        omnistream_connectors::ingest(
            log,
            Topic::ModelCall.name(),
            "bench",
            omnistream_connectors::Input::stream(Cursor::new(buf)),
            &config.ingest_options("bench"),
            |_| {},
        )?;
        left -= take;
    }
    LakeSink::new(log, lake, config.sink_options())?.drain(|_, _| {})?;
    Ok(())
}

fn work_dir(dir: &Option<PathBuf>) -> Result<(PathBuf, Option<tempfile::TempDir>)> {
    Ok(match dir {
        Some(d) => {
            fs::create_dir_all(d).io_context(|| format!("creating {}", d.display()))?;
            (d.clone(), None)
        }
        None => {
            let t = temp_dir()?;
            (t.path().to_path_buf(), Some(t))
        }
    })
}

fn model_performance() -> Result<omnistream_jobs::JobSpec> {
    Ok(spec::find(&spec::load_all(None)?, "model_performance")?)
}

/// `bench query`: the model_performance SQL (1h windows) over every row, three engines.
pub(crate) async fn query(config: &Config, args: BenchQueryArgs) -> Result<()> {
    super::blocking("bench", config, move |config, runtime| {
        query_blocking(config, args, runtime)
    })
    .await
}

fn query_blocking(
    config: &Config,
    args: BenchQueryArgs,
    handle: tokio::runtime::Handle,
) -> Result<()> {
    let (dir, _guard) = work_dir(&args.dir)?;
    let data = dir.join("omnistream-data");
    let config = bench_config(config, &data);
    let lake = Lake::open(config.lake_dir())?;
    let have: u64 = lake
        .snapshot()?
        .table("model_call")
        .map(|t| t.files.values().map(|f| f.rows).sum())
        .unwrap_or(0);
    if have != args.events {
        let _ = fs::remove_dir_all(&data);
        eprintln!("bench: landing {} model calls", thousands(args.events));
        let log = EmbeddedLog::open(config.log_config())?;
        let lake = Lake::open(config.lake_dir())?;
        land(
            &config,
            &log,
            &lake,
            &mut ModelCalls::new("2026-10-01T00:00:00Z".parse().unwrap()),
            args.events,
        )?;
        let writer = lake.writer("compact")?;
        let snapshot = lake.snapshot()?;
        for task in
            omnistream_lake::compact::plan(&snapshot, Some("model_call"), &Default::default())?
        {
            let current = lake.snapshot()?;
            omnistream_lake::compact::run(&writer, &current, &task, &Default::default(), |_| {})?;
        }
    }
    let lake = Lake::open(config.lake_dir())?;
    let snapshot = lake.snapshot()?;
    let table = snapshot.table("model_call").expect("landed above");
    let files = table.files.len();
    let lo = table
        .files
        .values()
        .filter_map(|f| f.min_time_us)
        .min()
        .unwrap_or(0);
    let hi = table
        .files
        .values()
        .filter_map(|f| f.max_time_us)
        .max()
        .unwrap_or(0)
        + 1;
    let spec = model_performance()?;
    let spec = spec.reducer().expect("model_performance is a reducer");
    let window = spec
        .windows
        .iter()
        .find(|w| w.label == "1h")
        .expect("model_performance has 1h windows")
        .clone();
    let width = window.micros();
    let params = std::collections::BTreeMap::from([
        (
            "window_start",
            omnistream_jobs::reducer::timestamp_literal(lo.div_euclid(width) * width),
        ),
        (
            "window_end",
            omnistream_jobs::reducer::timestamp_literal(hi.div_euclid(width) * width + width),
        ),
        ("interval", format!("'{}'", window.sql_interval())),
        ("granularity", "'1h'".to_string()),
    ]);
    let sql = omnistream_jobs::reducer::substitute("model_performance", &spec.sql.text, &params)?;
    let ctx = omnistream_lake::session(&lake, &snapshot)?;

    let pattern = format!("{}/model_call/*/*.parquet", lake.root().display());
    let script = r#"
import sys, time, duckdb, polars as pl
pattern, engine = sys.argv[1], sys.argv[2]
t = time.perf_counter()
if engine == "duckdb":
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET enable_progress_bar = false")
    rows = con.execute(f"""
      SELECT '1h' AS granularity, time_bucket(INTERVAL '1 hour', emitted_at) AS window_start,
             time_bucket(INTERVAL '1 hour', emitted_at) + INTERVAL '1 hour' AS window_end,
             model, coalesce(node_type, 'unknown') AS node_type,
             count(*) AS calls, count(*) FILTER (WHERE success) AS successes,
             count(*) FILTER (WHERE NOT success) AS failures,
             count(*) FILTER (WHERE NOT success) / count(*) AS error_rate,
             quantile_cont(latency_ms, 0.5), quantile_cont(latency_ms, 0.9),
             quantile_cont(latency_ms, 0.95), quantile_cont(latency_ms, 0.99),
             sum(input_tokens), sum(output_tokens), sum(coalesce(total_tokens, input_tokens + output_tokens)),
             sum(output_tokens) FILTER (WHERE success) / nullif(sum(latency_ms) FILTER (WHERE success) / 1000.0, 0),
             sum(cost_usd), avg(cost_usd), avg(quality_score)
      FROM read_parquet('{pattern}', hive_partitioning = true)
      GROUP BY ALL""").fetchall()
    n = len(rows)
else:
    ok = pl.col("success")
    df = (pl.scan_parquet(pattern, hive_partitioning=True)
          .with_columns(pl.col("emitted_at").dt.truncate("1h").alias("window_start"),
                        pl.col("node_type").fill_null("unknown"))
          .group_by(["window_start", "model", "node_type"])
          .agg(pl.len().alias("calls"), ok.sum().alias("successes"), (~ok).sum().alias("failures"),
               ((~ok).sum() / pl.len()).alias("error_rate"),
               *[pl.col("latency_ms").quantile(q, "linear").alias(f"p{int(q*100)}") for q in (0.5, 0.9, 0.95, 0.99)],
               pl.col("input_tokens").sum(), pl.col("output_tokens").sum(),
               pl.coalesce("total_tokens", pl.col("input_tokens") + pl.col("output_tokens")).sum().alias("total_tokens"),
               (pl.col("output_tokens").filter(ok).sum() / (pl.col("latency_ms").filter(ok).sum() / 1000.0)).alias("tokens_per_second"),
               pl.col("cost_usd").sum().alias("total_cost_usd"), pl.col("cost_usd").mean().alias("mean_cost_usd"),
               pl.col("quality_score").mean().alias("mean_quality"))
          .collect())
    n = df.height
print(time.perf_counter() - t, n, duckdb.__version__ if engine == "duckdb" else pl.__version__)
"#;
    let peer = |engine: &str| -> Result<(f64, u64, String)> {
        let out = Command::new(&args.python)
            .arg("-c")
            .arg(script)
            .arg(&pattern)
            .arg(engine)
            .output()
            .io_context(|| format!("running {}", args.python))?;
        if !out.status.success() {
            return Err(CliError::Usage(format!(
                "{engine} run failed (scripts/setup.sh installs it): {}",
                String::from_utf8_lossy(&out.stderr)
                    .lines()
                    .last()
                    .unwrap_or("")
            )));
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let mut p = text.split_whitespace();
        Ok((
            p.next().and_then(|s| s.parse().ok()).unwrap_or(f64::NAN),
            p.next().and_then(|s| s.parse().ok()).unwrap_or(0),
            p.next().unwrap_or("?").to_string(),
        ))
    };
    let (mut ours, mut duck, mut polars) = (vec![], vec![], vec![]);
    let (mut our_rows, mut duck_rows, mut polars_rows) = (0u64, 0u64, 0u64);
    let (mut duck_version, mut polars_version) = (String::new(), String::new());
    for run in 1..=args.runs.max(1) {
        eprintln!("bench: run {run} of {}", args.runs.max(1));
        let t = Instant::now();
        let (_, batches) = handle.block_on(omnistream_lake::query(&ctx, &sql))?;
        ours.push(t.elapsed().as_secs_f64());
        our_rows = batches.iter().map(|b| b.num_rows() as u64).sum();
        let (s, n, v) = peer("duckdb")?;
        duck.push(s);
        duck_rows = n;
        duck_version = v;
        let (s, n, v) = peer("polars")?;
        polars.push(s);
        polars_rows = n;
        polars_version = v;
    }
    outln!(
        "bench query: model_performance (1h windows, exact percentiles) over {} model-call rows in {files} Parquet files; median of {} runs (min)",
        thousands(args.events),
        ours.len()
    );
    outln!(
        "  omnistream (DataFusion) {:>8.3} s [{:.3}]  {} rows",
        median(&ours),
        min(&ours),
        thousands(our_rows)
    );
    outln!(
        "  duckdb {duck_version:<16} {:>8.3} s [{:.3}]  {} rows",
        median(&duck),
        min(&duck),
        thousands(duck_rows)
    );
    outln!(
        "  polars {polars_version:<16} {:>8.3} s [{:.3}]  {} rows",
        median(&polars),
        min(&polars),
        thousands(polars_rows)
    );
    outln!(
        "  ratios: {:.2}x DuckDB's speed, {:.2}x polars' speed (>1 is faster)",
        median(&duck) / median(&ours),
        median(&polars) / median(&ours)
    );
    Ok(())
}

/// `bench batch`: one incremental batch of model_performance on top of growing histories.
pub(crate) async fn batch(config: &Config, args: BenchBatchArgs) -> Result<()> {
    super::blocking("bench", config, move |config, runtime| {
        batch_blocking(config, args, runtime)
    })
    .await
}

fn batch_blocking(
    config: &Config,
    args: BenchBatchArgs,
    handle: tokio::runtime::Handle,
) -> Result<()> {
    let (dir, _guard) = work_dir(&args.dir)?;
    let mut results = Vec::new();
    for history in &args.history {
        let data = dir.join(format!("history-{history}"));
        let _ = fs::remove_dir_all(&data);
        let config = bench_config(config, &data);
        let log = EmbeddedLog::open(config.log_config())?;
        let lake = Lake::open(config.lake_dir())?;
        let mut calls = ModelCalls::new("2026-10-01T00:00:00Z".parse().unwrap());
        eprintln!("bench: history of {} model calls", thousands(*history));
        land(&config, &log, &lake, &mut calls, *history)?;
        let mut reducer = Reducer::new(
            model_performance()?,
            &log,
            &lake,
            handle.clone(),
            config.reducer_options(),
        )?;
        let t = Instant::now();
        reducer.backfill(None)?;
        let catch_up = t.elapsed().as_secs_f64();
        let mut times = Vec::new();
        let mut windows = 0;
        for _ in 0..args.runs.max(1) {
            land(&config, &log, &lake, &mut calls, args.batch)?;
            let t = Instant::now();
            let report = reducer.batch()?;
            times.push(t.elapsed().as_secs_f64());
            windows = report.windows;
            assert_eq!(
                report.events, args.batch,
                "the batch takes in exactly the new events"
            );
        }
        results.push((*history, median(&times), min(&times), catch_up, windows));
        drop(reducer);
        let _ = fs::remove_dir_all(&data);
    }
    outln!(
        "bench batch: one model_performance batch of {} new events on top of a reduced history; median of {} (min)",
        thousands(args.batch),
        args.runs.max(1)
    );
    for (history, med, low, catch_up, windows) in &results {
        outln!(
            "  history {:>12} rows: batch {:>8.1} ms [{:.1}]  ({} windows recomputed; first full reduce {:.1} s)",
            thousands(*history),
            med * 1000.0,
            low * 1000.0,
            windows,
            catch_up
        );
    }
    if let (Some(first), Some(last)) = (results.first(), results.last()) {
        outln!(
            "  ratio: a batch on {} rows costs {:.2}x one on {} rows (1.00 is flat)",
            thousands(last.0),
            last.1 / first.1,
            thousands(first.0)
        );
    }
    Ok(())
}

/// `bench freshness`: append at a rate while the sink and model_performance follow; measure the
/// time from each append's acknowledgement to the reducer's commit that covers it.
pub(crate) async fn freshness(config: &Config, args: BenchFreshnessArgs) -> Result<()> {
    super::blocking("bench", config, move |config, runtime| {
        freshness_blocking(config, args, runtime)
    })
    .await
}

fn freshness_blocking(
    config: &Config,
    args: BenchFreshnessArgs,
    handle: tokio::runtime::Handle,
) -> Result<()> {
    let (dir, _guard) = work_dir(&args.dir)?;
    let data = dir.join("freshness");
    let _ = fs::remove_dir_all(&data);
    let config = bench_config(config, &data);
    let log = EmbeddedLog::open(config.log_config())?;
    let lake = Lake::open(config.lake_dir())?;
    let specs: Vec<_> = spec::load_all(None)?
        .into_iter()
        .filter(|s| s.name == LAKE_SINK || s.name == "model_performance")
        .collect();
    let ctx = JobContext {
        log: &log,
        lake: &lake,
        status: StatusStore::new(config.status_dir()),
        runtime: handle,
        sink: config.sink_options(),
        reducer: config.reducer_options(),
        factory: &runner::NoExternalJobs,
    };
    let stop = AtomicBool::new(false);
    // (end offset after the append, when it was acknowledged)
    let appended: Mutex<Vec<(u64, Instant)>> = Mutex::new(Vec::new());
    let latencies: Mutex<Vec<(f64, f64)>> = Mutex::new(Vec::new());
    let tick = Duration::from_millis(50);
    let started = Instant::now();
    let per_tick = (args.rate as f64 * tick.as_secs_f64()).round() as u64;
    eprintln!(
        "bench: appending {} events/s for {} s while lake-sink and model_performance follow",
        thousands(args.rate),
        args.seconds
    );
    std::thread::scope(|scope| -> Result<()> {
        let jobs = scope.spawn(|| runner::run_all(&ctx, &specs, Mode::Follow(&stop), &|_, _| {}));
        let producer = scope.spawn(|| -> Result<()> {
            let mut calls = ModelCalls::new(chrono::Utc::now());
            let end = Instant::now() + Duration::from_secs(args.seconds);
            let mut next = Instant::now();
            let mut offset = 0u64;
            while Instant::now() < end {
                // Events are emitted now: the reducer's windows are the current ones.
                let lines = restamp(&calls.take(per_tick));
                let report = omnistream_connectors::ingest(
                    &log,
                    Topic::ModelCall.name(),
                    "bench",
                    omnistream_connectors::Input::stream(Cursor::new(lines)),
                    &config.ingest_options("bench"),
                    |_| {},
                )?;
                offset += report.accepted;
                appended.lock().unwrap().push((offset, Instant::now()));
                next += tick;
                if let Some(wait) = next.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
            }
            Ok(())
        });
        let monitor = scope.spawn(|| -> Result<()> {
            let mut seen = 0usize;
            loop {
                let snapshot = lake.snapshot()?;
                let done = |source: &str| {
                    snapshot
                        .source_offsets(source, Topic::ModelCall.name())
                        .get(&0)
                        .copied()
                        .unwrap_or(0)
                };
                let (landed, reduced) = (done(LAKE_SINK), done("model_performance"));
                let now = Instant::now();
                let batches = appended.lock().unwrap().clone();
                while seen < batches.len() && batches[seen].0 <= reduced {
                    let (_, at) = batches[seen];
                    latencies
                        .lock()
                        .unwrap()
                        .push(((now - at).as_secs_f64(), landed as f64));
                    seen += 1;
                }
                if stop.load(Ordering::SeqCst) {
                    return Ok(());
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        let produced = producer
            .join()
            .map_err(|_| CliError::Usage("producer panicked".into()))?;
        // Let the jobs catch up with the last append (unless they stopped), then stop them.
        let deadline = Instant::now() + Duration::from_secs(30);
        while latencies.lock().unwrap().len() < appended.lock().unwrap().len()
            && Instant::now() < deadline
            && !stop.load(Ordering::SeqCst)
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        stop.store(true, Ordering::SeqCst);
        monitor
            .join()
            .map_err(|_| CliError::Usage("monitor panicked".into()))??;
        jobs.join()
            .map_err(|_| CliError::Usage("jobs panicked".into()))??;
        produced
    })?;
    let appended_events = appended
        .lock()
        .unwrap()
        .last()
        .map(|(o, _)| *o)
        .unwrap_or(0);
    let achieved = appended_events as f64
        / started
            .elapsed()
            .as_secs_f64()
            .min(args.seconds as f64)
            .max(1e-9);
    let mut lat: Vec<f64> = latencies.lock().unwrap().iter().map(|(l, _)| *l).collect();
    lat.sort_by(f64::total_cmp);
    let pct = |p: f64| super::stats::percentile(&lat, p) * 1000.0;
    outln!(
        "bench freshness: {} events/s for {} s ({} appends of {}); append acknowledged -> model_performance committed",
        thousands(args.rate),
        args.seconds,
        lat.len(),
        per_tick
    );
    outln!(
        "  appended {} events ({} events/s achieved); p50 {:.0} ms   p90 {:.0} ms   p99 {:.0} ms   max {:.0} ms",
        thousands(appended_events),
        thousands(achieved as u64),
        pct(0.5),
        pct(0.9),
        pct(0.99),
        pct(1.0)
    );
    Ok(())
}

/// Give every line of a JSONL buffer the current time as `emitted_at`.
fn restamp(lines: &[u8]) -> Vec<u8> {
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let mut out = Vec::with_capacity(lines.len());
    for line in lines.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let mut v: serde_json::Value =
            serde_json::from_slice(line).expect("simulated lines are JSON");
        v["emitted_at"] = serde_json::Value::String(now.clone());
        out.extend_from_slice(v.to_string().as_bytes());
        out.push(b'\n');
    }
    out
}
