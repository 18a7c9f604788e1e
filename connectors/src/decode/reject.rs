//! Why a line is rejected: the kinds (the dead-letter topic's `error_kind`) and their messages.

use omnistream_streams::FieldSpec;
use serde_json::Value;

/// Why an input line was not accepted. The names are the `error_kind` column of the dead-letter topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RejectKind {
    MalformedJson,
    NotAnObject,
    WrongType,
    MissingField,
    InvalidValue,
    /// Dead letters of earlier versions: `omnistream ingest` now refuses an unknown topic before
    /// it reads a line. Kept so that such rows still have a name.
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

pub(super) fn json_kind(v: &Value) -> &'static str {
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

pub(super) fn json_kind_of_text(text: &str) -> &'static str {
    serde_json::from_str::<Value>(text)
        .map(|v| json_kind(&v))
        .unwrap_or("something else")
}

pub(super) fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    format!("{}...", &s[..s.floor_char_boundary(max)])
}

pub(super) fn wrong_type(field: &FieldSpec, kind: &str) -> Rejection {
    Rejection::new(
        RejectKind::WrongType,
        Some(field.name),
        format!(
            "field '{}' must be {}, got {}",
            field.name,
            field.ty.json_shape(),
            kind
        ),
    )
}
