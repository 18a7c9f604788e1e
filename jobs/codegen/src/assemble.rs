//! Import-first generation: a model writes only what is specific to the request, the module
//! `v1_0_0/logic.py` with a `run` function and its helpers, and the scaffold (the templates'
//! node, with the declared models) calls it. The assembly gate (G16) checks the part before
//! anything runs it: it parses, defines `run` with the parameters the scaffold passes, leaves the
//! scaffold's classes alone, and imports only what this interpreter has. Every problem has its
//! position; none is a crash.

use std::collections::BTreeMap;
use std::time::Instant;

use tree_sitter::Node;

use crate::gates::{
    GateResult, GateStatus, ModuleResolver, imported_modules, syntax_errors_in, walk,
};
use crate::parse::{NodeType, ParsedPrompt};
use crate::syntax::PythonParser;

/// The module a model writes in import-first generation.
pub const LOGIC_MODULE: &str = "v1_0_0/logic.py";

/// How generated nodes get their request-specific code from a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// The model writes `logic.py` (its `run` and helpers) into the scaffold (the default).
    #[default]
    ImportFirst,
    /// The model rewrites the whole `node.py` from the template's skeleton.
    Rewrite,
}

/// The parameters the scaffold passes to `run`, in order.
pub fn run_parameters(t: NodeType) -> &'static [&'static str] {
    match t {
        NodeType::Compute => &["operation", "payload"],
        NodeType::Reducer | NodeType::Orchestrator => &["operation", "payload", "state"],
        NodeType::Effect => &["operation", "payload", "state", "client"],
    }
}

/// `def run(operation: str, payload: dict[str, object], state: dict[str, object]) -> dict[str, object]`
pub fn run_signature(t: NodeType) -> String {
    let params: Vec<String> = run_parameters(t)
        .iter()
        .map(|p| match *p {
            "operation" => "operation: str".to_string(),
            "client" => "client".to_string(),
            other => format!("{other}: dict[str, object]"),
        })
        .collect();
    let prefix = if t == NodeType::Effect { "async " } else { "" };
    format!(
        "{prefix}def run({}) -> dict[str, object]",
        params.join(", ")
    )
}

/// Names the scaffold defines: the part must not define classes by them.
fn scaffold_names(parsed: &ParsedPrompt) -> Vec<String> {
    let n = &parsed.name;
    vec![
        parsed.class_name(),
        format!("Model{n}Input"),
        format!("Model{n}Output"),
        format!("Model{n}Config"),
        format!("Model{n}Payload"),
        format!("Model{n}Result"),
        format!("Enum{n}Operation"),
    ]
}

/// G16: the model's part, checked for assembly into the scaffold.
pub fn assembly_gate(
    code: &str,
    parsed: &ParsedPrompt,
    resolve_modules: &mut ModuleResolver<'_>,
    parser: &mut PythonParser,
) -> GateResult {
    let started = Instant::now();
    let problems = part_problems(code, parsed, resolve_modules, parser);
    let ok = problems.is_empty();
    GateResult {
        id: "G16",
        name: "assembly",
        status: if ok {
            GateStatus::Pass
        } else {
            GateStatus::Fail
        },
        score: if ok { 1.0 } else { 0.0 },
        message: if ok {
            format!("{LOGIC_MODULE} fits the scaffold")
        } else {
            problems.join("; ")
        },
        duration_ms: started.elapsed().as_secs_f64() * 1000.0,
    }
}

/// `v1_0_0/logic.py:3:5: what`.
fn at(n: Node<'_>, what: impl std::fmt::Display) -> String {
    let p = n.start_position();
    format!("{LOGIC_MODULE}:{}:{}: {what}", p.row + 1, p.column + 1)
}

fn text<'s>(source: &'s str, n: Node<'_>) -> &'s str {
    n.utf8_text(source.as_bytes()).unwrap_or("")
}

