//! Compaction: merge the small files of a table partition into files of the target size, in one
//! commit that removes the old files and adds the new ones, so omnistream's readers see either
//! the old set or the new set, never both or neither.

use std::fs::File;

use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::error::{LakeError, Result};
use crate::lake::LakeWriter;
use crate::txlog::{Action, DataFile, Snapshot};
use omnistream_streams::io::IoError;

/// When and how to compact.
#[derive(Debug, Clone)]
pub struct CompactOptions {
    /// Files at or above this size are left alone, and merged files are rolled at this size.
    pub target_file_bytes: u64,
    /// A partition is compacted when it has at least this many small files.
    pub min_files: usize,
}

impl Default for CompactOptions {
    fn default() -> Self {
        CompactOptions {
            target_file_bytes: 128 * 1024 * 1024,
            min_files: 2,
        }
    }
}

/// The small files of one partition of one table.
#[derive(Debug, Clone)]
pub struct CompactionTask {
    pub table: String,
    pub date: Option<String>,
    pub files: Vec<DataFile>,
}

impl CompactionTask {
    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.bytes).sum()
    }

    pub fn rows(&self) -> u64 {
        self.files.iter().map(|f| f.rows).sum()
    }
}

/// What a compaction did.
#[derive(Debug, Clone, Default)]
pub struct CompactionOutcome {
    pub table: String,
    pub date: Option<String>,
    pub files_before: usize,
    pub files_after: usize,
    pub bytes_before: u64,
    pub bytes_after: u64,
    pub rows: u64,
}

/// The partitions worth compacting, of one table or of all.
pub fn plan(
    snapshot: &Snapshot,
    table: Option<&str>,
    options: &CompactOptions,
) -> Result<Vec<CompactionTask>> {
    if let Some(name) = table
        && !snapshot.tables.contains_key(name)
    {
        return Err(LakeError::UnknownTable {
            name: name.to_string(),
            known: snapshot
                .tables
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    let mut tasks = Vec::new();
    for (name, state) in &snapshot.tables {
        if table.is_some_and(|t| t != name) {
            continue;
        }
        let mut by_date: std::collections::BTreeMap<Option<&str>, Vec<DataFile>> =
            Default::default();
        for file in state.files.values() {
            if file.bytes < options.target_file_bytes {
                by_date
                    .entry(file.date.as_deref())
                    .or_default()
                    .push(file.clone());
            }
        }
        for (date, files) in by_date {
            if files.len() >= options.min_files.max(2) {
                tasks.push(CompactionTask {
                    table: name.clone(),
                    date: date.map(str::to_string),
                    files,
                });
            }
        }
    }
    Ok(tasks)
}

/// Merge the files of `task` and commit the swap. `on_rows` is told how many rows were copied.
pub fn run(
    writer: &LakeWriter<'_>,
    snapshot: &Snapshot,
    task: &CompactionTask,
    options: &CompactOptions,
    mut on_rows: impl FnMut(u64),
) -> Result<CompactionOutcome> {
    let def = &snapshot
        .tables
        .get(&task.table)
        .ok_or_else(|| LakeError::UnknownTable {
            name: task.table.clone(),
            known: String::new(),
        })?
        .def;
    // Files that another writer compacted away since the task was planned: nothing to do here.
    let current = writer.lake().snapshot()?;
    let live = current.table(&task.table);
    if let Some(gone) = task
        .files
        .iter()
        .find(|f| !live.is_some_and(|t| t.files.contains_key(&f.path)))
    {
        return Err(LakeError::Conflict(format!(
            "file {} of table '{}' is no longer in the lake (compacted by another writer?)",
            gone.path, task.table
        )));
    }
    let mut written: Vec<DataFile> = Vec::new();
    let result = (|| -> Result<()> {
        // Each output file starts at the batch that first needs it, so its encoding suits its rows.
        let mut current = None;
        for file in &task.files {
            let path = writer.lake().path_of(&file.path);
            let f = match File::open(&path) {
                Ok(f) => f,
                // Removed after the check above: another writer committed a compaction first.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(LakeError::Conflict(format!(
                        "file {} of table '{}' was compacted by another writer meanwhile",
                        file.path, task.table
                    )));
                }
                Err(e) => {
                    return Err(IoError::new(format!("opening {}", path.display()), e).into());
                }
            };
            for batch in ParquetRecordBatchReaderBuilder::try_new(f)?
                .with_batch_size(64 * 1024)
                .build()?
            {
                let batch = batch?;
                let output = match &mut current {
                    Some(output) => output,
                    None => current.insert(writer.create_file(
                        def,
                        task.date.as_deref(),
                        Some(&batch),
                    )?),
                };
                output.write(&batch)?;
                on_rows(batch.num_rows() as u64);
                if output.estimated_bytes() >= options.target_file_bytes
                    && let Some(full) = current.take()
                {
                    written.push(full.finish()?);
                }
            }
        }
        if let Some(output) = current {
            if output.rows() > 0 {
                written.push(output.finish()?);
            } else {
                writer.discard(&[output.finish()?]);
            }
        }
        Ok(())
    })();
    if let Err(e) = result {
        writer.discard(&written);
        return Err(e);
    }
    let rows_in: u64 = task.rows();
    let rows_out: u64 = written.iter().map(|f| f.rows).sum();
    if rows_in != rows_out {
        writer.discard(&written);
        return Err(LakeError::Internal(format!(
            "compaction copied {rows_out} of {rows_in} rows"
        )));
    }
    let mut actions: Vec<Action> = task
        .files
        .iter()
        .map(|f| Action::Remove {
            table: f.table.clone(),
            path: f.path.clone(),
        })
        .collect();
    actions.extend(written.iter().cloned().map(Action::Add));
    if let Err(e) = writer.commit(actions) {
        writer.discard(&written);
        return Err(e);
    }
    Ok(CompactionOutcome {
        table: task.table.clone(),
        date: task.date.clone(),
        files_before: task.files.len(),
        files_after: written.len(),
        bytes_before: task.bytes(),
        bytes_after: written.iter().map(|f| f.bytes).sum(),
        rows: rows_out,
    })
}
