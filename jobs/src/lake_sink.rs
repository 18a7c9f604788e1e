//! The lake-sink job: every topic of the event log into its raw lake table, exactly once.
//!
//! One round reads each partition from the offsets recorded in the lake's last commit, drops
//! events whose id is already in the lake (a producer's retry), writes one Parquet file per table
//! and date, and commits the files together with the new offsets (decision 4). A crash anywhere
//! leaves either the whole round committed or none of it; the next start re-reads from the
//! committed offsets.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use omnistream_lake::compact::{self, CompactOptions, CompactionTask};
use omnistream_lake::{
    Action, DataFile, Lake, LakeWriter, Snapshot, TableDef, filter_rows, raw_table_def,
    split_by_date,
};
use omnistream_streams::{EventLog, GroupOffsets, Topic, envelope};

use crate::dedup::{DedupIndex, id_key};
use crate::error::Result;
use crate::stale::retry_stale;

/// The name the sink commits under, in the lake and as the log's consumer group.
pub const LAKE_SINK: &str = "lake-sink";

/// How the sink batches, follows and keeps files large.
#[derive(Debug, Clone)]
pub struct LakeSinkOptions {
    /// At most this many records per partition per round.
    pub max_batch_rows: usize,
    /// How often follow mode looks for new events when caught up.
    pub poll_interval: Duration,
    /// Date partitions whose event ids are kept in memory for deduplication.
    pub dedup_partitions: usize,
    /// Rolling policy: once a date partition has this many files of one size tier, they are merged.
    pub roll_files: usize,
    pub compact: CompactOptions,
    /// Files written at once (Parquet encoding is CPU-bound: one per core).
    pub parallelism: usize,
}

/// A batch larger than this is cut into pieces written in parallel.
const SPLIT_ROWS: usize = 64 * 1024;

/// Records read from the log at a time: a few frames, a few megabytes, so that they are still in
/// the CPU's cache when their ids are looked up.
const READ_CHUNK_ROWS: usize = 16 * 1024;

impl Default for LakeSinkOptions {
    fn default() -> Self {
        LakeSinkOptions {
            max_batch_rows: 256 * 1024,
            poll_interval: Duration::from_millis(100),
            dedup_partitions: 64,
            roll_files: 8,
            compact: CompactOptions::default(),
            parallelism: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
        }
    }
}

/// What one round did.
#[derive(Debug, Clone, Default)]
pub struct RoundReport {
    pub records_read: u64,
    pub rows_written: u64,
    pub duplicates: u64,
    pub files_written: usize,
    pub files_compacted: usize,
    pub committed: bool,
    /// Read and deduplicated while the previous round's files were written.
    pub prepared_ahead: bool,
    pub elapsed: Duration,
}

/// Totals over a run.
#[derive(Debug, Clone, Default)]
pub struct SinkTotals {
    pub rounds: u64,
    pub commits: u64,
    pub records_read: u64,
    pub rows_written: u64,
    pub duplicates: u64,
    pub files_written: usize,
    pub files_compacted: usize,
    pub elapsed: Duration,
}

impl SinkTotals {
    fn add(&mut self, r: &RoundReport) {
        self.rounds += 1;
        self.commits += r.committed as u64;
        self.records_read += r.records_read;
        self.rows_written += r.rows_written;
        self.duplicates += r.duplicates;
        self.files_written += r.files_written;
        self.files_compacted += r.files_compacted;
    }
}

pub struct LakeSink<'a> {
    log: &'a dyn EventLog,
    writer: LakeWriter<'a>,
    dedup: DedupIndex,
    options: LakeSinkOptions,
    /// The next round, read and deduplicated while the last one was written.
    ahead: Option<Round>,
}

/// A round read from the log and deduplicated, ready to write and commit.
struct Round {
    /// The offsets it reads from: it may only follow a commit that ends there.
    from: BTreeMap<Topic, GroupOffsets>,
    report: RoundReport,
    /// Table definitions and source offsets to commit with the files.
    actions: Vec<Action>,
    touched: BTreeSet<(String, String)>,
    writes: Vec<(TableDef, String, Vec<RecordBatch>)>,
    /// Whether some partition holds more than it read.
    more: bool,
}

