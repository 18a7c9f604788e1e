//! Running jobs: one job, once (drain what is there) or following new input until told to stop,
//! and every job of the deployment in one process.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use omnistream_lake::Lake;
use omnistream_streams::EventLog;

use crate::codegen::{Codegen, CodegenOptions};
use crate::error::{JobError, Result};
use crate::lake_sink::{LakeSink, LakeSinkOptions};
use crate::reducer::{Reducer, ReducerOptions};
use crate::spec::{JobKind, JobSpec};
use crate::status::{JobStatus, StatusStore, now};

/// Everything a job needs from its surroundings.
pub struct JobContext<'a> {
    pub log: &'a dyn EventLog,
    pub lake: &'a Lake,
    pub status: StatusStore,
    pub runtime: tokio::runtime::Handle,
    pub sink: LakeSinkOptions,
    pub reducer: ReducerOptions,
    pub codegen: CodegenOptions,
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

/// One step of a job: what came in and what went out.
struct Step {
    events: u64,
    rows: u64,
}

enum Runner<'a> {
    Sink(Box<LakeSink<'a>>),
    Reducer(Box<Reducer<'a>>),
    Codegen(Box<Codegen<'a>>),
}

impl Runner<'_> {
    fn step(&mut self) -> Result<Step> {
        match self {
            Runner::Sink(sink) => {
                let r = sink.round()?;
                Ok(Step {
                    events: r.records_read,
                    rows: r.rows_written,
                })
            }
            Runner::Reducer(reducer) => {
                let r = reducer.batch()?;
                Ok(Step {
                    events: r.events,
                    rows: r.rows_written,
                })
            }
            Runner::Codegen(codegen) => {
                let r = codegen.step()?;
                Ok(Step {
                    events: r.requests,
                    rows: r.completed,
                })
            }
        }
    }
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
    // The codegen job's lock first: a second instance must not overwrite the running one's status.
    let mut codegen = match spec.kind {
        JobKind::Codegen => Some(Codegen::new(
            ctx.log,
            ctx.codegen.clone(),
            ctx.runtime.clone(),
            ctx.status.dir(),
        )?),
        _ => None,
    };
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
        let mut runner = match spec.kind {
            JobKind::Sink => Runner::Sink(Box::new(LakeSink::new(
                ctx.log,
                ctx.lake,
                ctx.sink.clone(),
            )?)),
            JobKind::Codegen => Runner::Codegen(Box::new(
                codegen.take().expect("taken before the status was written"),
            )),
            JobKind::Reducer => {
                let mut reducer = Reducer::new(
                    spec.clone(),
                    ctx.log,
                    ctx.lake,
                    ctx.runtime.clone(),
                    ctx.reducer.clone(),
                )?;
                if let Some(from) = from {
                    let r = crate::lake_sink::retry_stale(|| reducer.backfill(Some(from)))?;
                    tracing::info!(job = %spec.name, windows = r.windows, rows = r.rows_written, "recomputed from --from");
                }
                Runner::Reducer(Box::new(reducer))
            }
        };
        let mut totals = RunTotals::default();
        loop {
            if let Mode::Follow(stop) = mode
                && stop.load(Ordering::SeqCst)
            {
                break;
            }
            let batch_started = Instant::now();
            let step = crate::lake_sink::retry_stale(|| runner.step())?;
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
    let mut ordered: Vec<&JobSpec> = specs
        .iter()
        .filter(|s| s.kind == JobKind::Codegen)
        .collect();
    ordered.extend(specs.iter().filter(|s| s.kind == JobKind::Sink));
    ordered.extend(specs.iter().filter(|s| s.kind == JobKind::Reducer));
    match mode {
        Mode::Once => ordered
            .into_iter()
            .map(|spec| {
                Ok((
                    spec.name.clone(),
                    run(ctx, spec, Mode::Once, None, |t| on_batch(spec, t))?,
                ))
            })
            .collect(),
        Mode::Follow(stop) => std::thread::scope(|scope| {
            let handles: Vec<_> = ordered
                .into_iter()
                .map(|spec| {
                    scope.spawn(move || {
                        let result =
                            run(ctx, spec, Mode::Follow(stop), None, |t| on_batch(spec, t));
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
                let (name, result) = handle
                    .join()
                    .map_err(|_| JobError::Internal("a job thread panicked".into()))?;
                match result {
                    Ok(totals) => out.push((name, totals)),
                    Err(e) if first_error.is_none() => {
                        first_error = Some(JobError::Reducer {
                            job: name,
                            detail: e.to_string(),
                        })
                    }
                    Err(_) => {}
                }
            }
            first_error.map_or(Ok(out), Err)
        }),
    }
}
