//! One pattern as a Rust value, and the `patterns` table's rows as Arrow: the schema, and
//! conversions both ways (the embedding as a fixed-size list of f32, which LanceDB indexes).

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, FixedSizeListArray, Float32Array, Float64Array, Int64Array, ListArray,
    RecordBatch, StringArray, TimestampMicrosecondArray,
};
use arrow::datatypes::Float32Type;
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use serde::Serialize;

use crate::error::{PatternsError, Result};
use crate::lifecycle::{Lifecycle, Usage};

/// The quality of a pattern's code and its dimensions, from one scorer.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Scores {
    pub quality: f64,
    pub syntax: Option<f64>,
    pub onex_compliance: Option<f64>,
    pub contract: Option<f64>,
    pub code_quality: Option<f64>,
    /// Share of the request's examples that passed (none: judged by its gates alone).
    pub functional: Option<f64>,
}

/// One row of the `patterns` table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Pattern {
    /// sha256 of the normalised code, first 16 hex digits.
    pub pattern_id: String,
    pub node_type: String,
    pub domain: Option<String>,
    pub language: String,
    /// The node's file the code is (`v1_0_0/logic.py`: a model's part; `v1_0_0/node.py`).
    pub module: String,
    pub service_name: Option<String>,
    pub node_name: Option<String>,
    pub description: String,
    pub operations: Vec<String>,
    pub code: String,
    #[serde(skip)]
    pub normalised: String,
    pub contract_yaml: Option<String>,
    pub scores: Scores,
    pub scorer_version: String,
    /// Whether the scorer's gates pass the code (a re-score that fails them deprecates it).
    pub gates_passed: bool,
    pub lifecycle: Lifecycle,
    pub version: String,
    /// The first pattern of this one's lineage (itself when it has no parent).
    pub lineage_id: String,
    pub parent_ids: Vec<String>,
    pub usage_count: i64,
    pub success_count: i64,
    pub failure_streak: i64,
    /// The generation the pattern came from.
    pub correlation_id: Option<String>,
    pub model: Option<String>,
    pub created_at_us: i64,
    pub updated_at_us: i64,
    /// What the full-text index searches: description, operations, prompt words and code.
    pub search_text: String,
    #[serde(skip)]
    pub embedding: Vec<f32>,
}

impl Pattern {
    pub fn usage(&self) -> Usage {
        Usage {
            uses: self.usage_count,
            successes: self.success_count,
            failure_streak: self.failure_streak,
        }
    }
}

/// Schema metadata keys: which embedder wrote the table.
pub const META_EMBEDDER: &str = "omnistream.embedder";
pub const META_DIM: &str = "omnistream.embedding_dim";

/// The table's schema for vectors of `dim` floats, recording the embedder.
pub fn schema(embedder: &str, dim: usize) -> SchemaRef {
    let utf8 = |n: &str, null: bool| Field::new(n, DataType::Utf8, null);
    let f64_ = |n: &str, null: bool| Field::new(n, DataType::Float64, null);
    let i64_ = |n: &str| Field::new(n, DataType::Int64, false);
    let list = |n: &str| {
        Field::new(
            n,
            DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
            false,
        )
    };
    let ts = |n: &str| {
        Field::new(
            n,
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        )
    };
    let fields = vec![
        utf8("pattern_id", false),
        utf8("node_type", false),
        utf8("domain", true),
        utf8("language", false),
        utf8("module", false),
        utf8("service_name", true),
        utf8("node_name", true),
        utf8("description", false),
        list("operations"),
        utf8("code", false),
        utf8("normalised_code", false),
        utf8("contract_yaml", true),
        f64_("quality_score", false),
        f64_("syntax_score", true),
        f64_("onex_compliance_score", true),
        f64_("contract_score", true),
        f64_("code_quality_score", true),
        f64_("functional_score", true),
        utf8("scorer_version", false),
        Field::new("gates_passed", DataType::Boolean, false),
        utf8("lifecycle", false),
        utf8("version", false),
        utf8("lineage_id", false),
        list("parent_ids"),
        i64_("usage_count"),
        i64_("success_count"),
        i64_("failure_streak"),
        utf8("correlation_id", true),
        utf8("model", true),
        ts("created_at"),
        ts("updated_at"),
        utf8("search_text", false),
        Field::new(
            "embedding",
            DataType::FixedSizeList(
                Arc::new(Field::new("item", DataType::Float32, true)),
                dim as i32,
            ),
            false,
        ),
    ];
    let metadata = HashMap::from([
        (META_EMBEDDER.to_string(), embedder.to_string()),
        (META_DIM.to_string(), dim.to_string()),
    ]);
    Arc::new(Schema::new(fields).with_metadata(metadata))
}

