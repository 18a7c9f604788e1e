//! `omnistream jobs list | run NAME|all | status [NAME]` and `omnistream backfill NAME`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arrow::array::{ArrayRef, RecordBatch, StringArray, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema};
use omnistream_jobs::runner::{self, JobContext, Mode, RunTotals};
use omnistream_jobs::spec::{self, JobKind, JobSpec};
use omnistream_jobs::status::StatusStore;
use omnistream_jobs::{LAKE_SINK, Reducer};
use omnistream_streams::EventLog;

use super::{open_lake, open_log, spinner, thousands};
use crate::cli::{BackfillArgs, JobRunArgs, JobsCommand};
use crate::config::Config;
use crate::error::{CliError, Result};
use crate::output::Output;
use crate::output::outln;

pub(crate) fn load_specs(config: &Config) -> Result<Vec<JobSpec>> {
    Ok(spec::load_all(config.jobs_dir.as_deref())?)
}

pub(crate) async fn run(config: &Config, command: JobsCommand) -> Result<()> {
    match command {
        JobsCommand::List { output } => list(config, Output::new(output)?).await,
        JobsCommand::Run(args) => run_job(config, args).await,
        JobsCommand::Status { name, output } => status(config, name, Output::new(output)?).await,
    }
}

async fn list(config: &Config, output: Output) -> Result<()> {
    let specs = load_specs(config)?;
    let text = |f: &dyn Fn(&JobSpec) -> String| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(specs.iter().map(f)))
    };
    let schema = Arc::new(Schema::new(
        [
            "job",
            "kind",
            "inputs",
            "output",
            "windows",
            "trigger",
            "description",
        ]
        .iter()
        .map(|n| Field::new(*n, DataType::Utf8, false))
        .collect::<Vec<_>>(),
    ));
    let columns = vec![
        text(&|s| s.name.clone()),
        text(&|s| s.kind.name().to_string()),
        text(&|s| {
            if matches!(s.kind, JobKind::Sink) {
                "every topic".into()
            } else {
                s.inputs
                    .iter()
                    .map(|t| t.table())
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        }),
        text(&|s| match &s.kind {
            JobKind::Codegen => "generated nodes, codegen events".into(),
            JobKind::Patterns => "patterns (LanceDB), pattern-stored events".into(),
            JobKind::Sink => "raw tables".into(),
            JobKind::Reducer(r) => r.output.clone(),
        }),
        text(&|s| {
            s.reducer()
                .map(|r| {
                    r.windows
                        .iter()
                        .map(|w| w.label.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default()
        }),
        text(&|s| humantime::format_duration(s.trigger).to_string()),
        text(&|s| s.description.clone()),
    ];
    output
        .write_batches(schema.clone(), vec![RecordBatch::try_new(schema, columns)?])
        .await?;
    Ok(())
}

/// Parse `--from`: a date (midnight UTC) or an RFC 3339 instant, in microseconds.
pub(crate) fn parse_from(text: &str) -> Result<i64> {
    if let Ok(date) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(date
            .and_hms_opt(0, 0, 0)
            .unwrap()
            .and_utc()
            .timestamp_micros());
    }
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp_micros())
        .map_err(|_| {
            CliError::Usage(format!(
                "'{text}' is not a date (YYYY-MM-DD) or an RFC 3339 time"
            ))
        })
}

fn context<'a>(
    config: &Config,
    log: &'a dyn EventLog,
    lake: &'a omnistream_lake::Lake,
    factory: &'a dyn omnistream_jobs::JobFactory,
) -> JobContext<'a> {
    JobContext {
        log,
        lake,
        status: StatusStore::new(config.status_dir()),
        runtime: tokio::runtime::Handle::current(),
        sink: config.sink_options(),
        reducer: config.reducer_options(),
        factory,
    }
}

async fn run_job(config: &Config, args: JobRunArgs) -> Result<()> {
    let specs = load_specs(config)?;
    let selected: Vec<JobSpec> = if args.name == "all" {
        specs
    } else {
        vec![spec::find(&specs, &args.name)?]
    };
    let from = args.from.as_deref().map(parse_from).transpose()?;
    if from.is_some() && (selected.len() != 1 || selected[0].reducer().is_none()) {
        return Err(CliError::Usage("--from applies to one reducer job".into()));
    }
    let stop = Arc::new(AtomicBool::new(false));
    if !args.once {
        let stop = stop.clone();
        let name = args.name.clone();
        tokio::spawn(async move {
            wait_for_shutdown_signal().await;
            eprintln!("{name}: stopping after the batch in flight");
            stop.store(true, Ordering::SeqCst);
        });
    }
    let config = config.clone();
    let once = args.once;
    let name = args.name.clone();
    let results = tokio::task::spawn_blocking(move || -> Result<Vec<(String, RunTotals)>> {
        let log = open_log(&config)?;
        let lake = open_lake(&config)?;
        let factory =
            super::patterns::ExternalJobs::new(&config, &tokio::runtime::Handle::current())?;
        let ctx = context(&config, &log, &lake, &factory);
        let bar = spinner(&name);
        let on_batch = |spec: &JobSpec, t: &RunTotals| {
            bar.set_message(format!(
                "{}: {} events in, {} rows out, {} batches",
                spec.name,
                thousands(t.events_in),
                thousands(t.rows_out),
                t.batches
            ));
            tracing::info!(job = %spec.name, events = t.events_in, rows = t.rows_out, batches = t.batches, "batch");
        };
        let mode = if once { Mode::Once } else { Mode::Follow(&stop) };
        let results = if selected.len() == 1 && name != "all" {
            let spec = &selected[0];
            vec![(spec.name.clone(), runner::run(&ctx, spec, mode, from, |t| on_batch(spec, t))?)]
        } else {
            runner::run_all(&ctx, &selected, mode, &on_batch)?
        };
        bar.finish_and_clear();
        Ok(results)
    })
    .await
    .map_err(|e| CliError::Internal(format!("{} stopped: {e}", args.name)))??;
    for (name, t) in results {
        outln!(
            "{name}: {} events in, {} rows out, {} batches, {:.2} s",
            thousands(t.events_in),
            thousands(t.rows_out),
            t.batches,
            t.elapsed.as_secs_f64()
        );
    }
    Ok(())
}

