//! Validation gates (decision 9). Pre-generation G1-G6 check the parsed request; G7 the contract;
//! post-generation G9-G12 check the generated Python, parsed with tree-sitter: syntax, ONEX naming,
//! import paths, Pydantic v2. The quality score keeps its dimensions (upstream weights: syntax .30,
//! ONEX compliance .40, contract .20, code quality .10; pass at .80 with ONEX at least .70).

use std::collections::BTreeSet;
use std::sync::OnceLock;
use std::time::Instant;

use serde::Serialize;
use tree_sitter::{Node, Tree};

use crate::parse::{NodeType, ParsedPrompt, is_python_keyword};
use crate::render::{GeneratedFile, NODE_MODULE};
use crate::syntax::PythonParser;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GateStatus {
    Pass,
    Warn,
    Fail,
}

impl GateStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            GateStatus::Pass => "pass",
            GateStatus::Warn => "warn",
            GateStatus::Fail => "fail",
        }
    }
}

/// One gate's verdict: a validation-result event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GateResult {
    pub id: &'static str,
    pub name: &'static str,
    pub status: GateStatus,
    pub score: f64,
    pub message: String,
    pub duration_ms: f64,
}

fn verdict(
    id: &'static str,
    name: &'static str,
    started: Instant,
    problems: &[String],
    fail: bool,
    score: f64,
) -> GateResult {
    let status = if problems.is_empty() {
        GateStatus::Pass
    } else if fail {
        GateStatus::Fail
    } else {
        GateStatus::Warn
    };
    GateResult {
        id,
        name,
        status,
        score: if problems.is_empty() { 1.0 } else { score },
        message: if problems.is_empty() {
            "ok".into()
        } else {
            problems.join("; ")
        },
        duration_ms: started.elapsed().as_secs_f64() * 1000.0,
    }
}

/// G1-G6, before anything is generated. `output_problem` is why the output directory cannot be
/// used (G6); `template_problem` why the templates do not render for this request (G5);
/// `missing_runtime` lists modules the generated code needs that the Python here cannot import (G4).
pub fn pre_gates(
    parsed: &ParsedPrompt,
    template_problem: Option<String>,
    missing_runtime: &[String],
    output_problem: Option<String>,
) -> Vec<GateResult> {
    let mut out = Vec::new();
    let t = Instant::now();
    let mut p = Vec::new();
    if parsed.confidence < 0.3 {
        p.push(format!(
            "the prompt is too vague (parse confidence {:.2})",
            parsed.confidence
        ));
    }
    out.push(verdict("G1", "prompt_fields", t, &p, true, 0.0));
    let t = Instant::now();
    out.push(verdict("G2", "node_type", t, &[], true, 0.0));
    let t = Instant::now();
    let mut p = Vec::new();
    static SNAKE: OnceLock<regex::Regex> = OnceLock::new();
    let snake = SNAKE.get_or_init(|| regex::Regex::new(r"^[a-z][a-z0-9_]{0,62}$").unwrap());
    if !snake.is_match(&parsed.service_name) || parsed.service_name.ends_with('_') {
        p.push(format!(
            "service name '{}' is not snake_case",
            parsed.service_name
        ));
    }
    for op in &parsed.operations {
        if !snake.is_match(op) || is_python_keyword(op) {
            p.push(format!("operation '{op}' is not a Python identifier"));
        }
    }
    out.push(verdict("G3", "snake_case_name", t, &p, true, 0.0));
    let t = Instant::now();
    let p: Vec<String> = missing_runtime
        .iter()
        .map(|m| format!("module '{m}' is not importable here (scripts/setup.sh installs it)"))
        .collect();
    out.push(verdict("G4", "runtime_imports", t, &p, false, 0.5));
    let t = Instant::now();
    let p: Vec<String> = template_problem.into_iter().collect();
    out.push(verdict("G5", "template", t, &p, true, 0.0));
    let t = Instant::now();
    let p: Vec<String> = output_problem.into_iter().collect();
    out.push(verdict("G6", "output_directory", t, &p, true, 0.0));
    out
}

/// G7: the contract against the shipped schema.
pub fn contract_gate(errors: &[String]) -> GateResult {
    let t = Instant::now();
    // Each violation costs a fifth of the score.
    let score = (1.0 - 0.2 * errors.len() as f64).max(0.0);
    verdict("G7", "contract_schema", t, errors, true, score)
}

