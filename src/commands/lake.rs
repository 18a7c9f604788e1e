//! `omnistream lake tables | compact [TABLE]`

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringArray, TimestampMicrosecondArray, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use omnistream_lake::compact::{self, CompactOptions};
use omnistream_lake::summary::summarize;

use super::{open_lake, thousands};
use crate::cli::{CompactArgs, LakeCommand};
use crate::config::Config;
use crate::error::{CliError, Result};
use crate::output::Output;
use crate::output::outln;

/// Writer name of manual compactions.
const COMPACT_WRITER: &str = "compact";

pub(crate) async fn run(config: &Config, command: LakeCommand) -> Result<()> {
    match command {
        LakeCommand::Tables { output } => tables(config, Output::new(output)?).await,
        LakeCommand::Compact(args) => {
            let config = config.clone();
            tokio::task::spawn_blocking(move || compact_blocking(&config, args))
                .await
                .map_err(|e| CliError::Usage(format!("compaction stopped: {e}")))?
        }
    }
}

async fn tables(config: &Config, output: Output) -> Result<()> {
    let lake = open_lake(config)?;
    let snapshot = lake.snapshot()?;
    let summaries = summarize(&snapshot);
    let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    let schema = Arc::new(Schema::new(vec![
        Field::new("table", DataType::Utf8, false),
        Field::new("rows", DataType::UInt64, false),
        Field::new("files", DataType::UInt64, false),
        Field::new("bytes", DataType::UInt64, false),
        Field::new("size", DataType::Utf8, false),
        Field::new("partitions", DataType::UInt64, false),
        Field::new("first_event", ts.clone(), true),
        Field::new("last_event", ts, true),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            summaries.iter().map(|s| s.name.clone()),
        )),
        Arc::new(UInt64Array::from_iter_values(
            summaries.iter().map(|s| s.rows),
        )),
        Arc::new(UInt64Array::from_iter_values(
            summaries.iter().map(|s| s.files as u64),
        )),
        Arc::new(UInt64Array::from_iter_values(
            summaries.iter().map(|s| s.bytes),
        )),
        Arc::new(StringArray::from_iter_values(
            summaries
                .iter()
                .map(|s| bytesize::ByteSize(s.bytes).to_string()),
        )),
        Arc::new(UInt64Array::from_iter_values(
            summaries.iter().map(|s| s.partitions as u64),
        )),
        Arc::new(
            TimestampMicrosecondArray::from(
                summaries
                    .iter()
                    .map(|s| s.first_event_us)
                    .collect::<Vec<_>>(),
            )
            .with_timezone("UTC"),
        ),
        Arc::new(
            TimestampMicrosecondArray::from(
                summaries
                    .iter()
                    .map(|s| s.last_event_us)
                    .collect::<Vec<_>>(),
            )
            .with_timezone("UTC"),
        ),
    ];
    let batch = RecordBatch::try_new(schema.clone(), columns)?;
    if summaries.is_empty() {
        eprintln!(
            "the lake at {} is empty: run `omnistream jobs run lake-sink --once` to land the log",
            lake.root().display()
        );
    }
    output.write_batches(schema, vec![batch]).await?;
    Ok(())
}

fn compact_blocking(config: &Config, args: CompactArgs) -> Result<()> {
    let lake = open_lake(config)?;
    let writer = lake.writer(COMPACT_WRITER)?;
    let options = CompactOptions {
        target_file_bytes: args
            .target_file_size
            .map(|s| s.as_u64())
            .unwrap_or(config.sink.target_file_bytes),
        ..Default::default()
    };
    let snapshot = lake.snapshot()?;
    let tasks = compact::plan(&snapshot, args.table.as_deref(), &options)?;
    if tasks.is_empty() {
        outln!(
            "compact: nothing to do (no partition has two or more files under {})",
            bytesize::ByteSize(options.target_file_bytes)
        );
        return Ok(());
    }
    let total_rows: u64 = tasks.iter().map(|t| t.rows()).sum();
    let bar = if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        ProgressBar::new(total_rows)
    } else {
        ProgressBar::with_draw_target(Some(total_rows), ProgressDrawTarget::hidden())
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:40} {human_pos}/{human_len} rows {msg} [{elapsed}, eta {eta}]",
        )
        .unwrap(),
    );
    let (mut before, mut after, mut bytes_before, mut bytes_after) = (0, 0, 0, 0);
    let (mut done, mut skipped, mut rows) = (0, 0, 0);
    for task in &tasks {
        bar.set_message(format!(
            "{} {}",
            task.table,
            task.date.as_deref().unwrap_or("")
        ));
        let snapshot = lake.snapshot()?;
        let outcome = match compact::run(&writer, &snapshot, task, &options, |n| bar.inc(n)) {
            Ok(outcome) => outcome,
            // Another writer (the lake-sink rolls its own small files) got there first: the
            // partition is already merged or changed; the next run picks up what is left.
            Err(omnistream_lake::LakeError::Conflict(why)) => {
                tracing::warn!(
                    "compact: skipped {} {}: {why}",
                    task.table,
                    task.date.as_deref().unwrap_or("")
                );
                bar.inc(task.rows());
                skipped += 1;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        done += 1;
        rows += outcome.rows;
        before += outcome.files_before;
        after += outcome.files_after;
        bytes_before += outcome.bytes_before;
        bytes_after += outcome.bytes_after;
    }
    bar.finish_and_clear();
    outln!(
        "compact: {} partitions, {} files -> {} files, {} -> {}, {} rows{}",
        done,
        before,
        after,
        bytesize::ByteSize(bytes_before),
        bytesize::ByteSize(bytes_after),
        thousands(rows),
        if skipped > 0 {
            format!(" ({skipped} skipped: changed by another writer meanwhile)")
        } else {
            String::new()
        }
    );
    Ok(())
}
