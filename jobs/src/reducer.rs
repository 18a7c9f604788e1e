//! The reducer runtime: a SQL file over lake tables, kept current window by window (decision 5).
//!
//! A batch reads the events the lake-sink has committed since the reducer's own offsets (from the
//! event log, only to learn their times), works out which windows they touch (late events touch
//! old windows), recomputes just those windows with the SQL over the lake, and replaces their rows
//! in the output table, in one commit together with the new offsets. So the cost of a batch grows
//! with the batch, not with history, a crash never half-applies a batch, and the result equals a
//! recompute from scratch.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{Array, AsArray, RecordBatch, StringArray, UInt32Array};
use arrow::compute::{cast, concat_batches, take_record_batch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit, TimestampMicrosecondType};
use datafusion::common::{ParamValues, ScalarValue};
use omnistream_lake::{Action, DataFile, Lake, LakeWriter, Snapshot, TableDef, date_of};
use omnistream_streams::{EventLog, GroupOffsets, Topic, envelope};

use crate::error::{JobError, Result};
use crate::lake_sink::LAKE_SINK;
use crate::spec::{JobSpec, ReducerSpec, Window};
use crate::stale;

/// Column holding the window a derived row belongs to; the output is partitioned by its date.
pub const WINDOW_START: &str = "window_start";
/// Column telling apart the rows of different window widths.
pub const GRANULARITY: &str = "granularity";

/// How much a reducer takes in at once.
#[derive(Debug, Clone)]
pub struct ReducerOptions {
    /// At most this many new events per input partition per batch.
    pub max_batch_rows: usize,
}

impl Default for ReducerOptions {
    fn default() -> Self {
        ReducerOptions {
            max_batch_rows: 1_000_000,
        }
    }
}

/// What one batch did.
#[derive(Debug, Clone, Default)]
pub struct BatchReport {
    pub events: u64,
    pub windows: usize,
    pub rows_written: u64,
    pub partitions_rewritten: usize,
    pub committed: bool,
    pub elapsed: Duration,
}

/// A reducer job bound to a log and a lake. Holds the lake writer lock named after the job.
pub struct Reducer<'a> {
    spec: JobSpec,
    /// The reducer's part of the spec.
    def: ReducerSpec,
    log: &'a dyn EventLog,
    writer: LakeWriter<'a>,
    runtime: tokio::runtime::Handle,
    options: ReducerOptions,
}

/// Windows to recompute: window index (into the spec's windows) -> window starts (µs).
type Touched = BTreeMap<usize, BTreeSet<i64>>;

impl<'a> Reducer<'a> {
    /// `runtime` runs DataFusion; call the reducer from a thread outside that runtime's workers.
    pub fn new(
        spec: JobSpec,
        log: &'a dyn EventLog,
        lake: &'a Lake,
        runtime: tokio::runtime::Handle,
        options: ReducerOptions,
    ) -> Result<Self> {
        let Some(def) = spec.reducer().cloned() else {
            return Err(JobError::Internal(format!(
                "{} is not a reducer",
                spec.name
            )));
        };
        let writer = lake.writer(&spec.name)?;
        Ok(Reducer {
            spec,
            def,
            log,
            writer,
            runtime,
            options,
        })
    }

    pub fn spec(&self) -> &JobSpec {
        &self.spec
    }

    /// Events committed to the lake that this reducer has not taken in yet.
    pub fn lag(&self) -> Result<u64> {
        let snapshot = self.writer.lake().snapshot()?;
        Ok(self
            .ranges(&snapshot, usize::MAX)?
            .iter()
            .map(|(_, _, from, to)| to - from)
            .sum())
    }

    /// Per input partition: (topic, partition, from, to), from the reducer's committed offsets up
    /// to what the lake-sink has committed (so every event read is already in the lake).
    fn ranges(&self, snapshot: &Snapshot, max: usize) -> Result<Vec<(Topic, u32, u64, u64)>> {
        let mut out = Vec::new();
        for topic in &self.spec.inputs {
            let mine = snapshot.source_offsets(&self.spec.name, topic.name());
            let landed = snapshot.source_offsets(LAKE_SINK, topic.name());
            for (partition, end) in landed {
                let from = mine.get(&partition).copied().unwrap_or(0);
                let to = end.min(from.saturating_add(max as u64));
                if to > from {
                    out.push((*topic, partition, from, to));
                }
            }
        }
        Ok(out)
    }

