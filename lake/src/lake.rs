//! The lake: Parquet tables under one root, changed only through commits of the transaction log.
//!
//! Layout (decision 6): `<root>/<table>/date=YYYY-MM-DD/part-<uuid>.parquet`, zstd, readable by
//! DuckDB, polars, pyarrow and Spark as plain Hive-partitioned Parquet. The lake's own metadata
//! lives under `<root>/_omnistream/`, which those readers ignore.
//!
//! Writing is two-phase: a writer first writes and syncs files into its staging directory
//! (invisible to every reader), then publishes a commit naming them with the source offsets they
//! cover, then renames them into place. After a crash the commit either exists (the renames are
//! finished on the next open) or not (the staged files are discarded by the writer's next start).

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use arrow::array::{Array, AsArray, RecordBatch, StringArray, UInt32Array};
use arrow::compute::{max as arrow_max, min as arrow_min, take_record_batch};
use arrow::datatypes::{
    DataType, Float64Type, Int64Type, SchemaRef, TimeUnit, TimestampMicrosecondType,
};
use parquet::arrow::ArrowWriter;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

use crate::error::{LakeError, Result};
use crate::txlog::{Action, CHECKPOINT_INTERVAL, DataFile, Snapshot, TableDef, TxLog, sync_dir};
use omnistream_streams::io::{IoContext, IoError};

/// Name of the Hive partition column.
pub const DATE_COLUMN: &str = "date";

/// A lake rooted at a directory.
pub struct Lake {
    root: PathBuf,
    txlog: TxLog,
    snapshot: Mutex<Arc<Snapshot>>,
}

impl Lake {
    /// Open (or create) the lake at `root`, and finish the follow-up work of every writer's last
    /// commit (renames and deletions that a crash may have interrupted).
    pub fn open(root: impl Into<PathBuf>) -> Result<Lake> {
        let root = root.into();
        fs::create_dir_all(&root)
            .io_context(|| format!("creating lake directory {}", root.display()))?;
        // Absolute, because DataFusion's object store addresses files by absolute path.
        let root =
            fs::canonicalize(&root).io_context(|| format!("resolving {}", root.display()))?;
        let txlog = TxLog::new(&root);
        txlog.ensure_dirs()?;
        let lake = Lake {
            root,
            txlog,
            snapshot: Mutex::new(Arc::new(Snapshot::default())),
        };
        let snapshot = lake.snapshot()?;
        for seq in snapshot.last_commit_by_writer.values() {
            lake.finish_commit(*seq)?;
        }
        Ok(lake)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Absolute path of a lake-relative path.
    pub fn path_of(&self, relative: &str) -> PathBuf {
        self.root.join(relative)
    }

    /// The current state of the lake (reads commits published since the last call).
    pub fn snapshot(&self) -> Result<Arc<Snapshot>> {
        let mut cached = self.snapshot.lock().unwrap();
        let mut next = (**cached).clone();
        self.txlog.catch_up(&mut next)?;
        if next.seq != cached.seq {
            *cached = Arc::new(next);
        }
        Ok(cached.clone())
    }

    /// Become the writer `name`: takes its lock (one process per writer name at a time), finishes
    /// its last commit and discards whatever it staged but never committed.
    pub fn writer(&self, name: &str) -> Result<LakeWriter<'_>> {
        omnistream_streams::log::validate_name(name)?;
        let lock_path = self
            .root
            .join("_omnistream")
            .join("writers")
            .join(format!("{name}.lock"));
        let Some(lock) = omnistream_streams::io::lock_exclusively(&lock_path)? else {
            return Err(LakeError::WriterBusy {
                writer: name.to_string(),
                path: lock_path,
            });
        };
        let staging = self.root.join("_omnistream").join("staging").join(name);
        fs::create_dir_all(&staging).io_context(|| format!("creating {}", staging.display()))?;
        let snapshot = self.snapshot()?;
        if let Some(seq) = snapshot.last_commit_by_writer.get(name) {
            self.finish_commit(*seq)?;
        }
        // Everything still in staging was never committed (a committed file was renamed away above).
        for entry in
            fs::read_dir(&staging).io_context(|| format!("listing {}", staging.display()))?
        {
            let entry = entry.io_context(|| format!("listing {}", staging.display()))?;
            tracing::info!(file = %entry.path().display(), "discarding uncommitted staged file");
            fs::remove_file(entry.path())
                .io_context(|| format!("removing {}", entry.path().display()))?;
        }
        Ok(LakeWriter {
            lake: self,
            name: name.to_string(),
            _lock: lock,
            staging,
        })
    }

