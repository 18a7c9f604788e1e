//! Stored code judged again: the node is rebuilt around it (the scaffold for a logic module, the
//! other files from the templates), the current gates run over it (contract G7, G9-G12, G16 for
//! a logic module, Python's compile G13) and the current weights score it. No model, no request:
//! what a pattern store needs to re-score its patterns when the scorer changes.

use std::time::Instant;

use crate::assemble::LOGIC_MODULE;
use crate::contract::{build_contract, to_yaml, validate_yaml};
use crate::gates::{self, GateResult, GateStatus, Quality};
use crate::parse::{NodeType, parse_prompt};
use crate::pipeline::{Worker, integrate_event_bus, set_file, validate};
use crate::render::{GeneratorContext, NODE_MODULE, TemplateContext, render_node};
use crate::spec::RequestSpec;

/// What is re-scored.
#[derive(Debug, Clone)]
pub struct StoredCode<'a> {
    pub code: &'a str,
    /// `v1_0_0/logic.py` or `v1_0_0/node.py`.
    pub module: &'a str,
    pub node_type: &'a str,
    /// What the code does (the words the node's names are built from).
    pub description: &'a str,
    pub operations: &'a [String],
    pub contract_yaml: Option<&'a str>,
    /// The share of examples it passed when stored (examples are not stored with it).
    pub functional: Option<f64>,
}

/// The new verdict.
#[derive(Debug, Clone)]
pub struct Rescored {
    pub quality: Quality,
    pub gates: Vec<GateResult>,
}

/// The gates and score of `s` now. An error only for code that cannot be judged at all (an
/// unknown node type, templates that do not render).
pub fn rescore(worker: &mut Worker, s: &StoredCode<'_>) -> Result<Rescored, String> {
    let node_type = NodeType::parse(s.node_type)
        .ok_or_else(|| format!("node type '{}' is not known", s.node_type))?;
    let words = if s.description.trim().is_empty() {
        "stored pattern"
    } else {
        s.description
    };
    let mut parsed = parse_prompt(words, Some(node_type.as_str())).map_err(|e| e.to_string())?;
    if !s.operations.is_empty() {
        parsed.operations = s.operations.to_vec();
    }
    let generator = GeneratorContext {
        tool: "omnistream".into(),
        model: "rescore".into(),
        correlation_id: "rescore".into(),
        generated_at: "1970-01-01T00:00:00Z".into(),
    };
    let mut ctx = TemplateContext::new(
        &parsed,
        words,
        &RequestSpec::default(),
        Vec::new(),
        generator,
    );
    let logic = s.module == LOGIC_MODULE;
    ctx.node.logic = logic;
    let mut files = render_node(&ctx).map_err(|e| e.to_string())?;
    if logic && node_type.uses_event_bus() {
        integrate_event_bus(&mut files, &ctx, &parsed, &mut worker.parser);
    }
    set_file(
        &mut files,
        if logic { LOGIC_MODULE } else { NODE_MODULE },
        s.code.to_string(),
    );
    let contract = match s.contract_yaml {
        Some(c) if !c.trim().is_empty() => c.to_string(),
        _ => to_yaml(&build_contract(
            &parsed,
            words,
            "rescore",
            "rescore",
            "1970-01-01T00:00:00Z",
        )),
    };
    let mut all = vec![gates::contract_gate(&validate_yaml(&contract, None))];
    let validation = validate(worker, &parsed, &files);
    all.extend(validation.gates.iter().cloned());
    all.push(compile_gate(
        worker,
        if logic { LOGIC_MODULE } else { NODE_MODULE },
        s.code,
    ));
    let quality = gates::quality(
        &all,
        validation.code_quality,
        validation.event_bus_ok,
        node_type,
        s.functional,
    );
    Ok(Rescored {
        quality,
        gates: all,
    })
}

/// G13 over the one module: Python compiles it.
fn compile_gate(worker: &mut Worker, module: &str, code: &str) -> GateResult {
    let started = Instant::now();
    let result = tempfile::Builder::new()
        .prefix("omnistream-rescore-")
        .tempdir()
        .map_err(|e| e.to_string())
        .and_then(|dir| {
            let path = dir
                .path()
                .join(module.rsplit('/').next().unwrap_or("module.py"));
            std::fs::write(&path, code).map_err(|e| e.to_string())?;
            worker
                .python
                .compile(&[path.as_path()])
                .map_err(|e| e.to_string())
        });
    let (status, message) = match result {
        Ok(errors) if errors.is_empty() => (GateStatus::Pass, "compiled".to_string()),
        Ok(errors) => (
            GateStatus::Fail,
            errors
                .iter()
                .map(|e| format!("line {}: {}", e.line, e.message))
                .collect::<Vec<_>>()
                .join("; "),
        ),
        Err(e) => (GateStatus::Fail, e),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_logic_scores_high_and_broken_logic_fails_its_gates() {
        let mut worker = Worker::new("python3");
        let ops = vec!["checksum".to_string()];
        let good = "import hashlib\n\n\ndef run(operation: str, payload: dict[str, object]) -> dict[str, object]:\n    \"\"\"Digest the content.\"\"\"\n    data = str(payload[\"content\"]).encode(\"utf-8\")\n    return {\"sha256\": hashlib.sha256(data).hexdigest()}\n";
        let s = StoredCode {
            code: good,
            module: LOGIC_MODULE,
            node_type: "compute",
            description: "file checksum calculator",
            operations: &ops,
            contract_yaml: None,
            functional: Some(1.0),
        };
        let r = rescore(&mut worker, &s).unwrap();
        assert!(r.quality.passed && r.quality.score >= 0.95, "{:?}", r.gates);
        let broken = StoredCode {
            code: "def run(operation, payload:\n    return 1\n",
            ..s.clone()
        };
        let r = rescore(&mut worker, &broken).unwrap();
        assert!(!r.quality.passed, "{:?}", r.quality);
        assert!(
            r.gates
                .iter()
                .any(|g| g.id == "G13" && g.status == GateStatus::Fail)
        );
        let unknown = StoredCode {
            node_type: "widget",
            ..s
        };
        assert!(
            rescore(&mut worker, &unknown)
                .unwrap_err()
                .contains("widget")
        );
    }
}
