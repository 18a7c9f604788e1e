//! JSON events to Arrow rows of a topic's schema, one line at a time, with a precise reason for
//! every line that cannot be accepted.
//!
//! Plain flat lines take the fast path ([`flat`]); every other line takes the general walk
//! ([`walk`]): simd-json indexes the line, then serde visitors read each key once, without
//! building a map, looking it up among the topic's fields (and their upstream aliases) and reading
//! its value straight into a borrowed value ([`convert`] checks it against the field's type). A
//! line is checked completely before anything is appended to the column builders ([`column`]), so
//! a rejected line leaves no trace in the batch; [`reject`] says why it was rejected.

use std::borrow::Cow;
use std::cell::RefCell;

use arrow::array::{ArrayRef, RecordBatch};
use omnistream_streams::envelope;
use omnistream_streams::{FieldType, Topic};
use serde::de::{Deserializer as _, IgnoredAny};
use serde_json::Value;

mod column;
mod convert;
mod flat;
mod reject;
mod walk;

use column::{Cell, Column};
use convert::{Plain, Raw, convert, expect_str, metadata_cell, rfc3339_micros};
pub use reject::{RejectKind, Rejection};
use reject::{json_kind, json_kind_of_text, truncate};
use walk::ObjectVisitor;

/// Values filled in when an event leaves an envelope field out.
#[derive(Debug, Clone)]
pub struct EnvelopeDefaults {
    /// `source` of events that do not name one.
    pub source: String,
}

impl Default for EnvelopeDefaults {
    fn default() -> Self {
        EnvelopeDefaults {
            source: "omnistream-ingest".into(),
        }
    }
}

/// Field names are short keys: rustc's Fx hash beats SipHash several times over on them.
type KeyMap<K, V> = rustc_hash::FxHashMap<K, V>;

/// What a JSON key means for a topic.
#[derive(Debug, Clone, Copy)]
enum Key {
    Field(usize),
    Metadata,
    Payload,
}

/// What a column is to the checks: envelope fields have defaults and rules of their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    EventId,
    CorrelationId,
    EventType,
    Source,
    EmittedAt,
    SchemaVersion,
    Metadata,
    Other,
}

impl Role {
    fn of(name: &str) -> Role {
        match name {
            envelope::EVENT_ID => Role::EventId,
            envelope::CORRELATION_ID => Role::CorrelationId,
            envelope::EVENT_TYPE => Role::EventType,
            envelope::SOURCE => Role::Source,
            envelope::EMITTED_AT => Role::EmittedAt,
            envelope::SCHEMA_VERSION => Role::SchemaVersion,
            envelope::METADATA => Role::Metadata,
            _ => Role::Other,
        }
    }
}