impl<'a> LakeSink<'a> {
    /// Start the sink: takes the lake's `lake-sink` writer lock (one sink per lake at a time).
    pub fn new(log: &'a dyn EventLog, lake: &'a Lake, options: LakeSinkOptions) -> Result<Self> {
        let writer = lake.writer(LAKE_SINK)?;
        let sink = LakeSink {
            log,
            writer,
            dedup: DedupIndex::new(options.dedup_partitions),
            options,
            ahead: None,
        };
        sink.check_positions()?;
        Ok(sink)
    }

    /// The lake's committed offsets must not be past the log's end (a log cut or lost after the
    /// sink read it): checked once, when the sink starts, since only opening the log cuts it.
    fn check_positions(&self) -> Result<()> {
        let snapshot = self.writer.lake().snapshot()?;
        for (topic, offsets) in self.committed(&snapshot)? {
            for (p, at) in offsets.into_iter().filter(|(_, at)| *at > 0) {
                let end = self.log.offsets(topic, p)?.end;
                omnistream_streams::log::check_position(LAKE_SINK, topic, p, at, end)?;
            }
        }
        Ok(())
    }

    /// Offsets the lake has committed for every partition of every topic.
    fn committed(&self, snapshot: &Snapshot) -> Result<BTreeMap<Topic, GroupOffsets>> {
        let mut out = BTreeMap::new();
        for topic in Topic::ALL {
            let committed = snapshot.source_offsets(LAKE_SINK, topic.name());
            let mut offsets = GroupOffsets::new();
            for p in 0..self.log.partitions(topic)? {
                offsets.insert(p, committed.get(&p).copied().unwrap_or(0));
            }
            out.insert(topic, offsets);
        }
        Ok(out)
    }

    /// Log end offsets, to drain up to.
    pub fn end_offsets(&self) -> Result<BTreeMap<Topic, GroupOffsets>> {
        let mut out = BTreeMap::new();
        for topic in Topic::ALL {
            let mut offsets = GroupOffsets::new();
            for p in 0..self.log.partitions(topic)? {
                offsets.insert(p, self.log.offsets(topic, p)?.end);
            }
            out.insert(topic, offsets);
        }
        Ok(out)
    }

    /// Records between the lake's committed offsets and the log's end, per topic.
    pub fn lag(&self) -> Result<u64> {
        let snapshot = self.writer.lake().snapshot()?;
        let committed = self.committed(&snapshot)?;
        let ends = self.end_offsets()?;
        let committed = &committed;
        Ok(ends
            .iter()
            .flat_map(|(t, parts)| {
                parts
                    .iter()
                    .map(move |(p, end)| end.saturating_sub(committed[t][p]))
            })
            .sum())
    }

    /// One round: read, deduplicate, write, commit. Reads nothing and commits nothing when caught
    /// up. Fails with [`JobError::Stale`](crate::JobError::Stale) when another writer changed the
    /// lake under it (a compaction): run it again.
    pub fn round(&mut self) -> Result<RoundReport> {
        let seq = self.writer.lake().snapshot()?.seq;
        self.round_inner().map_err(|e| {
            // The index holds the ids of the rounds that failed to land.
            self.dedup.clear();
            self.ahead = None;
            crate::stale::stale_or(e, self.writer.lake(), seq)
        })
    }

