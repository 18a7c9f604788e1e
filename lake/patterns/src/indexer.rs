//! The pattern indexer job (`jobs run patterns`): pattern-storage-requested events into the
//! store, and the end events of generations that applied patterns into their counters and
//! lifecycle. Each step's writes are idempotent (new patterns and uses are keyed; counters are
//! recomputed from the uses) and its offsets are committed after them, so a step cut by `kill -9`
//! runs again without storing a pattern or counting a use twice.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::File;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use omnistream_codegen::stage::FailureCode;
use omnistream_connectors::{EnvelopeDefaults, EventDecoder};
use omnistream_streams::{Event, EventLog, GroupOffsets, Topic};
use serde_json::json;

use crate::columns::Rows;
use crate::error::{PatternsError, Result};
use crate::lifecycle::{self, Lifecycle};
use crate::normalise::{Bump, OwnNames, normalise, pattern_id, similarity};
use crate::record::{Pattern, Scores};
use crate::store::PatternStore;
use crate::uses::{Use, UseLog};

/// Name of the job, its consumer group and its lock.
pub const PATTERNS: &str = "patterns";

/// The `source` of the indexer's events.
pub const SOURCE: &str = "omnistream-patterns";

/// Largest code a pattern may keep.
pub const MAX_CODE_BYTES: usize = 1 << 20;

/// Lineage candidates compared by similarity (the nearest by vector).
const LINEAGE_CANDIDATES: usize = 8;

#[derive(Debug, Clone)]
pub struct IndexerOptions {
    /// Events taken per topic per step.
    pub max_batch: usize,
    /// How often the job optimises the table (compaction, pruning, indexes).
    pub optimize_every: Duration,
}

impl Default for IndexerOptions {
    fn default() -> Self {
        IndexerOptions {
            max_batch: 512,
            optimize_every: Duration::from_secs(600),
        }
    }
}

/// What one step did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IndexReport {
    pub events: u64,
    pub stored: u64,
    pub duplicates: u64,
    pub rejected: u64,
    pub uses: u64,
    pub lifecycle_changes: u64,
}

/// A change to the store, as its pattern-stored event says.
#[derive(Debug, Clone)]
pub struct Change {
    pub pattern: Pattern,
    /// created, version_created, used, validated, deprecated, rescored.
    pub change: &'static str,
    pub correlation_id: String,
}

pub struct Indexer<'a> {
    log: &'a dyn EventLog,
    store: Arc<PatternStore>,
    uses: UseLog,
    runtime: tokio::runtime::Handle,
    options: IndexerOptions,
    last_optimize: Instant,
    _lock: File,
}

impl<'a> Indexer<'a> {
    /// Take the job (its lock under `state_dir`); fails when another process runs it.
    pub fn new(
        log: &'a dyn EventLog,
        store: Arc<PatternStore>,
        uses: UseLog,
        runtime: tokio::runtime::Handle,
        state_dir: &Path,
        options: IndexerOptions,
    ) -> Result<Self> {
        let path = state_dir.join(format!("{PATTERNS}.lock"));
        let lock =
            omnistream_streams::io::lock_exclusively(&path)?.ok_or(PatternsError::Busy(path))?;
        Ok(Indexer {
            log,
            store,
            uses,
            runtime,
            options,
            last_optimize: Instant::now(),
            _lock: lock,
        })
    }