/// A parsed Python file and what the gates read off its tree (collected in one walk).
pub struct PyFile<'a> {
    pub path: &'a str,
    pub source: &'a str,
    pub tree: Tree,
    pub facts: Facts,
}

/// What one walk of a file's tree finds.
#[derive(Default)]
pub struct Facts {
    pub classes: Vec<ClassInfo>,
    imports: Vec<Import>,
    functions: usize,
    documented: usize,
    hinted: usize,
    bare_excepts: usize,
}

/// Every Python file of `files`, parsed (incrementally from this thread's previous file of the
/// same node type and path, see [`PythonParser`]) and walked once.
pub fn parse_python<'a>(
    files: &'a [GeneratedFile],
    node_type: NodeType,
    parser: &mut PythonParser,
) -> Vec<PyFile<'a>> {
    files
        .iter()
        .filter(|f| f.path.ends_with(".py"))
        .map(|f| {
            let tree = parser.parse(&format!("{}/{}", node_type.as_str(), f.path), &f.content);
            let facts = facts_of(&tree, &f.content);
            PyFile {
                path: &f.path,
                source: &f.content,
                tree,
                facts,
            }
        })
        .collect()
}

/// Visit `node` and its descendants in order; `visit` returning false skips a node's children.
/// One cursor for the whole walk: a cursor per node costs more than the visiting.
pub(crate) fn walk<'t>(node: Node<'t>, visit: &mut dyn FnMut(Node<'t>) -> bool) {
    let mut cursor = node.walk();
    let mut descend = visit(cursor.node());
    loop {
        if descend && cursor.goto_first_child() {
            descend = visit(cursor.node());
            continue;
        }
        loop {
            if cursor.goto_next_sibling() {
                descend = visit(cursor.node());
                break;
            }
            if !cursor.goto_parent() {
                return;
            }
        }
    }
}

/// The first syntax errors of a file, as `path:line:column: what`.
fn syntax_errors(f: &PyFile<'_>) -> Vec<String> {
    syntax_errors_in(f.tree.root_node(), f.source, f.path)
}

/// The first three syntax errors under `root` (a tree of `source`, the file at `path`), as
/// `path:line:column: missing X` or `path:line:column: unexpected "..."`.
pub(crate) fn syntax_errors_in(root: Node<'_>, source: &str, path: &str) -> Vec<String> {
    let mut errors = Vec::new();
    walk(root, &mut |n| {
        if errors.len() >= 3 {
            return false;
        }
        if n.is_error() || n.is_missing() {
            let p = n.start_position();
            let what = if n.is_missing() {
                format!("missing {}", n.kind())
            } else {
                let text: String = text(source, n).chars().take(40).collect();
                format!("unexpected {text:?}")
            };
            errors.push(format!("{path}:{}:{}: {what}", p.row + 1, p.column + 1));
            return false;
        }
        n.has_error()
    });
    errors
}

/// The post-generation gates, (id, name): what the simulator imitates too.
pub const POST_GATES: [(&str, &str); 4] = [
    ("G9", "python_syntax"),
    ("G10", "onex_naming"),
    ("G11", "import_paths"),
    ("G12", "pydantic_v2"),
];

/// Asks Python which of these top-level modules it cannot import.
pub type ModuleResolver<'a> =
    dyn FnMut(&[String]) -> Result<Vec<String>, crate::python::PythonError> + 'a;

/// What the post-generation gates and the score need to know about the code.
pub struct PostValidation {
    pub gates: Vec<GateResult>,
    pub code_quality: f64,
    /// Whether the Effect/Orchestrator node class has the event-bus mixin (true when not needed).
    pub event_bus_ok: bool,
}