    /// The windows an event at `t` touches (with the spec's lookback).
    fn touch(&self, touched: &mut Touched, t: i64) {
        let lookback = self.def.lookback.as_micros() as i64;
        for (i, window) in self.def.windows.iter().enumerate() {
            let width = window.micros();
            let last = t.div_euclid(width) * width;
            let mut start = (t - lookback).div_euclid(width) * width;
            let set = touched.entry(i).or_default();
            while start <= last {
                set.insert(start);
                start += width;
            }
        }
    }

    /// One incremental batch. Commits nothing when there is nothing new. Fails with
    /// [`JobError::Stale`] when another writer changed the lake under it: run it again.
    pub fn batch(&mut self) -> Result<BatchReport> {
        let seq = self.writer.lake().snapshot()?.seq;
        self.batch_inner()
            .map_err(|e| stale::stale_or(e, self.writer.lake(), seq))
    }

    fn batch_inner(&mut self) -> Result<BatchReport> {
        let started = Instant::now();
        let snapshot = self.writer.lake().snapshot()?;
        let ranges = self.ranges(&snapshot, self.options.max_batch_rows)?;
        let mut report = BatchReport::default();
        if ranges.is_empty() {
            return Ok(report);
        }
        let mut touched = Touched::new();
        let mut offsets: BTreeMap<Topic, GroupOffsets> = BTreeMap::new();
        for (topic, partition, from, to) in ranges {
            let mut at = from;
            while at < to {
                let batches = self.log.read(topic, partition, at, (to - at) as usize)?;
                if batches.is_empty() {
                    // The log no longer has what the lake says was there (retention): rebuild.
                    tracing::warn!(job = %self.spec.name, %topic, partition, at, "events gone from the log; recomputing every window");
                    return self.rebuild_all(&snapshot, started);
                }
                for b in batches {
                    let take = (to.min(b.next_offset()) - b.base_offset) as usize;
                    let times = b
                        .batch
                        .column_by_name(envelope::EMITTED_AT)
                        .expect("every topic has emitted_at");
                    let times = times.as_primitive::<TimestampMicrosecondType>();
                    for i in 0..take {
                        if times.is_valid(i) {
                            self.touch(&mut touched, times.value(i));
                        }
                    }
                    report.events += take as u64;
                    at = b.base_offset + take as u64;
                    if at >= to {
                        break;
                    }
                }
            }
            offsets.entry(topic).or_default().insert(partition, to);
        }
        let offsets = offsets
            .into_iter()
            .map(|(topic, offsets)| Action::SourceOffsets {
                source: self.spec.name.clone(),
                topic: topic.name().to_string(),
                offsets,
            })
            .collect();
        self.apply(&snapshot, &touched, offsets, &mut report)?;
        report.elapsed = started.elapsed();
        Ok(report)
    }

    /// Recompute every window from `from` (µs; the beginning when `None`) to the newest event of
    /// the inputs, replacing the output's rows for them. Offsets advance to what the lake holds
    /// when the whole history is rebuilt; a partial rebuild leaves them to the incremental batches.
    pub fn backfill(&mut self, from: Option<i64>) -> Result<BatchReport> {
        let seq = self.writer.lake().snapshot()?.seq;
        self.backfill_inner(from)
            .map_err(|e| stale::stale_or(e, self.writer.lake(), seq))
    }

    fn backfill_inner(&mut self, from: Option<i64>) -> Result<BatchReport> {
        let started = Instant::now();
        let snapshot = self.writer.lake().snapshot()?;
        match from {
            None => self.rebuild_all(&snapshot, started),
            Some(from) => {
                let mut report = BatchReport::default();
                let touched = self.windows_between(&snapshot, Some(from));
                self.apply(&snapshot, &touched, vec![], &mut report)?;
                report.elapsed = started.elapsed();
                Ok(report)
            }
        }
    }

    fn rebuild_all(&mut self, snapshot: &Snapshot, started: Instant) -> Result<BatchReport> {
        let mut report = BatchReport::default();
        let touched = self.windows_between(snapshot, None);
        let offsets = self
            .spec
            .inputs
            .iter()
            .map(|topic| Action::SourceOffsets {
                source: self.spec.name.clone(),
                topic: topic.name().to_string(),
                offsets: snapshot.source_offsets(LAKE_SINK, topic.name()),
            })
            .collect();
        // Everything is recomputed: the old output goes entirely.
        self.apply_replacing_all(snapshot, &touched, offsets, &mut report, true)?;
        report.elapsed = started.elapsed();
        Ok(report)
    }

