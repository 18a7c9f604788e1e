//! `omnistream bench codegen`: generations per second with the template model, and the data
//! plane's own overhead per generation (everything but model time), side by side with the bare
//! work done in Python (Jinja2 render, write, compile) on the same templates and contexts.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::process::Command;
use std::time::Instant;

use arrow::array::{Array, Float64Array, StringArray};
use indicatif::{ProgressBar, ProgressStyle};
use omnistream_codegen::CompileScope;
use omnistream_codegen::catalog::catalog_patterns;
use omnistream_codegen::contract::{build_contract, to_yaml};
use omnistream_codegen::parse::parse_prompt;
use omnistream_codegen::render::{GeneratorContext, TemplateContext, template_sources};
use omnistream_codegen::{Codegen, GenerationRequest, TEMPLATE_MODEL};
use omnistream_streams::{EmbeddedLog, EventLog, Topic};
use serde_json::json;

use super::generate::Watch;
use super::requests::{Outcome, Tally};
use super::stats::percentile;
use crate::cli::BenchCodegenArgs;
use crate::config::Config;
use crate::error::{CliError, Result};
use crate::output::outln;
use omnistream_streams::io::IoContext;

const PEER: &str = include_str!("codegen_peer.py");

/// Requests of the benchmark: the four node kinds, many domains.
const PROMPTS: &[&str] = &[
    "Create PostgreSQL writer Effect node",
    "Kafka publisher effect with retries",
    "S3 uploader effect node",
    "Redis cache effect node",
    "SMTP mailer for notifications",
    "HTTP webhook client effect",
    "price calculator with tax rules",
    "JSON schema validator compute node",
    "fraud risk scorer compute node",
    "text tokenizer compute node",
    "metrics aggregator reducer",
    "session state reducer for users",
    "order book reducer for trading",
    "payment workflow orchestrator",
    "ETL pipeline orchestrator for data",
    "user onboarding workflow orchestrator",
];

pub(crate) async fn run(config: &Config, args: BenchCodegenArgs) -> Result<()> {
    super::blocking("bench", config, move |config, runtime| {
        bench(config, args, runtime)
    })
    .await
}