/// Patterns as one record batch of `schema`.
pub fn to_batch(patterns: &[Pattern], schema: &SchemaRef) -> Result<RecordBatch> {
    let s = |f: fn(&Pattern) -> Option<&str>| -> ArrayRef {
        Arc::new(patterns.iter().map(f).collect::<StringArray>())
    };
    let f = |f: fn(&Pattern) -> Option<f64>| -> ArrayRef {
        Arc::new(patterns.iter().map(f).collect::<Float64Array>())
    };
    let i = |f: fn(&Pattern) -> i64| -> ArrayRef {
        Arc::new(patterns.iter().map(|p| Some(f(p))).collect::<Int64Array>())
    };
    let l = |f: fn(&Pattern) -> &[String]| -> ArrayRef {
        Arc::new(ListArray::from_iter_primitive_utf8(patterns.iter().map(f)))
    };
    let t = |f: fn(&Pattern) -> i64| -> ArrayRef {
        Arc::new(
            patterns
                .iter()
                .map(|p| Some(f(p)))
                .collect::<TimestampMicrosecondArray>()
                .with_timezone("UTC"),
        )
    };
    let dim = match schema.field_with_name("embedding")?.data_type() {
        DataType::FixedSizeList(_, d) => *d,
        other => return Err(PatternsError::Internal(format!("embedding is {other}"))),
    };
    if let Some(p) = patterns.iter().find(|p| p.embedding.len() != dim as usize) {
        return Err(PatternsError::Internal(format!(
            "pattern {} has a vector of {} dimensions, the table {dim}",
            p.pattern_id,
            p.embedding.len()
        )));
    }
    let embedding = FixedSizeListArray::from_iter_primitive::<Float32Type, _, _>(
        patterns
            .iter()
            .map(|p| Some(p.embedding.iter().map(|x| Some(*x)))),
        dim,
    );
    let columns: Vec<ArrayRef> = vec![
        s(|p| Some(&p.pattern_id)),
        s(|p| Some(&p.node_type)),
        s(|p| p.domain.as_deref()),
        s(|p| Some(&p.language)),
        s(|p| Some(&p.module)),
        s(|p| p.service_name.as_deref()),
        s(|p| p.node_name.as_deref()),
        s(|p| Some(&p.description)),
        l(|p| &p.operations),
        s(|p| Some(&p.code)),
        s(|p| Some(&p.normalised)),
        s(|p| p.contract_yaml.as_deref()),
        f(|p| Some(p.scores.quality)),
        f(|p| p.scores.syntax),
        f(|p| p.scores.onex_compliance),
        f(|p| p.scores.contract),
        f(|p| p.scores.code_quality),
        f(|p| p.scores.functional),
        s(|p| Some(&p.scorer_version)),
        Arc::new(
            patterns
                .iter()
                .map(|p| Some(p.gates_passed))
                .collect::<arrow::array::BooleanArray>(),
        ),
        s(|p| Some(p.lifecycle.as_str())),
        s(|p| Some(&p.version)),
        s(|p| Some(&p.lineage_id)),
        l(|p| &p.parent_ids),
        i(|p| p.usage_count),
        i(|p| p.success_count),
        i(|p| p.failure_streak),
        s(|p| p.correlation_id.as_deref()),
        s(|p| p.model.as_deref()),
        t(|p| p.created_at_us),
        t(|p| p.updated_at_us),
        s(|p| Some(&p.search_text)),
        Arc::new(embedding),
    ];
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

/// List arrays of strings from slices (arrow has this for primitives only).
trait FromUtf8Lists {
    fn from_iter_primitive_utf8<'a>(rows: impl Iterator<Item = &'a [String]>) -> ListArray;
}

impl FromUtf8Lists for ListArray {
    fn from_iter_primitive_utf8<'a>(rows: impl Iterator<Item = &'a [String]>) -> ListArray {
        let mut b = arrow::array::ListBuilder::new(arrow::array::StringBuilder::new());
        for row in rows {
            for v in row {
                b.values().append_value(v);
            }
            b.append(true);
        }
        b.finish()
    }
}

/// The patterns of a batch the table returned (any projection that has the columns read).
/// The embedder and dimension a table's schema records, when it records both.
pub fn stored_embedder(schema: &Schema) -> Option<(String, usize)> {
    let name = schema.metadata.get(META_EMBEDDER).cloned();
    let dim = schema.metadata.get(META_DIM).and_then(|d| d.parse().ok());
    name.zip(dim)
}

