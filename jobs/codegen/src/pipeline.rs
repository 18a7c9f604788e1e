//! One generation, stage by stage, one function per stage. Whatever happens (a model down, garbage
//! output, a disk full), the request ends with exactly one generation-completed or
//! generation-failed event.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use omnistream_connectors::models::ChatMessage;
use serde_json::json;

use crate::adapt::{Rename, adapt_field_names};
use crate::assemble::{LOGIC_MODULE, Strategy, assembly_gate};
use crate::behaviour::{CaseVerdict, NodeNames, example_name, run_examples};
use crate::catalog::{PatternQuery, PatternRef, StoredCode, catalog_patterns};
use crate::contract::{build_contract, contract_hash, to_yaml, validate_yaml};
use crate::error::{EmitError, Result, error_chain};
use crate::gates::{self, GateResult, GateStatus, PostValidation, Quality};
use crate::parse::{ParsedPrompt, parse_prompt};
use crate::prompts::{
    example_ask, extract_code, fitting_example, generation_prompt, logic_prompt, refinement_prompt,
};
use crate::python::{PythonWorker, TestRun, run_pytest};
use crate::quorum::{Decision, Recommendation, run_quorum};
use crate::recorder::{Done, Recorder, Shared, call_model};
use crate::render::{
    CONTRACT_FILE, GeneratedFile, GeneratorContext, NODE_MODULE, TemplateContext, render_event_bus,
    render_examples, render_node,
};
use crate::repair::{add_stdlib_imports, restore_field_reads};
use crate::request::GenerationRequest;
use crate::sandbox::{Sandbox, SandboxError};
use crate::stage::{Failure, FailureCode, Stage};
use crate::syntax::PythonParser;
use crate::write::{self, Staged};
use crate::{
    CodegenOptions, CompileScope, ModelRoute, RESAMPLE_TEMPERATURE, Refinement, TEMPLATE_MODEL,
    event_bus,
};

/// How a generation ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    Completed {
        directory: PathBuf,
        quality: Quality,
    },
    Failed {
        stage: Stage,
        code: FailureCode,
        message: String,
    },
}

/// What a worker of the codegen job keeps from one generation to the next (and across the job's
/// steps, whose threads are new each time): its Python interpreter, and its parser's previous
/// trees, from which the next generation's files are parsed incrementally.
pub struct Worker {
    pub python: PythonWorker,
    pub parser: PythonParser,
    /// Where generated code runs (found on first use: it asks the interpreter where it is).
    sandbox: Option<Sandbox>,
}

impl Worker {
    pub fn new(python: &str) -> Self {
        Worker {
            python: PythonWorker::new(python),
            parser: PythonParser::new(),
            sandbox: None,
        }
    }

    fn sandbox(&mut self, python: &str) -> std::result::Result<&Sandbox, SandboxError> {
        if self.sandbox.is_none() {
            self.sandbox = Some(Sandbox::new(python)?);
        }
        Ok(self.sandbox.as_ref().expect("set above"))
    }
}

/// Run one generation to its end event. Errors only when the log itself fails.
pub fn run(shared: &Shared<'_>, worker: &mut Worker, req: &GenerationRequest) -> Result<Outcome> {
    let options = shared.options;
    let model_name = req
        .model
        .clone()
        .filter(|m| !m.trim().is_empty())
        .unwrap_or_else(|| options.default_model.clone());
    let mut rec = Recorder::new(shared, req, &model_name);
    let quorum_on = req.enable_quorum.unwrap_or(true) && !options.judges.is_empty();
    let planned: Vec<&str> = Stage::ALL
        .into_iter()
        .filter(|s| {
            *s != Stage::Refinement
                && (*s != Stage::CompilationTest
                    || options.compile_check
                    || options.run_tests
                    || !req.spec.examples.is_empty())
        })
        .map(Stage::name)
        .collect();
    rec.started(req, &planned, model_name == TEMPLATE_MODEL);
    rec.flush()?;
    let outcome = match stages(&mut rec, worker, req, &model_name, quorum_on) {
        Ok(done) => {
            rec.completed(&done);
            Outcome::Completed {
                directory: done.directory,
                quality: done.quality,
            }
        }
        Err(failure) => {
            rec.failed(&failure);
            Outcome::Failed {
                stage: failure.stage,
                code: failure.code,
                message: failure.message,
            }
        }
    };
    rec.flush()?;
    Ok(outcome)
}

/// The node as the stages build it up.
struct Draft {
    files: Vec<GeneratedFile>,
    /// Files a model wrote or a patch changed: what G13 compiles by default.
    changed: BTreeSet<&'static str>,
    /// The conversation with the model, for refinements.
    conversation: Vec<ChatMessage>,
}

