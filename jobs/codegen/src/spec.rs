//! What a request may declare besides its prompt: the fields of the node's input and output (they
//! become the input and output models) and examples, input -> expected output, that the behaviour
//! gate runs against the generated node. Checked when the request is read, so a wrong example is
//! the requester's error, never blamed on a model.

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::parse::is_python_keyword;

/// At most this many fields on each side, and examples per request.
pub const MAX_FIELDS: usize = 40;
pub const MAX_EXAMPLES: usize = 50;

/// Names the node's models already use, or pydantic reserves.
const RESERVED: &[&str] = &["operation", "correlation_id", "payload", "result"];

/// A declared field's type: the JSON types, as Python spells them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldType {
    Str,
    Int,
    Float,
    Bool,
    /// Any JSON value.
    Any,
    List(Box<FieldType>),
    /// An object with string keys.
    Dict(Box<FieldType>),
    /// The value may be `null` (the field may be left out).
    Optional(Box<FieldType>),
}

/// The type names a request may use, for error messages.
pub const TYPE_NAMES: &str = "str, int, float, bool, any, list[T], dict[str, T], T | None";

impl FieldType {
    /// Parse `str`, `list[int]`, `dict[str, float]`, `str | None`, `optional[str]` (and the JSON
    /// Schema names string, integer, number, boolean, object, array).
    pub fn parse(text: &str) -> Result<FieldType, SpecError> {
        let t = text.trim();
        let unknown = || SpecError::UnknownType(text.trim().to_string());
        if let Some((a, b)) = t.split_once('|') {
            let (a, b) = (a.trim(), b.trim());
            let inner = match (a, b) {
                ("None", x) | (x, "None") if x != "None" => FieldType::parse(x)?,
                _ => return Err(unknown()),
            };
            return Ok(FieldType::Optional(Box::new(inner)));
        }
        if let Some(args) = generic(t, &["optional", "Optional"]) {
            return Ok(FieldType::Optional(Box::new(FieldType::parse(args)?)));
        }
        if let Some(args) = generic(t, &["list", "List"]) {
            return Ok(FieldType::List(Box::new(FieldType::parse(args)?)));
        }
        if let Some(args) = generic(t, &["dict", "Dict"]) {
            let (key, value) = args.split_once(',').ok_or_else(unknown)?;
            if !matches!(key.trim(), "str" | "string") {
                return Err(SpecError::DictKey(text.trim().to_string()));
            }
            return Ok(FieldType::Dict(Box::new(FieldType::parse(value)?)));
        }
        Ok(match t {
            "str" | "string" => FieldType::Str,
            "int" | "integer" => FieldType::Int,
            "float" | "number" => FieldType::Float,
            "bool" | "boolean" => FieldType::Bool,
            "any" | "Any" | "object" => FieldType::Any,
            "list" | "array" => FieldType::List(Box::new(FieldType::Any)),
            "dict" => FieldType::Dict(Box::new(FieldType::Any)),
            _ => return Err(unknown()),
        })
    }

    /// The annotation in the generated pydantic model.
    pub fn python(&self) -> String {
        match self {
            FieldType::Str => "str".into(),
            FieldType::Int => "int".into(),
            FieldType::Float => "float".into(),
            FieldType::Bool => "bool".into(),
            FieldType::Any => "object".into(),
            FieldType::List(t) => format!("list[{}]", t.python()),
            FieldType::Dict(t) => format!("dict[str, {}]", t.python()),
            FieldType::Optional(t) => format!("{} | None", t.python()),
        }
    }

    pub fn is_optional(&self) -> bool {
        matches!(self, FieldType::Optional(_))
    }

