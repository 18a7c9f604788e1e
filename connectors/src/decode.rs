//! JSON events to Arrow rows of a topic's schema, one line at a time, with a precise reason for
//! every line that cannot be accepted.
//!
//! A line is parsed and checked completely before anything is appended to the column builders, so
//! a rejected line leaves no trace in the batch.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryBuilder, BooleanBuilder, Float64Builder, Int64Builder, ListBuilder,
    RecordBatch, StringBuilder, TimestampMicrosecondBuilder,
};
use omnistream_streams::envelope;
use omnistream_streams::{FieldSpec, FieldType, Topic};
use serde_json::{Map, Value};

/// Why an input line was not accepted. The names are the `error_kind` column of the dead-letter topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RejectKind {
    MalformedJson,
    NotAnObject,
    WrongType,
    MissingField,
    InvalidValue,
    UnknownTopic,
    InvalidUtf8,
    TooLarge,
}

impl RejectKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RejectKind::MalformedJson => "malformed_json",
            RejectKind::NotAnObject => "not_an_object",
            RejectKind::WrongType => "wrong_type",
            RejectKind::MissingField => "missing_field",
            RejectKind::InvalidValue => "invalid_value",
            RejectKind::UnknownTopic => "unknown_topic",
            RejectKind::InvalidUtf8 => "invalid_utf8",
            RejectKind::TooLarge => "too_large",
        }
    }
}

/// A rejected event: what kind of problem, in which field, said in one line.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    pub kind: RejectKind,
    pub field: Option<String>,
    pub reason: String,
}

impl Rejection {
    pub fn new(kind: RejectKind, field: Option<&str>, reason: impl Into<String>) -> Self {
        Rejection {
            kind,
            field: field.map(str::to_string),
            reason: reason.into(),
        }
    }
}

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

/// One parsed cell, before it goes into a builder.
#[derive(Debug)]
enum Cell {
    Null,
    Str(String),
    I64(i64),
    F64(f64),
    Bool(bool),
    Ts(i64),
    List(Vec<Option<String>>),
}

enum Column {
    Utf8(StringBuilder),
    Int64(Int64Builder),
    Float64(Float64Builder),
    Boolean(BooleanBuilder),
    Timestamp(TimestampMicrosecondBuilder),
    List(ListBuilder<StringBuilder>),
    Binary(BinaryBuilder),
}

impl Column {
    fn new(ty: FieldType) -> Column {
        match ty {
            FieldType::Utf8 | FieldType::Json => Column::Utf8(StringBuilder::new()),
            FieldType::Int64 => Column::Int64(Int64Builder::new()),
            FieldType::Float64 => Column::Float64(Float64Builder::new()),
            FieldType::Boolean => Column::Boolean(BooleanBuilder::new()),
            FieldType::Timestamp => {
                Column::Timestamp(TimestampMicrosecondBuilder::new().with_timezone("UTC"))
            }
            FieldType::Utf8List => Column::List(ListBuilder::new(StringBuilder::new())),
            FieldType::Binary => Column::Binary(BinaryBuilder::new()),
        }
    }

    fn push(&mut self, cell: Cell) {
        match (self, cell) {
            (Column::Utf8(b), Cell::Str(s)) => b.append_value(s),
            (Column::Utf8(b), Cell::Null) => b.append_null(),
            (Column::Int64(b), Cell::I64(v)) => b.append_value(v),
            (Column::Int64(b), Cell::Null) => b.append_null(),
            (Column::Float64(b), Cell::F64(v)) => b.append_value(v),
            (Column::Float64(b), Cell::Null) => b.append_null(),
            (Column::Boolean(b), Cell::Bool(v)) => b.append_value(v),
            (Column::Boolean(b), Cell::Null) => b.append_null(),
            (Column::Timestamp(b), Cell::Ts(v)) => b.append_value(v),
            (Column::Timestamp(b), Cell::Null) => b.append_null(),
            (Column::List(b), Cell::List(items)) => {
                for item in items {
                    b.values().append_option(item);
                }
                b.append(true);
            }
            (Column::List(b), Cell::Null) => b.append_null(),
            (Column::Binary(b), Cell::Null) => b.append_null(),
            (_, cell) => unreachable!("cell {cell:?} does not fit its column: a decoder bug"),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Column::Utf8(b) => Arc::new(b.finish()),
            Column::Int64(b) => Arc::new(b.finish()),
            Column::Float64(b) => Arc::new(b.finish()),
            Column::Boolean(b) => Arc::new(b.finish()),
            Column::Timestamp(b) => Arc::new(b.finish()),
            Column::List(b) => Arc::new(b.finish()),
            Column::Binary(b) => Arc::new(b.finish()),
        }
    }
}

/// Decodes JSON events of one topic into record batches of its schema.
pub struct EventDecoder {
    topic: Topic,
    defaults: EnvelopeDefaults,
    columns: Vec<Column>,
    rows: usize,
    /// Parsed cells of the line being decoded, reused between lines.
    scratch: Vec<Cell>,
}

