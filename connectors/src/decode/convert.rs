//! Values as read from JSON, and their conversion to a field's type (or the reason they do not fit).

use std::borrow::Cow;

use omnistream_streams::{FieldSpec, FieldType, envelope};
use serde_json::Value;

use super::column::Cell;
use super::reject::{RejectKind, Rejection, json_kind, truncate, wrong_type};

/// A value as read from JSON, before it is checked against its field's type.
#[derive(Debug)]
pub(super) enum Raw<'de> {
    Null,
    Str(Cow<'de, str>),
    I64(i64),
    U64(u64),
    F64(f64),
    Bool(bool),
    /// An array where a scalar was expected (skipped).
    Array,
    /// An object where a scalar was expected (skipped).
    Object,
    /// An array of strings (and nulls).
    List(Vec<Option<Cow<'de, str>>>),
    /// An array holding something other than strings: the kind found.
    BadList(&'static str),
    /// Any JSON (for `Json` fields). Boxed: a `Value` is larger than every other variant (much
    /// larger when a dependency turns on serde_json's `preserve_order`), and every value read
    /// would pay for its size.
    Json(Box<Value>),
}

/// A value as the fast path reads it: borrowed from the line or a number, nothing to drop, so a
/// line's values are reset by one fill rather than dropped one by one (which, with the general
/// walk's [`Raw`], was a twentieth of ingest).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Plain<'t> {
    /// Absent, or `null`.
    Null,
    Str(&'t str),
    I64(i64),
    F64(f64),
    Bool(bool),
}

impl<'t> Plain<'t> {
    /// The same value as the general walk holds it.
    #[inline]
    pub(super) fn raw(self) -> Option<Raw<'t>> {
        match self {
            Plain::Null => None,
            Plain::Str(s) => Some(Raw::Str(Cow::Borrowed(s))),
            Plain::I64(v) => Some(Raw::I64(v)),
            Plain::F64(v) => Some(Raw::F64(v)),
            Plain::Bool(v) => Some(Raw::Bool(v)),
        }
    }
}

impl Raw<'_> {
    #[inline]
    pub(super) fn kind(&self) -> &'static str {
        match self {
            Raw::Null => "null",
            Raw::Str(_) => "a string",
            Raw::I64(_) | Raw::U64(_) => "an integer",
            Raw::F64(_) => "a number",
            Raw::Bool(_) => "a boolean",
            Raw::Array | Raw::List(_) | Raw::BadList(_) => "an array",
            Raw::Object => "an object",
            Raw::Json(_) => "JSON",
        }
    }
}

/// The `metadata` column: the input's `metadata` object plus every unknown top-level key, as
/// compact JSON text, so nothing a producer sent is dropped.
pub(super) fn metadata_cell<'de>(
    metadata: Option<Value>,
    unknown: Vec<(Cow<'de, str>, Value)>,
) -> Result<Cell<'de>, Rejection> {
    let mut object = match metadata {
        None | Some(Value::Null) => serde_json::Map::new(),
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
    for (key, value) in unknown {
        let key = if object.contains_key(key.as_ref()) {
            format!("{key}__top_level")
        } else {
            key.into_owned()
        };
        object.insert(key, value);
    }
    Ok(if object.is_empty() {
        Cell::Null
    } else {
        Cell::Str(Cow::Owned(Value::Object(object).to_string()))
    })
}

#[inline]
pub(super) fn expect_str<'de>(field: &FieldSpec, v: Raw<'de>) -> Result<Cow<'de, str>, Rejection> {
    match v {
        Raw::Str(s) => Ok(s),
        other => Err(wrong_type(field, other.kind())),
    }
}

/// An RFC 3339 timestamp as microseconds since the epoch: how every timestamp field is read.
#[inline]
pub(super) fn rfc3339_micros(text: &str) -> Result<i64, chrono::ParseError> {
    chrono::DateTime::parse_from_rfc3339(text).map(|time| time.timestamp_micros())
}

#[inline]
pub(super) fn convert<'de>(field: &FieldSpec, v: Raw<'de>) -> Result<Cell<'de>, Rejection> {
    Ok(match field.ty {
        FieldType::Utf8 => Cell::Str(expect_str(field, v)?),
        FieldType::Json => match v {
            Raw::Json(v) => match *v {
                Value::String(s) => Cell::Str(Cow::Owned(s)),
                Value::Null => Cell::Null,
                other => Cell::Str(Cow::Owned(other.to_string())),
            },
            Raw::Str(s) => Cell::Str(s),
            other => Cell::Str(Cow::Owned(format!("{other:?}"))),
        },
        FieldType::Int64 => match v {
            Raw::I64(i) => Cell::I64(i),
            Raw::U64(u) if u <= i64::MAX as u64 => Cell::I64(u as i64),
            Raw::U64(u) => {
                return Err(Rejection::new(
                    RejectKind::InvalidValue,
                    Some(field.name),
                    format!("field '{}' must be a 64-bit integer, got {u}", field.name),
                ));
            }
            Raw::F64(f) => {
                return Err(Rejection::new(
                    RejectKind::WrongType,
                    Some(field.name),
                    format!("field '{}' must be a 64-bit integer, got {f}", field.name),
                ));
            }
            other => return Err(wrong_type(field, other.kind())),
        },
        FieldType::Float64 => match v {
            Raw::F64(f) => Cell::F64(f),
            Raw::I64(i) => Cell::F64(i as f64),
            Raw::U64(u) => Cell::F64(u as f64),
            other => return Err(wrong_type(field, other.kind())),
        },
        FieldType::Boolean => match v {
            Raw::Bool(b) => Cell::Bool(b),
            other => return Err(wrong_type(field, other.kind())),
        },
        FieldType::Timestamp => {
            let s = expect_str(field, v)?;
            let micros = rfc3339_micros(&s).map_err(|e| {
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
            Cell::Ts(micros)
        }
        FieldType::Utf8List => match v {
            Raw::List(items) => Cell::List(items),
            Raw::BadList(kind) => {
                return Err(Rejection::new(
                    RejectKind::WrongType,
                    Some(field.name),
                    format!(
                        "field '{}' must be an array of strings, found {kind} in it",
                        field.name
                    ),
                ));
            }
            other => return Err(wrong_type(field, other.kind())),
        },
        FieldType::Binary => return Err(wrong_type(field, v.kind())),
    })
}