    /// Whether `value` is of this type (as pydantic would accept it in strict JSON terms: an int
    /// is a float, a float is not an int).
    pub fn admits(&self, value: &Value) -> bool {
        match (self, value) {
            (FieldType::Optional(_), Value::Null) => true,
            (FieldType::Optional(t), v) => t.admits(v),
            (FieldType::Any, _) => true,
            (FieldType::Str, Value::String(_)) | (FieldType::Bool, Value::Bool(_)) => true,
            (FieldType::Int, Value::Number(n)) => n.is_i64() || n.is_u64(),
            (FieldType::Float, Value::Number(_)) => true,
            (FieldType::List(t), Value::Array(items)) => items.iter().all(|v| t.admits(v)),
            (FieldType::Dict(t), Value::Object(m)) => m.values().all(|v| t.admits(v)),
            _ => false,
        }
    }

    /// A value of this type, for a node's tests when the request gives no example.
    pub fn sample(&self, name: &str) -> Value {
        match self {
            FieldType::Str => Value::String(format!("sample-{name}")),
            FieldType::Int => Value::from(3),
            FieldType::Float => Value::from(2.5),
            FieldType::Bool => Value::Bool(true),
            FieldType::Any | FieldType::Optional(_) => Value::Null,
            FieldType::List(t) => Value::Array(vec![t.sample(name)]),
            FieldType::Dict(t) => Value::Object(Map::from_iter([("a".into(), t.sample(name))])),
        }
    }
}

impl fmt::Display for FieldType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.python())
    }
}

/// `name[ARGS]` -> ARGS.
fn generic<'a>(text: &'a str, names: &[&str]) -> Option<&'a str> {
    let (head, rest) = text.split_once('[')?;
    (names.contains(&head.trim()) && rest.ends_with(']')).then(|| &rest[..rest.len() - 1])
}

/// One declared field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclaredField {
    pub name: String,
    pub ty: FieldType,
    pub description: Option<String>,
}

impl Serialize for DeclaredField {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Wire<'a> {
            name: &'a str,
            #[serde(rename = "type")]
            ty: String,
            #[serde(skip_serializing_if = "Option::is_none")]
            description: Option<&'a str>,
        }
        Wire {
            name: &self.name,
            ty: self.ty.python(),
            description: self.description.as_deref(),
        }
        .serialize(s)
    }
}

/// A field as a request writes it: `{"name": .., "type": .., "description": ..}`, or in a map
/// `"name": "type"` / `"name": {"type": .., "description": ..}`.
#[derive(Deserialize)]
#[serde(untagged)]
enum FieldValue {
    Type(String),
    Full {
        #[serde(rename = "type")]
        ty: String,
        #[serde(default)]
        description: Option<String>,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NamedField {
    name: String,
    #[serde(rename = "type")]
    ty: String,
    #[serde(default)]
    description: Option<String>,
}

/// Declared fields in the order the request gives them (a JSON object's order is kept).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Fields(pub Vec<DeclaredField>);

/// Fields as written, before their types are parsed: (name, type text, description).
type RawFields = Vec<(String, String, Option<String>)>;

impl<'de> Deserialize<'de> for Fields {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawFields;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of name -> type, or a list of {name, type}")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawFields, A::Error> {
                let mut out = Vec::new();
                while let Some((name, value)) = map.next_entry::<String, FieldValue>()? {
                    out.push(match value {
                        FieldValue::Type(ty) => (name, ty, None),
                        FieldValue::Full { ty, description } => (name, ty, description),
                    });
                }
                Ok(out)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawFields, A::Error> {
                let mut out = Vec::new();
                while let Some(f) = seq.next_element::<NamedField>()? {
                    out.push((f.name, f.ty, f.description));
                }
                Ok(out)
            }
        }
        let raw = d.deserialize_any(V)?;
        let fields = raw
            .into_iter()
            .map(|(name, ty, description)| {
                let ty = FieldType::parse(&ty)
                    .map_err(|e| de::Error::custom(format!("field '{name}': {e}")))?;
                Ok(DeclaredField {
                    name,
                    ty,
                    description,
                })
            })
            .collect::<Result<Vec<_>, D::Error>>()?;
        Ok(Fields(fields))
    }
}

impl Fields {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn get(&self, name: &str) -> Option<&DeclaredField> {
        self.0.iter().find(|f| f.name == name)
    }