    /// Take what is waiting, store it, count the uses, emit the changes, commit.
    pub fn step(&mut self) -> Result<IndexReport> {
        let mut report = IndexReport::default();
        let (requests, next_requests) = self.read(Topic::PatternStorageRequested)?;
        let (completed, next_completed) = self.read(Topic::GenerationCompleted)?;
        let (failed, next_failed) = self.read(Topic::GenerationFailed)?;
        report.events = [&requests, &completed, &failed]
            .iter()
            .flat_map(|b| b.iter())
            .map(|b| b.num_rows() as u64)
            .sum();
        if report.events > 0 {
            let mut changes = self
                .runtime
                .block_on(self.store_requests(&requests, &mut report))?;
            let uses = outcomes(&completed, true)
                .chain(outcomes(&failed, false))
                .collect();
            changes.extend(self.runtime.block_on(self.record_uses(uses, &mut report))?);
            self.emit(&changes)?;
            for (topic, next) in [
                (Topic::PatternStorageRequested, next_requests),
                (Topic::GenerationCompleted, next_completed),
                (Topic::GenerationFailed, next_failed),
            ] {
                if !next.is_empty() {
                    self.log.commit(PATTERNS, topic, &next)?;
                }
            }
        }
        if self.last_optimize.elapsed() >= self.options.optimize_every {
            let r = self.runtime.block_on(self.store.optimize())?;
            tracing::info!(
                rows = r.rows,
                pruned = r.versions_pruned,
                "optimised the pattern table"
            );
            self.last_optimize = Instant::now();
        }
        Ok(report)
    }

    /// Events of `topic` after the group's committed offsets, and the offsets after them.
    fn read(&self, topic: Topic) -> Result<(Vec<RecordBatch>, GroupOffsets)> {
        let committed = self.log.committed(PATTERNS, topic)?;
        let (mut batches, mut next) = (Vec::new(), GroupOffsets::new());
        let mut room = self.options.max_batch;
        for p in 0..self.log.partitions(topic)? {
            let from = committed.get(&p).copied().unwrap_or(0);
            let mut at = from;
            for b in self.log.read(topic, p, from, room)? {
                let take = b.batch.num_rows().min(room);
                batches.push(b.batch.slice(0, take));
                at = b.base_offset + take as u64;
                room -= take;
                if room == 0 {
                    break;
                }
            }
            if at > from {
                next.insert(p, at);
            }
            if room == 0 {
                break;
            }
        }
        Ok((batches, next))
    }

    /// New patterns from the storage requests (rejected ones are logged and skipped).
    async fn store_requests(
        &self,
        batches: &[RecordBatch],
        report: &mut IndexReport,
    ) -> Result<Vec<Change>> {
        let mut candidates = Vec::new();
        for b in batches {
            for r in Rows::new(b).iter() {
                let request = StorageRequest::from_row(&r);
                match candidate(&request) {
                    Ok(p) => candidates.push(p),
                    Err(why) => {
                        report.rejected += 1;
                        tracing::warn!(correlation_id = ?request.correlation_id, "pattern-storage-requested not stored: {why}");
                    }
                }
            }
        }
        store_new(&self.store, candidates, report).await
    }