/// G9-G12 over every Python file. `resolve_modules` returns the absolute top-level modules that
/// Python cannot import (asked of the real interpreter).
pub fn post_gates(
    files: &[GeneratedFile],
    parsed: &ParsedPrompt,
    resolve_modules: &mut ModuleResolver<'_>,
    parser: &mut PythonParser,
) -> PostValidation {
    let py = parse_python(files, parsed.node_type, parser);
    let mut gates = Vec::new();
    let [g9, g10, g11, g12] = POST_GATES;

    // G9: syntax.
    let t = Instant::now();
    let mut problems = Vec::new();
    let mut clean = 0;
    for f in &py {
        let errors = syntax_errors(f);
        if errors.is_empty() && !f.tree.root_node().has_error() {
            clean += 1;
        }
        problems.extend(errors);
    }
    let node_module = py.iter().find(|f| f.path == NODE_MODULE);
    match node_module {
        None => problems.push(format!("{NODE_MODULE} is missing")),
        Some(f) if f.source.trim().is_empty() => problems.push(format!(
            "{NODE_MODULE} is empty (the model returned no code)"
        )),
        _ => {}
    }
    let syntax_score = if py.is_empty() {
        0.0
    } else {
        clean as f64 / py.len() as f64
    };
    gates.push(verdict(g9.0, g9.1, t, &problems, true, syntax_score));

    // G10: Node<Name><Type> naming and the execute method.
    let t = Instant::now();
    let expected = parsed.class_name();
    let method = parsed.node_type.execute_method();
    let mut problems = Vec::new();
    let mut score = 0.0;
    let mut event_bus_ok = !parsed.node_type.uses_event_bus();
    if let Some(f) = node_module {
        static NAMING: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
            regex::Regex::new(r"^Node[A-Z][A-Za-z0-9]*(Effect|Compute|Reducer|Orchestrator)$")
                .unwrap()
        });
        let naming = &*NAMING;
        let classes = &f.facts.classes;
        match classes.iter().find(|c| c.name == expected) {
            Some(c) => {
                score += 0.6;
                if c.methods.iter().any(|m| m == method) {
                    score += 0.4;
                } else {
                    problems.push(format!("{expected} has no `{method}` method"));
                }
                if c.bases.iter().any(|b| b == "EventBusMixin") {
                    event_bus_ok = true;
                }
            }
            None => match classes.iter().find(|c| naming.is_match(&c.name)) {
                Some(c) => {
                    score += 0.3;
                    problems.push(format!(
                        "the node class is {} but the request asks for {expected}",
                        c.name
                    ));
                }
                None => problems.push(format!(
                    "no class named Node<Name><Type> in {NODE_MODULE} (expected {expected})"
                )),
            },
        }
    }
    let naming_fails = score < 0.6;
    gates.push(verdict(g10.0, g10.1, t, &problems, naming_fails, score));

    // G11: import paths.
    let t = Instant::now();
    let mut problems = Vec::new();
    let present: BTreeSet<&str> = files.iter().map(|f| f.path.as_str()).collect();
    let mut absolute: BTreeSet<String> = BTreeSet::new();
    let mut imports = 0usize;
    for f in &py {
        for import in &f.facts.imports {
            imports += 1;
            match import {
                Import::Relative { level, module } => {
                    if !relative_exists(f.path, *level, module, &present) {
                        problems.push(format!(
                            "{}: `from {}{} import` points to no generated module",
                            f.path,
                            ".".repeat(*level),
                            module
                        ));
                    }
                }
                Import::Absolute(top) => {
                    let generated = present.contains(format!("{top}.py").as_str())
                        || present.contains(format!("{top}/__init__.py").as_str());
                    if !generated {
                        absolute.insert(top.clone());
                    }
                }
            }
        }
    }
    let absolute: Vec<String> = absolute.into_iter().collect();
    match resolve_modules(&absolute) {
        Ok(missing) => {
            for m in missing {
                problems.push(format!("module '{m}' cannot be imported"));
            }
        }
        Err(e) => problems.push(format!(
            "could not ask Python about imports: {}",
            crate::error::error_chain(&e)
        )),
    }
    let score = if imports == 0 {
        1.0
    } else {
        (1.0 - problems.len() as f64 / imports as f64).max(0.0)
    };
    gates.push(verdict(g11.0, g11.1, t, &problems, false, score));

    // G12: Pydantic v2.
    let t = Instant::now();
    let mut problems = Vec::new();
    let mut uses_pydantic = false;
    for f in &py {
        if f.source.contains("from pydantic import") || f.source.contains("import pydantic") {
            uses_pydantic = true;
        }
        for (needle, why) in [
            ("from pydantic.v1", "imports the Pydantic v1 API"),
            (".parse_obj(", "uses parse_obj (v2: model_validate)"),
            (".parse_raw(", "uses parse_raw (v2: model_validate_json)"),
            (".dict()", "uses .dict() (v2: model_dump)"),
            ("@validator", "uses @validator (v2: @field_validator)"),
            (
                "@root_validator",
                "uses @root_validator (v2: @model_validator)",
            ),
            ("orm_mode", "uses orm_mode (v2: from_attributes)"),
        ] {
            if f.source.contains(needle) {
                problems.push(format!("{}: {why}", f.path));
            }
        }
        for c in &f.facts.classes {
            if c.inner_classes.iter().any(|n| n == "Config") {
                problems.push(format!(
                    "{}: {} has an inner `class Config` (v2: model_config = ConfigDict(...))",
                    f.path, c.name
                ));
            }
        }
    }
    if !uses_pydantic {
        problems.push("no Pydantic models in the node".into());
    }
    let score = (1.0 - 0.25 * problems.len() as f64).max(0.0);
    gates.push(verdict(g12.0, g12.1, t, &problems, false, score));

    PostValidation {
        code_quality: code_quality(&py),
        gates,
        event_bus_ok,
    }
}