pub fn from_batch(batch: &RecordBatch) -> Result<Vec<Pattern>> {
    if batch.num_rows() == 0 {
        // An empty hybrid result may come without the table's columns.
        return Ok(Vec::new());
    }
    let c = Columns(batch);
    let (ids, types) = (c.str("pattern_id")?, c.str("node_type")?);
    let mut out = Vec::with_capacity(batch.num_rows());
    for r in 0..batch.num_rows() {
        let lifecycle = c.string(c.str("lifecycle")?, r).unwrap_or_default();
        out.push(Pattern {
            pattern_id: c.string(ids, r).unwrap_or_default(),
            node_type: c.string(types, r).unwrap_or_default(),
            domain: c.opt_str("domain", r),
            language: c.opt_str("language", r).unwrap_or_default(),
            module: c.opt_str("module", r).unwrap_or_default(),
            service_name: c.opt_str("service_name", r),
            node_name: c.opt_str("node_name", r),
            description: c.opt_str("description", r).unwrap_or_default(),
            operations: c.list("operations", r),
            code: c.opt_str("code", r).unwrap_or_default(),
            normalised: c.opt_str("normalised_code", r).unwrap_or_default(),
            contract_yaml: c.opt_str("contract_yaml", r),
            scores: Scores {
                quality: c.opt_f64("quality_score", r).unwrap_or(0.0),
                syntax: c.opt_f64("syntax_score", r),
                onex_compliance: c.opt_f64("onex_compliance_score", r),
                contract: c.opt_f64("contract_score", r),
                code_quality: c.opt_f64("code_quality_score", r),
                functional: c.opt_f64("functional_score", r),
            },
            scorer_version: c.opt_str("scorer_version", r).unwrap_or_default(),
            gates_passed: c.opt_bool("gates_passed", r).unwrap_or(true),
            lifecycle: Lifecycle::parse(&lifecycle).unwrap_or(Lifecycle::Candidate),
            version: c.opt_str("version", r).unwrap_or_default(),
            lineage_id: c.opt_str("lineage_id", r).unwrap_or_default(),
            parent_ids: c.list("parent_ids", r),
            usage_count: c.opt_i64("usage_count", r).unwrap_or(0),
            success_count: c.opt_i64("success_count", r).unwrap_or(0),
            failure_streak: c.opt_i64("failure_streak", r).unwrap_or(0),
            correlation_id: c.opt_str("correlation_id", r),
            model: c.opt_str("model", r),
            created_at_us: c.opt_ts("created_at", r).unwrap_or(0),
            updated_at_us: c.opt_ts("updated_at", r).unwrap_or(0),
            search_text: c.opt_str("search_text", r).unwrap_or_default(),
            embedding: c.vector("embedding", r),
        });
    }
    Ok(out)
}

/// Typed access to a batch's columns by name; a column the projection left out reads as null.
struct Columns<'a>(&'a RecordBatch);

impl Columns<'_> {
    fn col<T: 'static>(&self, name: &str) -> Option<&T> {
        self.0.column_by_name(name)?.as_any().downcast_ref::<T>()
    }

    fn str(&self, name: &str) -> Result<&StringArray> {
        self.col::<StringArray>(name)
            .ok_or_else(|| PatternsError::Internal(format!("the result has no text column {name}")))
    }

    fn string(&self, a: &StringArray, r: usize) -> Option<String> {
        a.is_valid(r).then(|| a.value(r).to_string())
    }

    fn opt_str(&self, name: &str, r: usize) -> Option<String> {
        self.col::<StringArray>(name)
            .and_then(|a| self.string(a, r))
    }

    fn opt_f64(&self, name: &str, r: usize) -> Option<f64> {
        self.col::<Float64Array>(name)
            .and_then(|a| a.is_valid(r).then(|| a.value(r)))
    }

    fn opt_bool(&self, name: &str, r: usize) -> Option<bool> {
        self.col::<arrow::array::BooleanArray>(name)
            .and_then(|a| a.is_valid(r).then(|| a.value(r)))
    }

    fn opt_i64(&self, name: &str, r: usize) -> Option<i64> {
        self.col::<Int64Array>(name)
            .and_then(|a| a.is_valid(r).then(|| a.value(r)))
    }

    fn opt_ts(&self, name: &str, r: usize) -> Option<i64> {
        self.col::<TimestampMicrosecondArray>(name)
            .and_then(|a| a.is_valid(r).then(|| a.value(r)))
    }

    fn list(&self, name: &str, r: usize) -> Vec<String> {
        let Some(a) = self.col::<ListArray>(name).filter(|a| a.is_valid(r)) else {
            return Vec::new();
        };
        let values = a.value(r);
        let Some(values) = values.as_any().downcast_ref::<StringArray>() else {
            return Vec::new();
        };
        values.iter().flatten().map(str::to_string).collect()
    }

    fn vector(&self, name: &str, r: usize) -> Vec<f32> {
        let Some(a) = self
            .col::<FixedSizeListArray>(name)
            .filter(|a| a.is_valid(r))
        else {
            return Vec::new();
        };
        let values = a.value(r);
        values
            .as_any()
            .downcast_ref::<Float32Array>()
            .map(|v| v.values().to_vec())
            .unwrap_or_default()
    }
}
