//! The codegen job: consumes generation requests (consumer group `codegen`), runs up to
//! `concurrency` generations at once, and commits a batch's offsets once every generation of it has
//! its end event in the log. One process at a time holds the job (a lock file), so `omnistream
//! generate` can run it in-process when nobody else does.
//!
//! A request is skipped, silently, when an end event for its correlation id was in the log when the
//! job started (a re-run after a crash between the end event and the batch's commit, or history
//! imported with its outcomes), or when it is older than `request_ttl` (history, or a request nobody waits for any
//! more). A crash in the middle of a generation runs it again from the start.

use std::fs::File;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use std::collections::HashSet;

use arrow::array::{Array, StringArray};
use omnistream_streams::{EventLog, GroupOffsets, Topic};

use crate::emit::Emitter;
use crate::error::{CodegenError, Result};
use crate::pipeline::{self, Outcome};
use crate::recorder::Shared;
use crate::request::GenerationRequest;
use crate::{CODEGEN, CodegenOptions};

/// What one step did.
#[derive(Debug, Clone, Default)]
pub struct CodegenReport {
    /// Requests taken from the log (generated or skipped).
    pub requests: u64,
    /// Requests not generated: already ended, or older than the TTL.
    pub skipped: u64,
    pub completed: u64,
    pub failed: u64,
    pub elapsed: Duration,
}

pub struct Codegen<'a> {
    log: &'a dyn EventLog,
    options: CodegenOptions,
    runtime: tokio::runtime::Handle,
    emitter: Emitter<'a>,
    workers: Vec<Mutex<pipeline::Worker>>,
    /// Correlation ids with an end event in the log when the job started (the recent ones). Only
    /// requests not committed before a crash can have one; once committed, a request is never
    /// read again, so the set is not kept current while the job runs.
    ended: HashSet<String>,
    _lock: File,
}

/// End events looked at when the job starts: enough to cover any batch in flight at a crash.
const ENDED_LOOKBACK: u64 = 100_000;

impl<'a> Codegen<'a> {
    /// Take the job (its lock under `state_dir`); fails when another process runs it.
    pub fn new(
        log: &'a dyn EventLog,
        options: CodegenOptions,
        runtime: tokio::runtime::Handle,
        state_dir: &Path,
    ) -> Result<Self> {
        let lock = take_lock(state_dir)?;
        Ok(Codegen {
            log,
            runtime,
            emitter: Emitter::new(log),
            workers: (0..options.concurrency.max(1))
                .map(|_| Mutex::new(pipeline::Worker::new(&options.python)))
                .collect(),
            ended: recent_ends(log)?,
            _lock: lock,
            options,
        })
    }

    pub fn options(&self) -> &CodegenOptions {
        &self.options
    }

    /// Requests not yet taken.
    pub fn pending(&self) -> Result<u64> {
        let topic = Topic::GenerationRequested;
        let committed = self.log.committed(CODEGEN, topic)?;
        let mut n = 0;
        for p in 0..self.log.partitions(topic)? {
            let end = self.log.offsets(topic, p)?.end;
            n += end.saturating_sub(committed.get(&p).copied().unwrap_or(0));
        }
        Ok(n)
    }