    fn round_inner(&mut self) -> Result<RoundReport> {
        let started = Instant::now();
        let lake = self.writer.lake();
        let snapshot = lake.snapshot()?;
        let committed = self.committed(&snapshot)?;
        // A round prepared while the previous one was written is good if it starts where the
        // lake says this round starts.
        let round = match self.ahead.take() {
            Some(mut ahead) if ahead.from == committed => {
                ahead.report.prepared_ahead = true;
                ahead
            }
            dropped => {
                if dropped.is_some() {
                    // Its ids are in the index but will not land from it.
                    self.dedup.clear();
                }
                prepare(
                    self.log,
                    &mut self.dedup,
                    lake,
                    &snapshot,
                    &committed,
                    &BTreeSet::new(),
                    &self.options,
                )?
            }
        };
        let Round {
            mut report,
            actions,
            touched,
            writes,
            more,
            ..
        } = round;
        if actions.is_empty() {
            report.elapsed = started.elapsed();
            return Ok(report);
        }
        // While this round's files are written (Parquet encoding keeps the cores busy), the next
        // round is read and deduplicated from where this one ends, as if it were committed: it is
        // kept only once this one is.
        let next_from = next_offsets(&committed, &actions);
        // Tables this round defines: the next round must not define them again. (Its event ids
        // are in the dedup index already.)
        let defining: BTreeSet<String> = actions
            .iter()
            .filter_map(|a| match a {
                Action::DefineTable(def) => Some(def.name.clone()),
                _ => None,
            })
            .collect();
        let (written, ahead) = std::thread::scope(|scope| {
            let writing =
                scope.spawn(|| write_files(&self.writer, &writes, self.options.parallelism));
            let ahead = more.then(|| {
                prepare(
                    self.log,
                    &mut self.dedup,
                    lake,
                    &snapshot,
                    &next_from,
                    &defining,
                    &self.options,
                )
            });
            (writing.join().expect("file writers do not panic"), ahead)
        });
        let written = written?;
        let ahead = match ahead {
            Some(Ok(round)) if !round.actions.is_empty() => Some(round),
            Some(Ok(_)) | None => None,
            // Whatever failed ahead is met again, and reported, when the next round runs; the
            // ids it recorded before failing will not land from it.
            Some(Err(_)) => {
                self.dedup.clear();
                None
            }
        };
        report.rows_written = written.iter().map(|f| f.rows).sum();
        report.files_written = written.len();
        // Each topic's files go before its offsets: the commit is applied in order.
        let mut with_files = Vec::with_capacity(actions.len() + written.len());
        for action in actions {
            if let Action::SourceOffsets { topic, .. } = &action {
                let table = Topic::lookup(topic)?.table();
                with_files.extend(
                    written
                        .iter()
                        .filter(|f| f.table == table)
                        .cloned()
                        .map(Action::Add),
                );
            }
            with_files.push(action);
        }
        let actions = with_files;
        let snapshot = match self.writer.commit(actions.clone()) {
            Ok(s) => s,
            Err(e) => {
                let files: Vec<DataFile> = actions
                    .iter()
                    .filter_map(|a| {
                        if let Action::Add(f) = a {
                            Some(f.clone())
                        } else {
                            None
                        }
                    })
                    .collect();
                self.writer.discard(&files);
                return Err(e.into());
            }
        };
        report.committed = true;
        // The log's consumer group mirrors the lake's offsets, for lag reporting (`omnistream topics`).
        for action in &actions {
            if let Action::SourceOffsets { topic, offsets, .. } = action {
                let topic = Topic::lookup(topic)?;
                self.log.commit(LAKE_SINK, topic, offsets)?;
            }
        }
        report.files_compacted = self.roll(&snapshot, &touched)?;
        self.ahead = ahead;
        report.elapsed = started.elapsed();
        Ok(report)
    }

    /// Rolling policy: merge a partition's files of one size tier once there are `roll_files`.
    /// Tiers (factors of 8 in size) keep the write amplification logarithmic.
    fn roll(&mut self, snapshot: &Snapshot, touched: &BTreeSet<(String, String)>) -> Result<usize> {
        let mut compacted = 0;
        let mut snapshot = snapshot.clone();
        for (table, date) in touched {
            let Some(state) = snapshot.table(table) else {
                continue;
            };
            let mut tiers: BTreeMap<u32, Vec<DataFile>> = BTreeMap::new();
            for f in state.files.values() {
                if f.date.as_deref() == Some(date.as_str())
                    && f.bytes < self.options.compact.target_file_bytes
                {
                    let tier = (f.bytes.max(1) as f64 / 65536.0).log(8.0).max(0.0) as u32;
                    tiers.entry(tier).or_default().push(f.clone());
                }
            }
            for (_, files) in tiers {
                if files.len() < self.options.roll_files.max(2) {
                    continue;
                }
                let task = CompactionTask {
                    table: table.clone(),
                    date: Some(date.clone()),
                    files,
                };
                let outcome = match compact::run(
                    &self.writer,
                    &snapshot,
                    &task,
                    &self.options.compact,
                    |_| {},
                ) {
                    Ok(outcome) => outcome,
                    // Another writer merged these files first: the round's data is committed
                    // already, and the next round rolls whatever is left.
                    Err(omnistream_lake::LakeError::Conflict(why)) => {
                        tracing::debug!(table, date, %why, "roll skipped");
                        snapshot = (*self.writer.lake().snapshot()?).clone();
                        continue;
                    }
                    Err(e) => return Err(e.into()),
                };
                tracing::debug!(
                    table,
                    date,
                    before = outcome.files_before,
                    after = outcome.files_after,
                    "rolled files"
                );
                compacted += outcome.files_before;
                snapshot = (*self.writer.lake().snapshot()?).clone();
            }
        }
        Ok(compacted)
    }