/// How a topic's JSON maps onto its columns.
struct Layout {
    /// Each column's role, by index: decided once, not by comparing names on every line.
    roles: Vec<Role>,
    topic: Topic,
    defaults: EnvelopeDefaults,
    keys: KeyMap<&'static str, Key>,
    /// The known keys of the last top-level object, by position: producers write their keys in
    /// the same order line after line, so a key is first compared with the one seen at its
    /// position (one string comparison) before it is hashed and looked up.
    order: RefCell<Vec<Option<(&'static str, Key)>>>,
    /// Fields that can also come from a nested path (`capabilities/metadata/node_type`).
    path_aliases: Vec<(usize, Vec<&'static str>)>,
    fields: usize,
}

/// Decodes JSON events of one topic into record batches of its schema.
pub struct EventDecoder {
    layout: Layout,
    columns: Vec<Column>,
    rows: usize,
    /// The line being decoded: the parser unescapes strings in place, so it works on a copy.
    scratch: Vec<u8>,
    /// The parser's working memory, kept between lines.
    buffers: simd_json::Buffers,
    /// Whether plain flat lines take the fast path ([`flat`]); off only to test it against the
    /// general walk.
    fast_path: bool,
    /// The fast path's vectors between lines (empty).
    spare_values: Vec<Plain<'static>>,
    spare_times: Vec<i64>,
}

/// An empty vector of another lifetime in the same memory: collecting from a vector's iterator
/// into one of the same element layout reuses its allocation.
fn recycle<T, U>(mut vector: Vec<T>) -> Vec<U> {
    vector.clear();
    vector
        .into_iter()
        .map(|_| unreachable!("cleared"))
        .collect()
}

/// What one line holds, borrowed from its text.
struct Parsed<'de> {
    values: Vec<Option<Raw<'de>>>,
    metadata: Option<Value>,
    unknown: Vec<(Cow<'de, str>, Value)>,
}

impl EventDecoder {
    pub fn new(topic: Topic, defaults: EnvelopeDefaults) -> Self {
        let spec = topic.spec();
        let columns = spec.fields.iter().map(|f| Column::new(f.ty)).collect();
        let mut keys: KeyMap<&'static str, Key> = KeyMap::default();
        let mut path_aliases = Vec::new();
        for (i, field) in spec.fields.iter().enumerate() {
            if field.name == envelope::METADATA {
                keys.insert(field.name, Key::Metadata);
                continue;
            }
            for alias in field.aliases {
                if alias.contains('/') {
                    path_aliases.push((i, alias.split('/').collect()));
                } else {
                    keys.entry(alias).or_insert(Key::Field(i));
                }
            }
            keys.insert(field.name, Key::Field(i));
        }
        keys.entry("payload").or_insert(Key::Payload);
        let fields = spec.fields.len();
        EventDecoder {
            layout: Layout {
                roles: spec.fields.iter().map(|f| Role::of(f.name)).collect(),
                topic,
                defaults,
                keys,
                order: RefCell::new(Vec::new()),
                path_aliases,
                fields,
            },
            columns,
            rows: 0,
            scratch: Vec::new(),
            buffers: simd_json::Buffers::new(1024),
            fast_path: true,
            spare_values: Vec::new(),
            spare_times: Vec::new(),
        }
    }

    pub fn topic(&self) -> Topic {
        self.layout.topic
    }

    /// Rows decoded since the last [`finish`](Self::finish).
    pub fn len(&self) -> usize {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Decode one JSON value (an object). On error nothing is added.
    pub fn push_value(&mut self, value: Value) -> Result<(), Rejection> {
        self.push_line(value.to_string().as_bytes())
    }

    /// Decode one line of JSON. On error nothing is added.
    pub fn push_line(&mut self, line: &[u8]) -> Result<(), Rejection> {
        let text = match std::str::from_utf8(line) {
            Ok(text) => text,
            Err(e) => {
                return Err(Rejection::new(
                    RejectKind::InvalidUtf8,
                    None,
                    format!("invalid UTF-8 at byte {}", e.valid_up_to()),
                ));
            }
        };
        if self.fast_path {
            // The previous line's vectors, hot in cache, serve this one.
            let mut values: Vec<Plain> = recycle(std::mem::take(&mut self.spare_values));
            values.resize(self.layout.fields, Plain::Null);
            if flat::scan(&self.layout, text, &mut values).is_some() {
                // A line whose every value is plainly of its column's type goes straight into
                // the builders; any other is checked into cells, which also explains rejections.
                let mut times = std::mem::take(&mut self.spare_times);
                if self.layout.plain(&values, &mut times) {
                    self.append_plain(&values, &times);
                    self.spare_times = times;
                    self.spare_values = recycle(values);
                    return Ok(());
                }
                self.spare_times = times;
                let cells = self.layout.check(Parsed {
                    values: values.iter().map(|v| v.raw()).collect(),
                    metadata: None,
                    unknown: Vec::new(),
                })?;
                self.push_cells(cells);
                return Ok(());
            }
            self.spare_values = recycle(values);
        }
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        scratch.extend_from_slice(line);
        let result = self
            .layout
            .decode(&mut scratch, text, &mut self.buffers)
            .map(|cells| self.push_cells(cells));
        self.scratch = scratch;
        result
    }

    /// Append a line that [`Layout::plain`] accepted, straight from its values: what
    /// [`Layout::check`] would make of them, without the cells in between.
    fn append_plain(&mut self, values: &[Plain], times: &[i64]) {
        let spec = self.layout.topic.spec();
        let lines = self.columns.iter_mut().zip(&self.layout.roles).zip(values);
        for (i, ((column, role), value)) in lines.enumerate() {
            match (column, role, *value) {
                (Column::Utf8(b), _, Plain::Str(s)) => b.append_value(s),
                (Column::Int64(b), _, Plain::I64(v)) => b.append_value(v),
                (Column::Float64(b), _, Plain::F64(v)) => b.append_value(v),
                (Column::Float64(b), _, Plain::I64(v)) => b.append_value(v as f64),
                (Column::Boolean(b), _, Plain::Bool(v)) => b.append_value(v),
                (Column::Timestamp(b), _, Plain::Str(_)) => b.append_value(times[i]),
                (Column::Utf8(b), Role::EventType, Plain::Null) => b.append_value(spec.event_type),
                (Column::Utf8(b), Role::Source, Plain::Null) => {
                    b.append_value(&self.layout.defaults.source)
                }
                (Column::Int64(b), Role::SchemaVersion, Plain::Null) => {
                    b.append_value(spec.version)
                }
                (column, _, Plain::Null) => column.push(Cell::Null),
                (_, _, value) => {
                    unreachable!("{value:?} passed Layout::plain: a decoder bug")
                }
            }
        }
        self.rows += 1;
    }

    /// Append one checked line.
    fn push_cells(&mut self, cells: Vec<Cell>) {
        for (column, cell) in self.columns.iter_mut().zip(cells) {
            column.push(cell);
        }
        self.rows += 1;
    }

    /// Take the rows decoded so far as a record batch, and start afresh.
    pub fn finish(&mut self) -> RecordBatch {
        let columns: Vec<ArrayRef> = self.columns.iter_mut().map(Column::finish).collect();
        self.rows = 0;
        RecordBatch::try_new(self.layout.topic.schema(), columns)
            .expect("decoded columns match the topic schema")
    }
}

impl Layout {
    /// The key seen at `position` of the last top-level object that had one there, and what it means.
    fn predicted(&self, position: usize) -> Option<(&'static str, Key)> {
        self.order.borrow().get(position).copied().flatten()
    }

    /// What `key` means. `position` (top-level keys only) is the key's place in its object, for
    /// the prediction from the previous line's order.
    fn lookup(&self, key: &str, position: Option<usize>) -> Option<Key> {
        // Past the topic's few dozen fields, objects are odd enough not to predict.
        let Some(at) = position.filter(|&p| p < 256) else {
            return self.keys.get(key).copied();
        };
        let mut order = self.order.borrow_mut();
        if let Some(Some((name, known))) = order.get(at)
            && *name == key
        {
            return Some(*known);
        }
        let found = self.keys.get_key_value(key).map(|(name, k)| (*name, *k));
        if order.len() <= at {
            order.resize(at + 1, None);
        }
        order[at] = found;
        found.map(|(_, k)| k)
    }

    /// Parse one line (`buf`, a copy of `text` that the parser may modify) into checked cells.
    fn decode<'de>(
        &self,
        buf: &'de mut [u8],
        text: &str,
        buffers: &mut simd_json::Buffers,
    ) -> Result<Vec<Cell<'de>>, Rejection> {
        let mut parsed = Parsed {
            values: (0..self.fields).map(|_| None).collect(),
            metadata: None,
            unknown: Vec::new(),
        };
        let mut type_error = None;
        self.parse_object(buf, text, buffers, &mut parsed, &mut type_error)?;
        if let Some(rejection) = type_error {
            return Err(rejection);
        }
        self.resolve_path_aliases(&mut parsed)?;
        self.check(parsed)
    }

    /// Walk one JSON object (simd-json: SIMD structural indexing, then a serde walk that borrows
    /// strings from `buf`). `type_error` keeps the first value that does not fit its field; the
    /// walk goes on so that malformed JSON later in the line is still reported as such.
    fn parse_object<'de>(
        &self,
        buf: &'de mut [u8],
        text: &str,
        buffers: &mut simd_json::Buffers,
        parsed: &mut Parsed<'de>,
        type_error: &mut Option<Rejection>,
    ) -> Result<(), Rejection> {
        let result = simd_json::Deserializer::from_slice_with_buffers(buf, buffers)
            .map_err(|e| e.to_string())
            .and_then(|mut de| {
                let visitor = ObjectVisitor {
                    decoder: self,
                    parsed,
                    type_error,
                    top_level: true,
                };
                (&mut de)
                    .deserialize_map(visitor)
                    .map_err(|e| e.to_string())
            });
        result.map_err(|e| {
            if !text.trim_start().starts_with('{') {
                match serde_json::from_str::<IgnoredAny>(text) {
                    Ok(_) => Rejection::new(
                        RejectKind::NotAnObject,
                        None,
                        format!("expected a JSON object, got {}", json_kind_of_text(text)),
                    ),
                    Err(e) => Rejection::new(
                        RejectKind::MalformedJson,
                        None,
                        format!("malformed JSON: {e}"),
                    ),
                }
            } else if let Err(e) = serde_json::from_str::<IgnoredAny>(text) {
                // serde_json says where, in line and column terms people know.
                Rejection::new(
                    RejectKind::MalformedJson,
                    None,
                    format!("malformed JSON: {e}"),
                )
            } else {
                Rejection::new(
                    RejectKind::MalformedJson,
                    None,
                    format!("malformed JSON: {e}"),
                )
            }
        })
    }

