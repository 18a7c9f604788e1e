//! The running record of one generation: every event it emits (stage-completed, validation-result,
//! model-call, and its start and end), its totals, and the causation chain between its events.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Instant;

use omnistream_connectors::models::{Attempt, CallError, ChatMessage, ChatRequest, Completion};
use omnistream_streams::{Event, Topic};
use serde_json::{Value, json};

use crate::behaviour::CaseVerdict;
use crate::catalog::PatternRef;
use crate::emit::Emitter;
use crate::emit::SOURCE;
use crate::error::EmitError;
use crate::gates::Quality;
use crate::gates::{self, GateResult};
use crate::parse::ParsedPrompt;
use crate::prompts::code_system;
use crate::render::NODE_MODULE;
use crate::request::GenerationRequest;
use crate::stage::{Failure, Stage};
use crate::{CodegenOptions, ModelRoute, TEMPLATE_MODEL};

/// Everything shared by the generations of a job.
pub struct Shared<'a> {
    pub options: &'a CodegenOptions,
    pub emitter: &'a Emitter<'a>,
    pub runtime: &'a tokio::runtime::Handle,
}

/// What a completed generation hands to its end event.
pub(crate) struct Done {
    pub(crate) directory: PathBuf,
    pub(crate) quality: Quality,
    /// The node's files, relative to its directory.
    pub(crate) files: Vec<String>,
    pub(crate) parsed: ParsedPrompt,
    pub(crate) patterns: Vec<PatternRef>,
    pub(crate) contract_yaml: String,
    /// The code a pattern would keep: (module, content), logic.py when there is one.
    pub(crate) code: (&'static str, String),
    pub(crate) prompt: String,
}

/// The running record of one generation: its events, totals and causation chain.
pub(crate) struct Recorder<'s, 'a> {
    pub(crate) shared: &'s Shared<'a>,
    pub(crate) correlation_id: String,
    pub(crate) node_type: Option<String>,
    /// The last stage event: what the next one was caused by.
    pub(crate) cause: String,
    pub(crate) pending: Vec<(Topic, Value)>,
    pub(crate) tokens: i64,
    pub(crate) cost: f64,
    pub(crate) models: BTreeSet<String>,
    pub(crate) primary_model: String,
    pub(crate) started: Instant,
    pub(crate) gates: Vec<GateResult>,
    /// Examples the request gave, and how many passed once they ran.
    pub(crate) examples_total: i64,
    pub(crate) examples_passed: Option<i64>,
    /// What `patterns_applied` records, once the intelligence stage ran.
    pub(crate) applied: Vec<String>,
    /// The first event built with a field its topic does not have.
    invalid: Option<EmitError>,
}

impl<'s, 'a> Recorder<'s, 'a> {
    pub(crate) fn new(shared: &'s Shared<'a>, req: &GenerationRequest, model_name: &str) -> Self {
        Recorder {
            shared,
            correlation_id: req.correlation_id.clone(),
            node_type: req.node_type.clone(),
            cause: req.event_id.clone(),
            pending: Vec::new(),
            tokens: 0,
            cost: 0.0,
            models: BTreeSet::new(),
            primary_model: model_name.to_string(),
            started: Instant::now(),
            gates: Vec::new(),
            examples_total: req.spec.examples.len() as i64,
            examples_passed: None,
            applied: Vec::new(),
            invalid: None,
        }
    }

    /// generation-started: the stages planned.
    pub(crate) fn started(&mut self, req: &GenerationRequest, planned: &[&str], template: bool) {
        self.push(
            Topic::GenerationStarted,
            json!({
                "workflow_id": req.correlation_id,
                "orchestrator_node_id": format!("omnistream-codegen/{}", std::process::id()),
                "pipeline_stages": planned,
                "estimated_duration_seconds": if template { 0.5 } else { 30.0 },
            }),
            true,
        );
    }

    /// generation-completed: what was generated, its quality, models, tokens and cost.
    pub(crate) fn completed(&mut self, done: &Done) {
        let files = &done.files;
        let under = |prefix: &str| -> Vec<&str> {
            files
                .iter()
                .filter(|f| f.starts_with(prefix) && f.ends_with(".py"))
                .filter(|f| !f.ends_with("__init__.py"))
                .map(String::as_str)
                .collect()
        };
        let tests: Vec<&str> = files
            .iter()
            .filter(|f| f.starts_with("tests/"))
            .map(String::as_str)
            .collect();
        let (quality, parsed, patterns) = (&done.quality, &done.parsed, &done.patterns);
        let payload = json!({
            "total_duration_seconds": self.started.elapsed().as_secs_f64(), "generated_files": files,
            "node_type": parsed.node_type.as_str(), "service_name": parsed.service_name,
            "domain": parsed.domain, "quality_score": quality.score,
            "syntax_score": quality.syntax, "onex_compliance_score": quality.onex_compliance,
            "contract_score": quality.contract, "code_quality_score": quality.code_quality,
            "passed": quality.passed, "functional_score": quality.functional,
            "examples_total": self.examples_total, "examples_passed": self.examples_passed,
            "patterns_applied": patterns.iter().map(PatternRef::applied_name).collect::<Vec<_>>(),
            "intelligence_sources": patterns.iter().map(|p| p.source.clone()).collect::<BTreeSet<_>>(),
            "primary_model": self.primary_model, "total_tokens": self.tokens,
            "total_cost_usd": self.cost, "output_directory": done.directory.display().to_string(),
            "contract_yaml": done.contract_yaml, "node_module": NODE_MODULE,
            "models": under("v1_0_0/models/"), "enums": under("v1_0_0/enums/"), "tests": tests,
            "metadata": {"models_used": self.models, "grade": gates::grade(quality.score)},
        });
        self.push(Topic::GenerationCompleted, payload, false);
        if self.worth_learning(quality) {
            self.storage_requested(done);
        }
    }