/// The stages proper; a failure carries the files written so far.
fn stages(
    rec: &mut Recorder<'_, '_>,
    worker: &mut Worker,
    req: &GenerationRequest,
    model_name: &str,
    quorum_on: bool,
) -> std::result::Result<Done, Failure> {
    let (parsed, route) = prompt_parsing(rec, req, model_name)?;
    let patterns = intelligence_gathering(rec, req, &parsed)?;
    let contract_yaml = contract_building(rec, req, &parsed, model_name)?;
    let (ctx, out_dir, files) = pre_validation(
        rec,
        worker,
        req,
        &parsed,
        &patterns,
        model_name,
        &contract_yaml,
    )?;
    let mut draft = Draft {
        files,
        changed: BTreeSet::new(),
        conversation: Vec::new(),
    };
    let model = route.as_ref().map(|route| (model_name, route));
    let tried = verified_reuse(
        worker,
        rec.shared.options,
        req,
        (&parsed, &ctx),
        &patterns,
        &draft.files,
    );
    code_generation(
        rec,
        req,
        &parsed,
        (&patterns, &tried),
        model,
        &contract_yaml,
        &mut draft,
    )?;
    if parsed.node_type.uses_event_bus() {
        event_bus_integration(rec, worker, &parsed, &ctx, &mut draft)?;
    }
    let (validation, decision, rounds, behaviour) = post_validation(
        rec, worker, req, &parsed, model, &ctx, &mut draft, quorum_on,
    )?;
    accept(&validation, decision.as_ref(), rounds, rec.shared.options)
        .map_err(|f| keep_failed_files(f, &out_dir, &parsed, &draft.files, req))?;
    let staged = file_writing(rec, &out_dir, &parsed, &draft.files, req)?;
    let written = staged.files.clone();
    let staged = compilation_test(rec, worker, staged, &draft.changed, behaviour.as_ref())?;
    let quality = gates::quality(
        &rec.gates,
        validation.code_quality,
        validation.event_bus_ok,
        parsed.node_type,
        behaviour.as_ref().map(|b| b.share),
    );
    let directory = staged.publish().map_err(|e| {
        Failure::new(
            Stage::FileWriting,
            FailureCode::WriteFailed,
            error_chain(&e),
        )
        .with_files(written.clone())
    })?;
    let code = [LOGIC_MODULE, NODE_MODULE]
        .into_iter()
        .find_map(|m| {
            let f = draft.files.iter().find(|f| f.path == m)?;
            Some((m, f.content.clone()))
        })
        .unwrap_or((NODE_MODULE, String::new()));
    Ok(Done {
        directory,
        quality,
        files: written,
        parsed,
        patterns,
        contract_yaml,
        code,
        prompt: req.prompt.clone(),
    })
}

/// A failure to record a stage's events: the generation stops there.
fn logged(stage: Stage) -> impl FnOnce(EmitError) -> Failure {
    move |e| Failure::new(stage, FailureCode::EventLogError, error_chain(&e))
}

/// A failed stage: its stage-completed event (success false), then the failure.
fn stage_failed(rec: &mut Recorder<'_, '_>, started: Instant, f: Failure) -> Failure {
    let _ = rec.stage(f.stage, started, false, &[], None, Some(&f.message));
    f
}

/// 1: read the request's words, and find the model's route (`None`: the template model).
fn prompt_parsing(
    rec: &mut Recorder<'_, '_>,
    req: &GenerationRequest,
    model_name: &str,
) -> std::result::Result<(ParsedPrompt, Option<ModelRoute>), Failure> {
    let stage = Stage::PromptParsing;
    let t = Instant::now();
    let parsed = parse_request(req).map_err(|message| {
        stage_failed(
            rec,
            t,
            Failure::new(stage, FailureCode::ParseFailed, message),
        )
    })?;
    rec.node_type = Some(parsed.node_type.as_str().to_string());
    let options = rec.shared.options;
    let route = match options.models.get(model_name) {
        _ if model_name == TEMPLATE_MODEL => None,
        Some(r) => Some(r.clone()),
        None => {
            let known: Vec<&str> = std::iter::once(TEMPLATE_MODEL)
                .chain(options.models.keys().map(String::as_str))
                .collect();
            let message = format!(
                "model '{model_name}' is not configured (models: {})",
                known.join(", ")
            );
            let f = Failure::new(stage, FailureCode::UnknownModel, message);
            return Err(stage_failed(rec, t, f));
        }
    };
    let output = json!({"node_type": parsed.node_type, "service_name": parsed.service_name,
        "domain": parsed.domain, "operations": parsed.operations, "features": parsed.features,
        "confidence": parsed.confidence});
    rec.stage(stage, t, true, &[], Some(output.to_string()), None)
        .map_err(logged(stage))?;
    Ok((parsed, route))
}

/// The prompt's words and the request's declarations: declared operations replace the ones the
/// words suggest, and every example must name one of the node's operations.
fn parse_request(req: &GenerationRequest) -> std::result::Result<ParsedPrompt, String> {
    if let Some(problem) = &req.spec_problem {
        return Err(format!(
            "the request's declarations are not valid: {problem}"
        ));
    }
    let mut parsed =
        parse_prompt(&req.prompt, req.node_type.as_deref()).map_err(|e| e.to_string())?;
    if !req.spec.operations.is_empty() {
        parsed.operations = req.spec.operations.clone();
    }
    let ops = &parsed.operations;
    for (i, e) in req.spec.examples.iter().enumerate() {
        let named = e.before.iter().filter_map(|c| c.operation.as_ref());
        if let Some(op) = named
            .chain(e.operation.as_ref())
            .find(|op| !ops.contains(op))
        {
            return Err(format!(
                "example {}: operation '{op}' is not one of the node's ({}); declare the \
                 request's operations to choose them",
                i + 1,
                ops.join(", ")
            ));
        }
    }
    Ok(parsed)
}

