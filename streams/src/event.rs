//! Events built by omnistream itself (the codegen job, the CLI's requests): the envelope written
//! once, from the registry's names, and every payload field checked against the topic's fields,
//! so a mistyped key is an error instead of a column silently left null.

use serde_json::{Map, Value};

use crate::error::{Result, StreamsError};
use crate::registry::{Topic, envelope};

/// One event of a topic, as JSON that the ingest decoder reads (and validates) like any other.
#[derive(Debug, Clone)]
pub struct Event {
    topic: Topic,
    id: String,
    fields: Map<String, Value>,
}

impl Event {
    /// A new event (fresh UUIDv7, emitted now) in the generation `correlation_id`, caused by
    /// `causation_id`, from `source`.
    pub fn new(
        topic: Topic,
        correlation_id: &str,
        causation_id: Option<&str>,
        source: &str,
    ) -> Event {
        Event::with_id(
            topic,
            uuid::Uuid::now_v7().to_string(),
            correlation_id,
            causation_id,
            source,
        )
    }

    /// As [`Event::new`], with an id of the caller's.
    pub fn with_id(
        topic: Topic,
        id: String,
        correlation_id: &str,
        causation_id: Option<&str>,
        source: &str,
    ) -> Event {
        let mut fields = Map::new();
        fields.insert(envelope::EVENT_ID.into(), Value::String(id.clone()));
        fields.insert(envelope::CORRELATION_ID.into(), correlation_id.into());
        fields.insert(
            envelope::CAUSATION_ID.into(),
            causation_id.map_or(Value::Null, Value::from),
        );
        fields.insert(envelope::SOURCE.into(), source.into());
        fields.insert(
            envelope::EMITTED_AT.into(),
            chrono::Utc::now()
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
                .into(),
        );
        Event { topic, id, fields }
    }

    /// When the event happened, if not now (RFC 3339): for simulated or imported history.
    pub fn emitted_at(mut self, rfc3339: &str) -> Event {
        self.fields
            .insert(envelope::EMITTED_AT.into(), rfc3339.into());
        self
    }

    /// Add the payload's fields; each must be one of the topic's fields.
    pub fn payload(mut self, payload: Value) -> Result<Event> {
        let Value::Object(payload) = payload else {
            return Err(StreamsError::PayloadNotObject {
                topic: self.topic.name().to_string(),
            });
        };
        let spec = self.topic.spec();
        for (key, value) in payload {
            if spec.field(&key).is_none() {
                return Err(StreamsError::UnknownField {
                    topic: self.topic.name().to_string(),
                    field: key,
                });
            }
            self.fields.insert(key, value);
        }
        Ok(self)
    }

    pub fn topic(&self) -> Topic {
        self.topic
    }

    /// The event's id, for the causation chain.
    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn into_json(self) -> Value {
        Value::Object(self.fields)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_envelope_comes_from_the_registry_and_unknown_fields_are_refused() {
        let e = Event::new(Topic::ModelCall, "c", Some("p"), "me")
            .payload(serde_json::json!({"model": "m", "latency_ms": 1.0}))
            .unwrap();
        let id = e.id().to_string();
        let v = e.into_json();
        for name in [
            envelope::EVENT_ID,
            envelope::CORRELATION_ID,
            envelope::CAUSATION_ID,
            envelope::SOURCE,
            envelope::EMITTED_AT,
        ] {
            assert!(Topic::ModelCall.spec().field(name).is_some(), "{name}");
            assert!(v.get(name).is_some(), "{name}");
        }
        assert_eq!(v[envelope::EVENT_ID], id);
        let err = Event::new(Topic::ModelCall, "c", None, "me")
            .payload(serde_json::json!({"modle": "m"}))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "topic onex.evt.codegen.model-call.v1 has no field 'modle'"
        );
    }
}
