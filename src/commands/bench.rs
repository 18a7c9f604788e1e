//! `omnistream bench ingest`: JSONL to the lake, side by side with DuckDB on the same file.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use omnistream_jobs::LakeSink;
use omnistream_streams::{EmbeddedLog, Topic};

use super::stats::{median, min};
use super::thousands;
use crate::cli::{BenchCommand, BenchIngestArgs};
use crate::config::Config;
use crate::error::{CliError, Result};
use crate::output::outln;
use crate::workload::{Workload, WorkloadConfig};
use omnistream_streams::io::IoContext;

pub(crate) async fn run(config: &Config, command: BenchCommand) -> Result<()> {
    match command {
        BenchCommand::Query(args) => super::bench_jobs::query(config, args).await,
        BenchCommand::Batch(args) => super::bench_jobs::batch(config, args).await,
        BenchCommand::Freshness(args) => super::bench_jobs::freshness(config, args).await,
        BenchCommand::Codegen(args) => super::bench_codegen::run(config, args).await,
        BenchCommand::Learning(args) => super::bench_learning::run(config, args).await,
        BenchCommand::Patterns(args) => super::bench_patterns::run(config, args).await,
        BenchCommand::Ingest(args) => {
            super::blocking("bench", config, move |config, _| ingest_bench(config, args)).await
        }
    }
}

/// Write `events` simulated model-call events as JSONL.
pub(crate) fn write_model_calls(path: &Path, events: u64) -> Result<u64> {
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
        File::create(path).io_context(|| format!("creating {}", path.display()))?,
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
                .io_context(|| "writing JSONL".to_string())?;
            written += 1;
            bytes += line.len() as u64 + 1;
        }
    }
    out.flush().io_context(|| "writing JSONL".to_string())?;
    Ok(bytes)
}

fn ingest_bench(config: &Config, args: BenchIngestArgs) -> Result<()> {
    let (dir, _guard): (PathBuf, Option<tempfile::TempDir>) = match &args.dir {
        Some(d) => (d.clone(), None),
        None => {
            let t = super::temp_dir()?;
            (t.path().to_path_buf(), Some(t))
        }
    };
    fs::create_dir_all(&dir).io_context(|| format!("creating {}", dir.display()))?;
    let input = dir.join("model_call.jsonl");
    eprintln!(
        "bench: writing {} simulated model-call events to {}",
        thousands(args.events),
        input.display()
    );
    let bytes = write_model_calls(&input, args.events)?;

    // Runs alternate between omnistream and the peer, so both see the same machine conditions.
    let (mut ingest, mut sink, mut total, mut peer) = (vec![], vec![], vec![], vec![]);
    let (mut cpu, mut peer_cpu) = (vec![], vec![]);
    let mut peer_version = String::new();
    for run in 1..=args.runs.max(1) {
        eprintln!("bench: run {run} of {}", args.runs.max(1));
        let ours = omnistream_run(config, &dir, &input, args.events)?;
        ingest.push(ours.ingest);
        sink.push(ours.sink);
        total.push(ours.ingest + ours.sink);
        cpu.push(ours.cpu);
        if !args.no_peer {
            let run = duckdb_run(&args.python, &dir, &input, args.events)?;
            peer.push(run.seconds);
            peer_cpu.push(run.cpu);
            peer_version = run.version;
        }
    }
    let rate = |s: f64| thousands((args.events as f64 / s) as u64);
    outln!(
        "bench ingest: {} model-call events, {} of JSONL, median of {} runs (min in brackets)",
        thousands(args.events),
        bytesize::ByteSize(bytes),
        total.len()
    );
    let line = |name: &str, v: &[f64]| {
        outln!(
            "  {name:<22} {:>8.3} s  [{:.3}]  {:>12} events/s",
            median(v),
            min(v),
            rate(median(v))
        );
    };
    line("omnistream ingest", &ingest);
    line("omnistream lake-sink", &sink);
    line("omnistream total", &total);
    if !peer.is_empty() {
        line(&format!("duckdb {peer_version}"), &peer);
        outln!(
            "  ratio: omnistream ingest+sink runs at {:.2}x DuckDB's speed (>1 is faster); best runs {:.2}x",
            median(&peer) / median(&total),
            min(&peer) / min(&total)
        );
        // CPU time (user + system, all threads) moves less than wall time when the host is
        // shared: both sides are CPU-bound, so this ratio says how much work each does.
        outln!(
            "  CPU time: omnistream {:.3} s, DuckDB {:.3} s (medians): omnistream uses {:.2}x DuckDB's CPU",
            median(&cpu),
            median(&peer_cpu),
            median(&cpu) / median(&peer_cpu)
        );
    }
    Ok(())
}