    /// Take up to `max_batch` requests, generate them `concurrency` at a time, commit.
    pub fn step(&mut self) -> Result<CodegenReport> {
        let started = Instant::now();
        let topic = Topic::GenerationRequested;
        let committed = self.log.committed(CODEGEN, topic)?;
        let mut requests = Vec::new();
        let mut next: GroupOffsets = GroupOffsets::new();
        for p in 0..self.log.partitions(topic)? {
            let from = committed.get(&p).copied().unwrap_or(0);
            let room = self.options.max_batch.saturating_sub(requests.len());
            if room == 0 {
                break;
            }
            let mut at = from;
            for b in self.log.read(topic, p, from, room)? {
                let take = (b.batch.num_rows()).min(room - (at - from) as usize);
                requests.extend(GenerationRequest::from_batch(&b.batch.slice(0, take)));
                at = b.base_offset + take as u64;
                if (at - from) as usize >= room {
                    break;
                }
            }
            if at > from {
                next.insert(p, at);
            }
        }
        let mut report = CodegenReport {
            requests: requests.len() as u64,
            ..Default::default()
        };
        if requests.is_empty() {
            return Ok(report);
        }
        let now_us = chrono::Utc::now().timestamp_micros();
        let ttl_us = i64::try_from(self.options.request_ttl.as_micros()).unwrap_or(i64::MAX);
        let total = requests.len();
        requests.retain(|r| {
            if self.ended.contains(&r.correlation_id) {
                tracing::info!(correlation_id = %r.correlation_id, "request already ended; skipped");
                return false;
            }
            if r.emitted_at_us.is_some_and(|t| now_us.saturating_sub(t) > ttl_us) {
                tracing::info!(correlation_id = %r.correlation_id, "request older than the TTL; skipped");
                return false;
            }
            true
        });
        report.skipped = (total - requests.len()) as u64;
        let shared = Shared {
            options: &self.options,
            emitter: &self.emitter,
            runtime: &self.runtime,
        };
        let cursor = AtomicUsize::new(0);
        let outcomes: Vec<Mutex<Option<Result<Outcome>>>> =
            requests.iter().map(|_| Mutex::new(None)).collect();
        let threads = self.workers.len().min(requests.len());
        std::thread::scope(|scope| {
            for w in &self.workers[..threads] {
                let (shared, cursor, outcomes, requests) = (&shared, &cursor, &outcomes, &requests);
                scope.spawn(move || {
                    let mut worker = w.lock().unwrap();
                    loop {
                        let i = cursor.fetch_add(1, Ordering::SeqCst);
                        let Some(req) = requests.get(i) else { return };
                        let span =
                            tracing::info_span!("generation", correlation_id = %req.correlation_id);
                        let _e = span.enter();
                        let outcome = pipeline::run(shared, &mut worker, req);
                        *outcomes[i].lock().unwrap() = Some(outcome);
                    }
                });
            }
        });
        for o in outcomes {
            match o.into_inner().unwrap().expect("every request ran") {
                Ok(Outcome::Completed { .. }) => report.completed += 1,
                Ok(Outcome::Failed { .. }) => report.failed += 1,
                // The log refused an end event: commit nothing, so the batch runs again.
                Err(e) => return Err(e),
            }
        }
        self.log.commit(CODEGEN, topic, &next)?;
        report.elapsed = started.elapsed();
        Ok(report)
    }
}

impl omnistream_jobs::Job for Codegen<'_> {
    fn step(&mut self) -> omnistream_jobs::Result<omnistream_jobs::StepReport> {
        let r = Codegen::step(self)?;
        Ok(omnistream_jobs::StepReport {
            events: r.requests,
            rows: r.completed,
        })
    }
}

/// Builds the codegen job for the runner (`jobs run codegen`, `jobs run all`).
pub struct CodegenFactory {
    pub options: CodegenOptions,
}

impl omnistream_jobs::JobFactory for CodegenFactory {
    fn build<'a>(
        &self,
        spec: &omnistream_jobs::JobSpec,
        env: omnistream_jobs::JobEnv<'a>,
    ) -> omnistream_jobs::Result<Box<dyn omnistream_jobs::Job + 'a>> {
        match spec.kind {
            omnistream_jobs::JobKind::Codegen => Ok(Box::new(Codegen::new(
                env.log,
                self.options.clone(),
                env.runtime.clone(),
                env.state_dir,
            )?)),
            _ => Err(omnistream_jobs::JobError::Internal(format!(
                "the codegen factory cannot build {} ({} job)",
                spec.name,
                spec.kind.name()
            ))),
        }
    }
}

/// Correlation ids of the last [`ENDED_LOOKBACK`] end events of each partition.
fn recent_ends(log: &dyn EventLog) -> Result<HashSet<String>> {
    let mut ended = HashSet::new();
    for topic in [Topic::GenerationCompleted, Topic::GenerationFailed] {
        for p in 0..log.partitions(topic)? {
            let o = log.offsets(topic, p)?;
            let mut at = o.start.max(o.end.saturating_sub(ENDED_LOOKBACK));
            while at < o.end {
                let batches = log.read(topic, p, at, 65_536)?;
                if batches.is_empty() {
                    break;
                }
                for b in batches {
                    at = b.next_offset();
                    if let Some(ids) = b
                        .batch
                        .column_by_name("correlation_id")
                        .and_then(|c| c.as_any().downcast_ref::<StringArray>())
                    {
                        ended.extend(ids.iter().flatten().map(str::to_string));
                    }
                }
            }
        }
    }
    Ok(ended)
}

fn take_lock(state_dir: &Path) -> Result<File> {
    let path = state_dir.join(format!("{CODEGEN}.lock"));
    omnistream_streams::io::lock_exclusively(&path)?.ok_or(CodegenError::Busy(path))
}
