//! `omnistream simulate --generations N`

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{BufWriter, Cursor, Write};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use omnistream_streams::Topic;

use super::{open_log, thousands};
use crate::cli::SimulateArgs;
use crate::config::Config;
use crate::error::{CliError, Result};
use crate::output::outln;
use crate::workload::{Workload, WorkloadConfig};
use omnistream_streams::io::IoContext;

/// Generations per chunk: events are ingested a chunk at a time.
const CHUNK_GENERATIONS: u64 = 500;

pub(crate) fn workload_config(args: &SimulateArgs) -> Result<WorkloadConfig> {
    let start = if args.start == "now" {
        let span_us = (args.generations as f64 / args.rate.max(1e-6) * 60e6) as i64;
        chrono::Utc::now() - chrono::Duration::microseconds(span_us)
    } else {
        chrono::DateTime::parse_from_rfc3339(&args.start)
            .map_err(|e| {
                CliError::Usage(format!(
                    "--start '{}' is not an RFC 3339 time or `now`: {e}",
                    args.start
                ))
            })?
            .with_timezone(&chrono::Utc)
    };
    for (name, value) in [
        ("--late-fraction", args.late_fraction),
        ("--duplicate-fraction", args.duplicate_fraction),
    ] {
        if !(0.0..=1.0).contains(&value) {
            return Err(CliError::Usage(format!(
                "{name} must be between 0 and 1, got {value}"
            )));
        }
    }
    if args.rate.is_nan() || args.rate <= 0.0 {
        return Err(CliError::Usage(format!(
            "--rate must be positive, got {}",
            args.rate
        )));
    }
    Ok(WorkloadConfig {
        generations: args.generations,
        seed: args.seed,
        start,
        nodes: args.nodes,
        rate_per_minute: args.rate,
        late_fraction: args.late_fraction,
        duplicate_fraction: args.duplicate_fraction,
    })
}

pub(crate) async fn run(config: &Config, args: SimulateArgs) -> Result<()> {
    super::blocking("simulate", config, move |config, _| {
        run_blocking(config, args)
    })
    .await
}

fn run_blocking(config: &Config, args: SimulateArgs) -> Result<()> {
    let mut workload = Workload::new(workload_config(&args)?);
    let bar = if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        ProgressBar::new(args.generations)
    } else {
        ProgressBar::with_draw_target(Some(args.generations), ProgressDrawTarget::hidden())
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:40} {human_pos}/{human_len} generations [{elapsed}, eta {eta}]",
        )
        .unwrap(),
    );
    let started = Instant::now();
    let mut counts: BTreeMap<Topic, u64> = BTreeMap::new();
    let mut files: BTreeMap<Topic, BufWriter<File>> = BTreeMap::new();
    let log = match &args.jsonl_dir {
        Some(dir) => {
            fs::create_dir_all(dir).io_context(|| format!("creating {}", dir.display()))?;
            None
        }
        None => Some(open_log(config)?),
    };
    let options = config.ingest_options("simulate");
    while workload.remaining() > 0 {
        let before = workload.remaining();
        let chunk = workload.next_chunk(CHUNK_GENERATIONS);
        for (topic, lines) in chunk {
            *counts.entry(topic).or_default() += lines.len() as u64;
            match (&log, &args.jsonl_dir) {
                (Some(log), _) => {
                    let mut buf = Vec::with_capacity(lines.iter().map(|l| l.len() + 1).sum());
                    for line in &lines {
                        buf.extend_from_slice(line.as_bytes());
                        buf.push(b'\n');
                    }
                    let report = omnistream_connectors::ingest(
                        log,
                        topic.name(),
                        "simulate",
                        omnistream_connectors::Input::stream(Cursor::new(buf)),
                        &options,
                        |_| {},
                    )?;
                    if report.rejected > 0 {
                        let sample = report
                            .samples
                            .first()
                            .map(|s| s.reason.clone())
                            .unwrap_or_default();
                        return Err(CliError::Partial(format!(
                            "the simulator produced {} events that {topic} rejects (a bug, please report): {sample}",
                            report.rejected
                        )));
                    }
                }
                (None, Some(dir)) => {
                    let file = match files.entry(topic) {
                        std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                        std::collections::btree_map::Entry::Vacant(e) => {
                            let path = dir.join(format!("{}.jsonl", topic.table()));
                            let f = File::create(&path)
                                .io_context(|| format!("creating {}", path.display()))?;
                            e.insert(BufWriter::new(f))
                        }
                    };
                    for line in &lines {
                        writeln!(file, "{line}").io_context(|| "writing JSONL".to_string())?;
                    }
                }
                (None, None) => unreachable!(),
            }
        }
        bar.inc(before - workload.remaining());
    }
    for (_, mut f) in files {
        f.flush().io_context(|| "writing JSONL".to_string())?;
    }
    bar.finish_and_clear();
    let total: u64 = counts.values().sum();
    let target = match &args.jsonl_dir {
        Some(dir) => format!("JSONL files in {}", dir.display()),
        None => format!("the event log at {}", config.log_dir().display()),
    };
    outln!(
        "simulate: {} generations, {} events into {target} in {:.2} s (seed {})",
        thousands(args.generations),
        thousands(total),
        started.elapsed().as_secs_f64(),
        args.seed
    );
    for (topic, n) in counts {
        outln!("  {:<24} {:>12}", topic.table(), thousands(n));
    }
    Ok(())
}