impl EventDecoder {
    pub fn new(topic: Topic, defaults: EnvelopeDefaults) -> Self {
        let columns = topic
            .spec()
            .fields
            .iter()
            .map(|f| Column::new(f.ty))
            .collect();
        EventDecoder {
            topic,
            defaults,
            columns,
            rows: 0,
            scratch: Vec::new(),
        }
    }

    pub fn topic(&self) -> Topic {
        self.topic
    }

    /// Rows decoded since the last [`finish`](Self::finish).
    pub fn len(&self) -> usize {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Decode one line of JSON. On error nothing is added.
    pub fn push_line(&mut self, line: &[u8]) -> Result<(), Rejection> {
        let text = std::str::from_utf8(line).map_err(|e| {
            Rejection::new(
                RejectKind::InvalidUtf8,
                None,
                format!("invalid UTF-8 at byte {}", e.valid_up_to()),
            )
        })?;
        let value: Value = serde_json::from_str(text).map_err(|e| {
            Rejection::new(
                RejectKind::MalformedJson,
                None,
                format!("malformed JSON: {e}"),
            )
        })?;
        self.push_value(value)
    }

    /// Decode one JSON value (an object). On error nothing is added.
    pub fn push_value(&mut self, value: Value) -> Result<(), Rejection> {
        let Value::Object(mut object) = value else {
            return Err(Rejection::new(
                RejectKind::NotAnObject,
                None,
                format!("expected a JSON object, got {}", json_kind(&value)),
            ));
        };
        lift_payload(&mut object)?;
        let mut cells = std::mem::take(&mut self.scratch);
        cells.clear();
        let result = self.parse_fields(&mut object, &mut cells);
        if result.is_ok() {
            for (column, cell) in self.columns.iter_mut().zip(cells.drain(..)) {
                column.push(cell);
            }
            self.rows += 1;
        }
        self.scratch = cells;
        result
    }

    fn parse_fields(
        &self,
        object: &mut Map<String, Value>,
        cells: &mut Vec<Cell>,
    ) -> Result<(), Rejection> {
        let spec = self.topic.spec();
        let mut event_id = None;
        for field in &spec.fields {
            let cell = match field.name {
                envelope::METADATA => Cell::Null, // filled last, from what is left over
                _ => {
                    let value = take_field(object, field);
                    match (field.name, value) {
                        (envelope::EVENT_ID, None) => Cell::Str(uuid::Uuid::now_v7().to_string()),
                        (envelope::EVENT_ID, Some(v)) => {
                            let s = expect_string(field, v)?;
                            let id = uuid::Uuid::parse_str(&s).map_err(|_| {
                                Rejection::new(
                                    RejectKind::InvalidValue,
                                    Some(field.name),
                                    format!("event_id '{}' is not a UUID", truncate(&s, 80)),
                                )
                            })?;
                            Cell::Str(id.hyphenated().to_string())
                        }
                        (envelope::CORRELATION_ID, None) => match &event_id {
                            Some(Cell::Str(id)) => Cell::Str(id.clone()),
                            _ => unreachable!("event_id precedes correlation_id"),
                        },
                        (envelope::EVENT_TYPE, None) => Cell::Str(spec.event_type.to_string()),
                        (envelope::SOURCE, None) => Cell::Str(self.defaults.source.clone()),
                        (envelope::EMITTED_AT, None) => {
                            Cell::Ts(chrono::Utc::now().timestamp_micros())
                        }
                        (envelope::SCHEMA_VERSION, None) => Cell::I64(spec.version),
                        (envelope::SCHEMA_VERSION, Some(v)) => {
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
                    }
                }
            };
            if field.name == envelope::EVENT_ID {
                event_id = Some(match &cell {
                    Cell::Str(s) => Cell::Str(s.clone()),
                    _ => unreachable!(),
                });
            }
            cells.push(cell);
        }
        // Whatever is left is kept, not dropped: the input's `metadata` object plus unknown keys.
        let metadata_index = spec
            .fields
            .iter()
            .position(|f| f.name == envelope::METADATA)
            .unwrap();
        cells[metadata_index] = metadata_cell(std::mem::take(object))?;
        Ok(())
    }

    /// Take the rows decoded so far as a record batch, and start afresh.
    pub fn finish(&mut self) -> RecordBatch {
        let columns: Vec<ArrayRef> = self.columns.iter_mut().map(Column::finish).collect();
        self.rows = 0;
        RecordBatch::try_new(self.topic.schema(), columns)
            .expect("decoded columns match the topic schema")
    }
}

/// Accept the upstream envelope shape `{"event_id": ..., "payload": {...}}` by lifting the payload's
/// keys to the top level.
fn lift_payload(object: &mut Map<String, Value>) -> Result<(), Rejection> {
    if !matches!(object.get("payload"), Some(Value::Object(_))) {
        return Ok(());
    }
    let Some(Value::Object(payload)) = object.remove("payload") else {
        unreachable!()
    };
    for (key, value) in payload {
        if object.contains_key(&key) {
            return Err(Rejection::new(
                RejectKind::InvalidValue,
                Some(&key),
                format!("field '{key}' appears both at the top level and in 'payload'"),
            ));
        }
        object.insert(key, value);
    }
    Ok(())
}

/// Remove a field (by name, then by alias) from the object. JSON null counts as absent.
fn take_field(object: &mut Map<String, Value>, field: &FieldSpec) -> Option<Value> {
    if let Some(v) = object.remove(field.name) {
        return (!v.is_null()).then_some(v);
    }
    for alias in field.aliases {
        let value = if alias.contains('/') {
            let mut parts = alias.split('/');
            let first = parts.next().unwrap();
            let mut current = object.get(first);
            for part in parts {
                current = current.and_then(|v| v.get(part));
            }
            current.cloned()
        } else {
            object.remove(*alias)
        };
        if let Some(v) = value.filter(|v| !v.is_null()) {
            return Some(v);
        }
    }
    None
}

fn metadata_cell(mut rest: Map<String, Value>) -> Result<Cell, Rejection> {
    let mut metadata = match rest.remove(envelope::METADATA) {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m,
        Some(other) => {
            return Err(Rejection::new(
                RejectKind::WrongType,
                Some(envelope::METADATA),
                format!(
                    "field 'metadata' must be an object, got {}",
                    json_kind(&other)
                ),
            ));
        }
    };
    for (key, value) in rest {
        let key = if metadata.contains_key(&key) {
            format!("{key}__top_level")
        } else {
            key
        };
        metadata.insert(key, value);
    }
    Ok(if metadata.is_empty() {
        Cell::Null
    } else {
        Cell::Str(Value::Object(metadata).to_string())
    })
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "an integer",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

fn wrong_type(field: &FieldSpec, v: &Value) -> Rejection {
    Rejection::new(
        RejectKind::WrongType,
        Some(field.name),
        format!(
            "field '{}' must be {}, got {}",
            field.name,
            field.ty.json_shape(),
            json_kind(v)
        ),
    )
}

fn expect_string(field: &FieldSpec, v: Value) -> Result<String, Rejection> {
    match v {
        Value::String(s) => Ok(s),
        other => Err(wrong_type(field, &other)),
    }
}

fn convert(field: &FieldSpec, v: Value) -> Result<Cell, Rejection> {
    Ok(match field.ty {
        FieldType::Utf8 => Cell::Str(expect_string(field, v)?),
        FieldType::Json => match v {
            Value::String(s) => Cell::Str(s),
            other => Cell::Str(other.to_string()),
        },
        FieldType::Int64 => match &v {
            Value::Number(n) => match n.as_i64() {
                Some(i) => Cell::I64(i),
                None => {
                    return Err(Rejection::new(
                        if n.is_f64() {
                            RejectKind::WrongType
                        } else {
                            RejectKind::InvalidValue
                        },
                        Some(field.name),
                        format!("field '{}' must be a 64-bit integer, got {n}", field.name),
                    ));
                }
            },
            _ => return Err(wrong_type(field, &v)),
        },
        FieldType::Float64 => match &v {
            Value::Number(n) => Cell::F64(n.as_f64().expect("JSON numbers are finite")),
            _ => return Err(wrong_type(field, &v)),
        },
        FieldType::Boolean => match v {
            Value::Bool(b) => Cell::Bool(b),
            _ => return Err(wrong_type(field, &v)),
        },
        FieldType::Timestamp => {
            let s = expect_string(field, v)?;
            let ts = chrono::DateTime::parse_from_rfc3339(&s).map_err(|e| {
                Rejection::new(
                    RejectKind::InvalidValue,
                    Some(field.name),
                    format!(
                        "field '{}': '{}' is not an RFC 3339 timestamp ({e})",
                        field.name,
                        truncate(&s, 80)
                    ),
                )
            })?;
            Cell::Ts(ts.timestamp_micros())
        }
        FieldType::Utf8List => match v {
            Value::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    match item {
                        Value::String(s) => out.push(Some(s)),
                        Value::Null => out.push(None),
                        other => {
                            return Err(Rejection::new(
                                RejectKind::WrongType,
                                Some(field.name),
                                format!(
                                    "field '{}' must be an array of strings, found {} in it",
                                    field.name,
                                    json_kind(&other)
                                ),
                            ));
                        }
                    }
                }
                Cell::List(out)
            }
            other => return Err(wrong_type(field, &other)),
        },
        FieldType::Binary => return Err(wrong_type(field, &v)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{Float64Type, Int64Type, TimestampMicrosecondType};

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
}