    fn check(&self, side: &str) -> Result<(), SpecError> {
        if self.0.len() > MAX_FIELDS {
            return Err(SpecError::TooMany(format!(
                "{} {side} fields (at most {MAX_FIELDS})",
                self.0.len()
            )));
        }
        for (i, f) in self.0.iter().enumerate() {
            let bad = |why: &str| SpecError::FieldName {
                side: side.to_string(),
                name: f.name.clone(),
                why: why.to_string(),
            };
            let ident = f
                .name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
                && f.name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            if !ident || f.name.len() > 64 {
                return Err(bad(
                    "a field name is snake_case: a-z, 0-9 and _, at most 64",
                ));
            }
            if is_python_keyword(&f.name) || f.name.starts_with("model_") {
                return Err(bad("it is a Python keyword or a name pydantic reserves"));
            }
            if RESERVED.contains(&f.name.as_str()) {
                return Err(bad("the node's models already have it"));
            }
            if self.0[..i].iter().any(|g| g.name == f.name) {
                return Err(bad("it is declared twice"));
            }
        }
        Ok(())
    }

    /// Check an example's object against these fields: no unknown field, every required one
    /// present (when `complete`), every value of its type.
    fn check_values(&self, values: &Map<String, Value>, complete: bool) -> Result<(), String> {
        for (name, value) in values {
            let Some(f) = self.get(name) else {
                let known: Vec<&str> = self.0.iter().map(|f| f.name.as_str()).collect();
                return Err(format!(
                    "'{name}' is not a declared field ({})",
                    known.join(", ")
                ));
            };
            if !f.ty.admits(value) {
                return Err(format!("'{name}' = {value} is not a {}", f.ty));
            }
        }
        if complete
            && let Some(f) = self
                .0
                .iter()
                .find(|f| !f.ty.is_optional() && !values.contains_key(&f.name))
        {
            return Err(format!("required field '{}' is missing", f.name));
        }
        Ok(())
    }

    /// An input for the node's tests, from the types.
    pub fn sample(&self) -> Map<String, Value> {
        self.0
            .iter()
            .filter(|f| !f.ty.is_optional())
            .map(|f| (f.name.clone(), f.ty.sample(&f.name)))
            .collect()
    }
}

/// A call made before an example's own, on the same node (a reducer's earlier events, an effect's
/// earlier writes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Call {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    #[serde(default)]
    pub input: Map<String, Value>,
}

/// One case: an input and what the node must answer, a result or an error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Example {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The operation to run; the node's first when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub before: Vec<Call>,
    #[serde(default)]
    pub input: Map<String, Value>,
    /// The fields the result must have, with these values (numbers compare to 1e-6 relative).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Map<String, Value>>,
    /// The operation must fail with an error containing this text (case-insensitive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What a request declares besides its prompt. Empty: the request is judged by its gates alone.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestSpec {
    /// The node's operations (snake_case), replacing those read from the prompt.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub operations: Vec<String>,
    #[serde(default, skip_serializing_if = "Fields::is_empty")]
    pub input: Fields,
    #[serde(default, skip_serializing_if = "Fields::is_empty")]
    pub output: Fields,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub examples: Vec<Example>,
}

/// Why a request's declarations are refused; each names what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("unknown type '{0}' (types: {TYPE_NAMES})")]
    UnknownType(String),
    #[error("'{0}': dictionary keys are str")]
    DictKey(String),
    #[error("{side} field '{name}' is refused: {why}")]
    FieldName {
        side: String,
        name: String,
        why: String,
    },
    #[error("operation '{0}' is not a snake_case Python identifier")]
    Operation(String),
    #[error("too many {0}")]
    TooMany(String),
    #[error("example {index}: {why}")]
    Example { index: usize, why: String },
}

impl RequestSpec {
    pub fn is_empty(&self) -> bool {
        self == &RequestSpec::default()
    }

    /// Whether the node's models are typed by declared fields.
    pub fn typed_input(&self) -> bool {
        !self.input.is_empty()
    }

