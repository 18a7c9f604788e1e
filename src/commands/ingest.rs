//! `omnistream ingest TOPIC FILE|-`

use std::io::IsTerminal;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use omnistream_connectors::{ConnectorError, IngestReport, Input, ingest};
use omnistream_streams::Topic;

use super::{open_log, thousands};
use crate::cli::{IngestArgs, ProgressMode};
use crate::config::Config;
use crate::error::{CliError, Result};
use crate::output::outln;
use omnistream_streams::io::IoContext;

pub(crate) async fn run(config: &Config, args: IngestArgs) -> Result<()> {
    super::blocking("ingest", config, move |config, _| {
        run_blocking(config, args)
    })
    .await
}

fn run_blocking(config: &Config, args: IngestArgs) -> Result<()> {
    // A usage error of the whole command, before any input is read or anything appended.
    let topic = Topic::lookup(&args.topic)?;
    let log = open_log(config)?;
    let input = if args.file == "-" {
        Input::stream(std::io::stdin())
    } else {
        Input::file(std::path::Path::new(&args.file))
            .io_context(|| format!("opening {}", args.file))?
    };
    let size = input.size();
    let show_bar = match args.progress {
        ProgressMode::Bar => true,
        ProgressMode::Auto => std::io::stderr().is_terminal(),
        ProgressMode::Json | ProgressMode::None => false,
    };
    let bar = if show_bar {
        match size {
            Some(size) => ProgressBar::new(size).with_style(
                ProgressStyle::with_template(
                    "{bar:40} {bytes}/{total_bytes} {msg} [{elapsed}, eta {eta}]",
                )
                .unwrap(),
            ),
            None => ProgressBar::new_spinner().with_style(
                ProgressStyle::with_template("{spinner} {bytes} {msg} [{elapsed}]").unwrap(),
            ),
        }
    } else {
        ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden())
    };
    let started = Instant::now();
    let mut options = config.ingest_options(&args.source);
    options.from_line = args.from_line;
    let json = args.progress == ProgressMode::Json;
    let result = ingest(
        &log,
        &args.topic,
        &args.file,
        input,
        &options,
        |r: &IngestReport| {
            bar.set_position(r.bytes);
            bar.set_message(format!(
                "{} accepted, {} rejected",
                thousands(r.accepted),
                thousands(r.rejected)
            ));
            if json {
                outln!(
                    "{}",
                    serde_json::json!({"acked_lines": r.acked_lines, "accepted": r.accepted, "rejected": r.rejected})
                );
            }
        },
    );
    bar.finish_and_clear();
    let report = match result {
        Ok(report) => report,
        Err(ConnectorError::Interrupted {
            acked_lines,
            accepted,
            source,
        }) => {
            let resume_from = acked_lines.max(args.from_line.saturating_sub(1)) + 1;
            return Err(CliError::Interrupted {
                summary: format!(
                    "ingest stopped: {} events acknowledged; every line before line {resume_from} is durable. \
                     Resume with: omnistream ingest {} {} --from-line {resume_from}",
                    thousands(accepted),
                    args.topic,
                    args.file,
                ),
                source: Box::new(CliError::from(*source)),
            });
        }
        Err(e) => return Err(e.into()),
    };
    let elapsed = started.elapsed();
    let topic_name = topic.name();
    if json {
        outln!(
            "{}",
            serde_json::json!({
                "done": true, "topic": topic_name, "lines": report.lines, "accepted": report.accepted,
                "rejected": report.rejected, "blank": report.blank, "rejected_by_kind": report.rejected_by_kind,
                "seconds": elapsed.as_secs_f64(),
            })
        );
    } else {
        if report.lines == 0 {
            eprintln!("warning: {} is empty; nothing was ingested", args.file);
        }
        outln!(
            "ingest: {} accepted into {}, {} rejected to {} ({} lines, {}, {:.2} s)",
            thousands(report.accepted),
            topic_name,
            thousands(report.rejected),
            Topic::DeadLetter.name(),
            thousands(report.lines),
            bytesize::ByteSize(report.bytes),
            elapsed.as_secs_f64()
        );
        for r in &report.samples {
            let field = r
                .field
                .as_deref()
                .map(|f| format!(" ({f})"))
                .unwrap_or_default();
            outln!(
                "  line {}: {}{}: {}",
                r.line_number,
                r.kind.as_str(),
                field,
                r.reason
            );
        }
        if report.rejected as usize > report.samples.len() {
            outln!(
                "  ... and {} more; query them with: omnistream sql \"SELECT line_number, error_kind, reason FROM dead_letter\"",
                report.rejected as usize - report.samples.len()
            );
        }
    }
    if report.rejected > 0 {
        return Err(CliError::Partial(format!(
            "{} of {} lines rejected (kept in the dead-letter topic with their reasons)",
            thousands(report.rejected),
            thousands(report.lines - report.blank)
        )));
    }
    Ok(())
}
