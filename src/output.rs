//! Query results out: a table for people, or CSV, JSON, NDJSON, Parquet for programs.

use std::fs::File;
use std::io::{IsTerminal, Write};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{ContentArrangement, Table};
use datafusion::execution::SendableRecordBatchStream;
use futures::StreamExt;

use crate::cli::{OutputArgs, OutputFormat};
use crate::error::{CliError, Result};

/// Where rows go, in which format.
pub struct Output {
    args: OutputArgs,
}

enum Sink {
    Stdout(std::io::Stdout),
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
    pub fn new(args: OutputArgs) -> Result<Self> {
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
                File::create(path).map_err(CliError::io(format!("creating {}", path.display())))?,
            ),
            None => Sink::Stdout(std::io::stdout()),
        })
    }

    /// Write every batch of a stream; returns the number of rows.
    pub async fn write_stream(
        &self,
        schema: SchemaRef,
        mut stream: SendableRecordBatchStream,
    ) -> Result<u64> {
        let mut sink = self.sink()?;
        let io = |e| CliError::Io {
            context: "writing output".into(),
            source: e,
        };
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
                        shown.push(batch.slice(0, take));
                        kept += take;
                    }
                }
                let table = render_table(&schema, &shown)?;
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
                    writer.write(&batch)?;
                    wrote_any = true;
                }
                if !wrote_any {
                    writer.write(&RecordBatch::new_empty(schema.clone()))?;
                }
            }
            OutputFormat::Json => {
                let mut writer = arrow::json::ArrayWriter::new(&mut sink);
                while let Some(batch) = stream.next().await {
                    let batch = batch.map_err(omnistream_lake::LakeError::from)?;
                    rows += batch.num_rows() as u64;
                    writer.write(&batch)?;
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
                }
                writer.close()?;
            }
        }
        sink.flush().map_err(io)?;
        Ok(rows)
    }

    /// Write batches already in memory.
    pub async fn write_batches(&self, schema: SchemaRef, batches: Vec<RecordBatch>) -> Result<u64> {
        let stream = datafusion::physical_plan::stream::RecordBatchStreamAdapter::new(
            schema.clone(),
            futures::stream::iter(batches.into_iter().map(Ok)),
        );
        self.write_stream(schema, Box::pin(stream)).await
    }
}

/// Render batches as a text table.
pub fn render_table(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<String> {
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
