//! Running jobs: one job, once (drain what is there) or following new input until told to stop,
//! and every job of the deployment in one process.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use omnistream_lake::Lake;
use omnistream_streams::EventLog;

use crate::error::{JobError, Result};
use crate::job::{Job, JobEnv, JobFactory, StepReport};
use crate::lake_sink::{LakeSink, LakeSinkOptions};
use crate::reducer::{Reducer, ReducerOptions};
use crate::spec::{JobKind, JobSpec};
use crate::stale::retry_stale;
use crate::status::{JobStatus, StatusStore, now};

/// Everything a job needs from its surroundings.
pub struct JobContext<'a> {
    pub log: &'a dyn EventLog,
    pub lake: &'a Lake,
    pub status: StatusStore,
    pub runtime: tokio::runtime::Handle,
    pub sink: LakeSinkOptions,
    pub reducer: ReducerOptions,
    /// Builds the jobs of kinds implemented outside this crate (codegen).
    pub factory: &'a dyn JobFactory,
}

impl<'a> JobContext<'a> {
    fn env(&'a self) -> JobEnv<'a> {
        JobEnv {
            log: self.log,
            lake: self.lake,
            runtime: &self.runtime,
            state_dir: self.status.dir(),
        }
    }
}

/// A factory for deployments without external jobs: it builds none.
pub struct NoExternalJobs;

impl JobFactory for NoExternalJobs {
    fn build<'a>(&self, spec: &JobSpec, _: JobEnv<'a>) -> Result<Box<dyn Job + 'a>> {
        Err(JobError::Spec {
            origin: spec.origin.clone(),
            detail: format!("no {} job can run here", spec.kind.name()),
        })
    }
}

/// How long a job runs.
#[derive(Clone, Copy)]
pub enum Mode<'s> {
    /// Until it has taken in everything there is now.
    Once,
    /// Until `stop` is set; the batch in flight is committed first.
    Follow(&'s AtomicBool),
}

/// Progress of a run, reported after every batch that did something.
#[derive(Debug, Clone, Default)]
pub struct RunTotals {
    pub batches: u64,
    pub events_in: u64,
    pub rows_out: u64,
    pub elapsed: Duration,
}

impl Job for LakeSink<'_> {
    fn step(&mut self) -> Result<StepReport> {
        let r = self.round()?;
        Ok(StepReport {
            events: r.records_read,
            rows: r.rows_written,
        })
    }
}

impl Job for Reducer<'_> {
    fn step(&mut self) -> Result<StepReport> {
        let r = self.batch()?;
        Ok(StepReport {
            events: r.events,
            rows: r.rows_written,
        })
    }
}

/// The job that runs `spec`; `from` (µs) first recomputes a reducer's windows from then on.
fn build<'a>(
    ctx: &'a JobContext<'a>,
    spec: &JobSpec,
    from: Option<i64>,
) -> Result<Box<dyn Job + 'a>> {
    Ok(match &spec.kind {
        JobKind::Sink => Box::new(LakeSink::new(ctx.log, ctx.lake, ctx.sink.clone())?),
        JobKind::Reducer(_) => {
            let mut reducer = Reducer::new(
                spec.clone(),
                ctx.log,
                ctx.lake,
                ctx.runtime.clone(),
                ctx.reducer.clone(),
            )?;
            if let Some(from) = from {
                let r = retry_stale(|| reducer.backfill(Some(from)))?;
                tracing::info!(job = %spec.name, windows = r.windows, rows = r.rows_written, "recomputed from --from");
            }
            Box::new(reducer)
        }
        JobKind::Codegen | JobKind::Patterns => ctx.factory.build(spec, ctx.env())?,
    })
}