fn bench(config: &Config, args: BenchCodegenArgs, runtime: tokio::runtime::Handle) -> Result<()> {
    let work = super::bench_dir(args.dir.as_deref(), "omnistream-bench-codegen")?;
    let mut config = config.clone();
    config.data_dir = work.join("data");
    let mut options = config.codegen_options()?;
    options.concurrency = args.concurrency.max(1);
    options.max_batch = 256;
    options.compile_check = !args.no_compile;
    options.compile_scope = if args.compile_all {
        CompileScope::All
    } else {
        CompileScope::Changed
    };
    options.run_tests = args.tests;
    options.output_root = work.join("out");
    options.python = args.python.clone();
    let log = EmbeddedLog::open(config.log_config())?;
    if args.patterns > 0 {
        let took = super::patterns::fill_synthetic(&config, args.patterns, &runtime)?;
        outln!(
            "pattern store: {} synthetic patterns stored in {:.1} s ({:.0} patterns/s)",
            args.patterns,
            took.as_secs_f64(),
            args.patterns as f64 / took.as_secs_f64()
        );
    }
    super::patterns::attach(&mut options, &config, &runtime)?;

    let requests = bench_requests(&args)?;
    let generations = requests.len() as u64;
    let ids: Vec<&str> = requests.iter().map(|r| r.correlation_id.as_str()).collect();
    let mut watch = Watch::new(&log, ids.iter().copied())?;
    for chunk in requests.chunks(1000) {
        GenerationRequest::publish(&log, chunk)?;
    }
    let template = args.model.as_deref().is_none_or(|m| m == TEMPLATE_MODEL);

    // What is compiled, said to the reader and to the peer (which compiles the same).
    let (compiled, peer_compiles) = match (options.compile_check, options.compile_scope) {
        (false, _) => ("off", "none"),
        (true, CompileScope::All) => ("on (every file)", "all"),
        (true, CompileScope::Changed) => ("on (files a model or a patch changed)", "changed"),
    };
    outln!(
        "bench codegen: {generations} generations ({} model{}), concurrency {}, compile check {compiled}, generated tests {}",
        args.model.as_deref().unwrap_or(TEMPLATE_MODEL),
        match &args.requests {
            Some(f) => format!(", requests of {}", f.display()),
            None => String::new(),
        },
        options.concurrency,
        if options.run_tests { "on" } else { "off" }
    );
    let bar = ProgressBar::new(generations);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} generations [{elapsed}, {per_sec}]")
            .unwrap(),
    );
    let concurrency = options.concurrency;
    let mut codegen = Codegen::new(&log, options, runtime, &config.status_dir())?;
    let started = Instant::now();
    loop {
        let r = codegen.step()?;
        if r.requests == 0 {
            break;
        }
        bar.inc(r.requests);
    }
    let ours = started.elapsed().as_secs_f64();
    bar.finish_and_clear();
    drop(codegen);

    // Overhead: a generation's duration minus its model time, from its own events.
    let mut model_ms: HashMap<String, f64> = HashMap::new();
    for (corr, latency) in float_column(&log, Topic::ModelCall, "latency_ms")? {
        *model_ms.entry(corr).or_default() += latency;
    }
    let durations = float_column(&log, Topic::GenerationCompleted, "total_duration_seconds")?;
    let failed = count(&log, Topic::GenerationFailed)?;
    let mut overhead: Vec<f64> = durations
        .iter()
        .map(|(c, secs)| secs * 1000.0 - model_ms.get(c).copied().unwrap_or(0.0))
        .collect();
    overhead.sort_by(f64::total_cmp);
    if durations.is_empty() && failed == 0 {
        return Err(CliError::Usage(format!(
            "no generation ended: see `omnistream --data-dir {} sql \"SELECT * FROM generation_failed LIMIT 5\"` after `jobs run lake-sink --once`",
            config.data_dir.display()
        )));
    }
    // Every generation that ended is work done, failed ones (examples that fail) included.
    let rate = (durations.len() as u64 + failed) as f64 / ours;
    let ends = end_events(&log, &mut watch)?;
    let outcomes: Vec<Outcome> = requests
        .iter()
        .map(|r| Outcome::of(r, ends.get(&r.correlation_id)))
        .collect();
    let tally = Tally::of(&outcomes);

    outln!(
        "omnistream  {:>8.3} s  {:>8} generations/s  ({} completed, {failed} failed)",
        ours,
        // A served model makes rates below one a second: keep their digits.
        if rate < 10.0 {
            format!("{rate:.3}")
        } else {
            format!("{rate:.1}")
        },
        durations.len()
    );
    if !overhead.is_empty() {
        outln!(
            "overhead per completed generation (all but model time): p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms",
            percentile(&overhead, 0.5),
            percentile(&overhead, 0.9),
            percentile(&overhead, 0.99)
        );
    }
    let output_tokens: f64 = float_column(&log, Topic::ModelCall, "output_tokens")?
        .iter()
        .map(|(_, n)| n)
        .sum::<f64>()
        + 0.0; // an empty sum is -0.0
    let per = |x: f64| x / tally.generations.max(1) as f64;
    outln!(
        "{}; per generation {:.3} s, {:.0} tokens ({:.0} output)",
        tally.rates(),
        per(tally.seconds),
        per(tally.tokens as f64),
        per(output_tokens)
    );
    if !template {
        outln!(
            "python peer: not run (a served model's time dominates; the peer renders templates only)"
        );
    } else if args.requests.is_some() {
        outln!("python peer: not run with --requests (it renders templates and runs no examples)");
    } else {
        run_peer(&args, &work, &requests, concurrency, peer_compiles, rate)?;
    }
    let _ = fs::remove_dir_all(work.join("out"));
    let _ = fs::remove_dir_all(work.join("peer_out"));
    Ok(())
}

/// The peer's inputs: the same templates, contexts and contracts as the run's.
fn write_peer_inputs(work: &std::path::Path, requests: &[GenerationRequest]) -> Result<()> {
    let mut inputs = fs::File::create(work.join("peer_inputs.jsonl"))
        .io_context(|| "writing the peer's inputs".to_string())?;
    for r in requests {
        let mut parsed = parse_prompt(&r.prompt, r.node_type.as_deref())
            .map_err(|e| CliError::Usage(e.to_string()))?;
        if !r.spec.operations.is_empty() {
            parsed.operations = r.spec.operations.clone();
        }
        let ctx = TemplateContext::new(
            &parsed,
            &r.prompt,
            &r.spec,
            catalog_patterns(&parsed, &r.prompt),
            GeneratorContext {
                tool: "omnistream".into(),
                model: "template".into(),
                correlation_id: r.correlation_id.clone(),
                generated_at: "2026-11-26T00:00:00Z".into(),
            },
        );
        let contract = to_yaml(&build_contract(
            &parsed,
            &r.prompt,
            "template",
            &r.correlation_id,
            "t",
        ));
        writeln!(inputs, "{}", json!({"context": ctx, "contract": contract}))
            .io_context(|| "writing the peer's inputs".to_string())?;
    }
    let sources: Vec<_> = template_sources();
    fs::write(
        work.join("peer_templates.json"),
        serde_json::to_vec(&sources).unwrap(),
    )
    .io_context(|| "writing the peer's templates".to_string())?;
    fs::write(work.join("codegen_peer.py"), PEER).io_context(|| "writing the peer".to_string())?;

    Ok(())
}