    /// Finish commit `seq`: move its staged files into place and delete the files it removed.
    /// Idempotent, and safe to run from any process.
    fn finish_commit(&self, seq: u64) -> Result<()> {
        let Some(commit) = self.txlog.read_commit(seq)? else {
            return Ok(());
        };
        let mut dirs = BTreeSet::new();
        for action in &commit.actions {
            match action {
                Action::Add(file) => {
                    let Some(staged) = &file.staged else { continue };
                    let (staged, target) = (self.path_of(staged), self.path_of(&file.path));
                    if target.exists() || !staged.exists() {
                        continue;
                    }
                    let dir = target.parent().expect("data files live in a directory");
                    fs::create_dir_all(dir).io_context(|| format!("creating {}", dir.display()))?;
                    match fs::rename(&staged, &target) {
                        Ok(()) => {}
                        // Another process finished it first.
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => {
                            let context = format!("moving {} into place", staged.display());
                            return Err(IoError::new(context, e).into());
                        }
                    }
                    dirs.insert(dir.to_path_buf());
                }
                Action::Remove { path, .. } => {
                    let target = self.path_of(path);
                    match fs::remove_file(&target) {
                        Ok(()) => {
                            dirs.insert(target.parent().unwrap().to_path_buf());
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => {
                            return Err(
                                IoError::new(format!("removing {}", target.display()), e).into()
                            );
                        }
                    }
                }
                _ => {}
            }
        }
        for dir in dirs {
            sync_dir(&dir)?;
        }
        Ok(())
    }

    /// Read one string column from some files of a table (for example every `event_id` of a date
    /// partition, to deduplicate against).
    pub fn read_string_column(&self, files: &[&DataFile], column: &str) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for file in files {
            let path = self.path_of(&file.path);
            let f = File::open(&path).io_context(|| format!("opening {}", path.display()))?;
            let builder = ParquetRecordBatchReaderBuilder::try_new(f)?;
            let index = builder
                .parquet_schema()
                .columns()
                .iter()
                .position(|c| c.name() == column)
                .ok_or_else(|| {
                    LakeError::Internal(format!("{} has no column {column}", path.display()))
                })?;
            let mask = ProjectionMask::leaves(builder.parquet_schema(), [index]);
            for batch in builder
                .with_projection(mask)
                .with_batch_size(64 * 1024)
                .build()?
            {
                let batch = batch?;
                let values = batch.column(0).as_string::<i32>();
                out.extend(values.iter().flatten().map(str::to_string));
            }
        }
        Ok(out)
    }

    /// Read whole files of a table as record batches.
    pub fn read_files(&self, files: &[&DataFile]) -> Result<Vec<RecordBatch>> {
        let mut out = Vec::new();
        for file in files {
            let path = self.path_of(&file.path);
            let f = File::open(&path).io_context(|| format!("opening {}", path.display()))?;
            for batch in ParquetRecordBatchReaderBuilder::try_new(f)?
                .with_batch_size(64 * 1024)
                .build()?
            {
                out.push(batch?);
            }
        }
        Ok(out)
    }
}

/// A writer of the lake: holds the writer's lock for its lifetime.
pub struct LakeWriter<'a> {
    lake: &'a Lake,
    name: String,
    _lock: File,
    staging: PathBuf,
}

