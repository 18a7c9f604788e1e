//! Batch re-scoring: the current gates and weights over stored patterns, batch by batch. Each
//! batch's scores land in the lake table `pattern_scores` (one row per pattern and scorer
//! version) before the patterns take them, so a run cut by `kill -9` resumes where it was: a
//! pattern with a score row for the target scorer takes that score and is not scored again.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{
    ArrayRef, BooleanArray, Float64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use omnistream_codegen::pipeline::Worker;
use omnistream_codegen::rescore::{StoredCode, rescore};
use omnistream_lake::{Action, Lake, TableDef};

use crate::columns::Rows;
use crate::error::Result;
use crate::lifecycle::Lifecycle;
use crate::record::{Pattern, Scores};
use crate::store::PatternStore;

/// The lake table of every score a pattern was given.
pub const SCORES_TABLE: &str = "pattern_scores";
/// The lake writer of re-scoring runs.
const WRITER: &str = "pattern-rescore";

#[derive(Debug, Clone)]
pub struct RescoreOptions {
    /// The scorer version written with the new scores.
    pub scorer: String,
    /// Only patterns matching this predicate (LanceDB SQL over the table's columns).
    pub filter: Option<String>,
    /// Patterns per batch (one lake commit and one table write each).
    pub batch: usize,
}

#[derive(Debug, Clone, Default)]
pub struct RescoreReport {
    /// Patterns given a score by this run.
    pub scored: u64,
    /// Patterns that took a score an earlier, interrupted run had given them.
    pub resumed: u64,
    /// Patterns the new scorer no longer passes: deprecated.
    pub deprecated: u64,
    pub elapsed: Duration,
}