    /// Every window that holds input events, from `from` on, using the files' time ranges.
    fn windows_between(&self, snapshot: &Snapshot, from: Option<i64>) -> Touched {
        let mut touched = Touched::new();
        let (mut lo, mut hi) = (i64::MAX, i64::MIN);
        for topic in &self.spec.inputs {
            if let Some(table) = snapshot.table(topic.table()) {
                for f in table.files.values() {
                    if let (Some(a), Some(b)) = (f.min_time_us, f.max_time_us) {
                        lo = lo.min(a);
                        hi = hi.max(b);
                    }
                }
            }
        }
        if lo > hi {
            return touched;
        }
        let lo = from.map_or(lo, |f| f.max(lo));
        for (i, window) in self.def.windows.iter().enumerate() {
            let width = window.micros();
            let set = touched.entry(i).or_default();
            let mut start = lo.div_euclid(width) * width;
            while start <= hi {
                set.insert(start);
                start += width;
            }
        }
        touched
    }

    fn apply(
        &mut self,
        snapshot: &Snapshot,
        touched: &Touched,
        offsets: Vec<Action>,
        report: &mut BatchReport,
    ) -> Result<()> {
        self.apply_replacing_all(snapshot, touched, offsets, report, false)
    }

    /// Recompute `touched`, rewrite the output partitions they fall in, and commit with `offsets`.
    fn apply_replacing_all(
        &mut self,
        snapshot: &Snapshot,
        touched: &Touched,
        offsets: Vec<Action>,
        report: &mut BatchReport,
        replace_all: bool,
    ) -> Result<()> {
        let (result_schema, fresh) = self.recompute(snapshot, touched)?;
        report.windows = touched.values().map(BTreeSet::len).sum();
        let existing = snapshot.table(&self.def.output);
        let mut actions = Vec::new();
        // The output table is defined by the SQL's result schema (timestamps in µs, every column
        // nullable), even before it has rows, so it can be queried as soon as the job has run.
        let wanted = TableDef {
            name: self.def.output.clone(),
            schema: result_schema.as_ref().clone(),
            partitioned_by_date: true,
            time_column: Some(WINDOW_START.to_string()),
        };
        let def = match existing {
            Some(t) if t.def == wanted => t.def.clone(),
            Some(_) if !replace_all => {
                return Err(JobError::SchemaChanged {
                    job: self.spec.name.clone(),
                    table: self.def.output.clone(),
                });
            }
            _ => {
                actions.push(Action::DefineTable(wanted.clone()));
                wanted
            }
        };
        let schema: SchemaRef = Arc::new(def.schema.clone());
        let fresh = if fresh.is_empty() {
            RecordBatch::new_empty(schema.clone())
        } else {
            concat_batches(&schema, &fresh)?
        };

        // Which (window width, window start) pairs were recomputed, and the dates they fall on.
        let recomputed: BTreeSet<(String, i64)> = touched
            .iter()
            .flat_map(|(i, starts)| {
                let label = &self.def.windows[*i].label;
                starts.iter().map(move |s| (label.clone(), *s))
            })
            .collect();
        let mut dates: BTreeSet<String> = recomputed.iter().map(|(_, s)| date_of(*s)).collect();
        let fresh_by_date = split_by_window_date(&fresh)?;
        dates.extend(fresh_by_date.keys().cloned());

        let mut written: Vec<DataFile> = Vec::new();
        let old_files: Vec<DataFile> = existing
            .map(|t| t.files.values().cloned().collect())
            .unwrap_or_default();
        let dates: Vec<String> = if replace_all {
            let mut all: BTreeSet<String> =
                old_files.iter().filter_map(|f| f.date.clone()).collect();
            all.extend(dates);
            all.into_iter().collect()
        } else {
            dates.into_iter().collect()
        };
        for date in &dates {
            let olds: Vec<&DataFile> = old_files
                .iter()
                .filter(|f| f.date.as_deref() == Some(date))
                .collect();
            let mut parts: Vec<RecordBatch> = Vec::new();
            if !replace_all && !olds.is_empty() {
                for batch in self.writer.lake().read_files(&olds)? {
                    let batch = conform(&batch, &schema)?;
                    parts.push(drop_windows(&batch, &recomputed)?);
                }
            }
            if let Some(rows) = fresh_by_date.get(date) {
                parts.push(rows.clone());
            }
            let merged = concat_batches(&schema, &parts)?;
            actions.extend(olds.iter().map(|f| Action::Remove {
                table: f.table.clone(),
                path: f.path.clone(),
            }));
            if merged.num_rows() > 0 {
                let file = self.writer.write_file(&def, Some(date), &[merged])?;
                report.rows_written += file.rows;
                written.push(file.clone());
                actions.push(Action::Add(file));
            }
            report.partitions_rewritten += 1;
        }
        actions.extend(offsets);
        if actions.is_empty() {
            return Ok(());
        }
        if let Err(e) = self.writer.commit(actions) {
            self.writer.discard(&written);
            return Err(e.into());
        }
        report.committed = true;
        Ok(())
    }