/// A class as the gates see it.
pub struct ClassInfo {
    pub name: String,
    pub bases: Vec<String>,
    pub methods: Vec<String>,
    pub inner_classes: Vec<String>,
}

fn text<'s>(source: &'s str, node: Node<'_>) -> &'s str {
    node.utf8_text(source.as_bytes()).unwrap_or("")
}

/// Classes, imports and function metrics of a file, in one walk of its tree.
fn facts_of(tree: &Tree, source: &str) -> Facts {
    let mut facts = Facts::default();
    walk(tree.root_node(), &mut |n| match n.kind() {
        "class_definition" => {
            facts.classes.push(class_info(n, source));
            true
        }
        "function_definition" => {
            facts.functions += 1;
            if n.child_by_field_name("return_type").is_some() {
                facts.hinted += 1;
            }
            if let Some(body) = n.child_by_field_name("body")
                && let Some(first) = body.named_child(0)
                && first.kind() == "expression_statement"
                && first.named_child(0).is_some_and(|s| s.kind() == "string")
            {
                facts.documented += 1;
            }
            true
        }
        "except_clause" => {
            let mut c = n.walk();
            if n.named_children(&mut c).all(|x| x.kind() == "block") {
                facts.bare_excepts += 1;
            }
            true
        }
        "import_statement" => {
            let tops = imported_modules(n, source);
            facts.imports.extend(tops.into_iter().map(Import::Absolute));
            false
        }
        "import_from_statement" => {
            if let Some(m) = n.child_by_field_name("module_name") {
                let t = text(source, m).trim().to_string();
                if m.kind() == "relative_import" {
                    let level = t.chars().take_while(|c| *c == '.').count();
                    facts.imports.push(Import::Relative {
                        level,
                        module: t[level..].to_string(),
                    });
                } else if t != "__future__" {
                    let top = t.split('.').next().unwrap_or(&t).to_string();
                    facts.imports.push(Import::Absolute(top));
                }
            }
            false
        }
        // Simple statements and decorators hold no definitions, imports or handlers: not
        // descending into their expressions skips most of a file's nodes.
        "expression_statement"
        | "return_statement"
        | "assert_statement"
        | "raise_statement"
        | "pass_statement"
        | "break_statement"
        | "continue_statement"
        | "delete_statement"
        | "global_statement"
        | "nonlocal_statement"
        | "decorator"
        | "parameters"
        | "comment"
        | "future_import_statement" => false,
        _ => true,
    });
    facts
}

/// The top-level modules of an `import a.b, c as d` statement: `a`, `c`.
pub(crate) fn imported_modules(n: Node<'_>, source: &str) -> Vec<String> {
    let mut c = n.walk();
    n.named_children(&mut c)
        .filter_map(|child| match child.kind() {
            "aliased_import" => child.child_by_field_name("name"),
            _ => Some(child),
        })
        .map(|d| {
            let t = text(source, d);
            t.split('.').next().unwrap_or(t).trim().to_string()
        })
        .filter(|top| !top.is_empty())
        .collect()
}