/// How data files are encoded. Columns that `sample` shows to be mostly distinct values get no
/// dictionary: Parquet would hash every value into one until it reaches its size limit, then
/// write the column plain anyway.
fn writer_properties(sample: Option<&RecordBatch>) -> WriterProperties {
    let mut builder = WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(1).expect("valid zstd level"),
        ))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_created_by(format!("omnistream {}", env!("CARGO_PKG_VERSION")))
        // Row groups are DataFusion's unit of parallel scan; 256k rows keeps several per large file.
        .set_max_row_group_row_count(Some(256 * 1024));
    // Ids and free-form JSON are (nearly) unique per row: a dictionary only costs time there.
    let mut plain: BTreeSet<String> = UNIQUE_COLUMNS.iter().map(|c| c.to_string()).collect();
    if let Some(sample) = sample {
        plain.extend(mostly_distinct_columns(sample, &plain));
    }
    for column in plain {
        builder = builder.set_column_dictionary_enabled(ColumnPath::from(column), false);
    }
    // Random ids and free-form JSON: a file's min and max of them prune nothing.
    for column in UNPRUNABLE_COLUMNS {
        builder = builder
            .set_column_statistics_enabled(ColumnPath::from(*column), EnabledStatistics::None);
    }
    builder.build()
}

/// Columns whose values are more than half distinct in the first rows of `sample` (none when it
/// is too short to tell), other than those `known` already. Booleans and nested types are never
/// counted.
fn mostly_distinct_columns(sample: &RecordBatch, known: &BTreeSet<String>) -> Vec<String> {
    const SAMPLE_ROWS: usize = 4096;
    let rows = sample.num_rows().min(SAMPLE_ROWS);
    if rows < 256 {
        return Vec::new();
    }
    let schema = sample.schema();
    schema
        .fields()
        .iter()
        .zip(sample.columns())
        .filter(|(field, _)| !known.contains(field.name()))
        .filter_map(|(field, column)| {
            let column = column.slice(0, rows);
            let values = rows - column.null_count();
            let distinct = distinct_values(&column)?;
            (values > 0 && distinct * 2 > values).then(|| field.name().clone())
        })
        .collect()
}

/// How many distinct non-null values `column` holds, for the types a dictionary is tried on.
fn distinct_values(column: &dyn Array) -> Option<usize> {
    fn count<T: std::hash::Hash + Eq>(values: impl Iterator<Item = T>) -> usize {
        values.collect::<std::collections::HashSet<T>>().len()
    }
    Some(match column.data_type() {
        DataType::Utf8 => count(column.as_string::<i32>().iter().flatten()),
        DataType::Int64 => count(column.as_primitive::<Int64Type>().iter().flatten()),
        DataType::Float64 => count(
            column
                .as_primitive::<Float64Type>()
                .iter()
                .flatten()
                .map(f64::to_bits),
        ),
        DataType::Timestamp(TimeUnit::Microsecond, _) => count(
            column
                .as_primitive::<TimestampMicrosecondType>()
                .iter()
                .flatten(),
        ),
        _ => return None,
    })
}

/// Columns whose values are random (UUIDv4 correlation ids) or free-form: no statistics kept.
/// Event ids keep theirs: UUIDv7 ids grow with time, so their ranges do prune lookups.
const UNPRUNABLE_COLUMNS: &[&str] = &[
    omnistream_streams::envelope::CORRELATION_ID,
    omnistream_streams::envelope::CAUSATION_ID,
    omnistream_streams::envelope::METADATA,
];

/// Columns whose values are (nearly) all distinct.
const UNIQUE_COLUMNS: &[&str] = &[
    omnistream_streams::envelope::EVENT_ID,
    omnistream_streams::envelope::CORRELATION_ID,
    omnistream_streams::envelope::CAUSATION_ID,
    omnistream_streams::envelope::METADATA,
];