    /// Uses of stored patterns into the use log; counters and lifecycle recomputed from it.
    async fn record_uses(&self, uses: Vec<Use>, report: &mut IndexReport) -> Result<Vec<Change>> {
        let ids: BTreeSet<String> = uses.iter().map(|u| u.pattern_id.clone()).collect();
        let ids: Vec<String> = ids.into_iter().collect();
        let patterns = self.store.get_many(&ids).await?;
        let stored: BTreeSet<&str> = patterns.iter().map(|p| p.pattern_id.as_str()).collect();
        let uses: Vec<Use> = uses
            .into_iter()
            .filter(|u| stored.contains(u.pattern_id.as_str()))
            .collect();
        if uses.is_empty() {
            return Ok(Vec::new());
        }
        report.uses += uses.len() as u64;
        let last_use: BTreeMap<&str, &Use> =
            uses.iter().map(|u| (u.pattern_id.as_str(), u)).collect();
        self.uses.insert_new(&uses).await?;
        let outcomes = self.uses.outcomes(&ids).await?;
        let mut changed = Vec::new();
        let mut changes = Vec::new();
        for mut p in patterns {
            let Some(o) = outcomes.get(&p.pattern_id) else {
                continue;
            };
            // A function of every recorded use, not of the pattern's state: the end events of
            // two topics arrive at their own pace, so a step may see a history with gaps that a
            // later step fills; the lifecycle follows the history once it is whole.
            let (usage, replayed) = lifecycle::replay(o);
            // A pattern the current scorer no longer passes stays deprecated (`patterns rescore`).
            let lifecycle = if !p.gates_passed {
                Lifecycle::Deprecated
            } else {
                replayed
            };
            let u = &usage;
            if p.usage() == *u && p.lifecycle == lifecycle {
                continue;
            }
            let change = match (p.lifecycle == lifecycle, lifecycle) {
                (false, Lifecycle::Validated) => "validated",
                (false, Lifecycle::Deprecated) => "deprecated",
                _ => "used",
            };
            if p.lifecycle != lifecycle {
                report.lifecycle_changes += 1;
            }
            (p.usage_count, p.success_count, p.failure_streak) =
                (u.uses, u.successes, u.failure_streak);
            p.lifecycle = lifecycle;
            p.updated_at_us = chrono::Utc::now().timestamp_micros();
            let correlation_id = last_use
                .get(p.pattern_id.as_str())
                .map(|u| u.correlation_id.clone())
                .unwrap_or_default();
            changed.push(p.clone());
            changes.push(Change {
                pattern: p,
                change,
                correlation_id,
            });
        }
        self.store.upsert(&changed).await?;
        Ok(changes)
    }

    fn emit(&self, changes: &[Change]) -> Result<()> {
        emit_changes(self.log, changes)
    }
}

/// Store the candidates that are new (by id), each placed in its lineage; a candidate this very
/// request stored before a crash gets its change again (the same event id).
pub async fn store_new(
    store: &PatternStore,
    candidates: Vec<Pattern>,
    report: &mut IndexReport,
) -> Result<Vec<Change>> {
    let mut seen = BTreeSet::new();
    let mut unique = Vec::new();
    for p in candidates {
        if seen.insert(p.pattern_id.clone()) {
            unique.push(p);
        } else {
            report.duplicates += 1;
        }
    }
    let ids: Vec<String> = unique.iter().map(|p| p.pattern_id.clone()).collect();
    let existing: HashMap<String, Pattern> = store
        .get_many(&ids)
        .await?
        .into_iter()
        .map(|p| (p.pattern_id.clone(), p))
        .collect();
    let texts: Vec<String> = unique.iter().map(|p| p.search_text.clone()).collect();
    let vectors = store.embed(&texts).await?;
    let (mut changes, mut new) = (Vec::new(), Vec::<Pattern>::new());
    for (mut p, v) in unique.into_iter().zip(vectors) {
        if let Some(old) = existing.get(&p.pattern_id) {
            if old.correlation_id.is_some() && old.correlation_id == p.correlation_id {
                changes.push(created(old.clone()));
            } else {
                report.duplicates += 1;
            }
            continue;
        }
        p.embedding = v;
        place_in_lineage(store, &mut p, &new).await?;
        new.push(p);
    }
    store.insert_new(&new).await?;
    report.stored += new.len() as u64;
    changes.extend(new.into_iter().map(created));
    Ok(changes)
}

/// Version and parents from the most similar pattern of the same node type.
async fn place_in_lineage(store: &PatternStore, p: &mut Pattern, batch: &[Pattern]) -> Result<()> {
    let mut nearest = store
        .nearest(&p.embedding, &p.node_type, LINEAGE_CANDIDATES)
        .await?;
    nearest.extend(batch.iter().filter(|b| b.node_type == p.node_type).cloned());
    let best = nearest
        .iter()
        .map(|n| (similarity(&p.normalised, &n.normalised), n))
        .max_by(|a, b| a.0.total_cmp(&b.0));
    let Some((s, parent)) = best else {
        return Ok(());
    };
    let bump = Bump::from_similarity(s);
    if bump != Bump::New {
        p.version = bump.version(&parent.version);
        p.parent_ids = vec![parent.pattern_id.clone()];
        p.lineage_id = parent.lineage_id.clone();
    }
    Ok(())
}