/// 1.5: the patterns that apply: the store's, or the built-in catalog's when the store has none
/// (or fails: the generation goes on, with a warning).
fn intelligence_gathering(
    rec: &mut Recorder<'_, '_>,
    req: &GenerationRequest,
    parsed: &ParsedPrompt,
) -> std::result::Result<Vec<PatternRef>, Failure> {
    let stage = Stage::IntelligenceGathering;
    let t = Instant::now();
    let mut warnings = Vec::new();
    let mut patterns = Vec::new();
    let mut retrieval_ms = None;
    let on = req.enable_intelligence.unwrap_or(true);
    if let (true, Some(source)) = (on, &rec.shared.options.patterns) {
        let options = rec.shared.options;
        let query = PatternQuery {
            text: &req.prompt,
            node_type: parsed.node_type,
            domain: &parsed.domain,
            min_quality: options.retrieval_min_quality,
            top_k: options.retrieval_top_k,
        };
        let started = Instant::now();
        match source.retrieve(&query) {
            Ok(found) => patterns = found,
            Err(e) => warnings.push(format!("the pattern store failed, using the catalog: {e}")),
        }
        retrieval_ms = Some(started.elapsed().as_secs_f64() * 1000.0);
    }
    if on && patterns.is_empty() {
        patterns = catalog_patterns(parsed, &req.prompt);
    }
    let output = json!({
        "patterns": patterns.iter().map(PatternRef::applied_name).collect::<Vec<_>>(),
        "sources": patterns.iter().map(|p| p.source.as_str()).collect::<BTreeSet<_>>(),
        "relevance": patterns.iter().map(|p| p.relevance).collect::<Vec<_>>(),
        "retrieval_ms": retrieval_ms,
    });
    rec.applied = patterns
        .iter()
        .map(|p| p.applied_name().to_string())
        .collect();
    rec.stage(stage, t, true, &warnings, Some(output.to_string()), None)
        .map_err(logged(stage))?;
    Ok(patterns)
}

/// 2: the contract, checked against the shipped schema (G7). Returns its YAML.
fn contract_building(
    rec: &mut Recorder<'_, '_>,
    req: &GenerationRequest,
    parsed: &ParsedPrompt,
    model_name: &str,
) -> std::result::Result<String, Failure> {
    let stage = Stage::ContractBuilding;
    let t = Instant::now();
    let contract = build_contract(
        parsed,
        req.prompt.trim(),
        model_name,
        &req.correlation_id,
        &generated_at(),
    );
    let contract_yaml = to_yaml(&contract);
    let rules = rec.shared.options.contract_rules.as_deref();
    let g7 = gates::contract_gate(&validate_yaml(&contract_yaml, rules));
    rec.gate(stage, &g7);
    if g7.status == GateStatus::Fail {
        let f = Failure::new(stage, FailureCode::ContractInvalid, g7.message.clone());
        return Err(stage_failed(rec, t, f));
    }
    let output = format!("contract_hash {}", contract_hash(&contract_yaml));
    rec.stage(stage, t, true, &[], Some(output), None)
        .map_err(logged(stage))?;
    Ok(contract_yaml)
}

fn generated_at() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// 3: the pre-gates (G1-G6). Returns the templates' context, the output directory and the
/// rendered files (the template model's whole node; a model's starting point).
fn pre_validation(
    rec: &mut Recorder<'_, '_>,
    worker: &mut Worker,
    req: &GenerationRequest,
    parsed: &ParsedPrompt,
    patterns: &[PatternRef],
    model_name: &str,
    contract_yaml: &str,
) -> std::result::Result<(TemplateContext, PathBuf, Vec<GeneratedFile>), Failure> {
    let stage = Stage::PreValidation;
    let options = rec.shared.options;
    let t = Instant::now();
    let generator = GeneratorContext {
        tool: "omnistream".into(),
        model: model_name.into(),
        correlation_id: req.correlation_id.clone(),
        generated_at: generated_at(),
    };
    let mut ctx =
        TemplateContext::new(parsed, &req.prompt, &req.spec, patterns.to_vec(), generator);
    // A model writes logic.py into the scaffold (import-first), or node.py whole; the template
    // model reuses a stored logic.py that handles the request's operations.
    ctx.node.logic = if model_name == TEMPLATE_MODEL {
        fitting_logic(patterns, parsed).is_some()
    } else {
        options.strategy == Strategy::ImportFirst
    };
    let rendered = render_node(&ctx);
    let out_dir = write::resolve_output(
        &options.output_root,
        &options.allowed_output_roots,
        req.output_directory.as_deref(),
    );
    let output_problem = match &out_dir {
        Ok(dir) => write::check_output(dir).err().map(|e| error_chain(&e)),
        Err(e) => Some(error_chain(e)),
    };
    let missing = worker
        .python
        .missing_modules(&["pydantic".to_string()])
        .unwrap_or_default();
    let template_problem = rendered.as_ref().err().map(|e| error_chain(e));
    let pre = gates::pre_gates(parsed, template_problem, &missing, output_problem);
    for g in &pre {
        rec.gate(stage, g);
    }
    if let Some(g) = pre.iter().find(|g| g.status == GateStatus::Fail) {
        let message = format!("{} {}: {}", g.id, g.name, g.message);
        let f = Failure::new(stage, FailureCode::PreValidationFailed, message);
        return Err(stage_failed(rec, t, f));
    }
    let warnings: Vec<String> = pre
        .iter()
        .filter(|g| g.status == GateStatus::Warn)
        .map(|g| format!("{} {}", g.id, g.message))
        .collect();
    rec.stage(stage, t, true, &warnings, None, None)
        .map_err(logged(stage))?;
    let (Ok(out_dir), Ok(mut files)) = (out_dir, rendered) else {
        unreachable!("G5 and G6 failed above when either is an error");
    };
    files.push(GeneratedFile {
        path: CONTRACT_FILE.into(),
        content: contract_yaml.to_string(),
    });
    files.extend(render_examples(&req.spec, &parsed.operations));
    Ok((ctx, out_dir, files))
}

