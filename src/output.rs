//! Query results out: a table for people, or CSV, JSON, NDJSON, Parquet for programs.
//!
//! Everything a command prints goes through [`Stdout`] (and the [`outln!`] macro): when the
//! reader of a pipe goes away (`omnistream sql ... | head`), the rest of the output is dropped
//! quietly and the command finishes its work, as ripgrep does, instead of panicking or failing.

use std::fs::File;
use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arrow::array::{ArrayRef, RecordBatch, StringBuilder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{ContentArrangement, Table};
use datafusion::execution::SendableRecordBatchStream;
use futures::StreamExt;

use crate::cli::{OutputArgs, OutputFormat};
use crate::error::{CliError, Result};
use omnistream_streams::io::{IoContext, IoError};

static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);

/// Whether the reader of stdout has gone away (output since then was dropped).
pub(crate) fn stdout_closed() -> bool {
    STDOUT_CLOSED.load(Ordering::Relaxed)
}

/// Standard output that treats a closed pipe as the end of output, not as an error.
pub(crate) struct Stdout(std::io::Stdout);

impl Stdout {
    pub(crate) fn new() -> Self {
        Stdout(std::io::stdout())
    }
}

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if stdout_closed() {
            return Ok(buf.len());
        }
        match self.0.write(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                STDOUT_CLOSED.store(true, Ordering::Relaxed);
                Ok(buf.len())
            }
            other => other,
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if stdout_closed() {
            return Ok(());
        }
        match self.0.flush() {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                STDOUT_CLOSED.store(true, Ordering::Relaxed);
                Ok(())
            }
            other => other,
        }
    }
}

/// One line to stdout, flushed; an error other than a closed pipe is only logged (output is
/// never worth stopping a command's work for).
pub(crate) fn print_line(args: std::fmt::Arguments<'_>) {
    let mut out = Stdout::new();
    if let Err(e) = writeln!(out, "{args}").and_then(|()| out.flush()) {
        tracing::warn!("writing to stdout: {e}");
    }
}

/// `println!` through [`Stdout`].
macro_rules! outln {
    () => {
        $crate::output::print_line(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::output::print_line(format_args!($($arg)*))
    };
}
pub(crate) use outln;

/// Where rows go, in which format.
pub(crate) struct Output {
    args: OutputArgs,
}

enum Sink {
    Stdout(Stdout),
    File(File),
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Sink::Stdout(s) => s.write(buf),
            Sink::File(f) => f.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Sink::Stdout(s) => s.flush(),
            Sink::File(f) => f.flush(),
        }
    }
}

fn format_options() -> FormatOptions<'static> {
    FormatOptions::default()
        .with_null("NULL")
        .with_display_error(true)
}

impl Output {
    pub(crate) fn new(args: OutputArgs) -> Result<Self> {
        if args.format == OutputFormat::Parquet
            && args.output.is_none()
            && std::io::stdout().is_terminal()
        {
            return Err(CliError::Usage(
                "parquet output is binary: give --output FILE, or pipe stdout to a file".into(),
            ));
        }
        Ok(Output { args })
    }

    fn sink(&self) -> Result<Sink> {
        Ok(match &self.args.output {
            Some(path) => Sink::File(
                File::create(path).io_context(|| format!("creating {}", path.display()))?,
            ),
            None => Sink::Stdout(Stdout::new()),
        })
    }