fn class_info(n: Node<'_>, source: &str) -> ClassInfo {
    let name = n
        .child_by_field_name("name")
        .map(|x| text(source, x).to_string())
        .unwrap_or_default();
    let bases = n
        .child_by_field_name("superclasses")
        .map(|args| {
            let mut c = args.walk();
            args.named_children(&mut c)
                .map(|b| text(source, b).to_string())
                .collect()
        })
        .unwrap_or_default();
    let mut methods = Vec::new();
    let mut inner_classes = Vec::new();
    if let Some(body) = n.child_by_field_name("body") {
        let mut c = body.walk();
        for stmt in body.named_children(&mut c) {
            let def = if stmt.kind() == "decorated_definition" {
                stmt.child_by_field_name("definition").unwrap_or(stmt)
            } else {
                stmt
            };
            let def_name = def
                .child_by_field_name("name")
                .map(|x| text(source, x).to_string());
            match (def.kind(), def_name) {
                ("function_definition", Some(m)) => methods.push(m),
                ("class_definition", Some(m)) => inner_classes.push(m),
                _ => {}
            }
        }
    }
    ClassInfo {
        name,
        bases,
        methods,
        inner_classes,
    }
}

enum Import {
    Relative { level: usize, module: String },
    Absolute(String),
}

/// Does `from <level dots><module> import ...` in `file` name a generated module or package?
fn relative_exists(file: &str, level: usize, module: &str, present: &BTreeSet<&str>) -> bool {
    let mut dir: Vec<&str> = file.split('/').collect();
    dir.pop();
    for _ in 1..level {
        if dir.pop().is_none() {
            return false;
        }
    }
    let base = dir.join("/");
    let join = |rest: &str| {
        if base.is_empty() {
            rest.to_string()
        } else if rest.is_empty() {
            base.clone()
        } else {
            format!("{base}/{rest}")
        }
    };
    let path = join(&module.replace('.', "/"));
    if module.is_empty() {
        return present.contains(format!("{path}/__init__.py").as_str());
    }
    present.contains(format!("{path}.py").as_str())
        || present.contains(format!("{path}/__init__.py").as_str())
}

/// Docstrings and type hints on functions, no bare `except:`, no TODO, lines of at most 100.
fn code_quality(py: &[PyFile<'_>]) -> f64 {
    let (mut functions, mut documented, mut hinted, mut bare_excepts) = (0, 0, 0, 0);
    let (mut todos, mut long_lines, mut lines) = (0usize, 0usize, 0usize);
    for f in py {
        functions += f.facts.functions;
        documented += f.facts.documented;
        hinted += f.facts.hinted;
        bare_excepts += f.facts.bare_excepts;
        for line in f.source.lines() {
            lines += 1;
            if line.len() > 100 && line.chars().count() > 100 {
                long_lines += 1;
            }
            if line.contains("TODO") || line.contains("FIXME") {
                todos += 1;
            }
        }
    }
    let ratio = |a: usize, b: usize| if b == 0 { 1.0 } else { a as f64 / b as f64 };
    0.35 * ratio(documented, functions)
        + 0.35 * ratio(hinted, functions)
        + 0.1 * if bare_excepts == 0 { 1.0 } else { 0.0 }
        + 0.1 * if todos == 0 { 1.0 } else { 0.0 }
        + 0.1 * (1.0 - ratio(long_lines, lines.max(1)))
}

/// The quality score and its dimensions (generation-completed fields).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Quality {
    pub score: f64,
    pub syntax: f64,
    pub onex_compliance: f64,
    pub contract: f64,
    pub code_quality: f64,
    /// Share of the request's examples that passed; `None` when it gave none.
    pub functional: Option<f64>,
    pub passed: bool,
}

/// Weight of the functional dimension when the request has examples; the structural dimensions
/// share the rest in their own proportions (.30/.40/.20/.10 of .60).
pub const FUNCTIONAL_WEIGHT: f64 = 0.40;

pub const PASS_QUALITY: f64 = 0.80;

/// The scorer: these gates and weights. Stored with every pattern's score, so a pattern scored
/// by an older scorer can be found and re-scored.
pub const SCORER_VERSION: &str = "quality-v2";
pub const PASS_ONEX: f64 = 0.70;

