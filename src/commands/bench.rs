//! `omnistream bench ingest`: JSONL to the lake, side by side with DuckDB on the same file.

use std::fs::{self, File};
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use omnistream_jobs::LakeSink;
use omnistream_streams::{EmbeddedLog, Topic};

use super::thousands;
use crate::cli::{BenchCommand, BenchIngestArgs};
use crate::config::Config;
use crate::error::{CliError, Result};
use crate::workload::{Workload, WorkloadConfig};

pub async fn run(config: &Config, command: BenchCommand) -> Result<()> {
    match command {
        BenchCommand::Ingest(args) => {
            let config = config.clone();
            tokio::task::spawn_blocking(move || ingest_bench(&config, args))
                .await
                .map_err(|e| CliError::Usage(format!("bench stopped: {e}")))?
        }
    }
}

/// Write `events` simulated model-call events as JSONL.
pub fn write_model_calls(path: &Path, events: u64) -> Result<u64> {
    let mut workload = Workload::new(WorkloadConfig {
        generations: u64::MAX / 2,
        seed: 1,
        start: "2026-11-01T00:00:00Z".parse().unwrap(),
        nodes: 0,
        rate_per_minute: 60.0,
        late_fraction: 0.0,
        duplicate_fraction: 0.0,
    });
    let mut out = BufWriter::with_capacity(
        1 << 20,
        File::create(path).map_err(CliError::io(format!("creating {}", path.display())))?,
    );
    let (mut written, mut bytes) = (0u64, 0u64);
    while written < events {
        let chunk = workload.next_chunk(1000);
        for line in chunk.get(&Topic::ModelCall).into_iter().flatten() {
            if written == events {
                break;
            }
            out.write_all(line.as_bytes())
                .and_then(|_| out.write_all(b"\n"))
                .map_err(CliError::io("writing JSONL"))?;
            written += 1;
            bytes += line.len() as u64 + 1;
        }
    }
    out.flush().map_err(CliError::io("writing JSONL"))?;
    Ok(bytes)
}

fn ingest_bench(config: &Config, args: BenchIngestArgs) -> Result<()> {
    let (dir, _guard): (PathBuf, Option<TempDir>) = match &args.dir {
        Some(d) => (d.clone(), None),
        None => {
            let t = TempDir::new()?;
            (t.0.clone(), Some(t))
        }
    };
    fs::create_dir_all(&dir).map_err(CliError::io(format!("creating {}", dir.display())))?;
    let input = dir.join("model_call.jsonl");
    eprintln!(
        "bench: writing {} simulated model-call events to {}",
        thousands(args.events),
        input.display()
    );
    let bytes = write_model_calls(&input, args.events)?;

    let data = dir.join("omnistream-data");
    let _ = fs::remove_dir_all(&data);
    let mut bench_config = config.clone();
    bench_config.data_dir = data.clone();
    let log = EmbeddedLog::open(bench_config.log_config())?;
    let lake = omnistream_lake::Lake::open(bench_config.lake_dir())?;

    eprintln!("bench: omnistream ingest (durable: every batch synced before it is acknowledged)");
    let t = Instant::now();
    let reader = BufReader::with_capacity(
        1 << 20,
        File::open(&input).map_err(CliError::io("opening input"))?,
    );
    let report = omnistream_connectors::ingest(
        &log,
        Topic::ModelCall.name(),
        &input.to_string_lossy(),
        reader,
        &bench_config.ingest_options("bench"),
        |_| {},
    )?;
    let ingest_s = t.elapsed().as_secs_f64();
    if report.accepted != args.events {
        return Err(CliError::Usage(format!(
            "ingest accepted {} of {} events",
            report.accepted, args.events
        )));
    }

    eprintln!("bench: omnistream lake-sink (to Parquet, zstd, committed with offsets)");
    let t = Instant::now();
    let totals = {
        let mut sink = LakeSink::new(&log, &lake, bench_config.sink_options())?;
        sink.drain(|_, _| {})?
    };
    let sink_s = t.elapsed().as_secs_f64();
    if totals.rows_written != args.events {
        return Err(CliError::Usage(format!(
            "sink wrote {} of {} rows",
            totals.rows_written, args.events
        )));
    }
    let ours = ingest_s + sink_s;
    let rate = |s: f64| thousands((args.events as f64 / s) as u64);
    println!(
        "bench ingest: {} model-call events, {} of JSONL",
        thousands(args.events),
        bytesize::ByteSize(bytes)
    );
    println!(
        "  omnistream ingest      {ingest_s:>8.3} s  {:>12} events/s",
        rate(ingest_s)
    );
    println!(
        "  omnistream lake-sink   {sink_s:>8.3} s  {:>12} events/s",
        rate(sink_s)
    );
    println!(
        "  omnistream total       {ours:>8.3} s  {:>12} events/s",
        rate(ours)
    );

    if !args.no_peer {
        let out = dir.join("duckdb.parquet");
        let script = format!(
            "import duckdb, time\ncon = duckdb.connect()\nt = time.perf_counter()\n\
             con.execute(\"COPY (SELECT * FROM read_json('{src}')) TO '{out}' (FORMAT parquet)\")\n\
             s = time.perf_counter() - t\nn = con.execute(\"SELECT count(*) FROM '{out}'\").fetchall()[0][0]\n\
             print(s, n, duckdb.__version__)\n",
            src = input.display(),
            out = out.display()
        );
        let result = Command::new(&args.python)
            .arg("-c")
            .arg(&script)
            .output()
            .map_err(CliError::io(format!("running {}", args.python)))?;
        if !result.status.success() {
            return Err(CliError::Usage(format!(
                "DuckDB run failed (install it with scripts/setup.sh, or pass --no-peer): {}",
                String::from_utf8_lossy(&result.stderr)
                    .lines()
                    .last()
                    .unwrap_or("")
            )));
        }
        let text = String::from_utf8_lossy(&result.stdout);
        let mut parts = text.split_whitespace();
        let duck_s: f64 = parts
            .next()
            .and_then(|s| s.parse().ok())
            .unwrap_or(f64::NAN);
        let duck_rows: u64 = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
        let version = parts.next().unwrap_or("?");
        println!(
            "  duckdb {version:<15} {duck_s:>8.3} s  {:>12} events/s  (COPY read_json -> parquet, {} rows)",
            rate(duck_s),
            thousands(duck_rows)
        );
        println!(
            "  ratio: omnistream ingest+sink is {:.2}x DuckDB's speed (>1 is faster)",
            duck_s / ours
        );
    }
    Ok(())
}

/// A temporary directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Result<Self> {
        let dir = std::env::temp_dir().join(format!("omnistream-bench-{}", uuid::Uuid::now_v7()));
        fs::create_dir_all(&dir).map_err(CliError::io(format!("creating {}", dir.display())))?;
        Ok(TempDir(dir))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}