    /// Passed, at or above the learning threshold, and every example (when given) passed.
    fn worth_learning(&self, quality: &Quality) -> bool {
        quality.passed
            && quality.score >= self.shared.options.learning_threshold
            && (self.examples_total == 0 || self.examples_passed == Some(self.examples_total))
    }

    /// pattern-storage-requested: what the pattern indexer needs to keep this generation.
    fn storage_requested(&mut self, done: &Done) {
        let (quality, parsed) = (&done.quality, &done.parsed);
        let (module, code) = &done.code;
        let text = format!(
            "{} {} {}",
            done.prompt.trim(),
            parsed.operations.join(" "),
            parsed.features.join(" ")
        );
        let payload = json!({
            "node_type": parsed.node_type.as_str(), "domain": parsed.domain,
            "service_name": parsed.service_name, "node_name": parsed.name, "language": "python",
            "module": module, "code_sample": code, "contract_yaml": done.contract_yaml,
            "prompt": done.prompt, "business_description": done.prompt.trim(),
            "operations": parsed.operations, "features": parsed.features,
            "quality_score": quality.score, "syntax_score": quality.syntax,
            "onex_compliance_score": quality.onex_compliance, "contract_score": quality.contract,
            "code_quality_score": quality.code_quality, "functional_score": quality.functional,
            "scorer_version": gates::SCORER_VERSION, "compilation_successful": true,
            "tests_passing": self.shared.options.run_tests.then_some(true),
            "examples_total": self.examples_total, "examples_passed": self.examples_passed,
            "primary_model": self.primary_model, "patterns_applied": self.applied,
            "embedding_text": text,
        });
        self.push(Topic::PatternStorageRequested, payload, false);
    }

    /// generation-failed: where, why, and what was written before.
    pub(crate) fn failed(&mut self, f: &Failure) {
        let payload = json!({
            "failed_stage": f.stage.name(),
            "partial_duration_seconds": self.started.elapsed().as_secs_f64(),
            "error_code": f.code.as_str(), "error_message": f.message,
            "partial_files": f.partial_files, "retry_count": 0, "is_retryable": f.code.retryable(),
            "primary_model": self.primary_model, "node_type": self.node_type,
            "total_tokens": self.tokens, "total_cost_usd": self.cost,
            "examples_total": self.examples_total, "examples_passed": self.examples_passed,
            "patterns_applied": self.applied,
        });
        self.push(Topic::GenerationFailed, payload, false);
    }

    /// The template model's "call": it wrote the node while rendering; accounted like any other.
    pub(crate) fn template_call(&mut self, latency: std::time::Duration) {
        self.models.insert(TEMPLATE_MODEL.into());
        let payload = json!({
            "model": TEMPLATE_MODEL, "provider": TEMPLATE_MODEL, "response_model": TEMPLATE_MODEL,
            "operation": "generate", "node_type": self.node_type,
            "stage_name": Stage::CodeGeneration.name(),
            "latency_ms": latency.as_secs_f64() * 1000.0, "cost_usd": 0.0,
            "success": true, "finish_reason": "stop", "attempt": 1,
        });
        self.push(Topic::ModelCall, payload, false);
    }

    /// Queue an event of `topic`; `chain`: the next events are caused by this one. A payload
    /// field the topic does not have is a bug of the pipeline: the next flush fails with it, so
    /// the generation ends there (EVENT_LOG_ERROR) instead of leaving a column silently null.
    pub(crate) fn push(&mut self, topic: Topic, payload: Value, chain: bool) {
        let event = Event::new(topic, &self.correlation_id, Some(&self.cause), SOURCE);
        let event = match event.payload(payload) {
            Ok(event) => event,
            Err(e) => {
                self.invalid.get_or_insert(EmitError::InvalidEvent {
                    table: topic.table(),
                    reason: e.to_string(),
                });
                return;
            }
        };
        if chain {
            self.cause = event.id().to_string();
        }
        self.pending.push((topic, event.into_json()));
    }

    /// Send what is pending (durably, with the other generations' events).
    pub(crate) fn flush(&mut self) -> Result<(), EmitError> {
        if let Some(e) = self.invalid.take() {
            return Err(e);
        }
        let events = std::mem::take(&mut self.pending);
        self.shared.emitter.emit(events)
    }