/// Upstream's weights and pass rule over the gates' scores.
pub fn quality(
    gates: &[GateResult],
    code_quality: f64,
    event_bus_ok: bool,
    node_type: NodeType,
    functional: Option<f64>,
) -> Quality {
    let score_of = |id: &str| {
        gates
            .iter()
            .rev()
            .find(|g| g.id == id)
            .map(|g| g.score)
            .unwrap_or(0.0)
    };
    let syntax = score_of("G9");
    let event_bus = if node_type.uses_event_bus() && !event_bus_ok {
        0.0
    } else {
        1.0
    };
    let onex = 0.5 * score_of("G10") + 0.3 * score_of("G11") + 0.2 * event_bus;
    let contract = score_of("G7");
    let structural = 0.30 * syntax + 0.40 * onex + 0.20 * contract + 0.10 * code_quality;
    let score = match functional {
        Some(f) => FUNCTIONAL_WEIGHT * f + (1.0 - FUNCTIONAL_WEIGHT) * structural,
        None => structural,
    };
    let hard_failure = gates
        .iter()
        .any(|g| g.status == GateStatus::Fail && matches!(g.id, "G7" | "G9" | "G10"))
        || functional.is_some_and(|f| f < 1.0);
    let round = |x: f64| (x * 1000.0).round() / 1000.0;
    Quality {
        score: round(score),
        syntax: round(syntax),
        onex_compliance: round(onex),
        contract: round(contract),
        code_quality: round(code_quality),
        functional: functional.map(round),
        passed: !hard_failure && score >= PASS_QUALITY && onex >= PASS_ONEX,
    }
}