    /// Rounds until every partition has reached the log's end as of the start.
    pub fn drain(
        &mut self,
        mut on_round: impl FnMut(&RoundReport, &SinkTotals),
    ) -> Result<SinkTotals> {
        let started = Instant::now();
        let target = self.end_offsets()?;
        let mut totals = SinkTotals::default();
        loop {
            let report = retry_stale(|| self.round())?;
            totals.add(&report);
            totals.elapsed = started.elapsed();
            on_round(&report, &totals);
            let snapshot = self.writer.lake().snapshot()?;
            let committed = self.committed(&snapshot)?;
            let done = target
                .iter()
                .all(|(t, parts)| parts.iter().all(|(p, end)| committed[t][p] >= *end));
            if done || report.records_read == 0 {
                return Ok(totals);
            }
        }
    }

    /// Rounds until `stop` is set; the round in progress when it is set is finished and committed.
    pub fn follow(
        &mut self,
        stop: &AtomicBool,
        mut on_round: impl FnMut(&RoundReport, &SinkTotals),
    ) -> Result<SinkTotals> {
        let started = Instant::now();
        let mut totals = SinkTotals::default();
        while !stop.load(Ordering::SeqCst) {
            let report = retry_stale(|| self.round())?;
            totals.add(&report);
            totals.elapsed = started.elapsed();
            if report.records_read > 0 {
                on_round(&report, &totals);
            } else {
                let until = Instant::now() + self.options.poll_interval;
                while Instant::now() < until && !stop.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(10).min(self.options.poll_interval));
                }
            }
        }
        Ok(totals)
    }
}

