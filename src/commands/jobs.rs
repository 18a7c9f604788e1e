//! `omnistream jobs list | run NAME [--once|--follow]`

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use omnistream_jobs::{LAKE_SINK, LakeSink, SinkTotals};

use super::{open_lake, open_log, spinner, thousands};
use crate::cli::{JobRunArgs, JobsCommand};
use crate::config::Config;
use crate::error::{CliError, Result};

/// The jobs this build knows, with what they do.
const JOBS: &[(&str, &str)] = &[(
    LAKE_SINK,
    "every topic of the event log into its raw lake table, exactly once",
)];

pub async fn run(config: &Config, command: JobsCommand) -> Result<()> {
    match command {
        JobsCommand::List => {
            for (name, what) in JOBS {
                println!("{name:<12} {what}");
            }
            Ok(())
        }
        JobsCommand::Run(args) => run_job(config, args).await,
    }
}

async fn run_job(config: &Config, args: JobRunArgs) -> Result<()> {
    if args.name != LAKE_SINK {
        return Err(CliError::Usage(format!(
            "unknown job '{}' (jobs: {})",
            args.name,
            JOBS.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
        )));
    }
    let stop = Arc::new(AtomicBool::new(false));
    if !args.once {
        let stop = stop.clone();
        tokio::spawn(async move {
            wait_for_shutdown_signal().await;
            eprintln!("lake-sink: stopping after the batch in flight");
            stop.store(true, Ordering::SeqCst);
        });
    }
    let config = config.clone();
    let once = args.once;
    let totals = tokio::task::spawn_blocking(move || -> Result<SinkTotals> {
        let log = open_log(&config)?;
        let lake = open_lake(&config)?;
        let mut sink = LakeSink::new(&log, &lake, config.sink_options())?;
        let bar = spinner("lake-sink");
        let on_round = |_: &omnistream_jobs::RoundReport, t: &SinkTotals| {
            bar.set_message(format!(
                "lake-sink: {} rows written, {} duplicates dropped, {} commits",
                thousands(t.rows_written),
                thousands(t.duplicates),
                t.commits
            ));
            tracing::info!(
                rows = t.rows_written,
                duplicates = t.duplicates,
                commits = t.commits,
                "lake-sink round"
            );
        };
        let totals = if once {
            sink.drain(on_round)?
        } else {
            sink.follow(&stop, on_round)?
        };
        bar.finish_and_clear();
        Ok(totals)
    })
    .await
    .map_err(|e| CliError::Usage(format!("lake-sink stopped: {e}")))??;
    let secs = totals.elapsed.as_secs_f64().max(1e-9);
    println!(
        "lake-sink: {} records read, {} rows written in {} files, {} duplicates dropped, {} commits, {} files compacted, {:.2} s ({} rows/s)",
        thousands(totals.records_read),
        thousands(totals.rows_written),
        totals.files_written,
        thousands(totals.duplicates),
        totals.commits,
        totals.files_compacted,
        secs,
        thousands((totals.rows_written as f64 / secs) as u64),
    );
    Ok(())
}

/// Ctrl-C or SIGTERM.
pub async fn wait_for_shutdown_signal() {
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