    /// Fields still missing that an upstream producer may send nested, e.g. under `capabilities`.
    fn resolve_path_aliases<'de>(&self, parsed: &mut Parsed<'de>) -> Result<(), Rejection> {
        let spec = self.topic.spec();
        for (index, path) in &self.path_aliases {
            if parsed.values[*index].is_some() {
                continue;
            }
            let Some((_, root)) = parsed.unknown.iter().find(|(k, _)| k == path[0]) else {
                continue;
            };
            let mut value = root.clone();
            for part in &path[1..] {
                value = match value {
                    Value::Object(mut m) => m.remove(*part).unwrap_or(Value::Null),
                    _ => Value::Null,
                };
            }
            let field = &spec.fields[*index];
            parsed.values[*index] = match value {
                Value::Null => None,
                Value::String(s) => Some(Raw::Str(Cow::Owned(s))),
                Value::Bool(b) => Some(Raw::Bool(b)),
                Value::Number(n) => Some(match (n.as_i64(), n.as_u64()) {
                    (Some(i), _) => Raw::I64(i),
                    (None, Some(u)) => Raw::U64(u),
                    _ => Raw::F64(n.as_f64().unwrap_or(f64::NAN)),
                }),
                Value::Array(items) if field.ty == FieldType::Utf8List => {
                    let mut list = Vec::with_capacity(items.len());
                    let mut bad = None;
                    for item in items {
                        match item {
                            Value::String(s) => list.push(Some(Cow::Owned(s))),
                            Value::Null => list.push(None),
                            other => bad = Some(json_kind(&other)),
                        }
                    }
                    Some(bad.map_or(Raw::List(list), Raw::BadList))
                }
                Value::Array(_) => Some(Raw::Array),
                Value::Object(_) => Some(Raw::Object),
            };
        }
        Ok(())
    }

    /// Whether a flat line's values (no metadata, no unknown keys) are each plainly of their
    /// column's type, with nothing to assign but constants: then [`check`](Self::check) would
    /// accept the line and take every value as it is. Timestamps are parsed into `times`, by
    /// field index. Anything else (a default to assign afresh, a conversion that can fail, an id
    /// to canonicalize) is `false`, for `check` to decide.
    fn plain(&self, values: &[Plain], times: &mut Vec<i64>) -> bool {
        let spec = self.topic.spec();
        times.clear();
        times.resize(values.len(), 0);
        let fields = spec.fields.iter().zip(&self.roles).zip(values);
        for (i, ((field, role), value)) in fields.enumerate() {
            let plain = match (role, *value) {
                // A new UUID, the time now, or the new id: assigned by `check`.
                (Role::EventId | Role::CorrelationId | Role::EmittedAt, Plain::Null) => false,
                (Role::EventId, Plain::Str(id)) => envelope::canonical_uuid(id).is_some(),
                (Role::EventType | Role::Source | Role::SchemaVersion, Plain::Null) => true,
                (Role::SchemaVersion, Plain::I64(version)) => version == spec.version,
                (_, Plain::Null) => !field.required,
                (_, value) => match (field.ty, value) {
                    (FieldType::Utf8, Plain::Str(_)) | (FieldType::Int64, Plain::I64(_)) => true,
                    (FieldType::Float64, Plain::F64(_) | Plain::I64(_)) => true,
                    (FieldType::Boolean, Plain::Bool(_)) => true,
                    (FieldType::Timestamp, Plain::Str(text)) => match rfc3339_micros(text) {
                        Ok(micros) => {
                            times[i] = micros;
                            true
                        }
                        Err(_) => false,
                    },
                    _ => false,
                },
            };
            if !plain {
                return false;
            }
        }
        true
    }

    /// Check every field against its type, fill envelope defaults, and assemble `metadata`.
    fn check<'de>(&self, parsed: Parsed<'de>) -> Result<Vec<Cell<'de>>, Rejection> {
        let spec = self.topic.spec();
        let mut event_id: Option<uuid::Uuid> = None;
        let mut cells = Vec::with_capacity(self.fields);
        let Parsed {
            values,
            mut metadata,
            mut unknown,
        } = parsed;
        for ((field, role), value) in spec.fields.iter().zip(&self.roles).zip(values) {
            let cell = match (role, value) {
                (Role::Metadata, _) => {
                    metadata_cell(metadata.take(), std::mem::take(&mut unknown))?
                }
                (Role::EventId, None) => {
                    let id = uuid::Uuid::now_v7();
                    event_id = Some(id);
                    Cell::Str(Cow::Owned(id.hyphenated().to_string()))
                }
                (Role::EventId, Some(v)) => {
                    let s = expect_str(field, v)?;
                    // Producers almost always send the canonical form: then it is kept as is.
                    if let Some(id) = envelope::canonical_uuid(&s) {
                        event_id = Some(uuid::Uuid::from_u128(id));
                        cells.push(Cell::Str(s));
                        continue;
                    }
                    let id = uuid::Uuid::parse_str(&s).map_err(|_| {
                        Rejection::new(
                            RejectKind::InvalidValue,
                            Some(field.name),
                            format!("event_id '{}' is not a UUID", truncate(&s, 80)),
                        )
                    })?;
                    // Canonical form, so that the same id in another spelling still dedups.
                    let mut buffer = uuid::Uuid::encode_buffer();
                    let canonical = id.hyphenated().encode_lower(&mut buffer);
                    event_id = Some(id);
                    if canonical == s.as_ref() {
                        Cell::Str(s)
                    } else {
                        Cell::Str(Cow::Owned(canonical.to_string()))
                    }
                }
                (Role::CorrelationId, None) => Cell::Str(Cow::Owned(
                    event_id
                        .expect("event_id precedes correlation_id")
                        .hyphenated()
                        .to_string(),
                )),
                (Role::EventType, None) => Cell::Str(Cow::Borrowed(spec.event_type)),
                (Role::Source, None) => Cell::Str(Cow::Owned(self.defaults.source.clone())),
                (Role::EmittedAt, None) => Cell::Ts(chrono::Utc::now().timestamp_micros()),
                (Role::SchemaVersion, None) => Cell::I64(spec.version),
                (Role::SchemaVersion, Some(v)) => {
                    let Cell::I64(version) = convert(field, v)? else {
                        unreachable!()
                    };
                    if version != spec.version {
                        return Err(Rejection::new(
                            RejectKind::InvalidValue,
                            Some(field.name),
                            format!(
                                "schema_version {version} is not served by {} (version {})",
                                spec.name, spec.version
                            ),
                        ));
                    }
                    Cell::I64(version)
                }
                (_, None) if field.required => {
                    return Err(Rejection::new(
                        RejectKind::MissingField,
                        Some(field.name),
                        format!(
                            "required field '{}' ({}) is missing",
                            field.name,
                            field.ty.json_shape()
                        ),
                    ));
                }
                (_, None) => Cell::Null,
                (_, Some(v)) => convert(field, v)?,
            };
            cells.push(cell);
        }
        Ok(cells)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{Float64Type, Int64Type, TimestampMicrosecondType};

    #[test]
    fn a_line_s_values_and_cells_are_small_to_move() {
        // Every line the general walk reads or `check` converts moves a few dozen of each: a
        // variant that grows them costs every such line.
        assert!(size_of::<Option<Raw>>() <= 32);
        assert!(size_of::<Cell>() <= 32);
    }

    #[test]
    fn recycled_vectors_keep_their_memory() {
        // The fast path relies on this to not allocate per line; a std change would show here.
        let values: Vec<Plain<'static>> = Vec::with_capacity(32);
        let at = values.as_ptr() as usize;
        let line = String::from("x");
        let mut reused: Vec<Plain<'_>> = recycle(values);
        reused.push(Plain::Str(&line));
        assert_eq!(reused.as_ptr() as usize, at);
        assert!(reused.capacity() >= 32);
    }

    fn decoder(topic: Topic) -> EventDecoder {
        EventDecoder::new(topic, EnvelopeDefaults::default())
    }

    #[test]
    fn a_full_model_call_becomes_one_typed_row() {
        let mut d = decoder(Topic::ModelCall);
        d.push_line(br#"{"event_id":"0192F0A0-0000-7000-8000-000000000001","correlation_id":"c1","emitted_at":"2026-11-26T10:00:00.5Z","model":"gpt-4o-mini","prompt_tokens":120,"output_tokens":30,"latency_ms":812.5,"success":true,"extra":{"k":1}}"#).unwrap();
        let b = d.finish();
        assert_eq!(b.num_rows(), 1);
        let col = |n: &str| b.column_by_name(n).unwrap().clone();
        assert_eq!(
            col("event_id").as_string::<i32>().value(0),
            "0192f0a0-0000-7000-8000-000000000001"
        );
        assert_eq!(col("correlation_id").as_string::<i32>().value(0), "c1");
        assert_eq!(
            col("input_tokens").as_primitive::<Int64Type>().value(0),
            120
        );
        assert_eq!(
            col("latency_ms").as_primitive::<Float64Type>().value(0),
            812.5
        );
        assert_eq!(
            col("emitted_at")
                .as_primitive::<TimestampMicrosecondType>()
                .value(0),
            chrono::DateTime::parse_from_rfc3339("2026-11-26T10:00:00.5Z")
                .unwrap()
                .timestamp_micros()
        );
        assert_eq!(col("event_type").as_string::<i32>().value(0), "MODEL_CALL");
        assert_eq!(
            col("schema_version").as_primitive::<Int64Type>().value(0),
            1
        );
        assert!(col("cost_usd").is_null(0));
        assert_eq!(
            col("metadata").as_string::<i32>().value(0),
            r#"{"extra":{"k":1}}"#
        );
    }

    #[test]
    fn envelope_defaults_fill_what_is_missing() {
        let mut d = decoder(Topic::GenerationRequested);
        d.push_line(br#"{"prompt":"Create PostgreSQL writer Effect node"}"#)
            .unwrap();
        let b = d.finish();
        let id = b
            .column_by_name("event_id")
            .unwrap()
            .as_string::<i32>()
            .value(0)
            .to_string();
        assert_eq!(uuid::Uuid::parse_str(&id).unwrap().get_version_num(), 7);
        assert_eq!(
            b.column_by_name("correlation_id")
                .unwrap()
                .as_string::<i32>()
                .value(0),
            id
        );
        assert_eq!(
            b.column_by_name("source")
                .unwrap()
                .as_string::<i32>()
                .value(0),
            "omnistream-ingest"
        );
    }

    #[test]
    fn upstream_nested_shapes_are_accepted() {
        let mut d = decoder(Topic::NodeIntrospection);
        d.push_line(br#"{"event_type":"NODE_INTROSPECTION","payload":{"node_id":"n1","node_name":"NodePostgresWriterEffect","version":"1.0.0","capabilities":{"actions":["write"],"protocols":["http"],"metadata":{"node_type":"effect","domain":"data"}}}}"#).unwrap();
        let b = d.finish();
        let s = |n: &str| {
            b.column_by_name(n)
                .unwrap()
                .as_string::<i32>()
                .value(0)
                .to_string()
        };
        assert_eq!(s("node_id"), "n1");
        assert_eq!(s("node_version"), "1.0.0");
        assert_eq!(s("node_type"), "effect");
        assert_eq!(s("domain"), "data");
        let actions = b
            .column_by_name("actions")
            .unwrap()
            .as_list::<i32>()
            .value(0);
        assert_eq!(actions.as_string::<i32>().value(0), "write");
    }

    #[test]
    fn every_kind_of_bad_line_is_rejected_with_a_reason_and_leaves_no_trace() {
        let cases: &[(&[u8], RejectKind, Option<&str>)] = &[
            (b"{not json", RejectKind::MalformedJson, None),
            (b"[1,2]", RejectKind::NotAnObject, None),
            (b"\xff\xfe{}", RejectKind::InvalidUtf8, None),
            (
                br#"{"latency_ms":1,"success":true}"#,
                RejectKind::MissingField,
                Some("model"),
            ),
            (
                br#"{"model":null,"latency_ms":1,"success":true}"#,
                RejectKind::MissingField,
                Some("model"),
            ),
            (
                br#"{"model":"m","latency_ms":"fast","success":true}"#,
                RejectKind::WrongType,
                Some("latency_ms"),
            ),
            (
                br#"{"model":"m","latency_ms":1,"success":"yes"}"#,
                RejectKind::WrongType,
                Some("success"),
            ),
            (
                br#"{"model":"m","latency_ms":1,"success":true,"input_tokens":1.5}"#,
                RejectKind::WrongType,
                Some("input_tokens"),
            ),
            (
                br#"{"model":7,"latency_ms":1,"success":true}"#,
                RejectKind::WrongType,
                Some("model"),
            ),
            (
                br#"{"model":"m","latency_ms":1,"success":true,"emitted_at":"yesterday"}"#,
                RejectKind::InvalidValue,
                Some("emitted_at"),
            ),
            (
                br#"{"model":"m","latency_ms":1,"success":true,"event_id":"42"}"#,
                RejectKind::InvalidValue,
                Some("event_id"),
            ),
            (
                br#"{"model":"m","latency_ms":1,"success":true,"schema_version":2}"#,
                RejectKind::InvalidValue,
                Some("schema_version"),
            ),
            (
                br#"{"model":"m","latency_ms":1,"success":true,"metadata":[1]}"#,
                RejectKind::WrongType,
                Some("metadata"),
            ),
        ];
        let mut d = decoder(Topic::ModelCall);
        for (line, kind, field) in cases {
            let err = d.push_line(line).unwrap_err();
            assert_eq!(
                err.kind,
                *kind,
                "{}: {}",
                String::from_utf8_lossy(line),
                err.reason
            );
            assert_eq!(err.field.as_deref(), *field, "{}", err.reason);
            assert!(!err.reason.is_empty());
        }
        assert_eq!(d.len(), 0);
        d.push_line(br#"{"model":"m","latency_ms":1,"success":true}"#)
            .unwrap();
        let b = d.finish();
        assert_eq!(b.num_rows(), 1);
        b.columns().iter().for_each(|c| assert_eq!(c.len(), 1));
    }

    #[test]
    fn the_walk_handles_escapes_duplicates_aliases_and_payload_conflicts() {
        let mut d = decoder(Topic::ModelCall);
        // Escaped strings are decoded; a repeated key keeps its last value; the field's own name
        // wins over an alias; JSON values of `Json` fields... (none here); unknown nested values are kept.
        d.push_line(br#"{"model":"a","model":"gpt-\u00e9","model_name":"ignored","latency_ms":1,"success":true,"x":{"y":[1,2]}}"#).unwrap();
        let b = d.finish();
        assert_eq!(
            b.column_by_name("model")
                .unwrap()
                .as_string::<i32>()
                .value(0),
            "gpt-\u{e9}"
        );
        assert_eq!(
            b.column_by_name("metadata")
                .unwrap()
                .as_string::<i32>()
                .value(0),
            r#"{"x":{"y":[1,2]}}"#
        );

        let err = d
            .push_line(br#"{"model":"a","latency_ms":1,"success":true,"payload":{"model":"b"}}"#)
            .unwrap_err();
        assert_eq!(
            (err.kind, err.field.as_deref()),
            (RejectKind::InvalidValue, Some("model"))
        );
        let err = d.push_line(br#"{"model":"a","latency_ms":1,"success":true,"input_tokens":18446744073709551615}"#).unwrap_err();
        assert_eq!(
            (err.kind, err.field.as_deref()),
            (RejectKind::InvalidValue, Some("input_tokens"))
        );
        let err = d
            .push_line(br#"{"model":["a"],"latency_ms":1,"success":true}"#)
            .unwrap_err();
        assert_eq!(err.reason, "field 'model' must be string, got an array");
        let err = d
            .push_line(br#"{"model":"a","latency_ms":1,"success":true} trailing"#)
            .unwrap_err();
        assert_eq!(err.kind, RejectKind::MalformedJson);
        // A payload that is not an object is kept, not dropped.
        d.push_line(br#"{"model":"a","latency_ms":1,"success":true,"payload":"opaque"}"#)
            .unwrap();
        let b = d.finish();
        assert_eq!(b.num_rows(), 1);
        assert_eq!(
            b.column_by_name("metadata")
                .unwrap()
                .as_string::<i32>()
                .value(0),
            r#"{"payload":"opaque"}"#
        );

        let mut d = decoder(Topic::StageCompleted);
        d.push_line(br#"{"stage_name":"s","duration_seconds":1,"success":true,"stage_output":{"files":2},"warnings":["w",null]}"#).unwrap();
        let b = d.finish();
        assert_eq!(
            b.column_by_name("stage_output")
                .unwrap()
                .as_string::<i32>()
                .value(0),
            r#"{"files":2}"#
        );
        let warnings = b
            .column_by_name("warnings")
            .unwrap()
            .as_list::<i32>()
            .value(0);
        assert_eq!((warnings.len(), warnings.null_count()), (2, 1));
        let err = d
            .push_line(
                br#"{"stage_name":"s","duration_seconds":1,"success":true,"warnings":["w",3]}"#,
            )
            .unwrap_err();
        assert_eq!(
            err.reason,
            "field 'warnings' must be an array of strings, found an integer in it"
        );
    }

    /// The key at a position is predicted from the previous line; lines in another order, with an
    /// alias or an unknown key where a known one was, still decode by name.
    #[test]
    fn keys_decode_by_name_whatever_the_previous_line_s_order() {
        let mut d = EventDecoder::new(Topic::ModelCall, EnvelopeDefaults::default());
        let lines: [&[u8]; 4] = [
            br#"{"correlation_id":"a","model":"m1","input_tokens":1,"output_tokens":10,"latency_ms":1,"success":true}"#,
            br#"{"correlation_id":"b","model":"m2","input_tokens":2,"output_tokens":20,"latency_ms":2,"success":true}"#,
            br#"{"success":true,"latency_ms":3,"output_tokens":30,"input_tokens":3,"model":"m3","correlation_id":"c"}"#,
            br#"{"correlation_id":"d","model":"m4","prompt_tokens":4,"surprise":40,"latency_ms":4,"success":false}"#,
        ];
        for line in lines {
            d.push_line(line).unwrap();
        }
        let b = d.finish();
        let strings = |n: &str| -> Vec<String> {
            let c = b.column_by_name(n).unwrap().as_string::<i32>();
            (0..c.len()).map(|i| c.value(i).to_string()).collect()
        };
        let ints = |n: &str| -> Vec<Option<i64>> {
            b.column_by_name(n)
                .unwrap()
                .as_primitive::<Int64Type>()
                .iter()
                .collect()
        };
        assert_eq!(strings("correlation_id"), ["a", "b", "c", "d"]);
        assert_eq!(strings("model"), ["m1", "m2", "m3", "m4"]);
        assert_eq!(ints("input_tokens"), [Some(1), Some(2), Some(3), Some(4)]);
        assert_eq!(ints("output_tokens"), [Some(10), Some(20), Some(30), None]);
        assert!(strings("metadata")[3].contains("surprise"));
    }
}