/// Run one job. `from` (µs) first recomputes a reducer's windows from that time on.
pub fn run(
    ctx: &JobContext<'_>,
    spec: &JobSpec,
    mode: Mode<'_>,
    from: Option<i64>,
    mut on_batch: impl FnMut(&RunTotals),
) -> Result<RunTotals> {
    let started = Instant::now();
    // A job built by the factory first: one held by another process (codegen's lock) must not
    // overwrite the running one's status. The others are built below, their failures recorded.
    let mut external = matches!(spec.kind, JobKind::Codegen | JobKind::Patterns)
        .then(|| build(ctx, spec, from))
        .transpose()?;
    // Totals and the last batch carry over from earlier runs; the rest describes this run.
    let previous = ctx.status.read(&spec.name).unwrap_or_default();
    let mut status = JobStatus {
        name: spec.name.clone(),
        state: "running".into(),
        pid: std::process::id(),
        started_at: now(),
        last_error: None,
        ..previous
    };
    ctx.status.write(&status);
    let result = (|| -> Result<RunTotals> {
        let mut job = match external.take() {
            Some(job) => job,
            None => build(ctx, spec, from)?,
        };
        let mut totals = RunTotals::default();
        loop {
            if let Mode::Follow(stop) = mode
                && stop.load(Ordering::SeqCst)
            {
                break;
            }
            let batch_started = Instant::now();
            let step = retry_stale(|| job.step())?;
            if step.events > 0 {
                totals.batches += 1;
                totals.events_in += step.events;
                totals.rows_out += step.rows;
                totals.elapsed = started.elapsed();
                status.batches += 1;
                status.events_in += step.events;
                status.rows_out += step.rows;
                status.last_batch_at = Some(now());
                status.last_batch_ms = Some(batch_started.elapsed().as_secs_f64() * 1000.0);
                ctx.status.write(&status);
                on_batch(&totals);
                continue;
            }
            match mode {
                Mode::Once => break,
                Mode::Follow(stop) => {
                    let until = Instant::now() + spec.trigger;
                    while Instant::now() < until && !stop.load(Ordering::SeqCst) {
                        std::thread::sleep(Duration::from_millis(10).min(spec.trigger));
                    }
                }
            }
        }
        totals.elapsed = started.elapsed();
        Ok(totals)
    })();
    match &result {
        Ok(_) => status.state = "stopped".into(),
        Err(e) => {
            status.state = "failed".into();
            status.last_error = Some(e.to_string());
        }
    }
    ctx.status.write(&status);
    result
}

/// Run every job. Once: the sink drains, then each reducer drains, in order. Follow: each job on
/// its own thread until `stop`; the first failure stops the others and is returned.
pub fn run_all(
    ctx: &JobContext<'_>,
    specs: &[JobSpec],
    mode: Mode<'_>,
    on_batch: &(dyn Fn(&JobSpec, &RunTotals) + Sync),
) -> Result<Vec<(String, RunTotals)>> {
    // Once: generations first, so the sink lands their events and the reducers see them.
    let rank = |s: &JobSpec| match s.kind {
        JobKind::Codegen => 0,
        JobKind::Patterns => 1,
        JobKind::Sink => 2,
        JobKind::Reducer(_) => 3,
    };
    let mut ordered: Vec<&JobSpec> = specs.iter().collect();
    ordered.sort_by_key(|s| rank(s));
    match mode {
        Mode::Once => ordered
            .into_iter()
            .map(|spec| {
                let totals = run(ctx, spec, Mode::Once, None, |t| on_batch(spec, t))
                    .map_err(|e| e.context(format!("job {}", spec.name)))?;
                Ok((spec.name.clone(), totals))
            })
            .collect(),
        Mode::Follow(stop) => std::thread::scope(|scope| {
            let handles: Vec<_> = ordered
                .into_iter()
                .map(|spec| {
                    scope.spawn(move || {
                        let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
                            run(ctx, spec, Mode::Follow(stop), None, |t| on_batch(spec, t))
                        }))
                        .unwrap_or_else(|panic| Err(JobError::Internal(panic_message(&panic))))
                        .map_err(|e| e.context(format!("job {}", spec.name)));
                        if result.is_err() {
                            // One job down stops the others: the deployment runs whole or not at all.
                            stop.store(true, Ordering::SeqCst);
                        }
                        (spec.name.clone(), result)
                    })
                })
                .collect();
            let mut out = Vec::new();
            let mut first_error: Option<JobError> = None;
            for handle in handles {
                // Panics are caught in the thread; a join error would be a panic while unwinding.
                let (name, result) = handle
                    .join()
                    .map_err(|panic| JobError::Internal(panic_message(&panic)))?;
                match result {
                    Ok(totals) => out.push((name, totals)),
                    Err(e) if first_error.is_none() => first_error = Some(e),
                    Err(e) => tracing::warn!(job = %name, error = %e, "stopped with an error too"),
                }
            }
            first_error.map_or(Ok(out), Err)
        }),
    }
}

/// What a panic said, for an internal error.
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    let text = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".into());
    format!("panicked: {text}")
}