/// 4: the model writes the node module from the template's starting point; the template model
/// wrote the node while rendering, and its call is accounted like any other.
fn code_generation(
    rec: &mut Recorder<'_, '_>,
    req: &GenerationRequest,
    parsed: &ParsedPrompt,
    (patterns, tried): (&[PatternRef], &Tried<'_>),
    model: Option<(&str, &ModelRoute)>,
    contract_yaml: &str,
    draft: &mut Draft,
) -> std::result::Result<(), Failure> {
    let stage = Stage::CodeGeneration;
    let t = Instant::now();
    if let Some(Reused {
        pattern: p,
        code,
        renames,
    }) = &tried.passed
    {
        set_file(&mut draft.files, LOGIC_MODULE, code.clone());
        draft.changed.insert(LOGIC_MODULE);
        // A refinement, should a later gate fail, starts from the reused code.
        let service = parsed
            .external_services
            .first()
            .unwrap_or(&parsed.service_name);
        let prompt = logic_prompt(&req.prompt, parsed, &req.spec, service, p.code.as_ref());
        draft.conversation.push(ChatMessage::user(prompt));
        draft
            .conversation
            .push(ChatMessage::assistant(format!("```python\n{code}```")));
        let renamed: String = renames
            .iter()
            .map(|r| format!("; field {} renamed {}", r.from, r.to))
            .collect();
        let output = format!(
            "{} files; reused pattern {} (it passed every example; no model call){renamed}",
            draft.files.len(),
            p.applied_name()
        );
        return rec
            .stage(stage, t, true, &[], Some(output), None)
            .map_err(logged(stage));
    }
    match model {
        None => {
            if let Some(logic) = fitting_logic(patterns, parsed) {
                set_file(&mut draft.files, LOGIC_MODULE, logic.code.clone());
                draft.changed.insert(LOGIC_MODULE);
            }
            rec.template_call(t.elapsed())
        }
        Some((model_name, route)) => {
            let prompt = match rec.shared.options.strategy {
                Strategy::ImportFirst => {
                    let service = parsed
                        .external_services
                        .first()
                        .unwrap_or(&parsed.service_name);
                    let example = fitting_example(tried.showable(patterns));
                    logic_prompt(&req.prompt, parsed, &req.spec, service, example)
                }
                Strategy::Rewrite => {
                    let skeleton = &draft
                        .files
                        .iter()
                        .find(|f| f.path == NODE_MODULE)
                        .expect("rendered")
                        .content;
                    generation_prompt(&req.prompt, parsed, contract_yaml, patterns, skeleton)
                }
            };
            draft.conversation.push(ChatMessage::user(prompt));
            let answer = call_model(
                rec,
                model_name,
                route,
                &draft.conversation,
                ("generate", rec.shared.options.temperature),
                stage,
            )
            .map_err(|e| {
                let message = format!("model '{model_name}': {e}");
                let f = Failure::new(stage, FailureCode::ModelUnavailable, message);
                stage_failed(rec, t, f)
            })?;
            draft
                .conversation
                .push(ChatMessage::assistant(answer.text.clone()));
            let part = model_part(rec.shared.options.strategy);
            set_file(&mut draft.files, part, extract_code(&answer.text));
            draft.changed.insert(part);
        }
    }
    let output = format!("{} files", draft.files.len());
    rec.stage(stage, t, true, &[], Some(output), None)
        .map_err(logged(stage))
}

/// Stored patterns tried as they are before a model is asked, best first.
const MAX_REUSE_TRIES: usize = 3;

/// What trying retrieved patterns on the request's examples showed.
#[derive(Default)]
struct Tried<'p> {
    /// The first that passed its gates and every example, and its code as it passed (with
    /// field names adapted to this request where they differed): reused without a model call.
    passed: Option<Reused<'p>>,
    /// Ids of those that ran and computed a wrong value: a small model shown one as its worked
    /// example copies the bug, so none is shown. (One that failed only on field names stays.)
    wrong: Vec<&'p str>,
}

struct Reused<'p> {
    pattern: &'p PatternRef,
    code: String,
    renames: Vec<Rename>,
}

impl Tried<'_> {
    /// The patterns a model may see as its worked example, best first.
    fn showable<'a>(&'a self, patterns: &'a [PatternRef]) -> impl Iterator<Item = &'a StoredCode> {
        patterns
            .iter()
            .filter(|p| !p.id.as_deref().is_some_and(|id| self.wrong.contains(&id)))
            .filter_map(|p| p.code.as_ref())
    }
}