/// Read each partition from `from`, split by date, drop the ids already landed or landing (the
/// dedup index holds both), and cut what is left into files to write. Tables in `defining` are
/// being defined by the round before, still being written.
fn prepare(
    log: &dyn EventLog,
    dedup: &mut DedupIndex,
    lake: &Lake,
    snapshot: &Snapshot,
    from: &BTreeMap<Topic, GroupOffsets>,
    defining: &BTreeSet<String>,
    options: &LakeSinkOptions,
) -> Result<Round> {
    dedup.begin_round();
    let mut round = Round {
        from: from.clone(),
        report: RoundReport::default(),
        actions: Vec::new(),
        touched: BTreeSet::new(),
        writes: Vec::new(),
        more: false,
    };
    for (topic, offsets) in from {
        let def = raw_table_def(*topic);
        let mut next_offsets = GroupOffsets::new();
        // Per date: the rows read, and those left once duplicates are dropped. The log's batches
        // are split and filtered where they are (slices where possible), never concatenated:
        // the rows are copied once, by the Parquet encoder.
        let mut by_date: BTreeMap<String, (usize, Vec<RecordBatch>)> = BTreeMap::new();
        for (&partition, &from) in offsets {
            let (mut at, mut read_rows, mut caught_up) = (from, 0, false);
            // A few frames at a time, each deduplicated while its ids are still in the CPU's
            // cache (when a whole round was read first, its ids came back from memory a miss at
            // a time).
            while read_rows < options.max_batch_rows {
                let chunk = READ_CHUNK_ROWS.min(options.max_batch_rows - read_rows);
                let read = log.read(*topic, partition, at, chunk)?;
                let Some(last) = read.last() else {
                    // The read looked at the files for more: there is none.
                    caught_up = true;
                    break;
                };
                at = last.next_offset();
                for batch in read {
                    read_rows += batch.batch.num_rows();
                    for (date, rows) in split_by_date(&batch.batch, envelope::EMITTED_AT)? {
                        // Landed, landing, or earlier in this round: one probe decides and records.
                        let seen = dedup.partition(lake, snapshot, &def.name, &date)?;
                        seen.reserve(rows.num_rows());
                        let kept =
                            filter_rows(&rows, envelope::EVENT_ID, |id| seen.insert(id_key(id)))?;
                        let (rows_read, unique) = by_date.entry(date).or_default();
                        *rows_read += rows.num_rows();
                        if kept.num_rows() > 0 {
                            unique.push(kept);
                        }
                    }
                }
            }
            if at > from {
                next_offsets.insert(partition, at);
                round.more |= !caught_up && log.offsets(*topic, partition)?.end > at;
            }
        }
        if next_offsets.is_empty() {
            continue;
        }
        if !snapshot.tables.contains_key(&def.name) && !defining.contains(&def.name) {
            round.actions.push(Action::DefineTable(def.clone()));
        }
        for (date, (rows, unique)) in by_date {
            round.report.records_read += rows as u64;
            let unique_rows: usize = unique.iter().map(RecordBatch::num_rows).sum();
            round.report.duplicates += (rows - unique_rows) as u64;
            if unique_rows == 0 {
                continue;
            }
            round.touched.insert((def.name.clone(), date.clone()));
            // Many rows are cut into files of equal size so that both cores encode Parquet
            // at once.
            let pieces = (unique_rows / SPLIT_ROWS).clamp(1, options.parallelism.max(1));
            for piece in cut_evenly(unique, unique_rows.div_ceil(pieces)) {
                round.writes.push((def.clone(), date.clone(), piece));
            }
        }
        round.actions.push(Action::SourceOffsets {
            source: LAKE_SINK.to_string(),
            topic: topic.name().to_string(),
            offsets: next_offsets,
        });
    }
    Ok(round)
}

/// Where the round after one with `actions` starts: `from`, moved on by its source offsets.
fn next_offsets(
    from: &BTreeMap<Topic, GroupOffsets>,
    actions: &[Action],
) -> BTreeMap<Topic, GroupOffsets> {
    let mut next = from.clone();
    for action in actions {
        if let Action::SourceOffsets { topic, offsets, .. } = action
            && let Ok(topic) = Topic::lookup(topic)
        {
            next.entry(topic).or_default().extend(offsets);
        }
    }
    next
}

/// Write the files of a round, `parallelism` at a time. On error, nothing written stays.
fn write_files(
    writer: &LakeWriter,
    writes: &[(TableDef, String, Vec<RecordBatch>)],
    parallelism: usize,
) -> Result<Vec<DataFile>> {
    let next = AtomicUsize::new(0);
    let results: Vec<Mutex<Option<Result<DataFile>>>> =
        writes.iter().map(|_| Mutex::new(None)).collect();
    let threads = parallelism.clamp(1, writes.len().max(1));
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some((def, date, batches)) = writes.get(i) else {
                        return;
                    };
                    let file = writer.write_file(def, Some(date), batches);
                    *results[i].lock().unwrap() = Some(file.map_err(Into::into));
                }
            });
        }
    });
    let mut written = Vec::with_capacity(writes.len());
    let mut first_error = None;
    for result in results {
        match result.into_inner().unwrap().expect("every write ran") {
            Ok(file) => written.push(file),
            Err(e) => first_error = first_error.or(Some(e)),
        }
    }
    if let Some(e) = first_error {
        writer.discard(&written);
        return Err(e);
    }
    Ok(written)
}

