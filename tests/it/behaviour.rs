//! Requests with declared fields and examples through the real binary: `generate --requests`,
//! the behaviour gate's verdicts in the lake and the reducers, the declared fields as the node's
//! models, and request files that are refused whole.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_json::Value;

use super::{Env, describe};

fn shipped_requests() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("requests/behaviour.jsonl")
}

/// One JSON object per line of `generate --requests --format json`.
fn outcomes(stdout: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// What the templates really implement among the shipped requests: the only ones the template
/// model may pass (docs/codegen.md, "The template model and examples").
const TEMPLATE_PASSES: &[&str] = &[
    "create sum calculator",
    "statistics calculator",
    "account balance aggregator",
    "temperature range aggregator",
    "page view counter",
    "moving average accumulator",
    "key value store writer",
    "key value store reader",
    "session cache",
    "inventory stock reader",
    "checkout pipeline",
    "deployment coordinator",
];

#[test]
fn the_shipped_request_file_runs_end_to_end_and_the_template_passes_only_what_it_implements() {
    let env = Env::new();
    let file = shipped_requests();
    let file = file.to_str().unwrap();
    let out = env.run(&[
        "generate",
        "--requests",
        file,
        "--format",
        "json",
        "--out",
        "nodes",
    ]);
    // Some generations fail (their examples do), so the command says so.
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("21 of 33 generations failed"), "{stderr}");
    let rows = outcomes(&out.stdout);
    assert_eq!(rows.len(), 33);
    let mut passed = BTreeSet::new();
    for r in &rows {
        let prompt = r["prompt"].as_str().unwrap().to_lowercase();
        let total = r["examples_total"].as_i64().unwrap();
        assert!(total > 0, "{r}");
        // The template's gates always pass: only the examples decide.
        assert_eq!(r["gates_passed"], true, "{r}");
        match r["status"].as_str().unwrap() {
            "completed" => {
                assert_eq!(r["examples_passed"].as_i64(), Some(total), "{r}");
                assert_eq!(r["passed"], true, "{r}");
                passed.insert(prompt);
            }
            "failed" => {
                assert_eq!(r["error_code"], "EXAMPLES_FAILED", "{r}");
                assert!(r["examples_passed"].as_i64().unwrap() < total, "{r}");
                let message = r["error_message"].as_str().unwrap();
                assert!(message.starts_with("G15 examples: "), "{message}");
            }
            other => panic!("status {other}: {r}"),
        }
    }
    let expected: BTreeSet<&str> = TEMPLATE_PASSES.iter().copied().collect();
    let got: BTreeSet<&str> = expected
        .iter()
        .copied()
        .filter(|p| passed.iter().any(|x| x.contains(p)))
        .collect();
    assert_eq!(got, expected, "passed: {passed:#?}");
    assert_eq!(passed.len(), TEMPLATE_PASSES.len(), "passed: {passed:#?}");

    // A passing node carries its examples and its declared models.
    let node = env.path("nodes/node_general_sum_calculator_compute");
    let examples: Value =
        serde_json::from_slice(&std::fs::read(node.join("tests/examples.json")).unwrap()).unwrap();
    assert_eq!(
        examples["sample_payload"],
        serde_json::json!({"a": 2, "b": 3})
    );
    let input = std::fs::read_to_string(node.join("v1_0_0/models/input.py")).unwrap();
    assert!(
        input.contains("class ModelSumCalculatorPayload(BaseModel):"),
        "{input}"
    );
    assert!(input.contains("    a: float = Field("), "{input}");
    assert!(
        input.contains("    payload: ModelSumCalculatorPayload = Field("),
        "{input}"
    );

    // Every example is a validation result; the reducers count the rates.
    env.ok(&["jobs", "run", "all", "--once"]);
    assert_eq!(
        env.sql_int("SELECT count(*) FROM validation_result WHERE gate_id = 'G15'"),
        69
    );
    let failed_examples = env.sql_int(
        "SELECT count(*) FROM validation_result WHERE gate_id = 'G15' AND status = 'fail'",
    );
    // Exactly the examples the end events say did not pass.
    let not_passed: i64 = rows
        .iter()
        .map(|r| r["examples_total"].as_i64().unwrap() - r["examples_passed"].as_i64().unwrap())
        .sum();
    assert!(not_passed >= 21, "{not_passed}");
    assert_eq!(failed_examples, not_passed);
    let summary = env.sql(
        "SELECT sum(with_examples) AS w, sum(functional_passing) AS f, sum(gate_passing) AS g \
         FROM generation_summary WHERE granularity = '1h'",
    );
    assert_eq!(summary[0]["w"], 33);
    assert_eq!(summary[0]["f"], 12);
    assert_eq!(summary[0]["g"], 33);
    let board = env.ok(&["models", "--format", "json"]);
    let board: Vec<Value> = serde_json::from_str(&board).unwrap();
    let template = board.iter().find(|r| r["model"] == "template").unwrap();
    assert_eq!(
        template["functional_pass_rate"].as_f64(),
        Some(0.364),
        "{template}"
    );
    assert_eq!(template["gate_pass_rate"].as_f64(), Some(1.0), "{template}");
}

