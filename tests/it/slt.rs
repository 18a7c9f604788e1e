//! The SQL specification: every `tests/slt/<name>.slt` runs against a real lake built from the
//! JSONL fixtures in `tests/slt/<name>/<topic table>.jsonl` (ingested, then landed by the sink).
//! Expected values in the files are computed by hand from the fixtures.

use std::path::Path;

use arrow::array::{Array, RecordBatch};
use arrow::datatypes::DataType;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use async_trait::async_trait;
use datafusion::prelude::SessionContext;
use omnistream_lake::{Lake, LakeError};
use omnistream_streams::{EmbeddedLog, EmbeddedLogConfig, Topic};
use sqllogictest::{DBOutput, DefaultColumnType};

struct LakeDb {
    ctx: SessionContext,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct SltError(String);

impl From<LakeError> for SltError {
    fn from(e: LakeError) -> Self {
        SltError(e.to_string())
    }
}

fn column_type(dt: &DataType) -> DefaultColumnType {
    match dt {
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64 => DefaultColumnType::Integer,
        DataType::Float16 | DataType::Float32 | DataType::Float64 | DataType::Decimal128(..) => {
            DefaultColumnType::FloatingPoint
        }
        _ => DefaultColumnType::Text,
    }
}

/// One value as slt text: NULL, `(empty)` for an empty string, floats in their shortest form.
fn cell(array: &dyn Array, formatter: &ArrayFormatter, row: usize) -> String {
    if array.is_null(row) {
        return "NULL".into();
    }
    if let Some(f) = array.as_any().downcast_ref::<arrow::array::Float64Array>() {
        return f.value(row).to_string();
    }
    let text = formatter.value(row).to_string();
    if text.is_empty() {
        "(empty)".into()
    } else {
        text
    }
}

#[async_trait]
impl sqllogictest::AsyncDB for LakeDb {
    type Error = SltError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, SltError> {
        let (schema, batches): (_, Vec<RecordBatch>) =
            omnistream_lake::query(&self.ctx, sql).await?;
        let types = schema
            .fields()
            .iter()
            .map(|f| column_type(f.data_type()))
            .collect();
        let options = FormatOptions::default();
        let mut rows = Vec::new();
        for batch in &batches {
            let formatters: Vec<_> = batch
                .columns()
                .iter()
                .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).unwrap())
                .collect();
            for row in 0..batch.num_rows() {
                rows.push(
                    batch
                        .columns()
                        .iter()
                        .zip(&formatters)
                        .map(|(c, f)| cell(c.as_ref(), f, row))
                        .collect(),
                );
            }
        }
        Ok(DBOutput::Rows { types, rows })
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "omnistream"
    }
}

/// Liveness in the node_registry view is judged at this time in the SQL specification.
const SLT_NOW: &str = "TIMESTAMP '2026-11-21T00:01:30Z'";

/// Build a lake from a fixture directory: every `<table>.jsonl` into its topic, then every job of
/// the deployment once (the sink, then each reducer).
fn build_lake(fixtures: &Path, data: &Path, runtime: tokio::runtime::Handle) -> Lake {
    let log = EmbeddedLog::open(EmbeddedLogConfig::new(data.join("log"))).unwrap();
    let lake = Lake::open(data.join("lake")).unwrap();
    let factory = omnistream_codegen::CodegenFactory {
        options: Default::default(),
    };
    let mut entries: Vec<_> = std::fs::read_dir(fixtures)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        let table = path.file_stem().unwrap().to_str().unwrap().to_string();
        let topic = Topic::from_table(&table)
            .map(|t| t.name().to_string())
            .unwrap_or(table);
        let input = omnistream_connectors::Input::file(&path).unwrap();
        let source = path.file_name().unwrap().to_str().unwrap();
        omnistream_connectors::ingest(&log, &topic, source, input, &Default::default(), |_| {})
            .unwrap();
    }
    let ctx = omnistream_jobs::runner::JobContext {
        log: &log,
        lake: &lake,
        status: omnistream_jobs::status::StatusStore::new(data.join("jobs")),
        runtime,
        sink: Default::default(),
        reducer: Default::default(),
        factory: &factory,
    };
    // The pattern indexer is built by the binary (it links LanceDB, which this test does not).
    let specs: Vec<_> = omnistream_jobs::spec::load_all(None)
        .unwrap()
        .into_iter()
        .filter(|s| !matches!(s.kind, omnistream_jobs::JobKind::Patterns))
        .collect();
    omnistream_jobs::runner::run_all(
        &ctx,
        &specs,
        omnistream_jobs::runner::Mode::Once,
        &|_, _| {},
    )
    .unwrap();
    lake
}

/// Run `tests/slt/<name>.slt` against a lake built from `tests/slt/<name>/`.
async fn run_slt(name: &str) {
    let file = crate::repo_root()
        .join("tests/slt")
        .join(format!("{name}.slt"));
    let data = tempfile::tempdir().unwrap();
    let fixtures = file.with_extension("");
    let path = data.path().to_path_buf();
    let handle = tokio::runtime::Handle::current();
    let lake = tokio::task::spawn_blocking(move || build_lake(&fixtures, &path, handle))
        .await
        .unwrap();
    let snapshot = lake.snapshot().unwrap();
    let ctx = omnistream_lake::session(&lake, &snapshot).unwrap();
    let params = omnistream_jobs::views::ViewParams {
        now: SLT_NOW.into(),
        ..Default::default()
    };
    omnistream_jobs::views::register(&ctx, &params)
        .await
        .unwrap();
    let mut runner = sqllogictest::Runner::new(|| {
        let ctx = ctx.clone();
        async move { Ok::<_, SltError>(LakeDb { ctx }) }
    });
    runner.with_column_validator(sqllogictest::strict_column_validator);
    if let Err(e) = runner.run_file_async(&file).await {
        panic!("{}: {}", file.display(), e.display(true));
    }
}

/// One test per `.slt` file, so one failing file does not hide the others.
macro_rules! slt_files {
    ($($name:ident),* $(,)?) => {
        const SLT_FILES: &[&str] = &[$(stringify!($name)),*];
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                run_slt(stringify!($name)).await;
            }
        )*
    };
}

slt_files!(
    generation_summary,
    model_leaderboard,
    model_performance,
    node_activity,
    pattern_candidates,
    raw_tables,
    stage_durations,
);

#[test]
fn every_slt_file_has_its_test() {
    let dir = crate::repo_root().join("tests/slt");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "slt"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(
        files, SLT_FILES,
        "add the new file to slt_files! in tests/it/slt.rs"
    );
}