/// `batches` regrouped in order into groups of `rows_per_group` rows (the last one smaller),
/// slicing batches at the boundaries.
fn cut_evenly(batches: Vec<RecordBatch>, rows_per_group: usize) -> Vec<Vec<RecordBatch>> {
    let rows_per_group = rows_per_group.max(1);
    let (mut groups, mut group, mut in_group) = (Vec::new(), Vec::new(), 0);
    for mut batch in batches {
        while batch.num_rows() > 0 {
            let n = (rows_per_group - in_group).min(batch.num_rows());
            group.push(batch.slice(0, n));
            batch = batch.slice(n, batch.num_rows() - n);
            in_group += n;
            if in_group == rows_per_group {
                groups.push(std::mem::take(&mut group));
                in_group = 0;
            }
        }
    }
    if !group.is_empty() {
        groups.push(group);
    }
    groups
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::sync::Arc;

    use arrow::array::{Int64Array, RecordBatch};
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;
    use arrow::array::Array;

    #[test]
    fn batches_are_cut_into_even_groups_in_order() {
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
        let batch = |from: i64, n: i64| {
            RecordBatch::try_new(
                schema.clone(),
                vec![Arc::new(Int64Array::from_iter_values(from..from + n))],
            )
            .unwrap()
        };
        // 3 + 5 + 2 rows in groups of 4: [0..4], [4..8], [8..10].
        let groups = cut_evenly(vec![batch(0, 3), batch(3, 5), batch(8, 2)], 4);
        let values: Vec<Vec<i64>> = groups
            .iter()
            .map(|g| {
                g.iter()
                    .flat_map(|b| {
                        let a = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
                        a.values().to_vec()
                    })
                    .collect()
            })
            .collect();
        assert_eq!(values, [vec![0, 1, 2, 3], vec![4, 5, 6, 7], vec![8, 9]]);
        assert_eq!(cut_evenly(vec![batch(0, 4)], 4).len(), 1);
        assert!(cut_evenly(vec![], 4).is_empty());
    }

    /// A filler row of `topic` for each id (every required column set, the rest null), all on
    /// 1970-01-01.
    fn events(topic: Topic, ids: &[String]) -> RecordBatch {
        events_on(topic, ids, &vec![0; ids.len()])
    }

    /// As [`events`], each row on its day after 1970-01-01.
    fn events_on(topic: Topic, ids: &[String], days: &[i64]) -> RecordBatch {
        use arrow::array::{StringArray, TimestampMicrosecondArray, new_null_array};
        let schema = topic.schema();
        let columns = schema
            .fields()
            .iter()
            .map(|f| -> Arc<dyn Array> {
                match (f.name().as_str(), f.data_type()) {
                    ("event_id", _) => Arc::new(StringArray::from_iter_values(ids)),
                    (_, _) if f.is_nullable() => new_null_array(f.data_type(), ids.len()),
                    (_, DataType::Utf8) => {
                        Arc::new(StringArray::from_iter_values(ids.iter().map(|_| "x")))
                    }
                    (_, DataType::Int64) => Arc::new(Int64Array::from(vec![1; ids.len()])),
                    (_, DataType::Timestamp(_, tz)) => Arc::new(
                        TimestampMicrosecondArray::from_iter_values(
                            days.iter().map(|d| d * 86_400_000_000),
                        )
                        .with_timezone_opt(tz.clone()),
                    ),
                    (_, other) => panic!("no filler for {other}"),
                }
            })
            .collect();
        RecordBatch::try_new(schema, columns).unwrap()
    }

    /// An embedded log and a lake in a temporary directory (kept while the first is alive).
    fn log_and_lake() -> (tempfile::TempDir, omnistream_streams::EmbeddedLog, Lake) {
        let dir = tempfile::tempdir().unwrap();
        let log = omnistream_streams::EmbeddedLog::open(
            omnistream_streams::EmbeddedLogConfig::new(dir.path().join("log")),
        )
        .unwrap();
        let lake = Lake::open(dir.path().join("lake")).unwrap();
        (dir, log, lake)
    }

    /// The `i`th event id of a test, a canonical UUIDv7 (ids sort as their numbers).
    fn id(i: usize) -> String {
        format!("01000000-0000-7000-8000-{i:012}")
    }

    /// Every event id of the dead-letter table in the lake, sorted.
    fn landed_ids(lake: &Lake) -> Vec<String> {
        let snapshot = lake.snapshot().unwrap();
        let table = snapshot.table("dead_letter").unwrap();
        let files: Vec<&DataFile> = table.files.values().collect();
        let mut landed: Vec<String> = lake
            .read_files(&files)
            .unwrap()
            .iter()
            .flat_map(|b| {
                let ids =
                    arrow::array::AsArray::as_string::<i32>(b.column_by_name("event_id").unwrap())
                        .clone();
                (0..ids.len()).map(move |i| ids.value(i).to_string())
            })
            .collect();
        landed.sort();
        landed
    }

    #[test]
    fn the_partition_of_a_round_being_written_is_not_evicted_by_the_next() {
        let (_dir, log, lake) = log_and_lake();
        // The first round lands day 1. The second, prepared while the first is written, reads
        // day 0 first (dates go in order), then retries of the first round's ids on day 1: with
        // room for one partition, day 1 must survive day 0's loading, since the lake does not
        // hold the first round yet.
        let first: Vec<String> = (0..50).map(id).collect();
        log.append(
            Topic::DeadLetter,
            &events_on(Topic::DeadLetter, &first, &[1; 50]),
        )
        .unwrap();
        let second: Vec<String> = (100..150).chain(0..10).map(id).collect();
        let days: Vec<i64> = (0..60).map(|i| i64::from(i >= 50)).collect();
        log.append(
            Topic::DeadLetter,
            &events_on(Topic::DeadLetter, &second, &days),
        )
        .unwrap();
        let options = LakeSinkOptions {
            max_batch_rows: 50,
            dedup_partitions: 1,
            ..Default::default()
        };
        let mut sink = LakeSink::new(&log, &lake, options).unwrap();
        let (first_round, second_round) = (sink.round().unwrap(), sink.round().unwrap());
        assert!(second_round.prepared_ahead);
        assert_eq!((first_round.duplicates, second_round.duplicates), (0, 10));
        let mut expected: Vec<String> = (0..50).chain(100..150).map(id).collect();
        expected.sort();
        assert_eq!(landed_ids(&lake), expected);
    }

    #[test]
    fn a_round_that_fails_to_land_is_landed_whole_by_the_next() {
        let (dir, log, lake) = log_and_lake();
        let ids: Vec<String> = (0..30).map(id).collect();
        log.append(Topic::DeadLetter, &events(Topic::DeadLetter, &ids))
            .unwrap();
        let mut sink = LakeSink::new(&log, &lake, LakeSinkOptions::default()).unwrap();
        // The sink's staging directory becomes a file: writing fails after the round was read
        // and its ids recorded.
        let staging = dir.path().join("lake/_omnistream/staging/lake-sink");
        fs::remove_dir_all(&staging).unwrap();
        fs::write(&staging, b"in the way").unwrap();
        assert!(sink.round().is_err());
        fs::remove_file(&staging).unwrap();
        fs::create_dir(&staging).unwrap();
        let report = sink.round().unwrap();
        assert_eq!((report.rows_written, report.duplicates), (30, 0));
        let mut expected = ids;
        expected.sort();
        assert_eq!(landed_ids(&lake), expected);
    }

    #[test]
    fn rounds_prepared_ahead_land_every_event_once() {
        let (_dir, log, lake) = log_and_lake();
        // Ten appends of 50 events; each repeats the last 10 ids of the one before (a producer's
        // retry), so duplicates straddle every pair of rounds.
        for batch in 0..10 {
            let first = batch * 40;
            let ids: Vec<String> = (first..first + 50).map(id).collect();
            log.append(Topic::DeadLetter, &events(Topic::DeadLetter, &ids))
                .unwrap();
        }
        let unique = 9 * 40 + 50;
        let options = LakeSinkOptions {
            max_batch_rows: 100,
            parallelism: 2,
            ..Default::default()
        };
        let mut sink = LakeSink::new(&log, &lake, options).unwrap();
        let (mut ahead, mut rounds, mut duplicates) = (0, 0, 0);
        loop {
            let report = sink.round().unwrap();
            if report.records_read == 0 {
                break;
            }
            rounds += 1;
            ahead += usize::from(report.prepared_ahead);
            duplicates += report.duplicates;
        }
        assert_eq!(
            (rounds, ahead),
            (5, 4),
            "every round after the first is prepared ahead"
        );
        assert_eq!(duplicates, 500 - unique as u64);
        let expected: Vec<String> = (0..unique).map(id).collect();
        assert_eq!(landed_ids(&lake), expected);
    }
}