    pub fn typed_output(&self) -> bool {
        !self.output.is_empty()
    }

    /// Check names, types and every example against the declarations.
    pub fn check(&self) -> Result<(), SpecError> {
        self.input.check("input")?;
        self.output.check("output")?;
        for op in &self.operations {
            let ident = op.chars().next().is_some_and(|c| c.is_ascii_lowercase())
                && op
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            if !ident || op.len() > 48 || is_python_keyword(op) {
                return Err(SpecError::Operation(op.clone()));
            }
        }
        if self.operations.len() > 6 {
            return Err(SpecError::TooMany(format!(
                "operations: {} (at most 6)",
                self.operations.len()
            )));
        }
        if self.examples.len() > MAX_EXAMPLES {
            return Err(SpecError::TooMany(format!(
                "examples: {} (at most {MAX_EXAMPLES})",
                self.examples.len()
            )));
        }
        for (i, e) in self.examples.iter().enumerate() {
            self.check_example(e)
                .map_err(|why| SpecError::Example { index: i + 1, why })?;
        }
        Ok(())
    }

    fn check_example(&self, e: &Example) -> Result<(), String> {
        match (&e.output, &e.error) {
            (Some(_), Some(_)) => return Err("give either output or error, not both".into()),
            (None, None) => return Err("give the expected output (or the expected error)".into()),
            _ => {}
        }
        let calls = e.before.iter().map(|c| (&c.operation, &c.input));
        for (op, input) in calls.chain([(&e.operation, &e.input)]) {
            if let Some(op) = op
                && !self.operations.is_empty()
                && !self.operations.contains(op)
            {
                return Err(format!(
                    "operation '{op}' is not declared ({})",
                    self.operations.join(", ")
                ));
            }
            if self.typed_input() {
                self.input.check_values(input, true)?;
            }
        }
        if let Some(out) = &e.output
            && self.typed_output()
        {
            self.output.check_values(out, false)?;
        }
        Ok(())
    }

