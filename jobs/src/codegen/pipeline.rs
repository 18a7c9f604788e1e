//! One generation, stage by stage. Whatever happens (a model down, garbage output, a disk full),
//! the request ends with exactly one generation-completed or generation-failed event.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use omnistream_connectors::models::{Attempt, ChatMessage, ChatRequest, Completion};
use omnistream_streams::Topic;
use serde_json::{Value, json};

use super::catalog::{PatternRef, catalog_patterns};
use super::contract::{build_contract, contract_hash, to_yaml, validate_yaml};
use super::emit::{Emitter, event};
use super::gates::{self, GateResult, GateStatus, Quality};
use super::job::GenerationRequest;
use super::parse::{ParsedPrompt, parse_prompt};
use super::python::{PythonWorker, run_pytest};
use super::quorum::{self, Decision, Recommendation, Vote};
use super::render::{
    CONTRACT_FILE, GeneratedFile, GeneratorContext, NODE_MODULE, TemplateContext, render_event_bus,
    render_node,
};
use super::syntax::PythonParser;
use super::{CodegenOptions, CompileScope, ModelRoute, TEMPLATE_MODEL, event_bus, write};

/// The stages, as named in stage-completed events, with upstream's numbers.
pub const STAGES: &[(&str, f64)] = &[
    ("prompt_parsing", 1.0),
    ("intelligence_gathering", 1.5),
    ("contract_building", 2.0),
    ("pre_validation", 3.0),
    ("code_generation", 4.0),
    ("event_bus_integration", 4.5),
    ("post_validation", 5.0),
    ("refinement", 5.5),
    ("file_writing", 6.0),
    ("compilation_test", 7.0),
];

fn stage_number(name: &str) -> f64 {
    STAGES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, x)| *x)
        .unwrap_or(0.0)
}

/// How a generation ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    Completed {
        directory: PathBuf,
        quality: Quality,
    },
    Failed {
        stage: String,
        code: String,
        message: String,
    },
}

/// Everything shared by the generations of a job.
pub struct Shared<'a> {
    pub options: &'a CodegenOptions,
    pub emitter: &'a Emitter<'a>,
    pub runtime: &'a tokio::runtime::Handle,
}

/// A stage failure: where, a code, a message, whether a retry may help.
struct Failure {
    stage: &'static str,
    code: &'static str,
    message: String,
    retryable: bool,
}

fn fail(stage: &'static str, code: &'static str, message: impl Into<String>) -> Failure {
    Failure {
        stage,
        code,
        message: message.into(),
        retryable: false,
    }
}

/// The running record of one generation: its events, totals and causation chain.
struct Recorder<'s, 'a> {
    shared: &'s Shared<'a>,
    correlation_id: String,
    node_type: Option<String>,
    /// The last stage event: what the next one was caused by.
    cause: String,
    pending: Vec<(Topic, Value)>,
    tokens: i64,
    cost: f64,
    models: BTreeSet<String>,
    primary_model: String,
    started: Instant,
    gates: Vec<GateResult>,
}

impl Recorder<'_, '_> {
    fn push(&mut self, topic: Topic, payload: Value, chain: bool) {
        let (id, value) = event(&self.correlation_id, Some(&self.cause), payload);
        if chain {
            self.cause = id;
        }
        self.pending.push((topic, value));
    }

    /// Send what is pending (durably, with the other generations' events).
    fn flush(&mut self) -> Result<(), String> {
        let events = std::mem::take(&mut self.pending);
        self.shared.emitter.emit(events)
    }

    /// Hand what is pending to the emitter without waiting for it to be durable (progress).
    fn flush_soon(&mut self) -> Result<(), String> {
        let events = std::mem::take(&mut self.pending);
        self.shared.emitter.emit_soon(events)
    }

    fn stage(
        &mut self,
        name: &str,
        started: Instant,
        success: bool,
        warnings: &[String],
        output: Option<String>,
        error: Option<&str>,
    ) -> Result<(), String> {
        let secs = started.elapsed().as_secs_f64();
        self.push(
            Topic::StageCompleted,
            json!({
                "stage_name": name, "stage_number": stage_number(name),
                "duration_seconds": secs, "success": success, "warnings": warnings,
                "stage_output": output, "error_message": error,
            }),
            true,
        );
        self.flush_soon()
    }

