//! One module per command.

pub(crate) mod analytics;
pub(crate) mod bench;
pub(crate) mod bench_codegen;
pub(crate) mod bench_jobs;
pub(crate) mod bench_learning;
pub(crate) mod bench_patterns;
pub(crate) mod generate;
pub(crate) mod ingest;
pub(crate) mod jobs;
pub(crate) mod lake;
pub(crate) mod patterns;
pub(crate) mod requests;
pub(crate) mod simulate;
pub(crate) mod sql;
pub(crate) mod stats;
pub(crate) mod topics;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use omnistream_lake::Lake;
use omnistream_streams::EmbeddedLog;

use crate::config::Config;
use crate::error::{CliError, Result};
use omnistream_streams::io::IoContext;

/// Run a command's synchronous work (log, lake, files, subprocesses) on tokio's blocking pool,
/// with its own copy of the config and a handle to the runtime for what it drives async; `what`
/// names the command if the task panics.
pub(crate) async fn blocking<T: Send + 'static>(
    what: &'static str,
    config: &Config,
    work: impl FnOnce(&Config, tokio::runtime::Handle) -> Result<T> + Send + 'static,
) -> Result<T> {
    let config = config.clone();
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || work(&config, runtime))
        .await
        .map_err(|e| CliError::Internal(format!("{what} stopped: {e}")))?
}

pub(crate) fn open_log(config: &Config) -> Result<EmbeddedLog> {
    Ok(EmbeddedLog::open(config.log_config())?)
}

pub(crate) fn open_lake(config: &Config) -> Result<Lake> {
    Ok(Lake::open(config.lake_dir())?)
}

/// A spinner on stderr when it is a terminal, hidden otherwise.
pub(crate) fn spinner(message: &str) -> ProgressBar {
    let bar = if std::io::stderr().is_terminal() {
        ProgressBar::new_spinner()
    } else {
        ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden())
    };
    bar.set_style(ProgressStyle::with_template("{spinner} {msg} [{elapsed}]").unwrap());
    bar.set_message(message.to_string());
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// A bar of `unit`s with rate and ETA on stderr when it is a terminal, hidden otherwise.
pub(crate) fn progress_bar(unit: &str) -> ProgressBar {
    let bar = if std::io::stderr().is_terminal() {
        ProgressBar::new(0)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{{bar:40}} {{pos}}/{{len}} {unit} [{{elapsed}}<{{eta}}, {{per_sec}}]"
        ))
        .expect("a valid template"),
    );
    bar
}

/// A benchmark's work directory, emptied: `dir`, or `name` under the system's temporary one.
pub(crate) fn bench_dir(dir: Option<&Path>, name: &str) -> Result<PathBuf> {
    let work = dir.map_or_else(|| std::env::temp_dir().join(name), Path::to_path_buf);
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).io_context(|| format!("creating {}", work.display()))?;
    Ok(work)
}

/// `1234567` as `1,234,567`.
pub(crate) fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A temporary directory for a benchmark's data, removed when dropped.
pub(crate) fn temp_dir() -> Result<tempfile::TempDir> {
    Ok(tempfile::Builder::new()
        .prefix("omnistream-bench-")
        .tempdir()
        .io_context(|| "creating a temporary directory".to_string())?)
}