/// Every reason the part does not fit, each with its position.
pub fn part_problems(
    code: &str,
    parsed: &ParsedPrompt,
    resolve_modules: &mut ModuleResolver<'_>,
    parser: &mut PythonParser,
) -> Vec<String> {
    if code.trim().is_empty() {
        return vec![format!(
            "{LOGIC_MODULE} is empty (the model returned no code)"
        )];
    }
    let tree = parser.parse(
        &format!("{}/{LOGIC_MODULE}", parsed.node_type.as_str()),
        code,
    );
    let root = tree.root_node();
    // G9's positions, said as syntax errors of the part.
    let mut problems: Vec<String> = syntax_errors_in(root, code, LOGIC_MODULE)
        .into_iter()
        .map(|e| e.replacen(": ", ": syntax error: ", 1))
        .collect();
    if !problems.is_empty() {
        return problems;
    }
    let reserved = scaffold_names(parsed);
    let mut run = None;
    let mut imports: BTreeMap<String, Node<'_>> = BTreeMap::new();
    let mut cursor = root.walk();
    for top in root.named_children(&mut cursor) {
        let def = match top.kind() {
            "decorated_definition" => top.child_by_field_name("definition").unwrap_or(top),
            _ => top,
        };
        match def.kind() {
            "function_definition" => {
                let name = def.child_by_field_name("name").map(|n| text(code, n));
                if name == Some("run") {
                    run = Some(def);
                }
            }
            "import_statement" | "import_from_statement" => {
                import_problems(def, code, &mut imports, &mut problems)
            }
            _ => {}
        }
    }
    // Classes anywhere (nested ones too) may not take the scaffold's names.
    walk(root, &mut |n| {
        if n.kind() == "class_definition"
            && let Some(name) = n.child_by_field_name("name").map(|x| text(code, x))
            && (reserved.iter().any(|r| r == name) || name.starts_with("Node"))
        {
            problems.push(at(
                n,
                format!(
                    "redefines class {name}, which the scaffold defines: write only `run` and \
                     its helpers"
                ),
            ));
        }
        true
    });
    match run {
        None => problems.push(format!(
            "{LOGIC_MODULE}: no top-level `{}`",
            run_signature(parsed.node_type)
        )),
        Some(def) => problems.extend(signature_problem(def, code, parsed.node_type)),
    }
    let tops: Vec<String> = imports.keys().cloned().collect();
    match resolve_modules(&tops) {
        Ok(missing) => {
            for m in missing {
                if let Some(n) = imports.get(&m) {
                    problems.push(at(
                        *n,
                        format!("imports '{m}', which is not installed here"),
                    ));
                }
            }
        }
        Err(e) => problems.push(format!(
            "could not ask Python about imports: {}",
            crate::error::error_chain(&e)
        )),
    }
    problems
}

/// Absolute imports go to `imports` (top-level module -> where); imports from the node package
/// other than its models and enums are refused (`.node` would import the part's own caller).
fn import_problems<'t>(
    n: Node<'t>,
    code: &str,
    imports: &mut BTreeMap<String, Node<'t>>,
    problems: &mut Vec<String>,
) {
    if n.kind() == "import_from_statement" {
        let Some(m) = n.child_by_field_name("module_name") else {
            return;
        };
        let module = text(code, m).trim();
        if m.kind() == "relative_import" {
            let inner = module.trim_start_matches('.');
            let allowed = module.starts_with('.')
                && !module.starts_with("..")
                && (inner.starts_with("models") || inner.starts_with("enums"));
            if !allowed {
                problems.push(at(
                    n,
                    format!(
                        "imports `{module}` from the node package: logic.py may import the \
                         standard library, .models and .enums"
                    ),
                ));
            }
            return;
        }
        if module != "__future__" {
            let top = module.split('.').next().unwrap_or(module).to_string();
            imports.entry(top).or_insert(n);
        }
        return;
    }
    for top in imported_modules(n, code) {
        imports.entry(top).or_insert(n);
    }
}