    /// Hand what is pending to the emitter without waiting for it to be durable (progress).
    pub(crate) fn flush_soon(&mut self) -> Result<(), EmitError> {
        if let Some(e) = self.invalid.take() {
            return Err(e);
        }
        let events = std::mem::take(&mut self.pending);
        self.shared.emitter.emit_soon(events)
    }

    /// The stage-completed event of `stage` (success or not), handed on to be made durable soon.
    pub(crate) fn stage(
        &mut self,
        stage: Stage,
        started: Instant,
        success: bool,
        warnings: &[String],
        output: Option<String>,
        error: Option<&str>,
    ) -> Result<(), EmitError> {
        let secs = started.elapsed().as_secs_f64();
        self.push(
            Topic::StageCompleted,
            json!({
                "stage_name": stage.name(), "stage_number": stage.number(),
                "duration_seconds": secs, "success": success, "warnings": warnings,
                "stage_output": output, "error_message": error,
            }),
            true,
        );
        self.flush_soon()
    }

    /// A gate's validation-result; the latest result of each gate counts for the quality score.
    pub(crate) fn gate(&mut self, stage: Stage, g: &GateResult) {
        self.push(
            Topic::ValidationResult,
            json!({
                "gate_id": g.id, "gate_name": g.name, "stage_name": stage.name(),
                "status": g.status.as_str(), "score": g.score, "message": g.message,
                "duration_ms": g.duration_ms,
            }),
            false,
        );
        self.gates.retain(|x| x.id != g.id);
        self.gates.push(g.clone());
    }

    /// One example's verdict (the behaviour gate, G15) as its validation result.
    pub(crate) fn example(&mut self, stage: Stage, name: &str, v: &CaseVerdict) {
        self.push(
            Topic::ValidationResult,
            json!({
                "gate_id": "G15", "gate_name": name, "stage_name": stage.name(),
                "status": if v.passed { "pass" } else { "fail" },
                "score": if v.passed { 1.0 } else { 0.0 }, "message": v.message,
                "duration_ms": v.duration_ms,
            }),
            false,
        );
    }

    /// A model-call event per HTTP attempt, costed from the price table.
    pub(crate) fn model_attempt(
        &mut self,
        model_name: &str,
        route: &ModelRoute,
        operation: &str,
        stage: Stage,
        a: &Attempt,
    ) {
        let ok = a.outcome.as_ref().ok();
        let (input, output) = (
            ok.and_then(|c| c.input_tokens),
            ok.and_then(|c| c.output_tokens),
        );
        let cost = self
            .shared
            .options
            .prices
            .cost(model_name, input.unwrap_or(0), output.unwrap_or(0))
            .or_else(|| {
                self.shared.options.prices.cost(
                    &route.model,
                    input.unwrap_or(0),
                    output.unwrap_or(0),
                )
            });
        if let Some((ci, co)) = cost {
            self.cost += ci + co;
        }
        self.tokens += input.unwrap_or(0) + output.unwrap_or(0);
        self.models.insert(model_name.to_string());
        let err = a.outcome.as_ref().err();
        self.push(
            Topic::ModelCall,
            json!({
                "model": model_name, "provider": route.provider.name(),
                "response_model": ok.and_then(|c| c.response_model.clone()),
                "operation": operation, "node_type": self.node_type, "stage_name": stage.name(),
                "input_tokens": input, "output_tokens": output,
                "total_tokens": input.zip(output).map(|(i, o)| i + o),
                "latency_ms": a.latency.as_secs_f64() * 1000.0,
                "input_cost_usd": cost.map(|c| c.0), "output_cost_usd": cost.map(|c| c.1),
                "cost_usd": cost.map(|c| c.0 + c.1),
                "success": ok.is_some(), "finish_reason": ok.and_then(|c| c.finish_reason.clone()),
                "error_type": err.map(|e| e.error_type()), "http_status": a.http_status,
                "attempt": a.attempt,
                "metadata": err.map(|e| json!({"error": e.to_string()})),
            }),
            false,
        );
    }
}

/// One model call with its attempts recorded.
pub(crate) fn call_model(
    rec: &mut Recorder<'_, '_>,
    model_name: &str,
    route: &ModelRoute,
    conversation: &[ChatMessage],
    (operation, temperature): (&str, f32),
    stage: Stage,
) -> Result<Completion, CallError> {
    let options = rec.shared.options;
    let request = ChatRequest {
        model: route.model.clone(),
        system: Some(code_system(options.strategy).to_string()),
        messages: conversation.to_vec(),
        max_tokens: options.max_tokens,
        temperature,
    };
    // A model call can take long: what happened so far is shown first. (A log failure here
    // surfaces again, and stops the job, at the end event.)
    if let Err(e) = rec.flush() {
        tracing::warn!("could not record progress: {e}");
    }
    let mut attempts = Vec::new();
    let result = rec
        .shared
        .runtime
        .block_on(route.provider.chat(&request, |a| attempts.push(a.clone())));
    for a in &attempts {
        rec.model_attempt(model_name, route, operation, stage, a);
    }
    result
}