    /// Write every batch of a stream; returns the number of rows.
    pub(crate) async fn write_stream(
        &self,
        schema: SchemaRef,
        mut stream: SendableRecordBatchStream,
    ) -> Result<u64> {
        let mut sink = self.sink()?;
        let io = |e| CliError::Io(IoError::new("writing output", e));
        let mut rows = 0u64;
        match self.args.format {
            OutputFormat::Table => {
                let mut shown: Vec<RecordBatch> = vec![];
                let mut kept = 0usize;
                while let Some(batch) = stream.next().await {
                    let batch = batch.map_err(omnistream_lake::LakeError::from)?;
                    rows += batch.num_rows() as u64;
                    if kept < self.args.max_rows {
                        let take = (self.args.max_rows - kept).min(batch.num_rows());
                        shown.push(nested_as_json(&batch.slice(0, take))?);
                        kept += take;
                    }
                }
                let table = render_table(&text_schema(&schema), &shown)?;
                writeln!(sink, "{table}").map_err(io)?;
                let hidden = rows - kept as u64;
                if hidden > 0 {
                    writeln!(
                        sink,
                        "({rows} rows; {hidden} not shown: raise --max-rows or use --format csv)"
                    )
                    .map_err(io)?;
                } else {
                    writeln!(sink, "({rows} row{})", if rows == 1 { "" } else { "s" })
                        .map_err(io)?;
                }
            }
            OutputFormat::Csv => {
                let mut writer = arrow::csv::WriterBuilder::new()
                    .with_header(true)
                    .build(&mut sink);
                let mut wrote_any = false;
                while let Some(batch) = stream.next().await {
                    let batch = batch.map_err(omnistream_lake::LakeError::from)?;
                    rows += batch.num_rows() as u64;
                    writer.write(&nested_as_json(&batch)?)?;
                    wrote_any = true;
                    if stdout_closed() {
                        break;
                    }
                }
                if !wrote_any {
                    writer.write(&RecordBatch::new_empty(text_schema(&schema)))?;
                }
            }
            OutputFormat::Json => {
                let mut writer = arrow::json::ArrayWriter::new(&mut sink);
                while let Some(batch) = stream.next().await {
                    let batch = batch.map_err(omnistream_lake::LakeError::from)?;
                    rows += batch.num_rows() as u64;
                    writer.write(&batch)?;
                    if stdout_closed() {
                        break;
                    }
                }
                // finish() closes the array, and writes `[]` when there were no rows.
                writer.finish()?;
                writeln!(sink).map_err(io)?;
            }
            OutputFormat::Ndjson => {
                let mut writer = arrow::json::LineDelimitedWriter::new(&mut sink);
                while let Some(batch) = stream.next().await {
                    let batch = batch.map_err(omnistream_lake::LakeError::from)?;
                    rows += batch.num_rows() as u64;
                    writer.write(&batch)?;
                    if stdout_closed() {
                        break;
                    }
                }
                writer.finish()?;
            }
            OutputFormat::Parquet => {
                let mut writer =
                    parquet::arrow::ArrowWriter::try_new(&mut sink, schema.clone(), None)?;
                while let Some(batch) = stream.next().await {
                    let batch = batch.map_err(omnistream_lake::LakeError::from)?;
                    rows += batch.num_rows() as u64;
                    writer.write(&batch)?;
                    if stdout_closed() {
                        break;
                    }
                }
                writer.close()?;
            }
        }
        sink.flush().map_err(io)?;
        Ok(rows)
    }

    /// Write batches already in memory.
    pub(crate) async fn write_batches(
        &self,
        schema: SchemaRef,
        batches: Vec<RecordBatch>,
    ) -> Result<u64> {
        let stream = datafusion::physical_plan::stream::RecordBatchStreamAdapter::new(
            schema.clone(),
            futures::stream::iter(batches.into_iter().map(Ok)),
        );
        self.write_stream(schema, Box::pin(stream)).await
    }
}

fn is_nested(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::List(_)
            | DataType::LargeList(_)
            | DataType::FixedSizeList(..)
            | DataType::ListView(_)
            | DataType::LargeListView(_)
            | DataType::Struct(_)
            | DataType::Map(..)
            | DataType::Union(..)
    )
}

/// `schema` with every nested column as text, for formats that have no nested types.
fn text_schema(schema: &SchemaRef) -> SchemaRef {
    if !schema.fields().iter().any(|f| is_nested(f.data_type())) {
        return schema.clone();
    }
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| {
            if is_nested(f.data_type()) {
                Field::new(f.name(), DataType::Utf8, true)
            } else {
                f.as_ref().clone()
            }
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// Nested values (lists, structs, maps) as JSON text in their cell, as DuckDB writes them to CSV;
/// a null stays null.
fn nested_as_json(batch: &RecordBatch) -> Result<RecordBatch> {
    let schema = batch.schema();
    if !schema.fields().iter().any(|f| is_nested(f.data_type())) {
        return Ok(batch.clone());
    }
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(batch.num_columns());
    for (field, column) in schema.fields().iter().zip(batch.columns()) {
        if !is_nested(field.data_type()) {
            columns.push(column.clone());
            continue;
        }
        // One column, one JSON object per row ({"value": ...}, or {} for null).
        let single = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new(
                "value",
                field.data_type().clone(),
                true,
            )])),
            vec![column.clone()],
        )?;
        let mut lines = Vec::new();
        let mut writer = arrow::json::LineDelimitedWriter::new(&mut lines);
        writer.write(&single)?;
        writer.finish()?;
        let mut text = StringBuilder::with_capacity(batch.num_rows(), lines.len());
        for line in lines.split(|b| *b == b'\n').take(batch.num_rows()) {
            let row: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(line)
                .map_err(|e| CliError::Internal(format!("nested value as JSON: {e}")))?;
            match row.get("value") {
                Some(v) => text.append_value(v.to_string()),
                None => text.append_null(),
            }
        }
        columns.push(Arc::new(text.finish()));
    }
    Ok(RecordBatch::try_new(text_schema(&schema), columns)?)
}

/// Render batches as a text table.
pub(crate) fn render_table(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<String> {
    let mut table = Table::new();
    table
        .load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Disabled);
    table.set_header(schema.fields().iter().map(|f| f.name().clone()));
    let options = format_options();
    for batch in batches {
        let formatters = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        for row in 0..batch.num_rows() {
            table.add_row(formatters.iter().map(|f| f.value(row).to_string()));
        }
    }
    Ok(table.to_string())
}