impl<'a> LakeWriter<'a> {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn lake(&self) -> &'a Lake {
        self.lake
    }

    /// Write `batches` as one Parquet file of `table` (in partition `date`), synced, in staging.
    /// The file becomes part of the table when a commit adds the returned [`DataFile`].
    pub fn write_file(
        &self,
        def: &TableDef,
        date: Option<&str>,
        batches: &[RecordBatch],
    ) -> Result<DataFile> {
        let mut file = self.create_file(def, date, batches.first())?;
        for batch in batches {
            file.write(batch)?;
        }
        file.finish()
    }

    /// Start a Parquet file of `table` in staging, to be written batch by batch. `sample`, rows
    /// like those the file will hold, lets the encoding suit them (see [`writer_properties`]).
    pub fn create_file(
        &self,
        def: &TableDef,
        date: Option<&str>,
        sample: Option<&RecordBatch>,
    ) -> Result<StagedFile> {
        let id = uuid::Uuid::now_v7();
        let staged_rel = format!("_omnistream/staging/{}/{id}.parquet", self.name);
        let path = match date {
            Some(date) => format!("{}/{DATE_COLUMN}={date}/part-{id}.parquet", def.name),
            None => format!("{}/part-{id}.parquet", def.name),
        };
        let staged = self.lake.path_of(&staged_rel);
        let file = File::create(&staged).io_context(|| format!("creating {}", staged.display()))?;
        let schema: SchemaRef = Arc::new(def.schema.clone());
        let writer = ArrowWriter::try_new(file, schema, Some(writer_properties(sample)))?;
        Ok(StagedFile {
            writer,
            staged,
            entry: DataFile {
                table: def.name.clone(),
                path,
                date: date.map(str::to_string),
                rows: 0,
                bytes: 0,
                min_time_us: None,
                max_time_us: None,
                staged: Some(staged_rel),
            },
            time_column: def.time_column.clone(),
        })
    }

    /// Publish `actions` as one commit, retrying when another writer published first, then move
    /// its files into place. Returns the snapshot after the commit.
    pub fn commit(&self, actions: Vec<Action>) -> Result<Arc<Snapshot>> {
        sync_dir(&self.staging)?;
        loop {
            let snapshot = self.lake.snapshot()?;
            match self
                .lake
                .txlog
                .try_publish(&snapshot, &self.name, actions.clone())?
            {
                None => continue, // lost the race for this sequence number: catch up and retry
                Some(commit) => {
                    tracing::debug!(writer = %self.name, seq = commit.seq, actions = commit.actions.len(), "committed");
                    self.lake.finish_commit(commit.seq)?;
                    let snapshot = self.lake.snapshot()?;
                    if commit.seq % CHECKPOINT_INTERVAL == 0
                        && let Err(e) = self.lake.txlog.checkpoint(&snapshot)
                    {
                        tracing::warn!(error = %e, "could not write a lake checkpoint (nothing is lost)");
                    }
                    return Ok(snapshot);
                }
            }
        }
    }

    /// Delete staged files that will not be committed.
    pub fn discard(&self, files: &[DataFile]) {
        for file in files {
            if let Some(staged) = &file.staged {
                let _ = fs::remove_file(self.lake.path_of(staged));
            }
        }
    }
}

/// A Parquet file being written into a writer's staging directory.
pub struct StagedFile {
    writer: ArrowWriter<File>,
    staged: PathBuf,
    entry: DataFile,
    time_column: Option<String>,
}