async fn status(config: &Config, name: Option<String>, output: Output) -> Result<()> {
    let specs = load_specs(config)?;
    let selected: Vec<JobSpec> = match name {
        Some(n) => vec![spec::find(&specs, &n)?],
        None => specs,
    };
    let log = open_log(config)?;
    let lake = open_lake(config)?;
    let snapshot = lake.snapshot()?;
    let store = StatusStore::new(config.status_dir());
    let mut rows: Vec<[String; 8]> = Vec::new();
    let mut lags: Vec<u64> = Vec::new();
    for spec in &selected {
        let (mut committed, mut lag) = (0u64, 0u64);
        for topic in &spec.inputs {
            // The codegen job commits to the log's consumer group (it writes no lake table).
            let mine: std::collections::BTreeMap<u32, u64> =
                if matches!(spec.kind, JobKind::Codegen | JobKind::Patterns) {
                    log.committed(&spec.name, *topic)?
                } else {
                    snapshot.source_offsets(&spec.name, topic.name())
                };
            committed += mine.values().sum::<u64>();
            let ends: Vec<(u32, u64)> = if matches!(
                spec.kind,
                JobKind::Sink | JobKind::Codegen | JobKind::Patterns
            ) {
                (0..log.partitions(*topic)?)
                    .map(|p| Ok((p, log.offsets(*topic, p)?.end)))
                    .collect::<Result<_>>()?
            } else {
                snapshot
                    .source_offsets(LAKE_SINK, topic.name())
                    .into_iter()
                    .collect()
            };
            lag += ends
                .iter()
                .map(|(p, end)| end.saturating_sub(mine.get(p).copied().unwrap_or(0)))
                .sum::<u64>();
        }
        let s = store.read(&spec.name).unwrap_or_default();
        lags.push(lag);
        rows.push([
            spec.name.clone(),
            if s.state.is_empty() {
                "never run".into()
            } else {
                s.state.clone()
            },
            thousands(committed),
            s.last_batch_at.clone().unwrap_or_default(),
            s.last_batch_ms
                .map(|ms| format!("{ms:.1} ms"))
                .unwrap_or_default(),
            thousands(s.events_in),
            thousands(s.rows_out),
            s.last_error.clone().unwrap_or_default(),
        ]);
    }
    let names = [
        "job",
        "state",
        "committed_offsets",
        "last_batch_at",
        "last_batch",
        "events_in",
        "rows_out",
        "last_error",
    ];
    let mut fields: Vec<Field> = names
        .iter()
        .map(|n| Field::new(*n, DataType::Utf8, false))
        .collect();
    fields.insert(3, Field::new("lag", DataType::UInt64, false));
    let schema = Arc::new(Schema::new(fields));
    let mut columns: Vec<ArrayRef> = (0..names.len())
        .map(|i| {
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r[i].clone()),
            )) as ArrayRef
        })
        .collect();
    columns.insert(3, Arc::new(UInt64Array::from(lags)));
    output
        .write_batches(schema.clone(), vec![RecordBatch::try_new(schema, columns)?])
        .await?;
    Ok(())
}

pub(crate) async fn backfill(config: &Config, args: BackfillArgs) -> Result<()> {
    let specs = load_specs(config)?;
    let spec = spec::find(&specs, &args.name)?;
    if spec.reducer().is_none() {
        return Err(CliError::Usage(format!(
            "{} is not a reducer; only reducers have derived tables to rebuild",
            spec.name
        )));
    }
    let from = args.from.as_deref().map(parse_from).transpose()?;
    let config = config.clone();
    let handle = tokio::runtime::Handle::current();
    let report = tokio::task::spawn_blocking(move || -> Result<omnistream_jobs::BatchReport> {
        let log = open_log(&config)?;
        let lake = open_lake(&config)?;
        let bar = spinner(&format!("backfill {}", spec.name));
        let mut reducer = Reducer::new(spec, &log, &lake, handle, config.reducer_options())?;
        let report = omnistream_jobs::retry_stale(|| reducer.backfill(from))?;
        bar.finish_and_clear();
        Ok(report)
    })
    .await
    .map_err(|e| CliError::Usage(format!("backfill stopped: {e}")))??;
    outln!(
        "backfill {}: {} windows recomputed, {} rows in {} date partitions, {:.2} s",
        args.name,
        thousands(report.windows as u64),
        thousands(report.rows_written),
        report.partitions_rewritten,
        report.elapsed.as_secs_f64()
    );
    Ok(())
}

/// Ctrl-C or SIGTERM.
pub(crate) async fn wait_for_shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing a SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