    /// Run the SQL for every run of consecutive touched windows of every width.
    fn recompute(
        &self,
        snapshot: &Snapshot,
        touched: &Touched,
    ) -> Result<(SchemaRef, Vec<RecordBatch>)> {
        let lake = self.writer.lake();
        // The job's parallelism bounds DataFusion's partitions: small incremental batches gain
        // nothing from fanning out, a backfill or a catch-up does.
        let ctx = omnistream_lake::session_with(lake, snapshot, Some(self.def.parallelism))?;
        let failed = |source| JobError::Sql {
            job: self.spec.name.clone(),
            file: self.def.sql.name.clone(),
            source: Box::new(source),
        };
        // The result schema, from planning the SQL (no data needed).
        let first = &self.def.windows[0];
        let (sql, params) = self.render(first, 0, first.micros())?;
        let plan = self
            .runtime
            .block_on(omnistream_lake::session::plan_query_with(
                &ctx, &sql, params,
            ));
        let schema = derived_schema(plan.map_err(failed)?.schema().as_arrow());
        let mut out = Vec::new();
        for (i, starts) in touched {
            let window = &self.def.windows[*i];
            for (a, b) in runs(starts, window.micros()) {
                let (sql, params) = self.render(window, a, b)?;
                let (_, batches) = self
                    .runtime
                    .block_on(omnistream_lake::query_with(&ctx, &sql, params))
                    .map_err(failed)?;
                for batch in batches {
                    if batch.num_rows() > 0 {
                        out.push(conform(&batch, &schema)?);
                    }
                }
            }
        }
        Ok((schema, out))
    }

    /// The SQL with its parameters filled in.
    /// The SQL and its bound parameters: `$window_start`, `$window_end`, `$granularity` and the
    /// spec's own are DataFusion parameters. `$interval` alone is spliced in as text, because
    /// DataFusion takes an INTERVAL's value only as a literal.
    fn render(&self, window: &Window, start: i64, end: i64) -> Result<(String, ParamValues)> {
        let utc = Some(Arc::from("UTC"));
        let mut bound: Vec<(String, ScalarValue)> = vec![
            (
                "window_start".into(),
                ScalarValue::TimestampMicrosecond(Some(start), utc.clone()),
            ),
            (
                "window_end".into(),
                ScalarValue::TimestampMicrosecond(Some(end), utc),
            ),
            (
                "granularity".into(),
                ScalarValue::Utf8(Some(window.label.clone())),
            ),
        ];
        bound.extend(self.def.params.iter().map(|(k, v)| (k.clone(), v.clone())));
        let literals = BTreeMap::from([("interval", format!("'{}'", window.sql_interval()))]);
        let names: Vec<&str> = bound.iter().map(|(k, _)| k.as_str()).collect();
        let sql = substitute_except(&self.spec.name, &self.def.sql.text, &literals, &names)?;
        Ok((sql, ParamValues::from(bound)))
    }
}

/// A UTC timestamp literal DataFusion folds into the column's type.
pub fn timestamp_literal(micros: i64) -> String {
    let t = chrono::DateTime::from_timestamp_micros(micros).unwrap_or_default();
    format!(
        "TIMESTAMP '{}'",
        t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
    )
}

/// Replace `$name` parameters with the SQL text of their values; a name with no value is an
/// error naming it. (Views are stored SQL text, and the benchmarks' peers take plain SQL.)
pub fn substitute(job: &str, sql: &str, params: &BTreeMap<&str, String>) -> Result<String> {
    substitute_except(job, sql, params, &[])
}