/// The Python peer on the same templates and contexts, and the ratio of the rates.
fn run_peer(
    args: &BenchCodegenArgs,
    work: &std::path::Path,
    requests: &[GenerationRequest],
    concurrency: usize,
    peer_compiles: &str,
    rate: f64,
) -> Result<()> {
    write_peer_inputs(work, requests)?;
    let peer = Command::new(&args.python)
        .arg(work.join("codegen_peer.py"))
        .arg(work)
        .arg(concurrency.to_string())
        .arg(peer_compiles)
        .output()
        .io_context(|| format!("starting {}", args.python))?;
    if !peer.status.success() {
        return Err(CliError::Usage(format!(
            "the Python peer failed: {}",
            String::from_utf8_lossy(&peer.stderr)
        )));
    }
    let peer: serde_json::Value = serde_json::from_slice(&peer.stdout)
        .map_err(|e| CliError::Usage(format!("the Python peer printed no result: {e}")))?;
    let peer_secs = peer["seconds"].as_f64().unwrap_or(f64::NAN);
    let peer_rate = requests.len() as f64 / peer_secs;

    outln!(
        "python peer {:>8.3} s  {:>8.1} generations/s  (Jinja2 render + write{}, {concurrency} processes, no events or gates)",
        peer_secs,
        peer_rate,
        if args.no_compile { "" } else { " + compile" }
    );
    outln!(
        "ratio (omnistream rate / peer rate): {:.2}x",
        rate / peer_rate
    );
    Ok(())
}

/// The requests of the run: the file's (cycled to `--generations`), or the built-in prompts.
fn bench_requests(args: &BenchCodegenArgs) -> Result<Vec<GenerationRequest>> {
    let base: Vec<GenerationRequest> = match &args.requests {
        Some(file) => omnistream_codegen::request::read_request_file(file)?,
        None => PROMPTS.iter().map(|p| GenerationRequest::new(*p)).collect(),
    };
    let n = args.generations.unwrap_or(if args.requests.is_some() {
        base.len() as u64
    } else {
        1000
    });
    Ok((0..n)
        .map(|i| {
            let mut r = GenerationRequest {
                output_directory: Some(format!("g{i}")),
                ..base[i as usize % base.len()].clone()
            };
            let fresh = GenerationRequest::new(r.prompt.clone());
            (r.event_id, r.correlation_id) = (fresh.event_id, fresh.correlation_id);
            if r.model.is_none() {
                r.model = args.model.clone();
            }
            r
        })
        .collect())
}

/// The end event of each watched generation.
fn end_events(
    log: &EmbeddedLog,
    watch: &mut Watch,
) -> Result<HashMap<String, (Topic, serde_json::Value)>> {
    let ended = |(t, _): &(Topic, serde_json::Value)| {
        matches!(t, Topic::GenerationCompleted | Topic::GenerationFailed)
    };
    Ok(watch
        .drain(log)?
        .into_iter()
        .filter_map(|(id, events)| events.into_iter().rev().find(ended).map(|e| (id, e)))
        .collect())
}

/// (correlation_id, value) of a numeric column over a whole topic.
fn float_column(log: &dyn EventLog, topic: Topic, column: &str) -> Result<Vec<(String, f64)>> {
    let mut out = Vec::new();
    for p in 0..log.partitions(topic)? {
        let mut at = 0;
        loop {
            let batches = log.read(topic, p, at, 100_000)?;
            if batches.is_empty() {
                break;
            }
            for b in batches {
                at = b.next_offset();
                let ids = b
                    .batch
                    .column_by_name("correlation_id")
                    .and_then(|c| c.as_any().downcast_ref::<StringArray>().cloned());
                // Integer columns (token counts) are read as floats too.
                let vals = b
                    .batch
                    .column_by_name(column)
                    .and_then(|c| {
                        arrow::compute::cast(c, &arrow::datatypes::DataType::Float64).ok()
                    })
                    .and_then(|c| c.as_any().downcast_ref::<Float64Array>().cloned());
                if let (Some(ids), Some(vals)) = (ids, vals) {
                    for i in 0..ids.len() {
                        if vals.is_valid(i) {
                            out.push((ids.value(i).to_string(), vals.value(i)));
                        }
                    }
                }
            }
        }
    }
    Ok(out)
}

fn count(log: &dyn EventLog, topic: Topic) -> Result<u64> {
    let mut n = 0;
    for p in 0..log.partitions(topic)? {
        let o = log.offsets(topic, p)?;
        n += o.end - o.start;
    }
    Ok(n)
}