/// Upstream's letter grades.
pub fn grade(score: f64) -> &'static str {
    match score {
        s if s >= 0.95 => "A+",
        s if s >= 0.90 => "A",
        s if s >= 0.85 => "B+",
        s if s >= 0.80 => "B",
        s if s >= 0.70 => "C",
        s if s >= 0.60 => "D",
        _ => "F",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::parse_prompt;

    fn file(path: &str, content: &str) -> GeneratedFile {
        GeneratedFile {
            path: path.into(),
            content: content.into(),
        }
    }

    fn no_missing(_: &[String]) -> Result<Vec<String>, crate::python::PythonError> {
        Ok(vec![])
    }

    const GOOD: &str = "\"\"\"Node.\"\"\"\nfrom pydantic import BaseModel\nfrom .models.input import ModelIn\n\n\nclass NodePostgresqlWriterEffect:\n    \"\"\"Doc.\"\"\"\n\n    async def execute_effect(self, x: ModelIn) -> int:\n        \"\"\"Run.\"\"\"\n        return 1\n";

    fn good_files() -> Vec<GeneratedFile> {
        vec![
            file(NODE_MODULE, GOOD),
            file("v1_0_0/__init__.py", ""),
            file("v1_0_0/models/__init__.py", ""),
            file("v1_0_0/models/input.py", "from pydantic import BaseModel\n"),
        ]
    }

    #[test]
    fn good_code_passes_every_gate() {
        let p = parse_prompt("Create PostgreSQL writer Effect node", None).unwrap();
        let v = post_gates(&good_files(), &p, &mut no_missing, &mut PythonParser::new());
        for g in &v.gates {
            assert_eq!(g.status, GateStatus::Pass, "{g:?}");
        }
        assert!(!v.event_bus_ok, "no mixin yet");
    }

    #[test]
    fn each_gate_catches_its_problem_with_a_position() {
        let p = parse_prompt("Create PostgreSQL writer Effect node", None).unwrap();
        let mut files = good_files();
        files[0].content = GOOD.replace("return 1", "return (1").replace(
            "from .models.input import ModelIn",
            "from .models.missing import ModelIn\nimport nosuchmodule",
        );
        files.push(file(
            "v1_0_0/models/output.py",
            "from pydantic import BaseModel\nclass Out(BaseModel):\n    class Config:\n        orm_mode = True\n",
        ));
        let mut missing =
            |m: &[String]| Ok(m.iter().filter(|x| *x == "nosuchmodule").cloned().collect());
        let v = post_gates(&files, &p, &mut missing, &mut PythonParser::new());
        let by = |id: &str| v.gates.iter().find(|g| g.id == id).unwrap();
        assert_eq!(by("G9").status, GateStatus::Fail);
        assert!(
            by("G9").message.contains("v1_0_0/node.py:"),
            "{:?}",
            by("G9")
        );
        assert_eq!(by("G11").status, GateStatus::Warn);
        assert!(
            by("G11").message.contains(".models.missing"),
            "{:?}",
            by("G11")
        );
        assert!(
            by("G11").message.contains("nosuchmodule"),
            "{:?}",
            by("G11")
        );
        assert_eq!(by("G12").status, GateStatus::Warn);
        assert!(
            by("G12").message.contains("class Config"),
            "{:?}",
            by("G12")
        );

        let mut files = good_files();
        files[0].content = GOOD.replace("NodePostgresqlWriterEffect", "PostgresWriter");
        let v = post_gates(&files, &p, &mut no_missing, &mut PythonParser::new());
        assert_eq!(v.gates[1].status, GateStatus::Fail);
        files[0].content = String::new();
        let v = post_gates(&files, &p, &mut no_missing, &mut PythonParser::new());
        assert!(v.gates[0].message.contains("empty"), "{:?}", v.gates[0]);
    }

    #[test]
    fn quality_follows_the_upstream_weights_and_pass_rule() {
        let g = |id: &'static str, score: f64, status| GateResult {
            id,
            name: "",
            status,
            score,
            message: String::new(),
            duration_ms: 0.0,
        };
        let gates = vec![
            g("G7", 1.0, GateStatus::Pass),
            g("G9", 1.0, GateStatus::Pass),
            g("G10", 1.0, GateStatus::Pass),
            g("G11", 1.0, GateStatus::Pass),
        ];
        let q = quality(&gates, 1.0, true, NodeType::Effect, None);
        assert_eq!((q.score, q.passed, q.functional), (1.0, true, None));
        // No event-bus mixin on an Effect node: ONEX 0.8, score 0.92.
        let q = quality(&gates, 1.0, false, NodeType::Effect, None);
        assert_eq!((q.onex_compliance, q.score, q.passed), (0.8, 0.92, true));
        // With examples, .40 is theirs and the structure's .60 scales: 0.4 + 0.6 * 0.92.
        let q = quality(&gates, 1.0, false, NodeType::Effect, Some(1.0));
        assert_eq!((q.score, q.functional, q.passed), (0.952, Some(1.0), true));
        // One example of four failing: never a pass, whatever the score.
        let q = quality(&gates, 1.0, true, NodeType::Effect, Some(0.75));
        assert_eq!((q.score, q.passed), (0.9, false));
        let mut bad = gates.clone();
        bad[1] = g("G9", 0.5, GateStatus::Fail);
        let q = quality(&bad, 1.0, true, NodeType::Compute, None);
        assert_eq!(q.score, 0.85);
        assert!(!q.passed, "a syntax failure never passes");
        assert_eq!(grade(0.96), "A+");
        assert_eq!(grade(0.81), "B");
        assert_eq!(grade(0.3), "F");
    }

    #[test]
    fn each_code_quality_deduction_costs_exactly_its_weight() {
        let p = parse_prompt("Create PostgreSQL writer Effect node", None).unwrap();
        let score = |src: &str| {
            let files = [file("v1_0_0/extra.py", src)];
            post_gates(&files, &p, &mut no_missing, &mut PythonParser::new()).code_quality
        };
        // The weights add up in floating point: equal to the last few bits.
        let close = |got: f64, want: f64| assert!((got - want).abs() < 1e-12, "{got} vs {want}");
        let two = |a: &str, b: &str| format!("{a}\n\n{b}\n");
        let good = "def f(x: int) -> int:\n    \"\"\"Double.\"\"\"\n    return 2 * x";
        let undocumented = "def g(x: int) -> int:\n    return 2 * x";
        let unhinted = "def h(x):\n    \"\"\"Double.\"\"\"\n    return 2 * x";
        close(score(&two(good, good)), 1.0);
        // Docstrings and return hints weigh 0.35 each, by the share of functions that lack them.
        close(score(&two(good, undocumented)), 1.0 - 0.35 / 2.0);
        close(score(&two(good, unhinted)), 1.0 - 0.35 / 2.0);
        // A bare except and a TODO cost 0.1 each, however many there are.
        let bare = "def k() -> None:\n    \"\"\"Try.\"\"\"\n    try:\n        pass\n    except:\n        pass";
        close(score(&two(good, bare)), 0.9);
        close(score(&format!("{good}\n# TODO: more\n# FIXME\n")), 0.9);
        // Lines over 100 characters cost 0.1 by their share of the lines (1 of 4 here).
        let long = format!("{good}\nX = \"{}\"\n", "x".repeat(100));
        close(score(&long), 1.0 - 0.1 / 4.0);
        // 100 characters of multi-byte text are not a long line.
        let wide = format!("{good}\nX = \"{}\"\n", "é".repeat(94));
        close(score(&wide), 1.0);
    }
}