/// Verified reuse: a retrieved pattern whose `logic.py` handles the request's operations and,
/// in this request's scaffold, passes its gates and every one of its examples. Such code needs
/// no model call (no tokens, no minutes of a local model); without examples nothing can show a
/// pattern does what this request asks, so nothing is reused or tried.
fn verified_reuse<'p>(
    worker: &mut Worker,
    options: &CodegenOptions,
    req: &GenerationRequest,
    (parsed, ctx): (&ParsedPrompt, &TemplateContext),
    patterns: &'p [PatternRef],
    files: &[GeneratedFile],
) -> Tried<'p> {
    let mut tried = Tried::default();
    if !options.reuse_verified
        || options.strategy != Strategy::ImportFirst
        || req.spec.examples.is_empty()
    {
        return tried;
    }
    let fits =
        |p: &&PatternRef| p.id.is_some() && p.code.as_ref().is_some_and(|c| handles(c, parsed));
    for p in patterns.iter().filter(fits).take(MAX_REUSE_TRIES) {
        let stored = &p.code.as_ref().expect("fits has code").code;
        let (input, output) = (&req.spec.input.0, &req.spec.output.0);
        let (code, renames) = adapt_field_names(stored, input, output, &mut worker.parser)
            .unwrap_or_else(|| (stored.clone(), Vec::new()));
        let Some(verdicts) = examples_on(worker, options, req, (parsed, ctx), files, &code) else {
            continue;
        };
        if verdicts.iter().all(|v| v.passed) {
            tried.passed = Some(Reused {
                pattern: p,
                code,
                renames,
            });
            break;
        }
        if verdicts.iter().any(|v| v.wrong_value) {
            tried.wrong.extend(p.id.as_deref());
        }
    }
    tried
}

/// The request's examples run on `code` as the node's logic.py in the request's scaffold; none
/// when a gate fails or the code cannot be run.
fn examples_on(
    worker: &mut Worker,
    options: &CodegenOptions,
    req: &GenerationRequest,
    (parsed, ctx): (&ParsedPrompt, &TemplateContext),
    files: &[GeneratedFile],
    code: &str,
) -> Option<Vec<CaseVerdict>> {
    let mut files = files.to_vec();
    set_file(&mut files, LOGIC_MODULE, code.to_string());
    let validation = validate(worker, parsed, &files);
    if validation
        .gates
        .iter()
        .any(|g| g.status == GateStatus::Fail)
    {
        return None;
    }
    let (Ok(dir), Ok(sandbox)) = (scratch_copy(&files), worker.sandbox(&options.python)) else {
        return None;
    };
    Some(run_examples(
        sandbox,
        dir.path(),
        &NodeNames::from(&ctx.node),
        &req.spec.examples,
        &options.limits,
        options.example_timeout,
    ))
}

/// The best stored logic.py that handles every operation of the request (what the template
/// model reuses).
fn fitting_logic<'p>(patterns: &'p [PatternRef], parsed: &ParsedPrompt) -> Option<&'p StoredCode> {
    patterns
        .iter()
        .filter_map(|p| p.code.as_ref())
        .find(|c| handles(c, parsed))
}

/// Whether stored code is a `logic.py` that handles every operation of the request.
fn handles(code: &StoredCode, parsed: &ParsedPrompt) -> bool {
    code.module == LOGIC_MODULE
        && parsed
            .operations
            .iter()
            .all(|op| code.operations.contains(op))
}

/// 4.5: the event bus for Effect and Orchestrator nodes (warnings, never a failure).
fn event_bus_integration(
    rec: &mut Recorder<'_, '_>,
    worker: &mut Worker,
    parsed: &ParsedPrompt,
    ctx: &TemplateContext,
    draft: &mut Draft,
) -> std::result::Result<(), Failure> {
    let stage = Stage::EventBusIntegration;
    let t = Instant::now();
    let warnings = integrate_event_bus(&mut draft.files, ctx, parsed, &mut worker.parser);
    draft.changed.insert(NODE_MODULE);
    rec.stage(stage, t, true, &warnings, None, None)
        .map_err(logged(stage))
}