/// [`substitute`], leaving the `$name`s of `bound` for DataFusion to bind.
fn substitute_except(
    job: &str,
    sql: &str,
    params: &BTreeMap<&str, String>,
    bound: &[&str],
) -> Result<String> {
    let mut out = String::with_capacity(sql.len() + 64);
    let mut chars = sql.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c != '$' {
            out.push(c);
            continue;
        }
        let mut end = i + 1;
        while let Some((j, n)) = chars.peek().copied() {
            if n.is_ascii_alphanumeric() || n == '_' {
                end = j + n.len_utf8();
                chars.next();
            } else {
                break;
            }
        }
        let name = &sql[i + 1..end];
        match params.get(name) {
            Some(v) => out.push_str(v),
            None if name.is_empty() => out.push('$'),
            None if bound.contains(&name) => {
                out.push('$');
                out.push_str(name);
            }
            None => {
                return Err(JobError::UnknownParameter {
                    job: job.to_string(),
                    name: name.to_string(),
                    known: params
                        .keys()
                        .chain(bound)
                        .map(|k| format!("${k}"))
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
        }
    }
    Ok(out)
}

/// Consecutive window starts grouped into half-open runs `[start, end)`.
fn runs(starts: &BTreeSet<i64>, width: i64) -> Vec<(i64, i64)> {
    let mut out: Vec<(i64, i64)> = Vec::new();
    for s in starts {
        match out.last_mut() {
            Some((_, end)) if *end == *s => *end = s + width,
            _ => out.push((*s, s + width)),
        }
    }
    out
}

/// The schema of a derived table: the SQL's result with timestamps in microseconds, UTC (the lake's
/// convention; DataFusion's date_bin yields nanoseconds) and every column nullable (a later window
/// may have nulls where the first had none).
fn derived_schema(result: &Schema) -> SchemaRef {
    Arc::new(Schema::new(
        result
            .fields()
            .iter()
            .map(|f| {
                let ty = match f.data_type() {
                    DataType::Timestamp(_, tz) => DataType::Timestamp(
                        TimeUnit::Microsecond,
                        tz.clone().or(Some("UTC".into())),
                    ),
                    other => other.clone(),
                };
                Field::new(f.name(), ty, true)
            })
            .collect::<Vec<_>>(),
    ))
}

/// Rows in the derived table's schema (casting timestamps to microseconds).
fn conform(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    let columns = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(c, f)| {
            if c.data_type() == f.data_type() {
                Ok(c.clone())
            } else {
                cast(c, f.data_type())
            }
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

/// Rows by the UTC date of their window start.
fn split_by_window_date(batch: &RecordBatch) -> Result<BTreeMap<String, RecordBatch>> {
    let mut out = BTreeMap::new();
    if batch.num_rows() == 0 {
        return Ok(out);
    }
    let starts = window_starts(batch)?;
    let mut rows: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for i in 0..starts.len() {
        rows.entry(date_of(starts.value(i)))
            .or_default()
            .push(i as u32);
    }
    for (date, idx) in rows {
        out.insert(date, take_record_batch(batch, &UInt32Array::from(idx))?);
    }
    Ok(out)
}

fn window_starts(batch: &RecordBatch) -> Result<&arrow::array::TimestampMicrosecondArray> {
    let column = batch.column_by_name(WINDOW_START).ok_or_else(|| {
        JobError::Internal(format!(
            "a reducer's result needs a `{WINDOW_START}` column"
        ))
    })?;
    column
        .as_any()
        .downcast_ref::<arrow::array::TimestampMicrosecondArray>()
        .ok_or_else(|| {
            JobError::Internal(format!(
                "`{WINDOW_START}` must be a timestamp, got {}",
                column.data_type()
            ))
        })
}

/// Drop the rows of recomputed windows.
fn drop_windows(batch: &RecordBatch, recomputed: &BTreeSet<(String, i64)>) -> Result<RecordBatch> {
    let starts = window_starts(batch)?;
    let labels = batch
        .column_by_name(GRANULARITY)
        .and_then(|c| c.as_any().downcast_ref::<StringArray>());
    let keep: Vec<u32> = (0..batch.num_rows())
        .filter(|&i| {
            let label = labels.map(|l| l.value(i).to_string()).unwrap_or_default();
            let hit = if labels.is_some() {
                recomputed.contains(&(label, starts.value(i)))
            } else {
                recomputed.iter().any(|(_, s)| *s == starts.value(i))
            };
            !hit
        })
        .map(|i| i as u32)
        .collect();
    Ok(take_record_batch(batch, &UInt32Array::from(keep))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_substituted_and_unknown_ones_named() {
        let params = BTreeMap::from([
            ("window_start", "A".to_string()),
            ("interval", "'60 seconds'".to_string()),
        ]);
        assert_eq!(
            substitute("r", "x >= $window_start AND i = $interval, $", &params).unwrap(),
            "x >= A AND i = '60 seconds', $"
        );
        let err = substitute("r", "y = $treshold", &params).unwrap_err();
        assert_eq!(
            err.to_string(),
            "r: the SQL uses $treshold, which has no value (known: $interval, $window_start)"
        );
    }

    #[test]
    fn consecutive_windows_form_runs() {
        let starts = BTreeSet::from([0, 60, 120, 300, 360, 900]);
        assert_eq!(runs(&starts, 60), [(0, 180), (300, 420), (900, 960)]);
    }
}