/// pattern-stored events, durably; ids derived from the change, so a re-run after a crash
/// emits the same events (the lake-sink keeps one of each).
pub fn emit_changes(log: &dyn EventLog, changes: &[Change]) -> Result<()> {
    if changes.is_empty() {
        return Ok(());
    }
    let mut decoder = EventDecoder::new(
        Topic::PatternStored,
        EnvelopeDefaults {
            source: SOURCE.into(),
        },
    );
    for c in changes {
        let p = &c.pattern;
        let key = format!(
            "{}/{}/{}/{}/{}",
            p.pattern_id, c.change, p.usage_count, p.lifecycle, p.version
        );
        let id = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, key.as_bytes()).to_string();
        let correlation_id = if c.correlation_id.is_empty() {
            &p.pattern_id
        } else {
            &c.correlation_id
        };
        let event = Event::with_id(Topic::PatternStored, id, correlation_id, None, SOURCE)
            .payload(json!({
                "pattern_id": p.pattern_id, "node_type": p.node_type, "domain": p.domain,
                "quality_score": p.scores.quality, "scorer_version": p.scorer_version,
                "lifecycle": p.lifecycle.as_str(), "pattern_version": p.version,
                "parent_ids": p.parent_ids, "change": c.change, "usage_count": p.usage_count,
                "success_count": p.success_count, "failure_streak": p.failure_streak,
            }))?;
        decoder.push_value(event.into_json()).map_err(|r| {
            PatternsError::Internal(format!("a pattern-stored event: {}", r.reason))
        })?;
    }
    log.append(Topic::PatternStored, &decoder.finish())?;
    Ok(())
}

fn created(p: Pattern) -> Change {
    let change = if p.parent_ids.is_empty() {
        "created"
    } else {
        "version_created"
    };
    Change {
        correlation_id: p.correlation_id.clone().unwrap_or_default(),
        pattern: p,
        change,
    }
}

/// The node types a pattern may have.
pub const NODE_TYPES: [&str; 4] = ["effect", "compute", "reducer", "orchestrator"];

/// What a pattern is made from: a pattern-storage-requested event, or `patterns store`.
#[derive(Debug, Clone, Default)]
pub struct StorageRequest {
    pub correlation_id: Option<String>,
    pub emitted_at_us: Option<i64>,
    pub node_type: String,
    pub domain: Option<String>,
    pub service_name: Option<String>,
    pub node_name: Option<String>,
    pub language: Option<String>,
    pub module: Option<String>,
    pub code: String,
    pub contract_yaml: Option<String>,
    pub description: Option<String>,
    pub operations: Vec<String>,
    pub scores: Scores,
    pub scorer_version: Option<String>,
    pub model: Option<String>,
    pub search_text: Option<String>,
}

impl StorageRequest {
    pub fn from_row(r: &crate::columns::Row<'_>) -> StorageRequest {
        StorageRequest {
            correlation_id: r.str("correlation_id"),
            emitted_at_us: r.timestamp("emitted_at"),
            node_type: r.str("node_type").unwrap_or_default(),
            domain: r.str("domain"),
            service_name: r.str("service_name"),
            node_name: r.str("node_name"),
            language: r.str("language"),
            module: r.str("module"),
            code: r.str("code_sample").unwrap_or_default(),
            contract_yaml: r.str("contract_yaml"),
            description: r.str("business_description").or_else(|| r.str("prompt")),
            operations: r.list("operations"),
            scores: Scores {
                quality: r.f64("quality_score").unwrap_or(f64::NAN),
                syntax: r.f64("syntax_score"),
                onex_compliance: r.f64("onex_compliance_score"),
                contract: r.f64("contract_score"),
                code_quality: r.f64("code_quality_score"),
                functional: r.f64("functional_score"),
            },
            scorer_version: r.str("scorer_version"),
            model: r.str("primary_model"),
            search_text: r.str("embedding_text"),
        }
    }
}