/// 5: the post-gates (G9-G12), the request's examples (G15) and the quorum; 5.5: refinement
/// rounds while a model can fix what they found. Returns the last validation, decision, rounds
/// taken and the examples' verdict (`None`: the request has none, or a hard gate failed).
#[allow(clippy::too_many_arguments)]
fn post_validation(
    rec: &mut Recorder<'_, '_>,
    worker: &mut Worker,
    req: &GenerationRequest,
    parsed: &ParsedPrompt,
    model: Option<(&str, &ModelRoute)>,
    ctx: &TemplateContext,
    draft: &mut Draft,
    quorum_on: bool,
) -> std::result::Result<(PostValidation, Option<Decision>, u32, Option<Behaviour>), Failure> {
    let max_refinements = rec.shared.options.max_refinements;
    let mut round = 0u32;
    let mut stage = Stage::PostValidation;
    let mut stage_started = Instant::now();
    loop {
        let imported = repair_part(worker, req, draft);
        let validation = validate(worker, parsed, &draft.files);
        for g in &validation.gates {
            rec.gate(stage, g);
        }
        let hard = validation
            .gates
            .iter()
            .any(|g| g.status == GateStatus::Fail);
        let behaviour = (!hard && !req.spec.examples.is_empty())
            .then(|| behaviour_gate(rec, worker, &draft.files, req, (parsed, ctx), stage));
        let decision =
            (quorum_on && !hard).then(|| run_quorum(rec, &req.prompt, parsed, &draft.files, stage));
        let mut problems = problems(&validation, decision.as_ref());
        problems.extend(behaviour.iter().flat_map(|b| b.problems.iter().cloned()));
        let refine_with = model.filter(|_| round < max_refinements && !problems.is_empty());
        let warnings: Vec<String> = imported.iter().chain(&problems).cloned().collect();
        rec.stage(
            stage,
            stage_started,
            !hard || refine_with.is_some(),
            &warnings,
            None,
            None,
        )
        .map_err(logged(stage))?;
        let Some((model_name, route)) = refine_with else {
            return Ok((validation, decision, round, behaviour));
        };
        // 5.5: ask the model to fix what the gates and the judges found.
        round += 1;
        stage = Stage::Refinement;
        stage_started = Instant::now();
        let ask = next_ask(rec.shared.options, &mut draft.conversation, &problems);
        match call_model(rec, model_name, route, &draft.conversation, ask, stage) {
            Ok(answer) => {
                draft
                    .conversation
                    .push(ChatMessage::assistant(answer.text.clone()));
                let code = extract_code(&answer.text);
                let part = model_part(rec.shared.options.strategy);
                if !code.trim().is_empty() {
                    set_file(&mut draft.files, part, code);
                    draft.changed.insert(part);
                    // Only a rewritten node.py needs the event bus patched in again.
                    if part == NODE_MODULE && parsed.node_type.uses_event_bus() {
                        integrate_event_bus(&mut draft.files, ctx, parsed, &mut worker.parser);
                    }
                }
            }
            Err(e) => {
                // The unrefined code is judged as it is.
                tracing::warn!(correlation_id = %rec.correlation_id, "refinement call failed: {e}");
                rec.stage(stage, stage_started, false, &[], None, Some(&e.to_string()))
                    .map_err(logged(stage))?;
                let validation = validate(worker, parsed, &draft.files);
                return Ok((validation, None, round, behaviour));
            }
        }
    }
}

/// Prepares the conversation for a refinement round; returns the call's operation and
/// temperature. Feedback keeps only the request and the latest answer (earlier rounds would grow
/// it past a small model's context) and adds the problems; a resample keeps the request alone.
fn next_ask(
    options: &CodegenOptions,
    conversation: &mut Vec<ChatMessage>,
    problems: &[String],
) -> (&'static str, f32) {
    match options.refinement {
        Refinement::Feedback => {
            let len = conversation.len();
            if len > 2 {
                conversation.drain(1..len - 1);
            }
            let prompt = refinement_prompt(problems, options.strategy);
            conversation.push(ChatMessage::user(prompt));
            ("refine", options.temperature)
        }
        Refinement::Resample => {
            conversation.truncate(1);
            ("resample", RESAMPLE_TEMPERATURE)
        }
    }
}

/// Puts back what a model's `logic.py` predictably leaves out (see [`repair`]): the stdlib
/// imports it uses, and the stub's reads of declared fields it uses. Says what it added.
fn repair_part(worker: &mut Worker, req: &GenerationRequest, draft: &mut Draft) -> Vec<String> {
    if !draft.changed.contains(LOGIC_MODULE) {
        return Vec::new();
    }
    let Some(logic) = draft.files.iter_mut().find(|f| f.path == LOGIC_MODULE) else {
        return Vec::new();
    };
    let (code, imported) = add_stdlib_imports(&logic.content, &mut worker.parser);
    let (code, read) = restore_field_reads(&code, &req.spec.input.0, &mut worker.parser);
    logic.content = code;
    let imports = imported
        .iter()
        .map(|m| format!("{LOGIC_MODULE}: added `import {m}`, which the code uses"));
    let reads = read
        .iter()
        .map(|f| format!("{LOGIC_MODULE}: added the read of field `{f}`, which `run` uses"));
    imports.chain(reads).collect()
}

/// G9-G12, and G16 when a model wrote the node's logic.
pub(crate) fn validate(
    worker: &mut Worker,
    parsed: &ParsedPrompt,
    files: &[GeneratedFile],
) -> PostValidation {
    let Worker { python, parser, .. } = worker;
    let mut resolve = |m: &[String]| python.missing_modules(m);
    let mut validation = gates::post_gates(files, parsed, &mut resolve, parser);
    if let Some(logic) = files.iter().find(|f| f.path == LOGIC_MODULE) {
        let g16 = assembly_gate(&logic.content, parsed, &mut resolve, parser);
        validation.gates.push(g16);
    }
    validation
}

/// What the gates and the judges want changed, as the refinement prompt lists it.
fn problems(validation: &PostValidation, decision: Option<&Decision>) -> Vec<String> {
    let mut problems: Vec<String> = validation
        .gates
        .iter()
        .filter(|g| g.status != GateStatus::Pass)
        .map(|g| format!("{} {}: {}", g.id, g.name, g.message))
        .collect();
    if let Some(d) = decision
        && d.recommendation == Some(Recommendation::Retry)
    {
        problems.push(format!(
            "reviewers ask for changes: {}",
            d.missing_requirements.join(", ")
        ));
    }
    problems
}