#[test]
fn every_declared_type_becomes_a_field_the_node_validates() {
    let env = Env::new();
    let request = serde_json::json!({
        "prompt": "Create reading totals calculator Compute node", "node_type": "compute",
        "input": {"a": "int", "b": "float", "flag": "bool", "name": "str", "tags": "list[str]",
                  "attrs": "dict[str, int]", "note": "str | None", "blob": "any",
                  "nested": {"type": "list[dict[str, float]]", "description": "rows \"quoted\""}},
        "output": {"total": "float", "count": "int"},
        "examples": [{"input": {"a": 2, "b": 0.5, "flag": true, "name": "n", "tags": ["x"],
                                "attrs": {"k": 1}, "note": null, "blob": [1, "two"],
                                "nested": [{"v": 1.5}]},
                      "output": {"total": 2.5, "count": 2}}]
    });
    std::fs::write(env.path("one.jsonl"), format!("{request}\n")).unwrap();
    let out = env.run(&["generate", "--requests", "one.jsonl", "--out", "nodes"]);
    assert!(out.status.success(), "{}", describe(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("functional pass rate 100.0 % (1 of 1 with examples)"),
        "{stdout}"
    );
    let node = env.path("nodes/node_general_reading_totals_calculator_compute");
    let input = std::fs::read_to_string(node.join("v1_0_0/models/input.py")).unwrap();
    for line in [
        "    a: int = Field(",
        "    b: float = Field(",
        "    flag: bool = Field(",
        "    name: str = Field(",
        "    tags: list[str] = Field(",
        "    attrs: dict[str, int] = Field(",
        "    note: str | None = Field(\n        default=None,",
        "    blob: object = Field(",
        "    nested: list[dict[str, float]] = Field(",
        "description=\"rows \\\"quoted\\\"\"",
    ] {
        assert!(input.contains(line), "{line:?} not in\n{input}");
    }
    // The models refuse a value of the wrong type and accept the example's.
    let check = r#"
import json, sys
sys.path.insert(0, ".")
from v1_0_0 import ModelReadingTotalsCalculatorPayload as P, ModelReadingTotalsCalculatorResult as R
from pydantic import ValidationError
good = json.load(open("tests/examples.json"))["examples"][0]["input"]
P.model_validate(good)
bad = []
for field, value in [("a", "x"), ("tags", "x"), ("attrs", {"k": "v"}), ("flag", "maybe"), ("extra", 1)]:
    try:
        P.model_validate({**good, field: value})
    except ValidationError:
        bad.append(field)
try:
    R.model_validate({"total": 1.0})
except ValidationError:
    bad.append("result without count")
print(",".join(bad))
"#;
    let py = std::process::Command::new("python3")
        .args(["-c", check])
        .current_dir(&node)
        .output()
        .unwrap();
    assert!(py.status.success(), "{}", describe(&py));
    assert_eq!(
        String::from_utf8_lossy(&py.stdout).trim(),
        "a,tags,attrs,flag,extra,result without count"
    );
}

#[test]
fn a_bad_request_file_publishes_nothing_and_names_every_bad_line() {
    let env = Env::new();
    let good = r#"{"prompt": "Create sum calculator Compute node", "input": {"a": "int"}, "output": {"total": "float"}, "examples": [{"input": {"a": 1}, "output": {"total": 1}}]}"#;
    let lines = [
        good,
        r#"{"prompt": "Create x calculator", "input": {"data": "bytes"}}"#,
        r#"{"prompt": "Create y calculator", "input": {"a": "int"}, "examples": [{"input": {"a": "one"}, "output": {}}]}"#,
        r#"{"prompt": "Create z calculator", "exmples": []}"#,
        r#"{"prompt": "#,
        r#"{"prompt": "Create w node", "node_type": "gizmo"}"#,
    ];
    std::fs::write(env.path("bad.jsonl"), lines.join("\n")).unwrap();
    let out = env.run(&["generate", "--requests", "bad.jsonl"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for says in [
        "bad.jsonl: line 2: field 'data': unknown type 'bytes' (types: str, int, float",
        "line 3: example 1: 'a' = \"one\" is not a int",
        "line 4: unknown field `exmples`",
        "line 5: EOF while parsing",
        "line 6: node_type 'gizmo' is not one of effect, compute, reducer, orchestrator",
        "(nothing was published)",
    ] {
        assert!(stderr.contains(says), "{says:?} not in:\n{stderr}");
    }
    assert!(!stderr.contains("line 1:"), "{stderr}");
    // Nothing reached the log: not even the good line.
    let topics = env.ok(&["topics", "--format", "json"]);
    let topics: Vec<Value> = serde_json::from_str(&topics).unwrap();
    let requested = topics
        .iter()
        .find(|t| t["table"] == "generation_requested")
        .unwrap_or_else(|| panic!("{topics:?}"));
    assert_eq!(requested["end_offsets"], 0, "{requested}");

    // Invalid UTF-8 and an empty file get one line each, too.
    std::fs::write(env.path("latin1.jsonl"), b"{\"prompt\": \"caf\xe9\"}\n").unwrap();
    let out = env.run(&["generate", "--requests", "latin1.jsonl"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("line 1: not UTF-8"),
        "{}",
        describe(&out)
    );
    std::fs::write(env.path("empty.jsonl"), "\n\n").unwrap();
    let out = env.run(&["generate", "--requests", "empty.jsonl"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no requests in the file"),
        "{}",
        describe(&out)
    );
}

/// The checksum request of the shipped file: three examples the template cannot pass.
pub(crate) fn checksum_request() -> String {
    std::fs::read_to_string(shipped_requests())
        .unwrap()
        .lines()
        .find(|l| l.contains("checksum calculator"))
        .unwrap()
        .to_string()
}

const WRONG_CHECKSUM: &str = "```python\nimport hashlib\n\n\ndef run(operation: str, payload: dict[str, object]) -> dict[str, object]:\n    \"\"\"Digest the content.\"\"\"\n    data = str(payload[\"content\"]).encode(\"utf-8\")\n    return {\"sha256\": hashlib.md5(data).hexdigest(), \"size\": len(data)}\n```";

const RIGHT_CHECKSUM: &str = "```python\nimport hashlib\n\n\ndef run(operation: str, payload: dict[str, object]) -> dict[str, object]:\n    \"\"\"Digest the content.\"\"\"\n    data = str(payload[\"content\"]).encode(\"utf-8\")\n    return {\"sha256\": hashlib.sha256(data).hexdigest(), \"size\": len(data)}\n```";

#[test]
fn import_first_assembles_the_models_part_and_refines_only_that_part() {
    use super::codegen::{last_user_message, with_models_writing_logic};
    use super::model_server::{Reply, ScriptedServer};
    let server = ScriptedServer::start(|n, _| {
        Reply::Text(if n == 0 {
            WRONG_CHECKSUM.to_string()
        } else {
            // Right, but without its import and the stub's read of `content`: the pipeline
            // puts both back.
            RIGHT_CHECKSUM
                .replace("import hashlib\n\n\n", "")
                .replace("str(payload[\"content\"])", "content")
        })
    });
    let env = Env::new();
    std::fs::write(env.path("one.jsonl"), checksum_request() + "\n").unwrap();
    let mut cmd = env.cmd(&[
        "generate",
        "--requests",
        "one.jsonl",
        "--model",
        "coder",
        "--out",
        "nodes",
        "--format",
        "json",
    ]);
    with_models_writing_logic(&mut cmd, &server, &["coder"]);
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let row = &outcomes(&out.stdout)[0];
    assert_eq!(row["examples_passed"], 3, "{row}");

    let requests = server.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 2, "one generation, one refinement");
    // The model is asked for logic.py alone, with the signature the scaffold calls and the
    // request's examples; not for node.py.
    let first = last_user_message(&requests[0]);
    assert!(
        first.contains("You write v1_0_0/logic.py, the logic of an ONEX compute node"),
        "{first}"
    );
    assert!(
        first.contains("def run(operation: str, payload: dict[str, object]) -> dict[str, object]"),
        "{first}"
    );
    assert!(
        first.contains(
            "- run(\"checksum\", {\"content\": \"abc\"}) should return {\"sha256\": \"ba7816bf"
        ),
        "{first}"
    );
    // The stub reads the declared fields, so the model sees the names it must use.
    assert!(
        first.contains("    content: str = payload[\"content\"]\n"),
        "{first}"
    );
    assert!(
        !first.contains("class NodeFileChecksumCalculatorCompute"),
        "{first}"
    );
    // The refinement carries the failing examples' messages and asks for logic.py again.
    let second = last_user_message(&requests[1]);
    assert!(
        second.contains("G15 example 1: run(\"checksum\", {\"content\": \"abc\"}) should return {\"sha256\": \"ba7816bf") && second.contains("1 of 2 fields differ; sha256: expected \"ba7816bf"),
        "{second}"
    );
    assert!(
        second.contains("Answer with the corrected logic.py"),
        "{second}"
    );

    let node = env.path("nodes/node_storage_file_checksum_calculator_compute");
    let logic = std::fs::read_to_string(node.join("v1_0_0/logic.py")).unwrap();
    assert!(logic.contains("hashlib.sha256"), "{logic}");
    assert!(logic.starts_with("import hashlib\n"), "{logic}");
    assert!(
        logic.contains("    content: str = payload[\"content\"]\n    data = content.encode("),
        "{logic}"
    );
    let node_py = std::fs::read_to_string(node.join("v1_0_0/node.py")).unwrap();
    assert!(
        node_py.contains("from .logic import run as _run_logic"),
        "{node_py}"
    );
    env.ok(&["jobs", "run", "all", "--once"]);
    let gates = env.sql(
        "SELECT gate_id, status, stage_name FROM validation_result WHERE gate_id IN ('G15', 'G16') \
         ORDER BY emitted_at, gate_id, gate_name",
    );
    let seen: Vec<String> = gates
        .iter()
        .map(|g| {
            format!(
                "{} {} {}",
                g["stage_name"].as_str().unwrap(),
                g["gate_id"].as_str().unwrap(),
                g["status"].as_str().unwrap()
            )
        })
        .collect();
    // Round 1: the part fits (G16) but every example fails (MD5 is not SHA-256); round 2
    // (refinement): all pass.
    assert_eq!(
        seen.iter()
            .filter(|s| s.as_str() == "post_validation G15 fail")
            .count(),
        3,
        "{seen:#?}"
    );
    assert!(
        seen.iter()
            .filter(|s| s.starts_with("refinement G15 pass"))
            .count()
            == 3,
        "{seen:#?}"
    );
    assert!(seen.iter().all(|s| !s.contains("G16 fail")), "{seen:#?}");
}

#[test]
fn a_resampled_try_asks_for_the_request_again_in_a_fresh_conversation() {
    use super::codegen::with_models_writing_logic;
    use super::model_server::{Reply, ScriptedServer};
    let server = ScriptedServer::start(|n, _| {
        Reply::Text(
            if n == 0 {
                WRONG_CHECKSUM
            } else {
                RIGHT_CHECKSUM
            }
            .to_string(),
        )
    });
    let env = Env::new();
    std::fs::write(env.path("one.jsonl"), checksum_request() + "\n").unwrap();
    let mut cmd = env.cmd(&[
        "generate",
        "--requests",
        "one.jsonl",
        "--model",
        "coder",
        "--format",
        "json",
    ]);
    with_models_writing_logic(&mut cmd, &server, &["coder"]);
    cmd.env("OMNISTREAM_CODEGEN__REFINEMENT", "resample");
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(outcomes(&out.stdout)[0]["examples_passed"], 3);
    let requests = server.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 2, "one generation, one resample");
    // The same request, without the failed answer or any feedback, sampled hotter.
    assert_eq!(requests[1]["messages"], requests[0]["messages"]);
    let temperature = |i: usize| requests[i]["temperature"].as_f64().unwrap();
    assert!((temperature(0) - 0.2).abs() < 1e-6, "{}", temperature(0));
    assert!((temperature(1) - 0.8).abs() < 1e-6, "{}", temperature(1));
}

#[test]
fn a_part_that_does_not_fit_the_scaffold_fails_with_its_position_never_a_crash() {
    use super::codegen::{last_user_message, with_models_writing_logic};
    use super::model_server::{Reply, ScriptedServer};
    let answers = [
        "```python\ndef run(operation, payload:\n    return {}\n```",
        "```python\nclass NodeFileChecksumCalculatorCompute:\n    pass\n\n\ndef run(operation, payload):\n    return {}\n```",
        "```python\nimport numpy_is_not_here\n\n\ndef run(operation, payload):\n    return {}\n```",
    ];
    let server = ScriptedServer::start(move |n, _| Reply::Text(answers[n.min(2)].to_string()));
    let env = Env::new();
    std::fs::write(env.path("one.jsonl"), checksum_request() + "\n").unwrap();
    let mut cmd = env.cmd(&[
        "generate",
        "--requests",
        "one.jsonl",
        "--model",
        "coder",
        "--format",
        "json",
    ]);
    with_models_writing_logic(&mut cmd, &server, &["coder"]);
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let row = &outcomes(&out.stdout)[0];
    assert_eq!(row["error_code"], "VALIDATION_FAILED", "{row}");
    let message = row["error_message"].as_str().unwrap();
    assert!(
        message.contains("G16 assembly: v1_0_0/logic.py:1:1: imports 'numpy_is_not_here', which is not installed here"),
        "{message}"
    );
    let requests = server.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 3, "a generation and two refinements");
    let first_fix = last_user_message(&requests[1]);
    assert!(
        first_fix.contains("G16 assembly: v1_0_0/logic.py:1:")
            && first_fix.contains("syntax error"),
        "{first_fix}"
    );
    let second_fix = last_user_message(&requests[2]);
    assert!(
        second_fix
            .contains("v1_0_0/logic.py:1:1: redefines class NodeFileChecksumCalculatorCompute"),
        "{second_fix}"
    );
}

#[test]
fn a_part_that_returns_nothing_makes_outputs_that_say_so_not_exceptions() {
    use super::codegen::with_models_writing_logic;
    use super::model_server::{Reply, ScriptedServer};
    let part = "```python\ndef run(operation: str, payload: dict[str, object]) -> dict[str, object]:\n    \"\"\"Nothing yet.\"\"\"\n    pass\n```";
    let server = ScriptedServer::start(move |_, _| Reply::Text(part.to_string()));
    let env = Env::new();
    let mut cmd = env.cmd(&[
        "generate",
        "Create a text tokenizer Compute node",
        "--model",
        "coder",
        "--out",
        "nodes",
    ]);
    with_models_writing_logic(&mut cmd, &server, &["coder"]);
    let out = cmd.output().unwrap();
    // Without examples the gates judge alone, and the scaffold's contract holds: failures are
    // outputs (G14's conformance tests pass).
    assert!(out.status.success(), "{}", describe(&out));
    let check = r#"
import asyncio, sys
sys.path.insert(0, ".")
from v1_0_0 import NodeTextTokenizerCompute as N, ModelTextTokenizerInput as I
out = asyncio.run(N().execute_compute(I(operation="tokenize", payload={"text": "a b"})))
print(out.success, out.error)
"#;
    let py = std::process::Command::new("python3")
        .args(["-c", check])
        .current_dir(env.path("nodes/node_nlp_text_tokenizer_compute"))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&py.stdout).trim(),
        "False TypeError: logic.run returned NoneType, not a dict",
        "{}",
        describe(&py)
    );
}
