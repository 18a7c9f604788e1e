//! Field specifications: the one description of a column from which the Arrow schema, the JSON
//! ingest rules and `docs/schemas.md` are all derived.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, TimeUnit};

/// The logical type of a column. Kept deliberately small: every type here maps to one Arrow type,
/// one Parquet type, and one JSON shape accepted on ingest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    /// UTF-8 text; JSON string.
    Utf8,
    /// 64-bit signed integer; JSON integer.
    Int64,
    /// 64-bit float; any JSON number.
    Float64,
    /// JSON true/false.
    Boolean,
    /// Microseconds since the epoch, UTC; an RFC 3339 string on ingest.
    Timestamp,
    /// A list of UTF-8 strings; JSON array of strings.
    Utf8List,
    /// Raw bytes; never accepted from JSON (the dead-letter topic keeps rejected input here).
    Binary,
    /// JSON text kept as a string column; any JSON value on ingest (objects are serialised).
    Json,
}

impl FieldType {
    /// The Arrow type of this column.
    pub fn arrow_type(self) -> DataType {
        match self {
            FieldType::Utf8 | FieldType::Json => DataType::Utf8,
            FieldType::Int64 => DataType::Int64,
            FieldType::Float64 => DataType::Float64,
            FieldType::Boolean => DataType::Boolean,
            FieldType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            FieldType::Utf8List => {
                DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)))
            }
            FieldType::Binary => DataType::Binary,
        }
    }

    /// What a JSON value of this column must look like, for error messages and docs.
    pub fn json_shape(self) -> &'static str {
        match self {
            FieldType::Utf8 => "string",
            FieldType::Int64 => "integer",
            FieldType::Float64 => "number",
            FieldType::Boolean => "boolean",
            FieldType::Timestamp => "RFC 3339 timestamp string",
            FieldType::Utf8List => "array of strings",
            FieldType::Binary => "bytes (not accepted from JSON)",
            FieldType::Json => "any JSON value (stored as JSON text)",
        }
    }
}

/// One column of a topic.
#[derive(Debug, Clone)]
pub struct FieldSpec {
    /// Column name in Arrow, Parquet and SQL; also the JSON key on ingest.
    pub name: &'static str,
    pub ty: FieldType,
    /// A required field must be present and not null in every event (ingest rejects the line otherwise).
    pub required: bool,
    /// Other JSON keys accepted for this field, for compatibility with upstream producers.
    /// A key containing `/` is a path into nested objects (`capabilities/metadata/node_type`).
    pub aliases: &'static [&'static str],
    /// One line of documentation, rendered into `docs/schemas.md`.
    pub doc: &'static str,
}

impl FieldSpec {
    pub const fn new(name: &'static str, ty: FieldType, doc: &'static str) -> Self {
        FieldSpec {
            name,
            ty,
            required: false,
            aliases: &[],
            doc,
        }
    }

    /// Mark the field required.
    pub const fn required(mut self) -> Self {
        self.required = true;
        self
    }

    /// Accept these JSON keys as well.
    pub const fn aliases(mut self, aliases: &'static [&'static str]) -> Self {
        self.aliases = aliases;
        self
    }

    /// The Arrow field.
    pub fn arrow_field(&self) -> Field {
        Field::new(self.name, self.ty.arrow_type(), !self.required)
    }
}

/// Build an Arrow schema from field specs.
pub fn arrow_schema(fields: &[FieldSpec]) -> Schema {
    Schema::new(
        fields
            .iter()
            .map(FieldSpec::arrow_field)
            .collect::<Vec<_>>(),
    )
}
