//! The topic registry: every topic of the platform, its Arrow schema and its raw lake table.
//!
//! This is the only place where topic and table names are written. Everything else refers to a
//! [`Topic`] value; topic-name drift was the upstream platform's largest bug class.

use std::fmt;
use std::sync::{Arc, LazyLock};

use arrow::datatypes::SchemaRef;

use crate::error::{Result, StreamsError};
use crate::schema::{FieldSpec, FieldType, arrow_schema};

/// Whether a topic carries commands (requests to act) or events (facts that happened).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicKind {
    Command,
    Event,
}

impl TopicKind {
    fn segment(self) -> &'static str {
        match self {
            TopicKind::Command => "cmd",
            TopicKind::Event => "evt",
        }
    }
}

/// Every topic of the platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Topic {
    GenerationRequested,
    GenerationStarted,
    StageCompleted,
    ModelCall,
    ValidationResult,
    GenerationCompleted,
    GenerationFailed,
    NodeIntrospection,
    NodeHeartbeat,
    PatternStorageRequested,
    PatternStored,
    DeadLetter,
}

impl Topic {
    /// All topics, in registry order.
    pub const ALL: [Topic; 12] = [
        Topic::GenerationRequested,
        Topic::GenerationStarted,
        Topic::StageCompleted,
        Topic::ModelCall,
        Topic::ValidationResult,
        Topic::GenerationCompleted,
        Topic::GenerationFailed,
        Topic::NodeIntrospection,
        Topic::NodeHeartbeat,
        Topic::PatternStorageRequested,
        Topic::PatternStored,
        Topic::DeadLetter,
    ];