/// `run` must take the scaffold's parameters, in order, by name (more, with defaults, may follow).
fn signature_problem(def: Node<'_>, code: &str, t: NodeType) -> Option<String> {
    let params = def.child_by_field_name("parameters")?;
    let mut c = params.walk();
    let names: Vec<&str> = params
        .named_children(&mut c)
        .filter_map(|p| match p.kind() {
            "identifier" => Some(text(code, p)),
            "typed_parameter" => p.named_child(0).map(|x| text(code, x)),
            "default_parameter" | "typed_default_parameter" => {
                p.child_by_field_name("name").map(|x| text(code, x))
            }
            _ => None,
        })
        .collect();
    let want = run_parameters(t);
    let fits = names.len() >= want.len() && names[..want.len()] == *want;
    (!fits).then(|| {
        at(
            def,
            format!(
                "run takes ({}); the scaffold calls run({})",
                names.join(", "),
                want.join(", ")
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::parse_prompt;

    fn problems(code: &str) -> Vec<String> {
        let parsed = parse_prompt("Create sum calculator Compute node", None).unwrap();
        let mut resolve = |m: &[String]| -> Result<Vec<String>, crate::python::PythonError> {
            Ok(m.iter()
                .filter(|m| m.as_str() == "numpy")
                .cloned()
                .collect())
        };
        part_problems(code, &parsed, &mut resolve, &mut PythonParser::new())
    }

    #[test]
    fn a_part_that_fits_has_no_problems() {
        let code = "import math\nfrom collections import Counter\nfrom .models.output import X\n\n\
                    def _twice(x: float) -> float:\n    return 2 * x\n\n\
                    def run(operation: str, payload: dict, extra: int = 1) -> dict:\n    \
                    return {'total': _twice(payload['a'])}\n";
        assert_eq!(problems(code), Vec::<String>::new());
    }

    #[test]
    fn each_misfit_is_a_problem_with_its_position() {
        let cases = [
            ("", "v1_0_0/logic.py is empty"),
            (
                "def run(operation, payload:\n    return {}\n",
                "v1_0_0/logic.py:1:",
            ),
            (
                "def helper():\n    return 1\n",
                "no top-level `def run(operation: str, payload",
            ),
            (
                "def run(payload, operation):\n    return {}\n",
                "v1_0_0/logic.py:1:1: run takes (payload, operation); the scaffold calls run(operation, payload)",
            ),
            (
                "class NodeSumCalculatorCompute:\n    pass\n\ndef run(operation, payload):\n    return {}\n",
                "v1_0_0/logic.py:1:1: redefines class NodeSumCalculatorCompute",
            ),
            (
                "def run(operation, payload):\n    class ModelSumCalculatorResult:\n        pass\n    return {}\n",
                "v1_0_0/logic.py:2:5: redefines class ModelSumCalculatorResult",
            ),
            (
                "import numpy as np\n\ndef run(operation, payload):\n    return {}\n",
                "v1_0_0/logic.py:1:1: imports 'numpy', which is not installed here",
            ),
            (
                "from .node import NodeSumCalculatorCompute\n\ndef run(operation, payload):\n    return {}\n",
                "v1_0_0/logic.py:1:1: imports `.node` from the node package",
            ),
            (
                "from ..x import y\n\ndef run(operation, payload):\n    return {}\n",
                "imports `..x` from the node package",
            ),
        ];
        for (code, says) in cases {
            let p = problems(code);
            assert!(
                p.iter().any(|x| x.contains(says)),
                "{code:?}: {p:?} lacks {says:?}"
            );
        }
    }

    #[test]
    fn each_node_type_gets_its_signature() {
        assert_eq!(
            run_signature(NodeType::Compute),
            "def run(operation: str, payload: dict[str, object]) -> dict[str, object]"
        );
        assert_eq!(
            run_signature(NodeType::Effect),
            "async def run(operation: str, payload: dict[str, object], state: dict[str, object], client) -> dict[str, object]"
        );
    }
}
