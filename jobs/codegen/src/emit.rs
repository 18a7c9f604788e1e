//! Events of the codegen job into the log, with group commit: many generations emit at once, and
//! one synced append per topic carries everything queued meanwhile. [`Emitter::emit`] returns once
//! its events are durable, so a generation's end event is on disk before its request is committed;
//! [`Emitter::emit_soon`] (progress events) only queues, flushing when the last flush is older than
//! [`LAZY_FLUSH`], so fast stages cost no fsync each.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use omnistream_connectors::{EnvelopeDefaults, EventDecoder};
use omnistream_streams::{EventLog, Topic};
use serde_json::Value;

use crate::error::EmitError;

/// Progress events wait at most this long for a flush (while other events keep coming).
pub const LAZY_FLUSH: Duration = Duration::from_millis(10);

/// The `source` of the codegen job's events.
pub const SOURCE: &str = "omnistream-codegen";

#[derive(Default)]
struct State {
    queue: Vec<(Topic, Value)>,
    /// Sequence of the last queued emit and of the last one made durable.
    queued: u64,
    durable: u64,
    flushing: bool,
    last_flush: Option<Instant>,
    /// Recent failed flushes: (first seq, last seq, why).
    failures: VecDeque<(u64, u64, EmitError)>,
}

pub struct Emitter<'a> {
    log: &'a dyn EventLog,
    state: Mutex<State>,
    flushed: Condvar,
}

impl<'a> Emitter<'a> {
    pub fn new(log: &'a dyn EventLog) -> Self {
        Emitter {
            log,
            state: Mutex::new(State::default()),
            flushed: Condvar::new(),
        }
    }

    /// Queue progress events; flush them (and everything queued) only when the last flush is older
    /// than [`LAZY_FLUSH`] and none is running. Errors surface at the next [`Emitter::emit`].
    pub fn emit_soon(&self, events: Vec<(Topic, Value)>) -> Result<(), EmitError> {
        let due = {
            let mut state = self.state.lock().unwrap();
            state.queue.extend(events);
            !state.flushing && state.last_flush.is_none_or(|t| t.elapsed() >= LAZY_FLUSH)
        };
        if due { self.emit(Vec::new()) } else { Ok(()) }
    }

    /// Append `events` durably, with everything queued before them (and whatever other generations
    /// emit meanwhile).
    pub fn emit(&self, events: Vec<(Topic, Value)>) -> Result<(), EmitError> {
        let mut state = self.state.lock().unwrap();
        if events.is_empty() && state.queue.is_empty() {
            return Ok(());
        }
        state.queue.extend(events);
        state.queued += 1;
        let mine = state.queued;
        loop {
            if state.durable >= mine {
                return match state
                    .failures
                    .iter()
                    .find(|(a, b, _)| (*a..=*b).contains(&mine))
                {
                    Some((_, _, why)) => Err(why.clone()),
                    None => Ok(()),
                };
            }
            if state.flushing {
                state = self.flushed.wait(state).unwrap();
                continue;
            }
            // Lead this flush: take everything queued so far.
            state.flushing = true;
            let batch = std::mem::take(&mut state.queue);
            let (first, last) = (state.durable + 1, state.queued);
            drop(state);
            let result = self.append(batch);
            state = self.state.lock().unwrap();
            state.flushing = false;
            state.last_flush = Some(Instant::now());
            state.durable = last;
            if let Err(why) = result {
                state.failures.push_back((first, last, why));
                while state.failures.len() > 64 {
                    state.failures.pop_front();
                }
            }
            self.flushed.notify_all();
        }
    }

    fn append(&self, batch: Vec<(Topic, Value)>) -> Result<(), EmitError> {
        let mut by_topic: BTreeMap<Topic, EventDecoder> = BTreeMap::new();
        for (topic, value) in batch {
            let decoder = by_topic.entry(topic).or_insert_with(|| {
                EventDecoder::new(
                    topic,
                    EnvelopeDefaults {
                        source: SOURCE.into(),
                    },
                )
            });
            decoder
                .push_value(value)
                .map_err(|r| EmitError::InvalidEvent {
                    table: topic.table(),
                    reason: r.reason,
                })?;
        }
        for (topic, mut decoder) in by_topic {
            let batch = decoder.finish();
            self.log
                .append(topic, &batch)
                .map_err(|e| EmitError::Append {
                    topic: topic.name(),
                    source: Arc::new(e),
                })?;
        }
        Ok(())
    }
}