    /// The full specification of this topic.
    pub fn spec(self) -> &'static TopicSpec {
        &REGISTRY[self as usize]
    }

    /// Full topic name, `onex.{cmd|evt}.<producer>.<name>.v<N>`.
    pub fn name(self) -> &'static str {
        &self.spec().name
    }

    /// Short snake_case name of the raw lake table.
    pub fn table(self) -> &'static str {
        self.spec().table
    }

    /// The topic's Arrow schema (envelope, payload, metadata).
    pub fn schema(self) -> SchemaRef {
        self.spec().schema.clone()
    }

    /// Look a topic up by its full name, its table name, or its short name (`model-call`).
    pub fn lookup(name: &str) -> Result<Topic> {
        Topic::ALL
            .into_iter()
            .find(|t| {
                let s = t.spec();
                s.name == name || s.table == name || s.short_name == name
            })
            .ok_or_else(|| StreamsError::UnknownTopic {
                name: name.to_string(),
                nearest: Topic::nearest(name)
                    .map(|t| format!(" (did you mean '{}'?)", t.spec().short_name))
                    .unwrap_or_default(),
                known: Topic::ALL
                    .iter()
                    .map(|t| t.spec().short_name)
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// The topic whose name (full, table or short) is closest to `name`, when one is close
    /// enough to be a likely typo: at most a third of its letters differ.
    fn nearest(name: &str) -> Option<Topic> {
        Topic::ALL
            .into_iter()
            .filter_map(|t| {
                let s = t.spec();
                [s.name.as_str(), s.table, s.short_name]
                    .into_iter()
                    .map(|n| (strsim::damerau_levenshtein(name, n), n.len()))
                    .min()
                    .map(|(d, len)| (d, len, t))
            })
            .filter(|(d, len, _)| *d * 3 <= *len)
            .min_by_key(|(d, _, _)| *d)
            .map(|(_, _, t)| t)
    }

    /// The topic whose raw lake table has this name.
    pub fn from_table(table: &str) -> Option<Topic> {
        Topic::ALL.into_iter().find(|t| t.table() == table)
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Everything the platform knows about one topic.
#[derive(Debug)]
pub struct TopicSpec {
    pub topic: Topic,
    /// Full name, `onex.{cmd|evt}.<producer>.<name>.v<N>`.
    pub name: String,
    /// The `<name>` part, e.g. `model-call`.
    pub short_name: &'static str,
    /// Raw lake table name, snake_case.
    pub table: &'static str,
    pub kind: TopicKind,
    /// The producing component, e.g. `codegen`.
    pub producer: &'static str,
    /// Schema version, the `v<N>` of the name and the `schema_version` column.
    pub version: i64,
    /// Default `event_type` of events on this topic.
    pub event_type: &'static str,
    /// Column whose value picks the partition, so related events stay in order.
    pub partition_key: &'static str,
    pub description: &'static str,
    /// Payload fields, between the envelope and `metadata`.
    pub payload: Vec<FieldSpec>,
    /// All fields in column order: envelope, payload, metadata.
    pub fields: Vec<FieldSpec>,
    pub schema: SchemaRef,
}

impl TopicSpec {
    /// The field spec of a column, if the topic has it.
    pub fn field(&self, name: &str) -> Option<&FieldSpec> {
        self.fields.iter().find(|f| f.name == name)
    }
}

/// Envelope column names (decision 2). Payload columns are named by the registry only.
pub mod envelope {
    pub const EVENT_ID: &str = "event_id";
    pub const CORRELATION_ID: &str = "correlation_id";
    pub const CAUSATION_ID: &str = "causation_id";
    pub const EVENT_TYPE: &str = "event_type";
    pub const SOURCE: &str = "source";
    pub const EMITTED_AT: &str = "emitted_at";
    pub const SCHEMA_VERSION: &str = "schema_version";
    /// Free-form extras as a JSON object in text.
    pub const METADATA: &str = "metadata";

    /// A UUID in the canonical form event ids are stored in (36 characters, lowercase hex,
    /// hyphens at 8, 13, 18 and 23) as a number, or `None` for any other spelling. Ingest checks
    /// every event id and the sink keys every event this way: a table lookup per digit, nothing else.
    pub fn canonical_uuid(text: &str) -> Option<u128> {
        const INVALID: u8 = 0xff;
        const HEX: [u8; 256] = {
            let mut table = [INVALID; 256];
            let mut i = 0;
            while i < 10 {
                table[b'0' as usize + i] = i as u8;
                i += 1;
            }
            let mut i = 0;
            while i < 6 {
                table[b'a' as usize + i] = 10 + i as u8;
                i += 1;
            }
            table
        };
        let text: &[u8; 36] = text.as_bytes().try_into().ok()?;
        if text[8] != b'-' || text[13] != b'-' || text[18] != b'-' || text[23] != b'-' {
            return None;
        }
        // Where the 32 digits are; a fixed list of indices unrolls into straight loads (iterating
        // over the groups as slices compiled to a loop that spilled its state every digit).
        const DIGITS: [usize; 32] = [
            0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 14, 15, 16, 17, //
            19, 20, 21, 22, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35,
        ];
        let mut invalid = 0u8;
        let mut half = |positions: &[usize]| {
            let mut value = 0u64;
            for &i in positions {
                let digit = HEX[text[i] as usize];
                invalid |= digit;
                value = value << 4 | u64::from(digit & 0xf);
            }
            value
        };
        let high = half(&DIGITS[..16]);
        let low = half(&DIGITS[16..]);
        // Every valid digit is below 16: one high bit anywhere means a character was not a digit.
        (invalid & 0xf0 == 0).then_some(u128::from(high) << 64 | u128::from(low))
    }
}

use FieldType::*;

fn envelope_fields() -> Vec<FieldSpec> {
    vec![
        FieldSpec::new(envelope::EVENT_ID, Utf8, "UUID of this event (UUIDv7 when omnistream assigns it); producers that retry must resend the same id. Assigned on ingest when absent.").required(),
        FieldSpec::new(envelope::CORRELATION_ID, Utf8, "Ties together every event of one generation, end to end. Defaults to event_id on ingest.").required(),
        FieldSpec::new(envelope::CAUSATION_ID, Utf8, "event_id of the event that caused this one."),
        FieldSpec::new(envelope::EVENT_TYPE, Utf8, "Event type; defaults to the topic's event type on ingest.").required(),
        FieldSpec::new(envelope::SOURCE, Utf8, "Producer of the event (service or node). Defaults to the ingest source on ingest.").required().aliases(&["source_service", "source_node_id"]),
        FieldSpec::new(envelope::EMITTED_AT, Timestamp, "When the producer emitted the event (UTC, microseconds); partitions the lake by date. Defaults to the ingest time.").required().aliases(&["event_timestamp", "timestamp"]),
        FieldSpec::new(envelope::SCHEMA_VERSION, Int64, "Version of this topic's schema (the v<N> of the topic name).").required(),
    ]
}

fn metadata_field() -> FieldSpec {
    FieldSpec::new(
        envelope::METADATA,
        Json,
        "Free-form extras: the input's `metadata` object plus any unknown top-level keys, as JSON text.",
    )
}

struct Def {
    topic: Topic,
    kind: TopicKind,
    producer: &'static str,
    short_name: &'static str,
    table: &'static str,
    event_type: &'static str,
    partition_key: &'static str,
    description: &'static str,
    payload: Vec<FieldSpec>,
}

fn definitions() -> Vec<Def> {
    vec![
        Def {
            topic: Topic::GenerationRequested,
            kind: TopicKind::Command,
            producer: "codegen",
            short_name: "generation-requested",
            table: "generation_requested",
            event_type: "GENERATION_REQUESTED",
            partition_key: envelope::CORRELATION_ID,
            description: "A person or system asks for a node to be generated.",
            payload: vec![
                FieldSpec::new("prompt", Utf8, "The request in natural language.").required(),
                FieldSpec::new("output_directory", Utf8, "Where the generated files go."),
                FieldSpec::new("node_type", Utf8, "Optional hint: effect, compute, reducer or orchestrator."),
                FieldSpec::new("model", Utf8, "Requested model; the configured default when absent."),
                FieldSpec::new("interactive_mode", Boolean, "Whether checkpoints wait for a person."),
                FieldSpec::new("enable_intelligence", Boolean, "Retrieve patterns for the request (upstream default true)."),
                FieldSpec::new("enable_quorum", Boolean, "Validate with the judge-model quorum (upstream default false)."),
                FieldSpec::new("user_id", Utf8, "Who asked."),
                FieldSpec::new("session_id", Utf8, "Client session."),
                FieldSpec::new("operations", Utf8List, "Declared operations of the node (snake_case), instead of those read from the prompt."),
                FieldSpec::new("input_fields", Json, "Declared input fields, [{name, type, description}], as JSON text: they become the input model."),
                FieldSpec::new("output_fields", Json, "Declared output fields, as JSON text: they become the output model."),
                FieldSpec::new("examples", Json, "Examples, [{operation, before, input, output | error}], as JSON text: the behaviour gate runs them."),
            ],
        },
        Def {
            topic: Topic::GenerationStarted,
            kind: TopicKind::Event,
            producer: "codegen",
            short_name: "generation-started",
            table: "generation_started",
            event_type: "GENERATION_STARTED",
            partition_key: envelope::CORRELATION_ID,
            description: "The codegen job picked a request up.",
            payload: vec![
                FieldSpec::new("workflow_id", Utf8, "Id of this pipeline run."),
                FieldSpec::new("orchestrator_node_id", Utf8, "The worker that runs it."),
                FieldSpec::new("pipeline_stages", Utf8List, "Stages planned, in order."),
                FieldSpec::new("estimated_duration_seconds", Float64, "Expected duration."),
            ],
        },
        Def {
            topic: Topic::StageCompleted,
            kind: TopicKind::Event,
            producer: "codegen",
            short_name: "stage-completed",
            table: "stage_completed",
            event_type: "STAGE_COMPLETED",
            partition_key: envelope::CORRELATION_ID,
            description: "One pipeline stage finished, successfully or not.",
            payload: vec![
                FieldSpec::new("stage_name", Utf8, "Stage, e.g. prompt_parsing, code_generation.").required(),
                FieldSpec::new("stage_number", Float64, "Position in the pipeline (upstream numbers such as 1.5 included)."),
                FieldSpec::new("duration_seconds", Float64, "Wall-clock duration of the stage.").required(),
                FieldSpec::new("cpu_time_seconds", Float64, "CPU time spent."),
                FieldSpec::new("memory_mb", Float64, "Peak memory."),
                FieldSpec::new("success", Boolean, "Whether the stage succeeded.").required(),
                FieldSpec::new("warnings", Utf8List, "Warnings raised by the stage."),
                FieldSpec::new("stage_output", Json, "Stage-specific output, as JSON text."),
                FieldSpec::new("error_message", Utf8, "Why the stage failed."),
            ],
        },
        Def {
            topic: Topic::ModelCall,
            kind: TopicKind::Event,
            producer: "codegen",
            short_name: "model-call",
            table: "model_call",
            event_type: "MODEL_CALL",
            partition_key: envelope::CORRELATION_ID,
            description: "One call to a model provider, with tokens, latency, cost and outcome (OpenTelemetry GenAI names where they fit).",
            payload: vec![
                FieldSpec::new("model", Utf8, "Requested model (gen_ai.request.model).").required().aliases(&["gen_ai.request.model", "model_name"]),
                FieldSpec::new("provider", Utf8, "Provider (gen_ai.provider.name): template, openai, anthropic, ...").aliases(&["gen_ai.provider.name"]),
                FieldSpec::new("response_model", Utf8, "Model that answered (gen_ai.response.model).").aliases(&["gen_ai.response.model"]),
                FieldSpec::new("model_tier", Utf8, "Tier of the model in the routing table."),
                FieldSpec::new("operation", Utf8, "chat, embeddings, judge (gen_ai.operation.name).").aliases(&["gen_ai.operation.name"]),
                FieldSpec::new("node_type", Utf8, "Node type being generated."),
                FieldSpec::new("stage_name", Utf8, "Pipeline stage that made the call."),
                FieldSpec::new("input_tokens", Int64, "Prompt tokens (gen_ai.usage.input_tokens).").aliases(&["prompt_tokens", "gen_ai.usage.input_tokens"]),
                FieldSpec::new("output_tokens", Int64, "Completion tokens (gen_ai.usage.output_tokens).").aliases(&["completion_tokens", "gen_ai.usage.output_tokens"]),
                FieldSpec::new("total_tokens", Int64, "input_tokens + output_tokens."),
                FieldSpec::new("latency_ms", Float64, "Wall-clock latency of the call.").required(),
                FieldSpec::new("time_to_first_token_ms", Float64, "Latency to the first streamed token."),
                FieldSpec::new("input_cost_usd", Float64, "Cost of the input tokens, from the price table."),
                FieldSpec::new("output_cost_usd", Float64, "Cost of the output tokens, from the price table."),
                FieldSpec::new("cost_usd", Float64, "Total cost of the call."),
                FieldSpec::new("success", Boolean, "Whether the call returned usable output.").required(),
                FieldSpec::new("finish_reason", Utf8, "gen_ai.response.finish_reasons[0]."),
                FieldSpec::new("error_type", Utf8, "error.type: timeout, rate_limited, server_error, malformed_output, ..."),
                FieldSpec::new("http_status", Int64, "HTTP status of the last attempt."),
                FieldSpec::new("attempt", Int64, "1 for the first try, 2+ for retries."),
                FieldSpec::new("quality_score", Float64, "Quality (0-1) of the output this call produced, when it was scored."),
            ],
        },
        Def {
            topic: Topic::ValidationResult,
            kind: TopicKind::Event,
            producer: "codegen",
            short_name: "validation-result",
            table: "validation_result",
            event_type: "VALIDATION_RESULT",
            partition_key: envelope::CORRELATION_ID,
            description: "One gate or quorum vote on a generation.",
            payload: vec![
                FieldSpec::new("gate_id", Utf8, "Gate, e.g. G9 (syntax), G10 (naming); QUORUM for a vote.").required(),
                FieldSpec::new("gate_name", Utf8, "Readable gate name."),
                FieldSpec::new("stage_name", Utf8, "Stage that ran the gate."),
                FieldSpec::new("status", Utf8, "pass, warn or fail.").required(),
                FieldSpec::new("score", Float64, "Score in 0-1 when the gate scores."),
                FieldSpec::new("message", Utf8, "What the gate found."),
                FieldSpec::new("duration_ms", Float64, "Time the gate took."),
                FieldSpec::new("voter_model", Utf8, "Judge model, for quorum votes."),
                FieldSpec::new("weight", Float64, "Vote weight, for quorum votes."),
                FieldSpec::new("recommendation", Utf8, "PASS, RETRY or FAIL, for quorum votes."),
            ],
        },
        Def {
            topic: Topic::GenerationCompleted,
            kind: TopicKind::Event,
            producer: "codegen",
            short_name: "generation-completed",
            table: "generation_completed",
            event_type: "GENERATION_COMPLETED",
            partition_key: envelope::CORRELATION_ID,
            description: "A generation finished and its files were written.",
            payload: vec![
                FieldSpec::new("total_duration_seconds", Float64, "End-to-end duration.").required(),
                FieldSpec::new("generated_files", Utf8List, "Paths written."),
                FieldSpec::new("node_type", Utf8, "effect, compute, reducer or orchestrator."),
                FieldSpec::new("service_name", Utf8, "snake_case service name."),
                FieldSpec::new("domain", Utf8, "Business domain."),
                FieldSpec::new("quality_score", Float64, "Weighted quality, 0-1 (pass at 0.8)."),
                FieldSpec::new("syntax_score", Float64, "Quality dimension, weight .30."),
                FieldSpec::new("onex_compliance_score", Float64, "Quality dimension, weight .40."),
                FieldSpec::new("contract_score", Float64, "Quality dimension, weight .20."),
                FieldSpec::new("code_quality_score", Float64, "Quality dimension, weight .10."),
                FieldSpec::new("passed", Boolean, "Quality >= 0.8 and ONEX compliance >= 0.7 (and every example passed, when the request has examples)."),
                FieldSpec::new("functional_score", Float64, "Quality dimension when the request has examples: the share of examples that passed (weight .40; the others scale by .60)."),
                FieldSpec::new("examples_total", Int64, "Examples the request gave (0: judged by its gates alone)."),
                FieldSpec::new("examples_passed", Int64, "Examples the node passed."),
                FieldSpec::new("test_coverage", Float64, "Test coverage of the generated code."),
                FieldSpec::new("complexity_score", Float64, "Complexity of the generated code."),
                FieldSpec::new("patterns_applied", Utf8List, "Pattern ids used."),
                FieldSpec::new("intelligence_sources", Utf8List, "Where the patterns came from."),
                FieldSpec::new("primary_model", Utf8, "Model that generated the code."),
                FieldSpec::new("total_tokens", Int64, "Tokens over every model call of the generation."),
                FieldSpec::new("total_cost_usd", Float64, "Cost over every model call of the generation."),
                FieldSpec::new("output_directory", Utf8, "Where the files are."),
                FieldSpec::new("contract_yaml", Utf8, "The generated contract."),
                FieldSpec::new("node_module", Utf8, "Python module of the node."),
                FieldSpec::new("models", Utf8List, "Generated model files."),
                FieldSpec::new("enums", Utf8List, "Generated enum files."),
                FieldSpec::new("tests", Utf8List, "Generated test files."),
            ],
        },
        Def {
            topic: Topic::GenerationFailed,
            kind: TopicKind::Event,
            producer: "codegen",
            short_name: "generation-failed",
            table: "generation_failed",
            event_type: "GENERATION_FAILED",
            partition_key: envelope::CORRELATION_ID,
            description: "A generation ended without a valid node.",
            payload: vec![
                FieldSpec::new("failed_stage", Utf8, "Stage that failed.").required(),
                FieldSpec::new("partial_duration_seconds", Float64, "Time spent before failing."),
                FieldSpec::new("error_code", Utf8, "Machine-readable cause."),
                FieldSpec::new("error_message", Utf8, "Readable cause.").required(),
                FieldSpec::new("error_context", Json, "Context of the error, as JSON text."),
                FieldSpec::new("stack_trace", Utf8, "Trace, when there is one."),
                FieldSpec::new("partial_files", Utf8List, "Files written before the failure (rolled back)."),
                FieldSpec::new("retry_count", Int64, "Retries already made."),
                FieldSpec::new("is_retryable", Boolean, "Whether a retry may succeed."),
                FieldSpec::new("retry_after_seconds", Float64, "Suggested wait before retrying."),
                FieldSpec::new("primary_model", Utf8, "Model used for generation."),
                FieldSpec::new("node_type", Utf8, "Node type, when parsing got that far."),
                FieldSpec::new("total_tokens", Int64, "Tokens spent before failing."),
                FieldSpec::new("total_cost_usd", Float64, "Cost spent before failing."),
                FieldSpec::new("examples_total", Int64, "Examples the request gave (0: judged by its gates alone)."),
                FieldSpec::new("examples_passed", Int64, "Examples the node passed; null when the generation failed before they ran."),
                FieldSpec::new("patterns_applied", Utf8List, "Pattern ids retrieved for the generation (their failure counts against them)."),
            ],
        },
        Def {
            topic: Topic::NodeIntrospection,
            kind: TopicKind::Event,
            producer: "platform",
            short_name: "node-introspection",
            table: "node_introspection",
            event_type: "NODE_INTROSPECTION",
            partition_key: "node_id",
            description: "A node announces itself: identity, type, capabilities, contract.",
            payload: vec![
                FieldSpec::new("node_id", Utf8, "Stable id of the node instance.").required(),
                FieldSpec::new("node_name", Utf8, "Class name, Node<Name><Type>."),
                FieldSpec::new("node_version", Utf8, "Semantic version of the node.").aliases(&["version"]),
                FieldSpec::new("node_type", Utf8, "effect, compute, reducer or orchestrator.").aliases(&["capabilities/metadata/node_type"]),
                FieldSpec::new("domain", Utf8, "Business domain.").aliases(&["capabilities/metadata/domain"]),
                FieldSpec::new("service_name", Utf8, "Service name.").aliases(&["capabilities/metadata/service_name"]),
                FieldSpec::new("actions", Utf8List, "Operations the node offers.").aliases(&["capabilities/actions"]),
                FieldSpec::new("protocols", Utf8List, "Protocols it speaks.").aliases(&["capabilities/protocols"]),
                FieldSpec::new("tags", Utf8List, "Free tags."),
                FieldSpec::new("health_endpoint", Utf8, "Where to probe health."),
                FieldSpec::new("contract_hash", Utf8, "Hash of the node's contract (drift detection)."),
            ],
        },
        Def {
            topic: Topic::NodeHeartbeat,
            kind: TopicKind::Event,
            producer: "platform",
            short_name: "node-heartbeat",
            table: "node_heartbeat",
            event_type: "NODE_HEARTBEAT",
            partition_key: "node_id",
            description: "A node's periodic liveness signal (interval 60 s, liveness window 90 s).",
            payload: vec![
                FieldSpec::new("node_id", Utf8, "Stable id of the node instance.").required(),
                FieldSpec::new("node_type", Utf8, "effect, compute, reducer or orchestrator."),
                FieldSpec::new("node_version", Utf8, "Semantic version of the node."),
                FieldSpec::new("uptime_seconds", Float64, "Seconds since the node started."),
                FieldSpec::new("active_operations_count", Int64, "Operations in flight."),
                FieldSpec::new("memory_usage_mb", Float64, "Resident memory."),
                FieldSpec::new("cpu_usage_percent", Float64, "CPU use."),
                FieldSpec::new("sequence_number", Int64, "Monotonic per node; gaps mean lost heartbeats."),
                FieldSpec::new("contract_hash", Utf8, "Hash of the contract the node runs (drift detection)."),
            ],
        },
        Def {
            topic: Topic::PatternStorageRequested,
            kind: TopicKind::Command,
            producer: "codegen",
            short_name: "pattern-storage-requested",
            table: "pattern_storage_requested",
            event_type: "PATTERN_STORAGE_REQUESTED",
            partition_key: envelope::CORRELATION_ID,
            description: "A generation good enough to learn from, with everything a pattern needs (the pattern indexer stores it).",
            payload: vec![
                FieldSpec::new("pattern_id", Utf8, "Left empty by the codegen job: the indexer derives it from the normalised code."),
                FieldSpec::new("node_type", Utf8, "effect, compute, reducer or orchestrator.").required(),
                FieldSpec::new("domain", Utf8, "Business domain."),
                FieldSpec::new("service_name", Utf8, "snake_case service name (normalised out of the code for dedup)."),
                FieldSpec::new("node_name", Utf8, "PascalCase name the node's classes are built from (normalised out too)."),
                FieldSpec::new("language", Utf8, "Language of the code (python)."),
                FieldSpec::new("module", Utf8, "File of the node the code is: v1_0_0/logic.py (a model's part) or v1_0_0/node.py."),
                FieldSpec::new("code_sample", Utf8, "The code to keep.").required(),
                FieldSpec::new("contract_yaml", Utf8, "The node's contract."),
                FieldSpec::new("prompt", Utf8, "The request's words."),
                FieldSpec::new("business_description", Utf8, "What the node does, in one line."),
                FieldSpec::new("operations", Utf8List, "The node's operations."),
                FieldSpec::new("features", Utf8List, "Features read from the request."),
                FieldSpec::new("quality_score", Float64, "Quality of the generation.").required(),
                FieldSpec::new("syntax_score", Float64, "Quality dimension."),
                FieldSpec::new("onex_compliance_score", Float64, "Quality dimension."),
                FieldSpec::new("contract_score", Float64, "Quality dimension."),
                FieldSpec::new("code_quality_score", Float64, "Quality dimension."),
                FieldSpec::new("functional_score", Float64, "Share of the request's examples that passed (null without examples)."),
                FieldSpec::new("scorer_version", Utf8, "Scorer that produced the score."),
                FieldSpec::new("test_coverage", Float64, "Test coverage of the generated code."),
                FieldSpec::new("compilation_successful", Boolean, "The compile check passed."),
                FieldSpec::new("tests_passing", Boolean, "The generated tests passed."),
                FieldSpec::new("examples_total", Int64, "Examples the request gave."),
                FieldSpec::new("examples_passed", Int64, "Examples the node passed."),
                FieldSpec::new("primary_model", Utf8, "Model that wrote the code."),
                FieldSpec::new("patterns_applied", Utf8List, "Patterns the generation was given (lineage candidates)."),
                FieldSpec::new("tags", Utf8List, "Free tags."),
                FieldSpec::new("embedding_text", Utf8, "Text the pattern is embedded and searched by."),
            ],
        },
        Def {
            topic: Topic::PatternStored,
            kind: TopicKind::Event,
            producer: "intelligence",
            short_name: "pattern-stored",
            table: "pattern_stored",
            event_type: "PATTERN_STORED",
            partition_key: "pattern_id",
            description: "A generation was stored as a pattern (or an existing pattern was updated).",
            payload: vec![
                FieldSpec::new("pattern_id", Utf8, "sha256 of the normalised code, first 16 hex digits.").required(),
                FieldSpec::new("node_type", Utf8, "Node type of the pattern."),
                FieldSpec::new("domain", Utf8, "Domain of the pattern."),
                FieldSpec::new("quality_score", Float64, "Quality when stored."),
                FieldSpec::new("scorer_version", Utf8, "Scorer that produced the score."),
                FieldSpec::new("lifecycle", Utf8, "candidate, validated or deprecated."),
                FieldSpec::new("pattern_version", Utf8, "Version in the pattern's lineage."),
                FieldSpec::new("parent_ids", Utf8List, "Patterns this one derives from."),
                FieldSpec::new("change", Utf8, "What happened: created, version_created, used, validated, deprecated, rescored."),
                FieldSpec::new("usage_count", Int64, "Generations that applied the pattern."),
                FieldSpec::new("success_count", Int64, "Of those, the ones that passed."),
                FieldSpec::new("failure_streak", Int64, "Failures since the last success."),
            ],
        },
        Def {
            topic: Topic::DeadLetter,
            kind: TopicKind::Event,
            producer: "platform",
            short_name: "dead-letter",
            table: "dead_letter",
            event_type: "DEAD_LETTER",
            partition_key: envelope::EVENT_ID,
            description: "Input that could not be accepted, kept whole with the reason so nothing is lost.",
            payload: vec![
                FieldSpec::new("original_topic", Utf8, "Topic the input was meant for, as given."),
                FieldSpec::new("error_kind", Utf8, "malformed_json, wrong_type, missing_field, invalid_value, unknown_topic, invalid_utf8, too_large, not_an_object.").required(),
                FieldSpec::new("reason", Utf8, "What was wrong, in one line.").required(),
                FieldSpec::new("field", Utf8, "The offending field, when there is one."),
                FieldSpec::new("source_file", Utf8, "File the input came from (`-` for standard input)."),
                FieldSpec::new("line_number", Int64, "1-based line number in the source."),
                FieldSpec::new("raw", Binary, "The input line, byte for byte (up to the dead-letter size cap)."),
                FieldSpec::new("raw_bytes", Int64, "Length of the whole input line in bytes."),
                FieldSpec::new("raw_truncated", Boolean, "Whether `raw` holds only the first part of the line."),
            ],
        },
    ]
}

static REGISTRY: LazyLock<Vec<TopicSpec>> = LazyLock::new(|| {
    definitions()
        .into_iter()
        .enumerate()
        .map(|(i, d)| {
            assert_eq!(d.topic as usize, i, "registry order must match Topic::ALL");
            let version = 1;
            let mut fields = envelope_fields();
            fields.extend(d.payload.iter().cloned());
            fields.push(metadata_field());
            TopicSpec {
                topic: d.topic,
                name: format!(
                    "onex.{}.{}.{}.v{}",
                    d.kind.segment(),
                    d.producer,
                    d.short_name,
                    version
                ),
                short_name: d.short_name,
                table: d.table,
                kind: d.kind,
                producer: d.producer,
                version,
                event_type: d.event_type,
                partition_key: d.partition_key,
                description: d.description,
                schema: Arc::new(arrow_schema(&fields)),
                payload: d.payload,
                fields,
            }
        })
        .collect()
});

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn canonical_uuids_read_as_their_number_and_nothing_else_does() {
        for text in [
            "01a19467-ee34-7d7b-a0ec-ba6f595c81d3",
            "00000000-0000-0000-0000-000000000000",
            "ffffffff-ffff-ffff-ffff-ffffffffffff",
            "0192f0a0-0000-7000-8000-000000000001",
        ] {
            let uuid = uuid::Uuid::parse_str(text).unwrap().as_u128();
            assert_eq!(envelope::canonical_uuid(text), Some(uuid), "{text}");
        }
        for not_canonical in [
            "01A19467-EE34-7D7B-A0EC-BA6F595C81D3",
            "01a19467ee347d7ba0ecba6f595c81d3",
            "01a19467-ee34-7d7b-a0ec-ba6f595c81d",
            "01a19467-ee34-7d7b-a0ec-ba6f595c81dg",
            "01a19467xee34-7d7b-a0ec-ba6f595c81d3",
            "01a19467-ee34-7d7b-a0ec-ba6f595c81d3 ",
            "not an id at all, but 36 chars long!",
        ] {
            assert_eq!(
                envelope::canonical_uuid(not_canonical),
                None,
                "{not_canonical}"
            );
        }
    }

    #[test]
    fn names_follow_the_convention_and_are_unique() {
        let mut names = HashSet::new();
        let mut tables = HashSet::new();
        for t in Topic::ALL {
            let s = t.spec();
            assert_eq!(s.topic, t);
            let parts: Vec<_> = s.name.split('.').collect();
            assert_eq!(parts.len(), 5, "{}", s.name);
            assert_eq!(parts[0], "onex");
            assert!(parts[1] == "cmd" || parts[1] == "evt");
            assert_eq!(parts[4], format!("v{}", s.version));
            assert!(
                s.table.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{}",
                s.table
            );
            assert!(names.insert(s.name.clone()));
            assert!(tables.insert(s.table));
            assert!(
                s.field(s.partition_key).is_some(),
                "{} key {}",
                s.name,
                s.partition_key
            );
        }
    }

    #[test]
    fn lookup_accepts_full_table_and_short_names() {
        assert_eq!(
            Topic::lookup("onex.evt.codegen.model-call.v1").unwrap(),
            Topic::ModelCall
        );
        assert_eq!(Topic::lookup("model_call").unwrap(), Topic::ModelCall);
        assert_eq!(Topic::lookup("model-call").unwrap(), Topic::ModelCall);
        let err = Topic::lookup("modle-call").unwrap_err().to_string();
        assert!(err.contains("unknown topic 'modle-call'"), "{err}");
        assert!(err.contains("model-call"), "{err}");
    }

    #[test]
    fn column_names_are_unique_per_topic() {
        for t in Topic::ALL {
            let mut seen = HashSet::new();
            for f in &t.spec().fields {
                assert!(seen.insert(f.name), "{} repeats {}", t.name(), f.name);
            }
        }
    }
}