/// CPU time this process has used so far (user and system, every thread), in seconds.
fn process_cpu_seconds() -> f64 {
    // SAFETY: getrusage only writes the struct it is given.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

/// One omnistream run: wall seconds of each step, and the CPU seconds of both.
struct OmnistreamRun {
    ingest: f64,
    sink: f64,
    cpu: f64,
}

/// One DuckDB run.
struct PeerRun {
    seconds: f64,
    cpu: f64,
    version: String,
}

/// One durable ingest into a fresh data directory, then the sink: seconds of each.
fn omnistream_run(config: &Config, dir: &Path, input: &Path, events: u64) -> Result<OmnistreamRun> {
    let data = dir.join("omnistream-data");
    let _ = fs::remove_dir_all(&data);
    let mut bench_config = config.clone();
    bench_config.data_dir = data;
    let log = EmbeddedLog::open(bench_config.log_config())?;
    let lake = omnistream_lake::Lake::open(bench_config.lake_dir())?;

    let cpu = process_cpu_seconds();
    let t = Instant::now();
    // Opened as `omnistream ingest` opens a file.
    let reader =
        omnistream_connectors::Input::file(input).io_context(|| "opening input".to_string())?;
    let report = omnistream_connectors::ingest(
        &log,
        Topic::ModelCall.name(),
        &input.to_string_lossy(),
        reader,
        &bench_config.ingest_options("bench"),
        |_| {},
    )?;
    let ingest_s = t.elapsed().as_secs_f64();
    if report.accepted != events {
        return Err(CliError::Usage(format!(
            "ingest accepted {} of {events} events",
            report.accepted
        )));
    }

    let t = Instant::now();
    let totals = LakeSink::new(&log, &lake, bench_config.sink_options())?.drain(|_, _| {})?;
    let sink_s = t.elapsed().as_secs_f64();
    let cpu = process_cpu_seconds() - cpu;
    if totals.rows_written != events {
        return Err(CliError::Usage(format!(
            "sink wrote {} of {events} rows",
            totals.rows_written
        )));
    }
    Ok(OmnistreamRun {
        ingest: ingest_s,
        sink: sink_s,
        cpu,
    })
}

/// DuckDB converting the same file, timed inside Python (interpreter start excluded), with the
/// CPU time of the conversion (every DuckDB thread is in the Python process).
fn duckdb_run(python: &str, dir: &Path, input: &Path, events: u64) -> Result<PeerRun> {
    let out = dir.join("duckdb.parquet");
    let script = format!(
        "import duckdb, resource, time\ncon = duckdb.connect()\ncon.execute('SET enable_progress_bar = false')\n\
         cpu = lambda: sum(resource.getrusage(resource.RUSAGE_SELF)[:2])\nc = cpu()\nt = time.perf_counter()\n\
         con.execute(\"COPY (SELECT * FROM read_json('{src}')) TO '{out}' (FORMAT parquet)\")\n\
         s = time.perf_counter() - t\nc = cpu() - c\nn = con.execute(\"SELECT count(*) FROM '{out}'\").fetchall()[0][0]\n\
         print(s, n, duckdb.__version__, c)\n",
        src = input.display(),
        out = out.display()
    );
    let result = Command::new(python)
        .arg("-c")
        .arg(&script)
        .output()
        .io_context(|| format!("running {python}"))?;
    if !result.status.success() {
        return Err(CliError::Usage(format!(
            "DuckDB run failed (install it with scripts/setup.sh, or pass --no-peer): {}",
            String::from_utf8_lossy(&result.stderr)
                .lines()
                .last()
                .unwrap_or("")
        )));
    }
    // One line: seconds, rows, version, CPU seconds.
    let text = String::from_utf8_lossy(&result.stdout);
    let fields: Vec<&str> = text.split_whitespace().collect();
    let parsed = match fields[..] {
        [seconds, rows, version, cpu] => seconds
            .parse::<f64>()
            .ok()
            .zip(rows.parse::<u64>().ok())
            .zip(cpu.parse::<f64>().ok())
            .map(|((seconds, rows), cpu)| (seconds, rows, version, cpu)),
        _ => None,
    };
    let Some((seconds, rows, version, cpu)) = parsed else {
        return Err(CliError::Usage(format!(
            "unexpected output from the DuckDB run: {}",
            text.trim()
        )));
    };
    if rows != events {
        return Err(CliError::Usage(format!(
            "DuckDB wrote {rows} of {events} rows"
        )));
    }
    Ok(PeerRun {
        seconds,
        cpu,
        version: version.to_string(),
    })
}
