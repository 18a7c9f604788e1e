//! The templates of a generated node (`jobs/codegen/templates/node/`, Jinja2 syntax rendered by
//! minijinja): the whole node for the `template` model, and every file but node.py when a model
//! writes the code.

use std::sync::OnceLock;

use minijinja::Environment;
use omnistream_streams::Topic;
use serde::Serialize;

use crate::catalog::PatternRef;
use crate::contract::node_topics;
use crate::error::{CodegenError, Result};
use crate::parse::ParsedPrompt;
use crate::spec::{Fields, RequestSpec};

/// A file of the generated node, by its path relative to the node directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedFile {
    pub path: String,
    pub content: String,
}

/// The node module: what a model rewrites and what the event-bus stage patches.
pub const NODE_MODULE: &str = "v1_0_0/node.py";
pub const CONTRACT_FILE: &str = "v1_0_0/contract.yaml";
pub const EVENT_BUS_MODULE: &str = "v1_0_0/event_bus.py";
/// The request's examples and the tests' sample payload, when the request declared any.
pub const EXAMPLES_FILE: &str = "tests/examples.json";

macro_rules! templates {
    ($(($name:literal, $out:literal)),* $(,)?) => {
        &[$(($name, $out, include_str!(concat!("../templates/node/", $name)))),*]
    };
}

/// (template, output path, source) of every file written for every node.
const TEMPLATES: &[(&str, &str, &str)] = templates![
    ("node.manifest.yaml.j2", "node.manifest.yaml"),
    ("README.md.j2", "README.md"),
    ("start_node.py.j2", "start_node.py"),
    ("package/__init__.py.j2", "v1_0_0/__init__.py"),
    ("package/node.py.j2", "v1_0_0/node.py"),
    (
        "package/version.manifest.yaml.j2",
        "v1_0_0/version.manifest.yaml"
    ),
    (
        "package/omnistream_client.py.j2",
        "v1_0_0/omnistream_client.py"
    ),
    ("package/models/__init__.py.j2", "v1_0_0/models/__init__.py"),
    ("package/models/input.py.j2", "v1_0_0/models/input.py"),
    ("package/models/output.py.j2", "v1_0_0/models/output.py"),
    ("package/models/config.py.j2", "v1_0_0/models/config.py"),
    ("package/enums/__init__.py.j2", "v1_0_0/enums/__init__.py"),
    ("package/enums/operation.py.j2", "v1_0_0/enums/operation.py"),
    ("tests/test_node.py.j2", "tests/test_node.py"),
];

/// Written by the event-bus integration stage, for Effect and Orchestrator nodes.
const EVENT_BUS_TEMPLATE: (&str, &str, &str) = (
    "package/event_bus.py.j2",
    EVENT_BUS_MODULE,
    include_str!("../templates/node/package/event_bus.py.j2"),
);

fn environment() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        env.set_keep_trailing_newline(true);
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        for (name, _, source) in TEMPLATES.iter().chain([&EVENT_BUS_TEMPLATE]) {
            env.add_template(name, source)
                .unwrap_or_else(|e| panic!("template {name} does not parse: {e:#}"));
        }
        env
    })
}

#[derive(Debug, Clone, Serialize)]
pub struct TemplateContext {
    pub node: NodeContext,
    pub patterns: Vec<PatternRef>,
    pub generator: GeneratorContext,
    pub topics: TopicsContext,
}

#[derive(Debug, Clone, Serialize)]
pub struct NodeContext {
    pub name: String,
    pub class_name: String,
    pub node_type: String,
    pub node_type_title: String,
    pub service_name: String,
    pub domain: String,
    pub description: String,
    pub version: String,
    pub package: String,
    pub dir_name: String,
    pub execute_method: String,
    pub input_model: String,
    pub output_model: String,
    pub config_model: String,
    pub operation_enum: String,
    pub operations: Vec<String>,
    pub features: Vec<String>,
    pub external_services: Vec<String>,
    pub event_bus: bool,
    pub consumed_events: Vec<String>,
    pub published_events: Vec<String>,
    pub tags: Vec<String>,
    /// The request declared the payload's fields: `payload_model` types the input's payload.
    pub typed_input: bool,
    /// The request declared the result's fields: `result_model` types the output's result.
    pub typed_output: bool,
    pub payload_model: String,
    pub result_model: String,
    pub input_fields: Vec<FieldContext>,
    pub output_fields: Vec<FieldContext>,
    /// Import-first: node.py calls `logic.run`, which a model writes.
    pub logic: bool,
}

/// A declared field as the model templates write it.
#[derive(Debug, Clone, Serialize)]
pub struct FieldContext {
    pub name: String,
    pub annotation: String,
    pub optional: bool,
    pub description: String,
}

fn field_contexts(fields: &Fields) -> Vec<FieldContext> {
    fields
        .0
        .iter()
        .map(|f| FieldContext {
            name: f.name.clone(),
            annotation: f.ty.python(),
            optional: f.ty.is_optional(),
            description: f
                .description
                .clone()
                .unwrap_or_else(|| format!("{} ({}), as the request declared it.", f.name, f.ty)),
        })
        .collect()
}