impl RescoreReport {
    pub fn rows_per_sec(&self) -> f64 {
        (self.scored + self.resumed) as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// A pattern's new score.
#[derive(Clone)]
struct Scored {
    scores: Scores,
    passed: bool,
    failed_gates: String,
}

/// Re-score every pattern (matching the filter) not yet scored by `options.scorer`; `progress`
/// gets (done, total) after each batch.
pub fn run(
    store: &PatternStore,
    lake: &Lake,
    runtime: &tokio::runtime::Handle,
    worker: &mut Worker,
    options: &RescoreOptions,
    mut progress: impl FnMut(u64, u64),
) -> Result<RescoreReport> {
    let started = Instant::now();
    let pending = |limit: Option<usize>| {
        let mut f = format!("scorer_version <> {}", quote(&options.scorer));
        if let Some(w) = &options.filter {
            f = format!("({f}) AND ({w})");
        }
        runtime.block_on(store.scan(Some(f), limit)).map_err(|e| {
            e.context(format!(
                "selecting the patterns to re-score{}",
                options
                    .filter
                    .as_deref()
                    .map(|w| format!(" (--where {w})"))
                    .unwrap_or_default()
            ))
        })
    };
    let total = pending(None)?.len() as u64;
    let mut report = RescoreReport::default();
    let writer = lake.writer(WRITER)?;
    progress(0, total);
    loop {
        let batch = pending(Some(options.batch.max(1)))?;
        if batch.is_empty() {
            break;
        }
        let earlier = earlier_scores(lake, runtime, &options.scorer, &batch)?;
        let mut rows = Vec::new();
        let mut updated = Vec::new();
        for mut p in batch {
            let scored = match earlier.get(&p.pattern_id) {
                Some(s) => {
                    report.resumed += 1;
                    s.clone()
                }
                None => {
                    let s = score(worker, &p);
                    report.scored += 1;
                    rows.push((p.clone(), s.clone()));
                    s
                }
            };
            p.scores = scored.scores;
            p.scorer_version = options.scorer.clone();
            p.gates_passed = scored.passed;
            if !scored.passed && p.lifecycle != Lifecycle::Deprecated {
                p.lifecycle = Lifecycle::Deprecated;
                report.deprecated += 1;
            }
            p.updated_at_us = chrono::Utc::now().timestamp_micros();
            updated.push(p);
        }
        if !rows.is_empty() {
            let batch = scores_batch(&rows, &options.scorer)?;
            let snapshot = lake.snapshot()?;
            let def = table_def();
            let mut actions = Vec::new();
            if snapshot.table(SCORES_TABLE).is_none() {
                actions.push(Action::DefineTable(def.clone()));
            }
            let date = omnistream_lake::date_of(chrono::Utc::now().timestamp_micros());
            actions.push(Action::Add(writer.write_file(
                &def,
                Some(&date),
                &[batch],
            )?));
            writer.commit(actions)?;
        }
        runtime.block_on(store.upsert(&updated))?;
        progress(report.scored + report.resumed, total);
    }
    report.elapsed = started.elapsed();
    Ok(report)
}

fn score(worker: &mut Worker, p: &Pattern) -> Scored {
    let stored = StoredCode {
        code: &p.code,
        module: &p.module,
        node_type: &p.node_type,
        description: &p.description,
        operations: &p.operations,
        contract_yaml: p.contract_yaml.as_deref(),
        functional: p.scores.functional,
    };
    match rescore(worker, &stored) {
        Ok(r) => Scored {
            scores: Scores {
                quality: r.quality.score,
                syntax: Some(r.quality.syntax),
                onex_compliance: Some(r.quality.onex_compliance),
                contract: Some(r.quality.contract),
                code_quality: Some(r.quality.code_quality),
                functional: r.quality.functional,
            },
            passed: r.quality.passed,
            failed_gates: r
                .gates
                .iter()
                .filter(|g| g.status == omnistream_codegen::gates::GateStatus::Fail)
                .map(|g| format!("{} {}", g.id, g.message))
                .collect::<Vec<_>>()
                .join("; "),
        },
        Err(why) => Scored {
            scores: Scores::default(),
            passed: false,
            failed_gates: why,
        },
    }
}

/// Scores the lake already has for these patterns under `scorer` (from an interrupted run).
fn earlier_scores(
    lake: &Lake,
    runtime: &tokio::runtime::Handle,
    scorer: &str,
    batch: &[Pattern],
) -> Result<HashMap<String, Scored>> {
    let snapshot = lake.snapshot()?;
    if snapshot.table(SCORES_TABLE).is_none() {
        return Ok(HashMap::new());
    }
    let ids = batch
        .iter()
        .map(|p| quote(&p.pattern_id))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "SELECT * FROM {SCORES_TABLE} WHERE scorer_version = {} AND pattern_id IN ({ids})",
        quote(scorer)
    );
    let ctx = omnistream_lake::session(lake, &snapshot)?;
    let (_, batches) = runtime.block_on(omnistream_lake::query(&ctx, &sql))?;
    let mut out = HashMap::new();
    for b in &batches {
        for r in Rows::new(b).iter() {
            let scores = Scores {
                quality: r.f64("quality_score").unwrap_or(0.0),
                syntax: r.f64("syntax_score"),
                onex_compliance: r.f64("onex_compliance_score"),
                contract: r.f64("contract_score"),
                code_quality: r.f64("code_quality_score"),
                functional: r.f64("functional_score"),
            };
            let scored = Scored {
                scores,
                passed: r.bool("passed").unwrap_or(false),
                failed_gates: r.str("failed_gates").unwrap_or_default(),
            };
            out.insert(r.str("pattern_id").unwrap_or_default(), scored);
        }
    }
    Ok(out)
}

fn table_def() -> TableDef {
    let f = |n: &str, t: DataType, null: bool| Field::new(n, t, null);
    TableDef {
        name: SCORES_TABLE.into(),
        schema: Schema::new(vec![
            f("pattern_id", DataType::Utf8, false),
            f("scorer_version", DataType::Utf8, false),
            f("quality_score", DataType::Float64, false),
            f("syntax_score", DataType::Float64, true),
            f("onex_compliance_score", DataType::Float64, true),
            f("contract_score", DataType::Float64, true),
            f("code_quality_score", DataType::Float64, true),
            f("functional_score", DataType::Float64, true),
            f("passed", DataType::Boolean, false),
            f("previous_score", DataType::Float64, false),
            f("previous_scorer_version", DataType::Utf8, false),
            f("failed_gates", DataType::Utf8, false),
            f(
                "scored_at",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                false,
            ),
        ]),
        partitioned_by_date: true,
        time_column: Some("scored_at".into()),
    }
}

fn scores_batch(rows: &[(Pattern, Scored)], scorer: &str) -> Result<RecordBatch> {
    let s = |f: &dyn Fn(&(Pattern, Scored)) -> String| -> ArrayRef {
        Arc::new(rows.iter().map(|r| Some(f(r))).collect::<StringArray>())
    };
    let o = |f: &dyn Fn(&(Pattern, Scored)) -> Option<f64>| -> ArrayRef {
        Arc::new(rows.iter().map(f).collect::<Float64Array>())
    };
    let now = chrono::Utc::now().timestamp_micros();
    let columns: Vec<ArrayRef> = vec![
        s(&|(p, _)| p.pattern_id.clone()),
        s(&|_| scorer.to_string()),
        o(&|(_, n)| Some(n.scores.quality)),
        o(&|(_, n)| n.scores.syntax),
        o(&|(_, n)| n.scores.onex_compliance),
        o(&|(_, n)| n.scores.contract),
        o(&|(_, n)| n.scores.code_quality),
        o(&|(_, n)| n.scores.functional),
        Arc::new(
            rows.iter()
                .map(|(_, n)| Some(n.passed))
                .collect::<BooleanArray>(),
        ),
        o(&|(p, _)| Some(p.scores.quality)),
        s(&|(p, _)| p.scorer_version.clone()),
        s(&|(_, n)| n.failed_gates.clone()),
        Arc::new(
            rows.iter()
                .map(|_| Some(now))
                .collect::<TimestampMicrosecondArray>()
                .with_timezone("UTC"),
        ),
    ];
    Ok(RecordBatch::try_new(Arc::new(table_def().schema), columns)?)
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}
