//! The general walk: serde visitors that read any JSON object of a topic in one pass, for the
//! lines the flat fast path does not take.

use std::borrow::Cow;
use std::fmt;

use omnistream_streams::{FieldType, envelope};
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use super::convert::Raw;
use super::reject::{RejectKind, Rejection};
use super::{Key, Layout, Parsed};

pub(super) struct ObjectVisitor<'a, 'p, 'de> {
    pub(super) decoder: &'a Layout,
    pub(super) parsed: &'p mut Parsed<'de>,
    pub(super) type_error: &'p mut Option<Rejection>,
    pub(super) top_level: bool,
}

impl<'de> Visitor<'de> for ObjectVisitor<'_, '_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let spec = self.decoder.topic.spec();
        let mut position = 0;
        while let Some(key) = map.next_key::<CowStr<'de>>()? {
            let key = key.0;
            let found = self
                .decoder
                .lookup(&key, self.top_level.then_some(position));
            position += 1;
            match found {
                Some(Key::Field(i)) => {
                    let field = &spec.fields[i];
                    let raw = match field.ty {
                        FieldType::Json => Raw::Json(Box::new(map.next_value::<Value>()?)),
                        FieldType::Utf8List => map.next_value::<ListValue<'de>>()?.0,
                        _ => map.next_value::<ScalarValue<'de>>()?.0,
                    };
                    // An alias does not override the field's own name given earlier in the line.
                    if key != field.name && self.parsed.values[i].is_some() {
                        continue;
                    }
                    self.parsed.values[i] = if matches!(raw, Raw::Null) {
                        None
                    } else {
                        Some(raw)
                    };
                }
                Some(Key::Metadata) => self.parsed.metadata = Some(map.next_value::<Value>()?),
                Some(Key::Payload) if self.top_level => {
                    let seed = PayloadSeed {
                        decoder: self.decoder,
                        parsed: &mut *self.parsed,
                        type_error: &mut *self.type_error,
                    };
                    if let Some(not_an_object) = map.next_value_seed(seed)? {
                        self.parsed.unknown.push((key, not_an_object));
                    }
                }
                Some(Key::Payload) | None => {
                    let value = map.next_value::<Value>()?;
                    self.parsed.unknown.push((key, value));
                }
            }
        }
        Ok(())
    }
}

/// The upstream envelope shape `{"event_id": ..., "payload": {...}}`: the payload's keys count as
/// top-level keys; one given in both places is refused. A payload that is not an object is kept
/// as an unknown key (returned).
pub(super) struct PayloadSeed<'a, 'p, 'de> {
    pub(super) decoder: &'a Layout,
    pub(super) parsed: &'p mut Parsed<'de>,
    pub(super) type_error: &'p mut Option<Rejection>,
}

impl<'de> DeserializeSeed<'de> for PayloadSeed<'_, '_, 'de> {
    type Value = Option<Value>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Option<Value>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for PayloadSeed<'_, '_, 'de> {
    type Value = Option<Value>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a payload object")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Option<Value>, A::Error> {
        let given: Vec<bool> = self.parsed.values.iter().map(Option::is_some).collect();
        let known_unknown = self.parsed.unknown.len();
        let had_metadata = self.parsed.metadata.is_some();
        let mut nested = Parsed {
            values: (0..given.len()).map(|_| None).collect(),
            metadata: None,
            unknown: vec![],
        };
        let mut nested_error = None;
        ObjectVisitor {
            decoder: self.decoder,
            parsed: &mut nested,
            type_error: &mut nested_error,
            top_level: false,
        }
        .visit_map(map)?;
        let mut conflict = None;
        let spec = self.decoder.topic.spec();
        for (i, value) in nested.values.into_iter().enumerate() {
            if let Some(value) = value {
                if given[i] {
                    conflict = conflict.or(Some(spec.fields[i].name.to_string()));
                }
                self.parsed.values[i] = Some(value);
            }
        }
        for (key, value) in nested.unknown {
            if self.parsed.unknown[..known_unknown]
                .iter()
                .any(|(k, _)| *k == key)
            {
                conflict = conflict.or(Some(key.to_string()));
            }
            self.parsed.unknown.push((key, value));
        }
        if let Some(m) = nested.metadata {
            if had_metadata {
                conflict = conflict.or(Some(envelope::METADATA.to_string()));
            }
            self.parsed.metadata = Some(m);
        }
        if self.type_error.is_none() {
            *self.type_error = nested_error.or(conflict.map(|key| {
                Rejection::new(
                    RejectKind::InvalidValue,
                    Some(&key),
                    format!("field '{key}' appears both at the top level and in 'payload'"),
                )
            }));
        }
        Ok(None)
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Option<Value>, E> {
        Ok(Some(Value::String(v.to_string())))
    }
    fn visit_str<E>(self, v: &str) -> Result<Option<Value>, E> {
        Ok(Some(Value::String(v.to_string())))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Option<Value>, E> {
        Ok(Some(Value::from(v)))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Option<Value>, E> {
        Ok(Some(Value::from(v)))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Option<Value>, E> {
        Ok(Some(Value::from(v)))
    }
    fn visit_bool<E>(self, v: bool) -> Result<Option<Value>, E> {
        Ok(Some(Value::Bool(v)))
    }
    fn visit_unit<E>(self) -> Result<Option<Value>, E> {
        Ok(Some(Value::Null))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Option<Value>, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Value>()? {
            items.push(item);
        }
        Ok(Some(Value::Array(items)))
    }
}

/// A key or string, borrowed from the input when it has no escapes.
pub(super) struct CowStr<'de>(Cow<'de, str>);

impl<'de> de::Deserialize<'de> for CowStr<'de> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = CowStr<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Owned(v.to_string())))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// Any JSON value where a scalar is expected; arrays and objects are skipped and named.
pub(super) struct ScalarValue<'de>(Raw<'de>);