    /// The payload of the node's tests: the first example's input, else one from the types.
    pub fn sample_payload(&self) -> Map<String, Value> {
        match self.examples.first() {
            Some(e) => e.input.clone(),
            None => self.input.sample(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(v: Value) -> Result<RequestSpec, String> {
        let s: RequestSpec = serde_json::from_value(v).map_err(|e| e.to_string())?;
        s.check().map_err(|e| e.to_string())?;
        Ok(s)
    }

    #[test]
    fn every_type_the_format_allows_becomes_its_python_annotation() {
        let cases = [
            ("str", "str"),
            ("string", "str"),
            ("int", "int"),
            ("integer", "int"),
            ("float", "float"),
            ("number", "float"),
            ("bool", "bool"),
            ("boolean", "bool"),
            ("any", "object"),
            ("list", "list[object]"),
            ("list[int]", "list[int]"),
            ("array", "list[object]"),
            ("dict", "dict[str, object]"),
            ("dict[str, float]", "dict[str, float]"),
            ("dict[str, list[str]]", "dict[str, list[str]]"),
            ("str | None", "str | None"),
            ("None | int", "int | None"),
            ("optional[list[float]]", "list[float] | None"),
            (" Optional[bool] ", "bool | None"),
        ];
        for (text, python) in cases {
            assert_eq!(FieldType::parse(text).unwrap().python(), python, "{text}");
        }
    }

    #[test]
    fn a_type_it_does_not_allow_is_named_with_the_ones_it_does() {
        for bad in [
            "bytes",
            "datetime",
            "list[",
            "dict[int, str]",
            "None | None",
            "int | str",
        ] {
            let e = FieldType::parse(bad).unwrap_err().to_string();
            assert!(e.contains(&format!("'{bad}'")), "{e}");
        }
        let e = spec(json!({"input": {"data": "bytes"}})).unwrap_err();
        assert!(
            e.contains("field 'data': unknown type 'bytes' (types: str, int"),
            "{e}"
        );
    }

    #[test]
    fn declared_fields_keep_their_order_and_both_spellings_agree() {
        // From text, as request files are read (a JSON value would have sorted the keys).
        let text = r#"{"input": {"zeta": "str", "alpha": {"type": "int", "description": "n"}}}"#;
        let a: RequestSpec = serde_json::from_str(text).unwrap();
        let b = spec(json!({"input": [{"name": "zeta", "type": "str"},
            {"name": "alpha", "type": "int", "description": "n"}]}))
        .unwrap();
        assert_eq!(a, b);
        let names: Vec<&str> = a.input.0.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["zeta", "alpha"]);
        // What the log carries reads back the same.
        let again: RequestSpec = serde_json::from_str(&serde_json::to_string(&a).unwrap()).unwrap();
        assert_eq!(again, a);
    }

    #[test]
    fn field_names_that_would_break_the_models_are_refused() {
        for (name, why) in [
            ("Content", "snake_case"),
            ("2x", "snake_case"),
            ("class", "keyword"),
            ("model_name", "pydantic reserves"),
            ("operation", "already have it"),
        ] {
            let e = spec(json!({"input": {name: "str"}})).unwrap_err();
            assert!(
                e.contains(&format!("input field '{name}' is refused")) && e.contains(why),
                "{e}"
            );
        }
        let e =
            spec(json!({"output": [{"name": "a", "type": "str"}, {"name": "a", "type": "int"}]}))
                .unwrap_err();
        assert!(e.contains("declared twice"), "{e}");
    }

    #[test]
    fn examples_are_checked_against_the_declarations() {
        let base = json!({"operations": ["checksum"], "input": {"content": "str", "salt": "str | None"},
            "output": {"sha256": "str", "size": "int"}});
        let with = |example: Value| {
            let mut v = base.clone();
            v["examples"] = json!([{"input": {"content": "a"}, "output": {"size": 1}}, example]);
            spec(v)
        };
        assert!(
            with(json!({"input": {"content": "ab", "salt": null}, "output": {"size": 2}})).is_ok()
        );
        assert!(with(json!({"input": {"content": ""}, "error": "empty"})).is_ok());
        for (example, why) in [
            (
                json!({"input": {"content": 1}, "output": {"size": 1}}),
                "'content' = 1 is not a str",
            ),
            (
                json!({"input": {}, "output": {"size": 1}}),
                "required field 'content' is missing",
            ),
            (
                json!({"input": {"content": "a", "x": 1}, "output": {}}),
                "'x' is not a declared field (content, salt)",
            ),
            (
                json!({"input": {"content": "a"}, "output": {"size": 1.5}}),
                "'size' = 1.5 is not a int",
            ),
            (
                json!({"input": {"content": "a"}}),
                "give the expected output",
            ),
            (
                json!({"input": {"content": "a"}, "output": {}, "error": "x"}),
                "not both",
            ),
            (
                json!({"operation": "hash", "input": {"content": "a"}, "output": {}}),
                "operation 'hash' is not declared (checksum)",
            ),
        ] {
            let e = with(example).unwrap_err();
            assert!(
                e.starts_with("example 2: ") && e.contains(why),
                "{e} / {why}"
            );
        }
        let e =
            spec(json!({"examples": [{"input": {}, "output": {}, "expected": 1}]})).unwrap_err();
        assert!(e.contains("unknown field `expected`"), "{e}");
    }

    #[test]
    fn the_tests_sample_payload_is_the_first_example_or_one_of_the_types() {
        let s = spec(json!({"input": {"n": "int", "tags": "list[str]", "note": "str | None"}}))
            .unwrap();
        assert_eq!(
            Value::Object(s.sample_payload()),
            json!({"n": 3, "tags": ["sample-tags"]})
        );
        let s =
            spec(json!({"input": {"n": "int"}, "examples": [{"input": {"n": 7}, "output": {}}]}))
                .unwrap();
        assert_eq!(Value::Object(s.sample_payload()), json!({"n": 7}));
    }
}
