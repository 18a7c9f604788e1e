//! The codegen job: from a generation request to a validated ONEX node on disk, every stage
//! observable. Stages (upstream numbering): 1 prompt parsing, 1.5 intelligence gathering,
//! 2 contract building, 3 pre-validation gates, 4 code generation, 4.5 event-bus integration,
//! 5 post-validation gates (and the quorum), 5.5 refinement, 6 file writing, 7 compilation test.
//! Each stage emits stage-completed, each model call model-call, each gate validation-result, and
//! every request ends with exactly one generation-completed or generation-failed.

pub mod adapt;
pub mod assemble;
pub mod behaviour;
pub mod catalog;
pub mod contract;
pub mod emit;
pub mod error;
pub mod event_bus;
pub mod gates;
pub mod job;
pub mod parse;
pub mod pipeline;
pub mod prompts;
#[cfg(test)]
mod property_tests;
pub mod python;
pub mod quorum;
mod recorder;
pub mod render;
pub mod repair;
pub mod request;
pub mod rescore;
pub mod sandbox;
pub mod spec;
pub mod stage;
pub mod syntax;
pub mod write;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use omnistream_connectors::models::{HttpProvider, PriceTable};

pub use catalog::{PatternQuery, PatternRef, PatternSource, RetrievalError, StoredCode};
pub use error::{CodegenError, EmitError, Result};
pub use job::{Codegen, CodegenFactory, CodegenReport};
pub use quorum::{Judge, QuorumRules};
pub use request::GenerationRequest;

/// Name of the job, its consumer group and its lock.
pub const CODEGEN: &str = "codegen";

/// The built-in model: templates filled from the request and the patterns; no network.
pub const TEMPLATE_MODEL: &str = "template";

/// Which generated files the compile check (G13) hands to Python.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CompileScope {
    /// Every Python file of the node: about 12 ms of Python CPU per generation, more than the
    /// rest of the pipeline's own work (docs/performance.md).
    All,
    /// Only what a model wrote or a patch changed (the default). Template output is covered by
    /// the syntax gate (G9) on every generation and by the project's tests, which compile the
    /// templates of every node type; values from the request only land in identifiers the
    /// pre-gates validated and in strings, so they cannot change Python's verdict.
    #[default]
    Changed,
}

/// What a refinement round asks of the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Refinement {
    /// The problems found, after the model's answer (the default).
    #[default]
    Feedback,
    /// The request again in a fresh conversation, sampled at [`RESAMPLE_TEMPERATURE`]: a small
    /// model told what is wrong tends to send its answer back unchanged, while a new sample is
    /// an independent try that the gates and the examples judge the same way.
    Resample,
}

/// Sampling temperature of a resampled try: high enough that it differs from the first.
pub const RESAMPLE_TEMPERATURE: f32 = 0.8;

/// A configured model: which provider serves it, under which name on the wire.
#[derive(Debug, Clone)]
pub struct ModelRoute {
    pub provider: Arc<HttpProvider>,
    pub model: String,
}

#[derive(Debug, Clone)]
pub struct CodegenOptions {
    /// Generations run at once.
    pub concurrency: usize,
    /// Requests taken per batch (their offsets are committed together).
    pub max_batch: usize,
    /// Where nodes go when a request names no directory (relative ones resolve under it).
    pub output_root: PathBuf,
    /// Absolute directories (besides `output_root`) a request may name as its output directory.
    pub allowed_output_roots: Vec<PathBuf>,
    /// Model of requests that name none: `template` or a key of `models`.
    pub default_model: String,
    pub models: BTreeMap<String, ModelRoute>,
    pub prices: PriceTable,
    /// Judge models of the quorum; none configured: no quorum.
    pub judges: Vec<Judge>,
    pub quorum: QuorumRules,
    /// Refinement rounds when gates warn or the quorum says RETRY (upstream: 2).
    pub max_refinements: u32,
    /// What each refinement round sends: the problems, or the request again.
    pub refinement: Refinement,
    /// Compile generated Python files with Python itself (G13).
    pub compile_check: bool,
    /// Which files G13 compiles.
    pub compile_scope: CompileScope,
    /// Run the generated tests with pytest (G14).
    pub run_tests: bool,
    pub python: String,
    pub max_tokens: u32,
    pub temperature: f32,
    /// Requests older than this are not generated (history, or nobody waits any more).
    pub request_ttl: Duration,
    /// Rules every contract must satisfy besides the shipped schema (G7).
    pub contract_rules: Option<Arc<contract::ContractRules>>,
    /// Limits of the contained runs of generated code (`wall` is the tests' time limit).
    pub limits: sandbox::Limits,
    /// Time each example of a request may take (the behaviour gate, G15).
    pub example_timeout: Duration,
    /// What a model writes: logic.py into the scaffold (import-first), or node.py whole.
    pub strategy: assemble::Strategy,
    /// The pattern store the intelligence stage searches (none: the built-in catalog only).
    pub patterns: Option<Arc<dyn PatternSource>>,
    /// Patterns retrieved per generation.
    pub retrieval_top_k: usize,
    /// Lowest quality of a retrieved pattern.
    pub retrieval_min_quality: f64,
    /// Before asking a model, reuse a retrieved pattern's logic that passes every example of
    /// the request as it is.
    pub reuse_verified: bool,
    /// Quality from which a completed generation is published to be stored as a pattern (its
    /// examples, when it has any, must all pass too).
    pub learning_threshold: f64,
}

impl Default for CodegenOptions {
    fn default() -> Self {
        CodegenOptions {
            concurrency: 4,
            max_batch: 64,
            output_root: PathBuf::from("./generated"),
            allowed_output_roots: Vec::new(),
            default_model: TEMPLATE_MODEL.into(),
            models: BTreeMap::new(),
            prices: PriceTable::default(),
            judges: Vec::new(),
            quorum: QuorumRules::default(),
            max_refinements: 2,
            refinement: Refinement::Feedback,
            compile_check: true,
            compile_scope: CompileScope::Changed,
            run_tests: true,
            python: "python3".into(),
            max_tokens: 2048,
            temperature: 0.2,
            request_ttl: Duration::from_secs(3600),
            contract_rules: None,
            limits: sandbox::Limits::default(),
            example_timeout: Duration::from_secs(5),
            strategy: assemble::Strategy::ImportFirst,
            patterns: None,
            retrieval_top_k: 5,
            retrieval_min_quality: 0.8,
            learning_threshold: 0.95,
            reuse_verified: true,
        }
    }
}