    fn gate(&mut self, stage: &str, g: &GateResult) {
        self.push(
            Topic::ValidationResult,
            json!({
                "gate_id": g.id, "gate_name": g.name, "stage_name": stage,
                "status": g.status.as_str(), "score": g.score, "message": g.message,
                "duration_ms": g.duration_ms,
            }),
            false,
        );
        self.gates.retain(|x| x.id != g.id);
        self.gates.push(g.clone());
    }

    /// A model-call event per HTTP attempt, costed from the price table.
    fn model_attempt(
        &mut self,
        model_name: &str,
        route: &ModelRoute,
        operation: &str,
        stage: &str,
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
                "operation": operation, "node_type": self.node_type, "stage_name": stage,
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

/// Pull the Python code out of a model's answer: the first ```python block, else the first fenced
/// block, else the whole answer when it looks like code. Empty when there is none.
pub fn extract_code(text: &str) -> String {
    let fenced = |open: &str| -> Option<String> {
        let start = text.find(open)? + open.len();
        let rest = &text[start..];
        let rest = rest
            .strip_prefix('\n')
            .unwrap_or(rest.trim_start_matches(|c| c != '\n'));
        let end = rest.find("```").unwrap_or(rest.len());
        Some(rest[..end].trim_matches('\n').to_string() + "\n")
    };
    if let Some(code) = fenced("```python").or_else(|| fenced("```py")) {
        return code;
    }
    if let Some(code) = fenced("```") {
        return code;
    }
    let t = text.trim();
    if t.contains("class ")
        || t.contains("def ")
        || t.starts_with("import ")
        || t.starts_with("from ")
    {
        return t.to_string() + "\n";
    }
    String::new()
}

const CODE_SYSTEM: &str = "You write Python 3.11 ONEX nodes. Answer with the complete file in one ```python code block and nothing else.";

fn generation_prompt(
    prompt: &str,
    parsed: &ParsedPrompt,
    contract: &str,
    patterns: &[PatternRef],
    skeleton: &str,
) -> String {
    let patterns: String = patterns
        .iter()
        .map(|p| format!("- {}: {}\n", p.name, p.description))
        .collect();
    format!(
        "Request: {prompt}\n\nWrite v1_0_0/node.py of an ONEX {ty} node.\n\
         Rules: keep the class name {class} and its async method `{method}`; keep the imports of \
         the models and enums as in the starting point (relative imports); Pydantic v2 only; a \
         docstring and type hints on every function; lines of at most 100 characters; no TODO.\n\n\
         Patterns to follow:\n{patterns}\nContract (contract.yaml):\n```yaml\n{contract}```\n\n\
         Starting point (improve it for the request):\n```python\n{skeleton}```",
        ty = parsed.node_type.as_str(),
        class = parsed.class_name(),
        method = parsed.node_type.execute_method(),
    )
}

fn refinement_prompt(problems: &[String]) -> String {
    format!(
        "The code has these problems:\n{}\nAnswer with the corrected complete file in one ```python block.",
        problems
            .iter()
            .map(|p| format!("- {p}\n"))
            .collect::<String>()
    )
}

/// What a worker of the codegen job keeps from one generation to the next (and across the job's
/// steps, whose threads are new each time): its Python interpreter, and its parser's previous
/// trees, from which the next generation's files are parsed incrementally.
pub struct Worker {
    pub python: PythonWorker,
    pub parser: PythonParser,
}

impl Worker {
    pub fn new(python: &str) -> Self {
        Worker {
            python: PythonWorker::new(python),
            parser: PythonParser::new(),
        }
    }
}

/// Run one generation to its end event. Errors only when the log itself fails.
pub fn run(
    shared: &Shared<'_>,
    worker: &mut Worker,
    req: &GenerationRequest,
) -> Result<Outcome, String> {
    let options = shared.options;
    let model_name = req
        .model
        .clone()
        .filter(|m| !m.trim().is_empty())
        .unwrap_or_else(|| options.default_model.clone());
    let mut rec = Recorder {
        shared,
        correlation_id: req.correlation_id.clone(),
        node_type: req.node_type.clone(),
        cause: req.event_id.clone(),
        pending: Vec::new(),
        tokens: 0,
        cost: 0.0,
        models: BTreeSet::new(),
        primary_model: model_name.clone(),
        started: Instant::now(),
        gates: Vec::new(),
    };
    let quorum_on = req.enable_quorum.unwrap_or(true) && !options.judges.is_empty();
    let planned: Vec<&str> = STAGES
        .iter()
        .map(|(n, _)| *n)
        .filter(|n| {
            *n != "refinement"
                && (*n != "compilation_test" || options.compile_check || options.run_tests)
        })
        .collect();
    rec.push(
        Topic::GenerationStarted,
        json!({
            "workflow_id": req.correlation_id,
            "orchestrator_node_id": format!("omnistream-codegen/{}", std::process::id()),
            "pipeline_stages": planned,
            "estimated_duration_seconds": if model_name == TEMPLATE_MODEL { 0.5 } else { 30.0 },
        }),
        true,
    );
    rec.flush()?;
    let result = stages(&mut rec, worker, req, &model_name, quorum_on);
    let total = rec.started.elapsed().as_secs_f64();
    match result {
        Ok(Done {
            directory,
            quality,
            files,
            parsed,
            patterns,
            contract_yaml,
        }) => {
            let models: Vec<&str> = files
                .iter()
                .filter(|f| {
                    f.starts_with("v1_0_0/models/")
                        && f.ends_with(".py")
                        && !f.ends_with("__init__.py")
                })
                .map(String::as_str)
                .collect();
            let enums: Vec<&str> = files
                .iter()
                .filter(|f| f.starts_with("v1_0_0/enums/") && !f.ends_with("__init__.py"))
                .map(String::as_str)
                .collect();
            let tests: Vec<&str> = files
                .iter()
                .filter(|f| f.starts_with("tests/"))
                .map(String::as_str)
                .collect();
            rec.push(
                Topic::GenerationCompleted,
                json!({
                    "total_duration_seconds": total, "generated_files": files,
                    "node_type": parsed.node_type.as_str(), "service_name": parsed.service_name,
                    "domain": parsed.domain, "quality_score": quality.score,
                    "syntax_score": quality.syntax, "onex_compliance_score": quality.onex_compliance,
                    "contract_score": quality.contract, "code_quality_score": quality.code_quality,
                    "passed": quality.passed,
                    "patterns_applied": patterns.iter().map(|p| p.name.clone()).collect::<Vec<_>>(),
                    "intelligence_sources": patterns.iter().map(|p| p.source.clone()).collect::<BTreeSet<_>>(),
                    "primary_model": rec.primary_model, "total_tokens": rec.tokens,
                    "total_cost_usd": rec.cost, "output_directory": directory.display().to_string(),
                    "contract_yaml": contract_yaml, "node_module": NODE_MODULE,
                    "models": models, "enums": enums, "tests": tests,
                    "metadata": {"models_used": rec.models, "grade": gates::grade(quality.score)},
                }),
                false,
            );
            rec.flush()?;
            Ok(Outcome::Completed { directory, quality })
        }
        Err((f, partial)) => {
            rec.push(
                Topic::GenerationFailed,
                json!({
                    "failed_stage": f.stage, "partial_duration_seconds": total,
                    "error_code": f.code, "error_message": f.message,
                    "partial_files": partial, "retry_count": 0, "is_retryable": f.retryable,
                    "primary_model": rec.primary_model, "node_type": rec.node_type,
                    "total_tokens": rec.tokens, "total_cost_usd": rec.cost,
                }),
                false,
            );
            rec.flush()?;
            Ok(Outcome::Failed {
                stage: f.stage.into(),
                code: f.code.into(),
                message: f.message,
            })
        }
    }
}

/// What a completed generation hands to its end event.
struct Done {
    directory: PathBuf,
    quality: Quality,
    /// The node's files, relative to its directory.
    files: Vec<String>,
    parsed: ParsedPrompt,
    patterns: Vec<PatternRef>,
    contract_yaml: String,
}

/// The stages proper. Err carries the failure and the files written so far.
fn stages(
    rec: &mut Recorder<'_, '_>,
    worker: &mut Worker,
    req: &GenerationRequest,
    model_name: &str,
    quorum_on: bool,
) -> Result<Done, (Failure, Vec<String>)> {
    let options = rec.shared.options;
    let log_failed = |e: String| (fail("event_log", "EVENT_LOG_ERROR", e), vec![]);
    // A failed stage: its stage-completed event (success false), then the failure.
    let stage_failed = |rec: &mut Recorder<'_, '_>, t: Instant, f: Failure| {
        let _ = rec.stage(f.stage, t, false, &[], None, Some(&f.message));
        (f, Vec::new())
    };

    // 1: prompt parsing, and the model route.
    let t = Instant::now();
    let parsed = match parse_prompt(&req.prompt, req.node_type.as_deref()) {
        Ok(p) => p,
        Err(e) => {
            return Err(stage_failed(
                rec,
                t,
                fail("prompt_parsing", "PARSE_FAILED", e),
            ));
        }
    };
    rec.node_type = Some(parsed.node_type.as_str().to_string());
    let route = if model_name == TEMPLATE_MODEL {
        None
    } else {
        match options.models.get(model_name) {
            Some(r) => Some(r.clone()),
            None => {
                let known: Vec<&str> = std::iter::once(TEMPLATE_MODEL)
                    .chain(options.models.keys().map(String::as_str))
                    .collect();
                return Err(stage_failed(
                    rec,
                    t,
                    fail(
                        "prompt_parsing",
                        "UNKNOWN_MODEL",
                        format!(
                            "model '{model_name}' is not configured (models: {})",
                            known.join(", ")
                        ),
                    ),
                ));
            }
        }
    };
    rec.stage(
        "prompt_parsing",
        t,
        true,
        &[],
        Some(
            json!({"node_type": parsed.node_type, "service_name": parsed.service_name,
            "domain": parsed.domain, "operations": parsed.operations, "features": parsed.features,
            "confidence": parsed.confidence})
            .to_string(),
        ),
        None,
    )
    .map_err(log_failed)?;

    // 1.5: intelligence.
    let t = Instant::now();
    let patterns = if req.enable_intelligence.unwrap_or(true) {
        catalog_patterns(&parsed, &req.prompt)
    } else {
        Vec::new()
    };
    rec.stage(
        "intelligence_gathering",
        t,
        true,
        &[],
        Some(json!({"patterns": patterns.iter().map(|p| &p.name).collect::<Vec<_>>()}).to_string()),
        None,
    )
    .map_err(log_failed)?;

    // 2: contract.
    let t = Instant::now();
    let generated_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let contract = build_contract(
        &parsed,
        req.prompt.trim(),
        model_name,
        &req.correlation_id,
        &generated_at,
    );
    let contract_yaml = to_yaml(&contract);
    let g7 = gates::contract_gate(&validate_yaml(&contract_yaml));
    rec.gate("contract_building", &g7);
    if g7.status == GateStatus::Fail {
        return Err(stage_failed(
            rec,
            t,
            fail("contract_building", "CONTRACT_INVALID", g7.message.clone()),
        ));
    }
    rec.stage(
        "contract_building",
        t,
        true,
        &[],
        Some(format!("contract_hash {}", contract_hash(&contract_yaml))),
        None,
    )
    .map_err(log_failed)?;

    // 3: pre-validation gates.
    let t = Instant::now();
    let ctx = TemplateContext::new(
        &parsed,
        &req.prompt,
        patterns.clone(),
        GeneratorContext {
            tool: "omnistream".into(),
            model: model_name.into(),
            correlation_id: req.correlation_id.clone(),
            generated_at,
        },
    );
    let rendered = render_node(&ctx);
    let out_dir = write::resolve_output(
        &options.output_root,
        &options.allowed_output_roots,
        req.output_directory.as_deref(),
    );
    let output_ok = out_dir
        .as_ref()
        .map_err(Clone::clone)
        .and_then(|d| write::check_output(d));
    let missing = worker
        .python
        .missing_modules(&["pydantic".to_string()])
        .unwrap_or_default();
    let pre = gates::pre_gates(
        &parsed,
        rendered.as_ref().map(|_| ()).map_err(Clone::clone),
        &missing,
        output_ok,
    );
    for g in &pre {
        rec.gate("pre_validation", g);
    }
    if let Some(g) = pre.iter().find(|g| g.status == GateStatus::Fail) {
        let message = format!("{} {}: {}", g.id, g.name, g.message);
        return Err(stage_failed(
            rec,
            t,
            fail("pre_validation", "PRE_VALIDATION_FAILED", message),
        ));
    }
    let warnings: Vec<String> = pre
        .iter()
        .filter(|g| g.status == GateStatus::Warn)
        .map(|g| format!("{} {}", g.id, g.message))
        .collect();
    rec.stage("pre_validation", t, true, &warnings, None, None)
        .map_err(log_failed)?;
    let out_dir = out_dir.expect("checked by G6");
    let mut files = rendered.expect("checked by G5");
    files.push(GeneratedFile {
        path: CONTRACT_FILE.into(),
        content: contract_yaml.clone(),
    });

    // 4: code generation. `changed`: files a model wrote or a patch changed (G13's scope).
    let t = Instant::now();
    let mut changed: BTreeSet<&str> = BTreeSet::new();
    let mut conversation: Vec<ChatMessage> = Vec::new();
    match &route {
        None => {
            // The template model wrote the node while rendering; its call is accounted like any other.
            rec.models.insert(TEMPLATE_MODEL.into());
            rec.push(
                Topic::ModelCall,
                json!({
                    "model": TEMPLATE_MODEL, "provider": TEMPLATE_MODEL, "response_model": TEMPLATE_MODEL,
                    "operation": "generate", "node_type": rec.node_type, "stage_name": "code_generation",
                    "latency_ms": t.elapsed().as_secs_f64() * 1000.0, "cost_usd": 0.0,
                    "success": true, "finish_reason": "stop", "attempt": 1,
                }),
                false,
            );
        }
        Some(route) => {
            let skeleton = &files
                .iter()
                .find(|f| f.path == NODE_MODULE)
                .expect("rendered")
                .content;
            conversation.push(ChatMessage::user(generation_prompt(
                &req.prompt,
                &parsed,
                &contract_yaml,
                &patterns,
                skeleton,
            )));
            match call_model(
                rec,
                model_name,
                route,
                &conversation,
                CODE_SYSTEM,
                "generate",
                "code_generation",
            ) {
                Ok(c) => {
                    conversation.push(ChatMessage::assistant(c.text.clone()));
                    set_node_module(&mut files, extract_code(&c.text));
                    changed.insert(NODE_MODULE);
                }
                Err(e) => {
                    let mut f = fail(
                        "code_generation",
                        "MODEL_UNAVAILABLE",
                        format!("model '{model_name}': {e}"),
                    );
                    f.retryable = true;
                    return Err(stage_failed(rec, t, f));
                }
            }
        }
    }
    rec.stage(
        "code_generation",
        t,
        true,
        &[],
        Some(format!("{} files", files.len())),
        None,
    )
    .map_err(log_failed)?;

    // 4.5: event-bus integration (non-fatal).
    if parsed.node_type.uses_event_bus() {
        let t = Instant::now();
        let warnings = integrate_event_bus(&mut files, &ctx, &parsed, &mut worker.parser);
        changed.insert(NODE_MODULE);
        rec.stage("event_bus_integration", t, true, &warnings, None, None)
            .map_err(log_failed)?;
    }

    // 5: post-validation, the quorum, and 5.5 refinement while it helps.
    let t = Instant::now();
    let mut round = 0u32;
    let mut stage_name: &'static str = "post_validation";
    let mut stage_started = t;
    let (validation, decision) = loop {
        let mut resolve = |m: &[String]| worker.python.missing_modules(m);
        let validation = gates::post_gates(&files, &parsed, &mut resolve, &mut worker.parser);
        for g in &validation.gates {
            rec.gate(stage_name, g);
        }
        let hard = validation
            .gates
            .iter()
            .any(|g| g.status == GateStatus::Fail);
        let decision = if quorum_on && !hard {
            Some(run_quorum(rec, &req.prompt, &parsed, &files, stage_name))
        } else {
            None
        };
        let mut problems: Vec<String> = validation
            .gates
            .iter()
            .filter(|g| g.status != GateStatus::Pass)
            .map(|g| format!("{} {}: {}", g.id, g.name, g.message))
            .collect();
        if let Some(d) = &decision
            && d.recommendation == Some(Recommendation::Retry)
        {
            problems.push(format!(
                "reviewers ask for changes: {}",
                d.missing_requirements.join(", ")
            ));
        }
        let can_refine = route.is_some() && round < options.max_refinements && !problems.is_empty();
        rec.stage(
            stage_name,
            stage_started,
            !hard || can_refine,
            &problems,
            None,
            None,
        )
        .map_err(log_failed)?;
        if !can_refine {
            break (validation, decision);
        }
        // 5.5: ask the model to fix what the gates and the judges found.
        round += 1;
        stage_name = "refinement";
        stage_started = Instant::now();
        let route = route.as_ref().expect("checked");
        conversation.push(ChatMessage::user(refinement_prompt(&problems)));
        match call_model(
            rec,
            model_name,
            route,
            &conversation,
            CODE_SYSTEM,
            "refine",
            "refinement",
        ) {
            Ok(c) => {
                conversation.push(ChatMessage::assistant(c.text.clone()));
                let code = extract_code(&c.text);
                if !code.trim().is_empty() {
                    set_node_module(&mut files, code);
                    changed.insert(NODE_MODULE);
                    if parsed.node_type.uses_event_bus() {
                        integrate_event_bus(&mut files, &ctx, &parsed, &mut worker.parser);
                    }
                }
            }
            Err(e) => {
                // The unrefined code is judged as it is.
                tracing::warn!(correlation_id = %rec.correlation_id, "refinement call failed: {e}");
                rec.stage(
                    "refinement",
                    stage_started,
                    false,
                    &[],
                    None,
                    Some(&e.to_string()),
                )
                .map_err(log_failed)?;
                let mut resolve = |m: &[String]| worker.python.missing_modules(m);
                let validation =
                    gates::post_gates(&files, &parsed, &mut resolve, &mut worker.parser);
                break (validation, None);
            }
        }
    };
    if let Some(g) = validation
        .gates
        .iter()
        .find(|g| g.status == GateStatus::Fail)
    {
        // Nothing appears under the node's name, but what the model wrote is kept for inspection.
        let mut message = format!("{} {}: {}", g.id, g.name, g.message);
        if let Some(kept) = write::stage(&out_dir, &parsed.dir_name(), &files, &req.correlation_id)
            .ok()
            .and_then(write::Staged::discard)
        {
            message.push_str(&format!(" (files kept in {})", kept.display()));
        }
        return Err((
            fail("post_validation", "VALIDATION_FAILED", message),
            vec![],
        ));
    }
    if let Some(d) = &decision {
        match d.recommendation {
            Some(Recommendation::Pass) => {}
            Some(Recommendation::Retry) => {
                return Err((
                    fail(
                        "post_validation",
                        "QUORUM_RETRY_EXHAUSTED",
                        format!(
                            "the judges still ask for changes after {round} refinements (pass share {:.2}): {}",
                            d.pass_share,
                            d.missing_requirements.join(", ")
                        ),
                    ),
                    vec![],
                ));
            }
            Some(Recommendation::Fail) => {
                return Err((
                    fail(
                        "post_validation",
                        "QUORUM_FAILED",
                        format!(
                            "the judges reject the node (pass share {:.2}, confidence {:.2})",
                            d.pass_share, d.confidence
                        ),
                    ),
                    vec![],
                ));
            }
            None => {
                let mut f = fail(
                    "post_validation",
                    "QUORUM_UNAVAILABLE",
                    format!(
                        "only {} of {} judges answered (at least {:.0} % must)",
                        d.responded,
                        d.judges,
                        options.quorum.min_response * 100.0
                    ),
                );
                f.retryable = true;
                return Err((f, vec![]));
            }
        }
    }
    let quality = gates::quality(
        &rec.gates,
        validation.code_quality,
        validation.event_bus_ok,
        parsed.node_type,
    );

    // 6: file writing (to staging).
    let t = Instant::now();
    let staged = match write::stage(&out_dir, &parsed.dir_name(), &files, &req.correlation_id) {
        Ok(s) => s,
        Err(e) => {
            return Err(stage_failed(
                rec,
                t,
                fail("file_writing", "WRITE_FAILED", e),
            ));
        }
    };
    let written = staged.files.clone();
    rec.stage(
        "file_writing",
        t,
        true,
        &[],
        Some(format!("{} files", written.len())),
        None,
    )
    .map_err(log_failed)?;

    // 7: compile check and tests, in staging; then the node appears under its name.
    if options.compile_check || options.run_tests {
        let t = Instant::now();
        let mut problems = Vec::new();
        if options.compile_check {
            let g = Instant::now();
            let paths: Vec<PathBuf> = written
                .iter()
                .filter(|f| f.ends_with(".py"))
                .filter(|f| {
                    options.compile_scope == CompileScope::All || changed.contains(f.as_str())
                })
                .map(|f| staged.staging.join(f))
                .collect();
            let refs: Vec<&Path> = paths.iter().map(PathBuf::as_path).collect();
            let (status, message) = match worker.python.compile(&refs) {
                Ok(errors) if errors.is_empty() => {
                    (GateStatus::Pass, format!("{} files compiled", paths.len()))
                }
                Ok(errors) => (
                    GateStatus::Fail,
                    errors
                        .iter()
                        .map(|e| {
                            let rel = Path::new(&e.path)
                                .strip_prefix(&staged.staging)
                                .map(|p| p.display().to_string())
                                .unwrap_or(e.path.clone());
                            format!("{rel}:{}: {}", e.line, e.message)
                        })
                        .collect::<Vec<_>>()
                        .join("; "),
                ),
                Err(e) => (GateStatus::Fail, e),
            };
            let g13 = GateResult {
                id: "G13",
                name: "py_compile",
                status,
                score: if status == GateStatus::Pass { 1.0 } else { 0.0 },
                message,
                duration_ms: g.elapsed().as_secs_f64() * 1000.0,
            };
            rec.gate("compilation_test", &g13);
            if g13.status == GateStatus::Fail {
                problems.push(("COMPILE_ERROR", format!("G13 py_compile: {}", g13.message)));
            }
        }
        if options.run_tests && problems.is_empty() {
            rec.flush().map_err(log_failed)?;
            let g = Instant::now();
            let run = run_pytest(&options.python, &staged.staging, options.test_timeout);
            let g14 = GateResult {
                id: "G14",
                name: "generated_tests",
                status: if run.passed {
                    GateStatus::Pass
                } else {
                    GateStatus::Fail
                },
                score: if run.passed { 1.0 } else { 0.0 },
                message: if run.passed {
                    run.summary.clone()
                } else {
                    format!("{}\n{}", run.summary, run.output_tail)
                },
                duration_ms: g.elapsed().as_secs_f64() * 1000.0,
            };
            rec.gate("compilation_test", &g14);
            if !run.passed {
                problems.push((
                    "TESTS_FAILED",
                    format!("G14 generated tests: {}", run.summary),
                ));
            }
        }
        if let Some((code, message)) = problems.into_iter().next() {
            let kept = staged.discard();
            let message = match kept {
                Some(p) => format!("{message} (files kept in {})", p.display()),
                None => message,
            };
            let _ = rec.stage("compilation_test", t, false, &[], None, Some(&message));
            return Err((fail("compilation_test", code, message), written));
        }
        rec.stage("compilation_test", t, true, &[], None, None)
            .map_err(log_failed)?;
    }
    let directory = match staged.publish() {
        Ok(d) => d,
        Err(e) => return Err((fail("file_writing", "WRITE_FAILED", e), written)),
    };
    Ok(Done {
        directory,
        quality,
        files: written,
        parsed,
        patterns,
        contract_yaml,
    })
}

fn set_node_module(files: &mut [GeneratedFile], code: String) {
    if let Some(f) = files.iter_mut().find(|f| f.path == NODE_MODULE) {
        f.content = code;
    }
}

/// Add event_bus.py and patch the node class; warnings instead of failure.
pub(crate) fn integrate_event_bus(
    files: &mut Vec<GeneratedFile>,
    ctx: &TemplateContext,
    parsed: &ParsedPrompt,
    parser: &mut PythonParser,
) -> Vec<String> {
    let mut warnings = Vec::new();
    match render_event_bus(ctx) {
        Ok(f) => {
            files.retain(|x| x.path != f.path);
            files.push(f);
        }
        Err(e) => warnings.push(e),
    }
    if let Some(node) = files.iter_mut().find(|f| f.path == NODE_MODULE) {
        match event_bus::integrate(
            &node.content,
            &parsed.class_name(),
            parsed.node_type,
            parser,
        ) {
            Ok(patched) => node.content = patched,
            Err(e) => warnings.push(format!("event bus not integrated: {e}")),
        }
    }
    warnings
}

/// One model call with its attempts recorded.
fn call_model(
    rec: &mut Recorder<'_, '_>,
    model_name: &str,
    route: &ModelRoute,
    conversation: &[ChatMessage],
    system: &str,
    operation: &str,
    stage: &str,
) -> Result<Completion, omnistream_connectors::models::CallError> {
    let options = rec.shared.options;
    let request = ChatRequest {
        model: route.model.clone(),
        system: Some(system.to_string()),
        messages: conversation.to_vec(),
        max_tokens: options.max_tokens,
        temperature: options.temperature,
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

/// Ask every judge at once; record each vote and the decision as validation-results.
fn run_quorum(
    rec: &mut Recorder<'_, '_>,
    prompt: &str,
    parsed: &ParsedPrompt,
    files: &[GeneratedFile],
    stage: &str,
) -> Decision {
    let options = rec.shared.options;
    let code = files
        .iter()
        .find(|f| f.path == NODE_MODULE)
        .map(|f| f.content.as_str())
        .unwrap_or("");
    let question = quorum::judge_prompt(
        prompt,
        parsed.node_type.as_str(),
        &parsed.class_name(),
        code,
    );
    if let Err(e) = rec.flush() {
        tracing::warn!("could not record progress: {e}");
    }
    let started = Instant::now();
    let calls = options.judges.iter().map(|judge| {
        let route = options.models.get(&judge.model).cloned();
        let request = ChatRequest {
            model: route.as_ref().map(|r| r.model.clone()).unwrap_or_default(),
            system: Some(quorum::JUDGE_SYSTEM.into()),
            messages: vec![ChatMessage::user(question.clone())],
            max_tokens: 300,
            temperature: 0.0,
        };
        async move {
            let Some(route) = route else {
                return (
                    judge.clone(),
                    None,
                    Vec::new(),
                    Err(format!("judge model '{}' is not configured", judge.model)),
                );
            };
            let mut attempts = Vec::new();
            let result = route
                .provider
                .chat(&request, |a| attempts.push(a.clone()))
                .await;
            let judgement = result
                .map_err(|e| e.to_string())
                .and_then(|c| quorum::parse_judgement(&c.text));
            (judge.clone(), Some(route), attempts, judgement)
        }
    });
    let answers = rec
        .shared
        .runtime
        .block_on(futures::future::join_all(calls));
    let mut votes = Vec::new();
    for (judge, route, attempts, judgement) in answers {
        if let Some(route) = &route {
            for a in &attempts {
                rec.model_attempt(&judge.model, route, "judge", stage, a);
            }
        }
        let payload = match &judgement {
            Ok(j) => json!({
                "gate_id": "QUORUM", "gate_name": "model_quorum", "stage_name": stage,
                "status": match j.recommendation { Recommendation::Pass => "pass", Recommendation::Retry => "warn", Recommendation::Fail => "fail" },
                "score": j.alignment_score / 100.0, "voter_model": judge.model, "weight": judge.weight,
                "recommendation": j.recommendation.as_str(),
                "message": format!("alignment {:.0}, node type {}; missing: {}", j.alignment_score,
                    if j.correct_node_type { "right" } else { "wrong" }, j.missing_requirements.join(", ")),
            }),
            Err(e) => json!({
                "gate_id": "QUORUM", "gate_name": "model_quorum", "stage_name": stage,
                "status": "error", "voter_model": judge.model, "weight": judge.weight,
                "message": format!("no vote: {e}"),
            }),
        };
        rec.push(Topic::ValidationResult, payload, false);
        votes.push(Vote { judge, judgement });
    }
    let d = quorum::decide(&votes, &options.quorum);
    rec.push(
        Topic::ValidationResult,
        json!({
            "gate_id": "QUORUM_DECISION", "gate_name": "model_quorum", "stage_name": stage,
            "status": match d.recommendation { Some(Recommendation::Pass) => "pass", Some(Recommendation::Retry) => "warn", Some(Recommendation::Fail) => "fail", None => "error" },
            "score": d.confidence, "recommendation": d.recommendation.map(|r| r.as_str()),
            "duration_ms": started.elapsed().as_secs_f64() * 1000.0,
            "message": format!("{} of {} judges answered; pass share {:.2}, retry share {:.2}", d.responded, d.judges, d.pass_share, d.retry_share),
        }),
        false,
    );
    d
}

#[cfg(test)]
mod tests {
    use super::extract_code;

    #[test]
    fn code_is_taken_from_fences_or_bare_answers() {
        assert_eq!(extract_code("Here:\n```python\nx = 1\n```\nbye"), "x = 1\n");
        assert_eq!(
            extract_code("```\nclass A:\n    pass\n```"),
            "class A:\n    pass\n"
        );
        assert_eq!(extract_code("import os\nprint(1)"), "import os\nprint(1)\n");
        assert_eq!(extract_code("I cannot help with that."), "");
        assert_eq!(extract_code(""), "");
    }
}