/// A pattern from a storage request, or why it cannot be one.
pub fn candidate(r: &StorageRequest) -> std::result::Result<Pattern, String> {
    if r.code.trim().is_empty() {
        return Err("the code is empty".into());
    }
    if r.code.len() > MAX_CODE_BYTES {
        return Err(format!(
            "the code is {} bytes, more than the {MAX_CODE_BYTES} a pattern may keep",
            r.code.len()
        ));
    }
    let node_type = r.node_type.to_ascii_lowercase();
    if !NODE_TYPES.contains(&node_type.as_str()) {
        return Err(format!(
            "node type '{}' is not one of {}",
            r.node_type,
            NODE_TYPES.join(", ")
        ));
    }
    let quality = r.scores.quality;
    if !(0.0..=1.0).contains(&quality) {
        return Err(format!("quality {quality} is not between 0 and 1"));
    }
    let names = OwnNames {
        service_name: r.service_name.clone(),
        node_name: r.node_name.clone(),
    };
    let normalised = normalise(&r.code, &names);
    let id = pattern_id(&normalised);
    let description = r.description.clone().unwrap_or_default().trim().to_string();
    let search_text = r
        .search_text
        .clone()
        .unwrap_or_else(|| format!("{description} {}", r.operations.join(" ")));
    let now = r
        .emitted_at_us
        .unwrap_or_else(|| chrono::Utc::now().timestamp_micros());
    Ok(Pattern {
        lineage_id: id.clone(),
        pattern_id: id,
        node_type,
        domain: r.domain.clone(),
        language: r.language.clone().unwrap_or_else(|| "python".into()),
        module: r.module.clone().unwrap_or_else(|| "v1_0_0/node.py".into()),
        service_name: names.service_name,
        node_name: names.node_name,
        description,
        operations: r.operations.clone(),
        code: r.code.clone(),
        normalised,
        contract_yaml: r.contract_yaml.clone(),
        scores: r.scores.clone(),
        scorer_version: r.scorer_version.clone().unwrap_or_else(|| "unknown".into()),
        gates_passed: true,
        lifecycle: Lifecycle::Candidate,
        version: "1.0.0".into(),
        parent_ids: Vec::new(),
        usage_count: 0,
        success_count: 0,
        failure_streak: 0,
        correlation_id: r.correlation_id.clone(),
        model: r.model.clone(),
        created_at_us: now,
        updated_at_us: now,
        search_text,
        embedding: Vec::new(),
    })
}

/// The uses in end events: each pattern a generation applied, with whether it passed. A failure
/// that is no verdict on the code (a bad output directory, a model that could not be reached) is
/// no use: it would push good patterns towards deprecation for what they did not do.
fn outcomes(batches: &[RecordBatch], completed: bool) -> impl Iterator<Item = Use> + '_ {
    batches.iter().flat_map(move |b| {
        Rows::new(b)
            .iter()
            .filter(|r| {
                r.str("error_code")
                    .and_then(|c| FailureCode::parse(&c))
                    .is_none_or(FailureCode::judges_the_code)
            })
            .flat_map(|r| {
                let success = completed && r.bool("passed").unwrap_or(false);
                let correlation_id = r.str("correlation_id").unwrap_or_default();
                let at = r.timestamp("emitted_at").unwrap_or(0);
                r.list("patterns_applied")
                    .into_iter()
                    .filter(|id| crate::store::valid_id(id))
                    .map(move |pattern_id| Use {
                        pattern_id,
                        correlation_id: correlation_id.clone(),
                        success,
                        emitted_at_us: at,
                    })
                    .collect::<Vec<_>>()
            })
            .collect::<Vec<_>>()
    })
}