#[derive(Debug, Clone, Serialize)]
pub struct GeneratorContext {
    pub tool: String,
    pub model: String,
    pub correlation_id: String,
    pub generated_at: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct TopicsContext {
    pub introspection: String,
    pub heartbeat: String,
    pub introspection_short: String,
    pub heartbeat_short: String,
}

impl TemplateContext {
    pub fn new(
        parsed: &ParsedPrompt,
        prompt: &str,
        spec: &RequestSpec,
        patterns: Vec<PatternRef>,
        generator: GeneratorContext,
    ) -> Self {
        let (consumed, published) = node_topics(parsed);
        let intro = Topic::NodeIntrospection.spec();
        let beat = Topic::NodeHeartbeat.spec();
        TemplateContext {
            node: NodeContext {
                name: parsed.name.clone(),
                class_name: parsed.class_name(),
                node_type: parsed.node_type.as_str().into(),
                node_type_title: parsed.node_type.title().into(),
                service_name: parsed.service_name.clone(),
                domain: parsed.domain.clone(),
                description: prompt.trim().to_string(),
                version: "1.0.0".into(),
                package: "v1_0_0".into(),
                dir_name: parsed.dir_name(),
                execute_method: parsed.node_type.execute_method().into(),
                input_model: format!("Model{}Input", parsed.name),
                output_model: format!("Model{}Output", parsed.name),
                config_model: format!("Model{}Config", parsed.name),
                operation_enum: format!("Enum{}Operation", parsed.name),
                operations: parsed.operations.clone(),
                features: parsed.features.clone(),
                external_services: parsed.external_services.clone(),
                event_bus: parsed.node_type.uses_event_bus(),
                consumed_events: vec![consumed],
                published_events: vec![published],
                tags: vec![
                    parsed.domain.clone(),
                    parsed.node_type.as_str().into(),
                    parsed.service_name.clone(),
                ],
                typed_input: spec.typed_input(),
                typed_output: spec.typed_output(),
                payload_model: format!("Model{}Payload", parsed.name),
                result_model: format!("Model{}Result", parsed.name),
                input_fields: field_contexts(&spec.input),
                output_fields: field_contexts(&spec.output),
                logic: false,
            },
            patterns,
            generator,
            topics: TopicsContext {
                introspection: intro.name.to_string(),
                heartbeat: beat.name.to_string(),
                introspection_short: intro.short_name.to_string(),
                heartbeat_short: beat.short_name.to_string(),
            },
        }
    }
}

fn render_one(name: &str, out: &str, ctx: &TemplateContext) -> Result<GeneratedFile> {
    let failed = |source| CodegenError::Template {
        name: name.to_string(),
        source,
    };
    let content = environment()
        .get_template(name)
        .and_then(|template| template.render(ctx))
        .map_err(failed)?;
    Ok(GeneratedFile {
        path: out.to_string(),
        content,
    })
}

/// Every file of the node but contract.yaml (built by the contract stage) and event_bus.py.
pub fn render_node(ctx: &TemplateContext) -> Result<Vec<GeneratedFile>> {
    TEMPLATES
        .iter()
        .map(|(name, out, _)| render_one(name, out, ctx))
        .collect()
}

/// `tests/examples.json`: what the behaviour gate runs and the node's tests read, so the node
/// carries the request's examples with it. `None` when the request declared nothing.
pub fn render_examples(spec: &RequestSpec, operations: &[String]) -> Option<GeneratedFile> {
    if spec.is_empty() {
        return None;
    }
    let examples: Vec<serde_json::Value> = spec
        .examples
        .iter()
        .map(|e| {
            let mut e = serde_json::to_value(e).expect("examples serialise");
            if e.get("operation").is_none() {
                e["operation"] = serde_json::Value::from(operations[0].as_str());
            }
            e
        })
        .collect();
    let doc = serde_json::json!({
        "sample_payload": spec.sample_payload(),
        "examples": examples,
    });
    Some(GeneratedFile {
        path: EXAMPLES_FILE.into(),
        content: serde_json::to_string_pretty(&doc).expect("JSON serialises") + "\n",
    })
}

pub fn render_event_bus(ctx: &TemplateContext) -> Result<GeneratedFile> {
    render_one(EVENT_BUS_TEMPLATE.0, EVENT_BUS_TEMPLATE.1, ctx)
}

/// (template name, output path, source) of every template, the event-bus module last: for tools
/// that render the same templates elsewhere (the benchmark's Python peer).
pub fn template_sources() -> Vec<(&'static str, &'static str, &'static str)> {
    TEMPLATES
        .iter()
        .copied()
        .chain([EVENT_BUS_TEMPLATE])
        .collect()
}

/// What the template model produces for `prompt`: every rendered file, with the event bus
/// integrated for the node types that use it (as the pipeline does).
#[cfg(test)]
pub(crate) fn template_output(prompt: &str) -> (ParsedPrompt, Vec<GeneratedFile>) {
    let parsed = super::parse::parse_prompt(prompt, None).unwrap();
    let ctx = TemplateContext::new(
        &parsed,
        prompt,
        &RequestSpec::default(),
        super::catalog::catalog_patterns(&parsed, prompt),
        GeneratorContext {
            tool: "omnistream".into(),
            model: "template".into(),
            correlation_id: "c".into(),
            generated_at: "2026-11-26T00:00:00Z".into(),
        },
    );
    let mut files = render_node(&ctx).unwrap();
    if parsed.node_type.uses_event_bus() {
        let mut parser = super::syntax::PythonParser::new();
        let warnings = super::pipeline::integrate_event_bus(&mut files, &ctx, &parsed, &mut parser);
        assert!(warnings.is_empty(), "{warnings:?}");
    }
    (parsed, files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::python::PythonWorker;

    /// The import-first scaffold (node.py calling logic.run) compiles for every node type, typed
    /// or not, and calls run with the parameters G16 requires of it.
    #[test]
    fn every_node_type_s_import_first_scaffold_compiles_and_calls_run_as_g16_expects() {
        let dir = tempfile::tempdir().unwrap();
        let python = std::env::var("OMNISTREAM_PYTHON").unwrap_or_else(|_| "python3".into());
        let typed: RequestSpec =
            serde_json::from_str(r#"{"input": {"key": "str"}, "output": {"done": "bool"}}"#)
                .unwrap();
        let mut paths = Vec::new();
        for (i, prompt) in [
            "kv writer Effect node",
            "price calculator",
            "metrics aggregator reducer",
            "payment workflow orchestrator",
        ]
        .into_iter()
        .enumerate()
        {
            for spec in [RequestSpec::default(), typed.clone()] {
                let parsed = crate::parse::parse_prompt(prompt, None).unwrap();
                let generator = GeneratorContext {
                    tool: "omnistream".into(),
                    model: "m".into(),
                    correlation_id: "c".into(),
                    generated_at: "2026-12-02T00:00:00Z".into(),
                };
                let mut ctx = TemplateContext::new(&parsed, prompt, &spec, vec![], generator);
                ctx.node.logic = true;
                let node = render_node(&ctx)
                    .unwrap()
                    .into_iter()
                    .find(|f| f.path == NODE_MODULE)
                    .unwrap();
                let params = crate::assemble::run_parameters(parsed.node_type);
                let extra: String = params[2..]
                    .iter()
                    .map(|p| format!(", self.logic_{p}"))
                    .collect();
                let call = format!(
                    "_run_logic(operation, payload{})",
                    extra.replace("self.logic_client", "self.client")
                );
                assert!(
                    node.content.contains(&call),
                    "{call} not in\n{}",
                    node.content
                );
                let path = dir.path().join(format!("{i}-{}.py", spec.typed_output()));
                std::fs::write(&path, &node.content).unwrap();
                paths.push(path);
            }
        }
        let refs: Vec<&std::path::Path> = paths.iter().map(|p| p.as_path()).collect();
        let errors = PythonWorker::new(&python).compile(&refs).unwrap();
        assert!(errors.is_empty(), "{errors:?}");
    }

    /// What `compile_scope = "changed"` (the default) relies on: the templates' output compiles
    /// with Python for every node type, event-bus integration included. Request values only
    /// reach validated identifiers and strings, so names do not change the verdict.
    #[test]
    fn every_node_type_s_template_output_compiles_with_python() {
        let dir = tempfile::tempdir().unwrap();
        let python = std::env::var("OMNISTREAM_PYTHON").unwrap_or_else(|_| "python3".into());
        let mut worker = PythonWorker::new(&python);
        let mut paths = Vec::new();
        for prompt in [
            "Create PostgreSQL writer Effect node",
            "price calculator with tax rules",
            "session state reducer for users",
            "payment workflow orchestrator",
            // Backslashes, escapes and triple quotes in the request: they land in docstrings.
            r#"Create PostgreSQL writer Effect node for C:\Notes and """quotes""" \N{x} \x '''"#,
        ] {
            let (parsed, files) = template_output(prompt);
            for f in files.iter().filter(|f| f.path.ends_with(".py")) {
                let path = dir.path().join(parsed.dir_name()).join(&f.path);
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(&path, &f.content).unwrap();
                paths.push(path);
            }
        }
        assert!(paths.len() >= 5 * 11, "{} files", paths.len());
        // The check can fail: a broken file among them is reported.
        let broken = dir.path().join("broken.py");
        std::fs::write(&broken, "def f(:\n    return 1\n").unwrap();
        paths.push(broken);
        let refs: Vec<&std::path::Path> = paths.iter().map(|p| p.as_path()).collect();
        let errors = worker.compile(&refs).unwrap();
        let messages: Vec<String> = errors
            .iter()
            .map(|e| format!("{}:{}: {}", e.path, e.line, e.message))
            .collect();
        assert_eq!(messages.len(), 1, "{messages:#?}");
        assert!(messages[0].contains("broken.py:1"), "{messages:#?}");
    }
}