impl<'de> de::Deserialize<'de> for ScalarValue<'de> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScalarVisitor).map(ScalarValue)
    }
}

/// The scalar `visit_*` methods of a visitor whose value is [`Raw`]: shared by the scalar and the
/// list visitors, which differ only in how they take arrays.
macro_rules! raw_scalar_visits {
    () => {
        fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Raw<'de>, E> {
            Ok(Raw::Str(Cow::Borrowed(v)))
        }
        fn visit_str<E>(self, v: &str) -> Result<Raw<'de>, E> {
            Ok(Raw::Str(Cow::Owned(v.to_string())))
        }
        fn visit_string<E>(self, v: String) -> Result<Raw<'de>, E> {
            Ok(Raw::Str(Cow::Owned(v)))
        }
        fn visit_i64<E>(self, v: i64) -> Result<Raw<'de>, E> {
            Ok(Raw::I64(v))
        }
        fn visit_u64<E>(self, v: u64) -> Result<Raw<'de>, E> {
            Ok(Raw::U64(v))
        }
        fn visit_f64<E>(self, v: f64) -> Result<Raw<'de>, E> {
            Ok(Raw::F64(v))
        }
        fn visit_bool<E>(self, v: bool) -> Result<Raw<'de>, E> {
            Ok(Raw::Bool(v))
        }
        fn visit_unit<E>(self) -> Result<Raw<'de>, E> {
            Ok(Raw::Null)
        }
        fn visit_none<E>(self) -> Result<Raw<'de>, E> {
            Ok(Raw::Null)
        }
    };
}

pub(super) struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Raw<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    raw_scalar_visits!();
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Raw<'de>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Raw::Array)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Raw<'de>, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Raw::Object)
    }
}

/// An array of strings (or whatever else was given, named for the error).
pub(super) struct ListValue<'de>(Raw<'de>);

impl<'de> de::Deserialize<'de> for ListValue<'de> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Raw<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an array of strings")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Raw<'de>, A::Error> {
                let mut items = Vec::new();
                let mut bad = None;
                while let Some(item) = seq.next_element_seed(ScalarSeed)? {
                    match item {
                        Raw::Str(s) => items.push(Some(s)),
                        Raw::Null => items.push(None),
                        other => bad = bad.or(Some(other.kind())),
                    }
                }
                Ok(bad.map_or(Raw::List(items), Raw::BadList))
            }
            raw_scalar_visits!();
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Raw<'de>, A::Error> {
                ScalarVisitor.visit_map(map)
            }
        }
        d.deserialize_any(V).map(ListValue)
    }
}

pub(super) struct ScalarSeed;

impl<'de> DeserializeSeed<'de> for ScalarSeed {
    type Value = Raw<'de>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Raw<'de>, D::Error> {
        d.deserialize_any(ScalarVisitor)
    }
}