/// Whether the validated node may be written: no failed gate, and the judges' verdict.
fn accept(
    validation: &PostValidation,
    decision: Option<&Decision>,
    rounds: u32,
    options: &CodegenOptions,
) -> std::result::Result<(), Failure> {
    let stage = Stage::PostValidation;
    if let Some(g) = validation
        .gates
        .iter()
        .find(|g| g.status == GateStatus::Fail)
    {
        let message = format!("{} {}: {}", g.id, g.name, g.message);
        return Err(Failure::new(stage, FailureCode::ValidationFailed, message));
    }
    let Some(d) = decision else {
        return Ok(());
    };
    let (code, message) = match d.recommendation {
        Some(Recommendation::Pass) => return Ok(()),
        Some(Recommendation::Retry) => (
            FailureCode::QuorumRetryExhausted,
            format!(
                "the judges still ask for changes after {rounds} refinements (pass share {:.2}): {}",
                d.pass_share,
                d.missing_requirements.join(", ")
            ),
        ),
        Some(Recommendation::Fail) => (
            FailureCode::QuorumFailed,
            format!(
                "the judges reject the node (pass share {:.2}, confidence {:.2})",
                d.pass_share, d.confidence
            ),
        ),
        None => (
            FailureCode::QuorumUnavailable,
            format!(
                "only {} of {} judges answered (at least {:.0} % must)",
                d.responded,
                d.judges,
                options.quorum.min_response * 100.0
            ),
        ),
    };
    Err(Failure::new(stage, code, message))
}

/// A node that failed validation appears nowhere under its name, but what the model wrote is
/// kept under `.omnistream-failed/` for inspection; the message says where.
fn keep_failed_files(
    mut f: Failure,
    out_dir: &Path,
    parsed: &ParsedPrompt,
    files: &[GeneratedFile],
    req: &GenerationRequest,
) -> Failure {
    if f.code == FailureCode::ValidationFailed
        && let Some(kept) = write::stage(out_dir, &parsed.dir_name(), files, &req.correlation_id)
            .ok()
            .and_then(Staged::discard)
    {
        f.message
            .push_str(&format!(" (files kept in {})", kept.display()));
    }
    f
}

/// 6: every file to a staging directory (visible under the node's name only once published).
fn file_writing(
    rec: &mut Recorder<'_, '_>,
    out_dir: &Path,
    parsed: &ParsedPrompt,
    files: &[GeneratedFile],
    req: &GenerationRequest,
) -> std::result::Result<Staged, Failure> {
    let stage = Stage::FileWriting;
    let t = Instant::now();
    let staged =
        write::stage(out_dir, &parsed.dir_name(), files, &req.correlation_id).map_err(|e| {
            let f = Failure::new(stage, FailureCode::WriteFailed, error_chain(&e));
            stage_failed(rec, t, f)
        })?;
    let output = format!("{} files", staged.files.len());
    rec.stage(stage, t, true, &[], Some(output), None)
        .map_err(logged(stage))?;
    Ok(staged)
}

/// 7: the compile check (G13) and the generated tests (G14), in staging; then the verdict of
/// the request's examples (G15, run at post-validation), so that a node failing only its
/// examples is known to pass its gates. A failure discards the staged node (its files kept
/// under `.omnistream-failed/`).
fn compilation_test(
    rec: &mut Recorder<'_, '_>,
    worker: &mut Worker,
    staged: Staged,
    changed: &BTreeSet<&'static str>,
    behaviour: Option<&Behaviour>,
) -> std::result::Result<Staged, Failure> {
    let stage = Stage::CompilationTest;
    let options = rec.shared.options;
    let examples_failed = behaviour
        .and_then(|b| b.failure.clone())
        .map(|m| (FailureCode::ExamplesFailed, m));
    if !options.compile_check && !options.run_tests && examples_failed.is_none() {
        return Ok(staged);
    }
    let t = Instant::now();
    let mut problem = None;
    if options.compile_check {
        let g13 = compile_gate(worker, &staged, changed, options.compile_scope);
        rec.gate(stage, &g13);
        if g13.status == GateStatus::Fail {
            let message = format!("G13 py_compile: {}", g13.message);
            problem = Some((FailureCode::CompileError, message));
        }
    }
    if options.run_tests && problem.is_none() {
        // pytest takes a while: what happened so far is shown first.
        rec.flush().map_err(logged(stage))?;
        let g14 = tests_gate(options, worker, &staged);
        rec.gate(stage, &g14);
        if g14.status == GateStatus::Fail {
            let summary = g14.message.lines().next().unwrap_or_default();
            problem = Some((
                FailureCode::TestsFailed,
                format!("G14 generated tests: {summary}"),
            ));
        }
    }
    if let Some((code, message)) = problem.or(examples_failed) {
        let written = staged.files.clone();
        let message = match staged.discard() {
            Some(kept) => format!("{message} (files kept in {})", kept.display()),
            None => message,
        };
        let f = Failure::new(stage, code, message).with_files(written);
        return Err(stage_failed(rec, t, f));
    }
    rec.stage(stage, t, true, &[], None, None)
        .map_err(logged(stage))?;
    Ok(staged)
}

/// The verdict of the request's examples on a draft.
pub(crate) struct Behaviour {
    /// Share of the examples that passed.
    pub(crate) share: f64,
    /// `G15 examples: 2 of 5 failed; example 3: ...`, when any failed.
    pub(crate) failure: Option<String>,
    /// One line per failing example, for a refinement prompt.
    pub(crate) problems: Vec<String>,
}

