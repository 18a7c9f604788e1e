//! A generation request: what the codegen job reads from the log, and what `generate` and the
//! benches publish to it.

use arrow::array::{Array, BooleanArray, RecordBatch, StringArray, TimestampMicrosecondArray};
use omnistream_connectors::{EnvelopeDefaults, EventDecoder};
use omnistream_streams::{Event, EventLog, Topic};
use serde_json::{Value, json};

use crate::error::{CodegenError, Result};

/// The `source` of requests published by omnistream (`generate`, the benches).
const REQUEST_SOURCE: &str = "omnistream-cli";

/// A generation-requested event, as the job reads it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GenerationRequest {
    pub event_id: String,
    pub correlation_id: String,
    pub prompt: String,
    pub output_directory: Option<String>,
    pub node_type: Option<String>,
    pub model: Option<String>,
    pub enable_intelligence: Option<bool>,
    pub enable_quorum: Option<bool>,
    pub user_id: Option<String>,
    pub session_id: Option<String>,
    /// When the requester emitted it (µs since the epoch), as read from the log.
    pub emitted_at_us: Option<i64>,
}

impl GenerationRequest {
    /// A new request with fresh ids.
    pub fn new(prompt: impl Into<String>) -> Self {
        let id = uuid::Uuid::now_v7().to_string();
        GenerationRequest {
            event_id: id.clone(),
            correlation_id: id,
            prompt: prompt.into(),
            ..Default::default()
        }
    }

    /// The request as an event (JSON with the upstream field names).
    pub fn to_event(&self) -> Result<Value> {
        let event = Event::with_id(
            Topic::GenerationRequested,
            self.event_id.clone(),
            &self.correlation_id,
            None,
            REQUEST_SOURCE,
        )
        .payload(json!({
            "prompt": self.prompt, "output_directory": self.output_directory,
            "node_type": self.node_type, "model": self.model,
            "enable_intelligence": self.enable_intelligence, "enable_quorum": self.enable_quorum,
            "user_id": self.user_id, "session_id": self.session_id,
        }))?;
        Ok(event.into_json())
    }

    /// Append requests to the log (durably).
    pub fn publish(log: &dyn EventLog, requests: &[GenerationRequest]) -> Result<()> {
        let mut decoder = EventDecoder::new(
            Topic::GenerationRequested,
            EnvelopeDefaults {
                source: REQUEST_SOURCE.into(),
            },
        );
        for r in requests {
            decoder
                .push_value(r.to_event()?)
                .map_err(|e| CodegenError::InvalidRequest(e.reason))?;
        }
        log.append(Topic::GenerationRequested, &decoder.finish())?;
        Ok(())
    }

    pub(crate) fn from_batch(batch: &RecordBatch) -> Vec<GenerationRequest> {
        let text = |name: &str| {
            batch
                .column_by_name(name)
                .and_then(|c| c.as_any().downcast_ref::<StringArray>().cloned())
        };
        let flag = |name: &str| {
            batch
                .column_by_name(name)
                .and_then(|c| c.as_any().downcast_ref::<BooleanArray>().cloned())
        };
        let (ids, corr, prompt, out, ty, model, user, session) = (
            text("event_id"),
            text("correlation_id"),
            text("prompt"),
            text("output_directory"),
            text("node_type"),
            text("model"),
            text("user_id"),
            text("session_id"),
        );
        let (intel, quorum) = (flag("enable_intelligence"), flag("enable_quorum"));
        let emitted = batch.column_by_name("emitted_at").and_then(|c| {
            c.as_any()
                .downcast_ref::<TimestampMicrosecondArray>()
                .cloned()
        });
        let get = |a: &Option<StringArray>, i: usize| {
            a.as_ref()
                .filter(|a| a.is_valid(i))
                .map(|a| a.value(i).to_string())
        };
        let getb = |a: &Option<BooleanArray>, i: usize| {
            a.as_ref().filter(|a| a.is_valid(i)).map(|a| a.value(i))
        };
        (0..batch.num_rows())
            .map(|i| GenerationRequest {
                event_id: get(&ids, i).unwrap_or_default(),
                correlation_id: get(&corr, i).unwrap_or_default(),
                prompt: get(&prompt, i).unwrap_or_default(),
                output_directory: get(&out, i),
                node_type: get(&ty, i),
                model: get(&model, i),
                enable_intelligence: getb(&intel, i),
                enable_quorum: getb(&quorum, i),
                user_id: get(&user, i),
                session_id: get(&session, i),
                emitted_at_us: emitted
                    .as_ref()
                    .filter(|a| a.is_valid(i))
                    .map(|a| a.value(i)),
            })
            .collect()
    }
}