impl StagedFile {
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.writer.write(batch)?;
        self.entry.rows += batch.num_rows() as u64;
        if let Some((lo, hi)) = self
            .time_column
            .as_deref()
            .and_then(|c| time_range(batch, c))
        {
            self.entry.min_time_us = Some(self.entry.min_time_us.map_or(lo, |m| m.min(lo)));
            self.entry.max_time_us = Some(self.entry.max_time_us.map_or(hi, |m| m.max(hi)));
        }
        Ok(())
    }

    /// Bytes written so far, plus what is buffered for the current row group.
    pub fn estimated_bytes(&self) -> u64 {
        (self.writer.bytes_written() + self.writer.in_progress_size()) as u64
    }

    pub fn rows(&self) -> u64 {
        self.entry.rows
    }

    /// Close and sync the file; returns its entry for a commit.
    pub fn finish(self) -> Result<DataFile> {
        let StagedFile {
            writer,
            staged,
            mut entry,
            ..
        } = self;
        let file = writer.into_inner()?;
        file.sync_all()
            .io_context(|| format!("syncing {}", staged.display()))?;
        entry.bytes = file
            .metadata()
            .io_context(|| format!("stat {}", staged.display()))?
            .len();
        Ok(entry)
    }
}

/// Min and max of a microsecond timestamp column.
fn time_range(batch: &RecordBatch, column: &str) -> Option<(i64, i64)> {
    let col = batch.column_by_name(column)?;
    if !matches!(
        col.data_type(),
        DataType::Timestamp(TimeUnit::Microsecond, _)
    ) {
        return None;
    }
    let values = col.as_primitive::<TimestampMicrosecondType>();
    Some((arrow_min(values)?, arrow_max(values)?))
}

/// The UTC date (`YYYY-MM-DD`) of a timestamp in microseconds.
pub fn date_of(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros)
        .map(|t| t.date_naive().to_string())
        .unwrap_or_else(|| "1970-01-01".into())
}

/// Split a batch by the UTC date of its timestamp column.
pub fn split_by_date(
    batch: &RecordBatch,
    time_column: &str,
) -> Result<BTreeMap<String, RecordBatch>> {
    let col = batch
        .column_by_name(time_column)
        .ok_or_else(|| LakeError::Internal(format!("no time column '{time_column}'")))?;
    let times = col.as_primitive::<TimestampMicrosecondType>();
    const DAY_US: i64 = 86_400_000_000;
    // Rows without a time go to the epoch partition rather than being dropped.
    let day_of = |i: usize| {
        if times.is_valid(i) {
            times.value(i).div_euclid(DAY_US)
        } else {
            0
        }
    };
    // Runs of rows of one day. Events arrive mostly in time order, so a day is usually a single
    // run, taken as a slice without copying; scattered days are gathered in row order.
    let mut runs: BTreeMap<i64, Vec<(usize, usize)>> = BTreeMap::new();
    let mut i = 0;
    while i < times.len() {
        let (day, start) = (day_of(i), i);
        while i < times.len() && day_of(i) == day {
            i += 1;
        }
        runs.entry(day).or_default().push((start, i - start));
    }
    runs.into_iter()
        .map(|(day, runs)| {
            let rows = match runs[..] {
                [(start, len)] => batch.slice(start, len),
                _ => {
                    let indices: UInt32Array = runs
                        .iter()
                        .flat_map(|&(start, len)| start as u32..(start + len) as u32)
                        .collect();
                    take_record_batch(batch, &indices)?
                }
            };
            Ok((date_of(day * DAY_US), rows))
        })
        .collect()
}

/// Keep the rows of `batch` whose string column `column` satisfies `keep`.
pub fn filter_rows(
    batch: &RecordBatch,
    column: &str,
    mut keep: impl FnMut(&str) -> bool,
) -> Result<RecordBatch> {
    let values = batch
        .column_by_name(column)
        .and_then(|c| c.as_any().downcast_ref::<StringArray>())
        .ok_or_else(|| LakeError::Internal(format!("no string column '{column}'")))?;
    let rows: Vec<u32> = (0..values.len())
        .filter(|i| keep(values.value(*i)))
        .map(|i| i as u32)
        .collect();
    if rows.len() == batch.num_rows() {
        return Ok(batch.clone());
    }
    Ok(take_record_batch(batch, &UInt32Array::from(rows))?)
}