/// G15: the request's examples against the draft, written to a scratch directory (the node is
/// not staged yet), one validation result each.
fn behaviour_gate(
    rec: &mut Recorder<'_, '_>,
    worker: &mut Worker,
    files: &[GeneratedFile],
    req: &GenerationRequest,
    (parsed, ctx): (&ParsedPrompt, &TemplateContext),
    stage: Stage,
) -> Behaviour {
    let options = rec.shared.options;
    let examples = &req.spec.examples;
    let not_run = |message: String| {
        let v = CaseVerdict {
            passed: false,
            message: format!("not run: {message}"),
            wrong_value: false,
            duration_ms: 0.0,
        };
        vec![v; examples.len()]
    };
    let verdicts = match (scratch_copy(files), worker.sandbox(&options.python)) {
        (Ok(dir), Ok(sandbox)) => run_examples(
            sandbox,
            dir.path(),
            &NodeNames::from(&ctx.node),
            examples,
            &options.limits,
            options.example_timeout,
        ),
        (Err(e), _) => not_run(format!("writing the draft: {}", error_chain(&e))),
        (_, Err(e)) => not_run(error_chain(&e)),
    };
    let mut problems = Vec::new();
    for (i, (e, v)) in examples.iter().zip(&verdicts).enumerate() {
        rec.example(stage, &example_name(i, e), v);
        if !v.passed {
            problems.push(format!(
                "G15 {}: {}: {}",
                example_name(i, e),
                example_ask(e, parsed),
                v.message
            ));
        }
    }
    let passed = verdicts.len() - problems.len();
    rec.examples_passed = Some(passed as i64);
    let failure = examples
        .iter()
        .zip(&verdicts)
        .enumerate()
        .find(|(_, (_, v))| !v.passed)
        .map(|(i, (e, v))| {
            format!(
                "G15 examples: {} of {} failed; {}: {}",
                problems.len(),
                examples.len(),
                example_name(i, e),
                v.message
            )
        });
    Behaviour {
        share: passed as f64 / examples.len() as f64,
        failure,
        problems,
    }
}

/// The draft's files in a new temporary directory, for a contained run before staging.
fn scratch_copy(files: &[GeneratedFile]) -> std::io::Result<tempfile::TempDir> {
    let dir = tempfile::Builder::new()
        .prefix("omnistream-draft-")
        .tempdir()?;
    for f in files {
        let path = dir.path().join(&f.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(path, &f.content)?;
    }
    Ok(dir)
}

/// G13: Python compiles the node's files (those in `scope`).
fn compile_gate(
    worker: &mut Worker,
    staged: &Staged,
    changed: &BTreeSet<&'static str>,
    scope: CompileScope,
) -> GateResult {
    let started = Instant::now();
    let paths: Vec<PathBuf> = staged
        .files
        .iter()
        .filter(|f| f.ends_with(".py"))
        .filter(|f| scope == CompileScope::All || changed.contains(f.as_str()))
        .map(|f| staged.staging.join(f))
        .collect();
    let refs: Vec<&Path> = paths.iter().map(PathBuf::as_path).collect();
    let (status, message) = match worker.python.compile(&refs) {
        Ok(errors) if errors.is_empty() => {
            (GateStatus::Pass, format!("{} files compiled", paths.len()))
        }
        Ok(errors) => {
            let errors: Vec<String> = errors
                .iter()
                .map(|e| {
                    let rel = Path::new(&e.path)
                        .strip_prefix(&staged.staging)
                        .map(|p| p.display().to_string())
                        .unwrap_or(e.path.clone());
                    format!("{rel}:{}: {}", e.line, e.message)
                })
                .collect();
            (GateStatus::Fail, errors.join("; "))
        }
        Err(e) => (GateStatus::Fail, error_chain(&e)),
    };
    GateResult {
        id: "G13",
        name: "py_compile",
        status,
        score: if status == GateStatus::Pass { 1.0 } else { 0.0 },
        message,
        duration_ms: started.elapsed().as_secs_f64() * 1000.0,
    }
}

/// G14: the node's generated tests pass under pytest. The message starts with pytest's summary.
fn tests_gate(options: &CodegenOptions, worker: &mut Worker, staged: &Staged) -> GateResult {
    let started = Instant::now();
    let run = match worker.sandbox(&options.python) {
        Ok(sandbox) => run_pytest(sandbox, &staged.staging, &options.limits),
        Err(e) => TestRun {
            passed: false,
            summary: format!("cannot run pytest: {}", error_chain(&e)),
            output_tail: String::new(),
        },
    };
    GateResult {
        id: "G14",
        name: "generated_tests",
        status: if run.passed {
            GateStatus::Pass
        } else {
            GateStatus::Fail
        },
        score: if run.passed { 1.0 } else { 0.0 },
        message: if run.passed {
            run.summary
        } else {
            format!("{}\n{}", run.summary, run.output_tail)
        },
        duration_ms: started.elapsed().as_secs_f64() * 1000.0,
    }
}

/// The file a model writes with `strategy`.
fn model_part(strategy: Strategy) -> &'static str {
    match strategy {
        Strategy::ImportFirst => LOGIC_MODULE,
        Strategy::Rewrite => NODE_MODULE,
    }
}

/// Replace the file at `path`, or add it.
pub(crate) fn set_file(files: &mut Vec<GeneratedFile>, path: &str, code: String) {
    match files.iter_mut().find(|f| f.path == path) {
        Some(f) => f.content = code,
        None => files.push(GeneratedFile {
            path: path.to_string(),
            content: code,
        }),
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
        Err(e) => warnings.push(error_chain(&e)),
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
