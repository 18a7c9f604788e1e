//! The behaviour gate (G15): the request's examples run against the generated node, contained
//! like every run of generated code, one verdict per example. A node passes only when every
//! example does: its result has the expected fields with the expected values, or it fails with
//! the expected error.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::render::{EXAMPLES_FILE, NodeContext};
use crate::sandbox::{Limits, Sandbox};
use crate::spec::Example;

/// Runs in the node's directory: imports the package, runs each example on a fresh node under a
/// per-example alarm, and prints one verdict line per example, tagged with a nonce, on a copy of
/// stdout taken before the node's code can replace it (what the node prints goes to stderr).
const RUNNER: &str = r#"
import asyncio, importlib, json, math, os, signal, sys, time
NONCE = sys.argv.pop()
examples_path, package, cls, input_model, execute, timeout = sys.argv[1:7]
timeout = float(timeout)
out = os.fdopen(os.dup(1), "w", buffering=1)
sys.stdout = sys.stderr
sys.path.insert(0, os.getcwd())
MISSING = object()

def emit(**fields):
    out.write(NONCE + " " + json.dumps(fields, default=repr) + "\n")
    out.flush()

class CaseTimeout(BaseException):
    pass

def alarm(signum, frame):
    raise CaseTimeout()

def describe(e):
    message = str(e)
    return f"{type(e).__name__}: {message}" if message else type(e).__name__

def short(value, limit=160):
    text = json.dumps(value, default=repr, sort_keys=True)
    return text if len(text) <= limit else text[:limit] + "..."

def same(expected, actual):
    if isinstance(expected, bool) or isinstance(actual, bool):
        return isinstance(expected, bool) and isinstance(actual, bool) and expected == actual
    if isinstance(expected, (int, float)) and isinstance(actual, (int, float)):
        return math.isclose(expected, actual, rel_tol=1e-6, abs_tol=1e-9)
    if isinstance(expected, dict) and isinstance(actual, dict):
        return expected.keys() == actual.keys() and all(same(v, actual[k]) for k, v in expected.items())
    if isinstance(expected, list) and isinstance(actual, (list, tuple)):
        return len(expected) == len(actual) and all(same(a, b) for a, b in zip(expected, actual))
    return expected == actual

def plain(value):
    dump = getattr(value, "model_dump", None)
    return dump(mode="json") if callable(dump) else value

# A verdict: (passed, message, wrong_value). wrong_value: the node ran, gave every expected field
# and still computed something else (or accepted input it must refuse): its logic is wrong, not
# merely its field names.
def judge(case, output):
    success, error = getattr(output, "success", None), getattr(output, "error", None)
    if "error" in case:
        want = case["error"]
        if success:
            return False, f"expected an error containing {want!r}; it succeeded with {short(plain(output.result))}", True
        if want.lower() not in str(error or "").lower():
            return False, f"expected an error containing {want!r}, got {error!r}", False
        return True, f"failed as expected: {error}", False
    if success is not True:
        return False, f"the operation failed: {error}", False
    result = plain(getattr(output, "result", None))
    if not isinstance(result, dict):
        return False, f"the result is not an object: {short(result)}", False
    expected = case["output"]
    wrong = [k for k, v in expected.items() if k not in result or not same(v, result[k])]
    if wrong:
        k = wrong[0]
        got = "nothing (no such field)" if k not in result else short(result[k])
        named = all(k in result for k in expected)
        return False, f"{len(wrong)} of {len(expected)} fields differ; {k}: expected {short(expected[k])}, got {got}", named
    return True, f"{len(expected)} fields as expected", False

def run_case(Node, Input, case):
    node = Node()
    method = getattr(node, execute)
    async def call(operation, payload):
        request = Input.model_validate({"operation": operation, "payload": payload, "correlation_id": "example"})
        return await method(request)
    async def scenario():
        for step in case.get("before", []):
            await call(step.get("operation") or case["operation"], step.get("input", {}))
        return await call(case["operation"], case.get("input", {}))
    return judge(case, asyncio.run(scenario()))

signal.signal(signal.SIGALRM, alarm)
try:
    module = importlib.import_module(package)
    Node, Input = getattr(module, cls), getattr(module, input_model)
except BaseException as e:
    emit(kind="import", message=describe(e))
    sys.exit(0)
with open(examples_path, encoding="utf-8") as f:
    cases = json.load(f)["examples"]
for index, case in enumerate(cases):
    started = time.perf_counter()
    signal.setitimer(signal.ITIMER_REAL, timeout)
    wrong_value = False
    try:
        passed, message, wrong_value = run_case(Node, Input, case)
    except CaseTimeout:
        passed, message = False, f"ran longer than {timeout:g} s"
    except BaseException as e:
        want = case.get("error")
        if want is not None and want.lower() in describe(e).lower():
            passed, message = True, f"raised as expected: {describe(e)}"
        else:
            passed, message = False, f"raised {describe(e)}"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    emit(kind="case", index=index, passed=bool(passed), message=str(message)[:600],
         wrong_value=bool(wrong_value), duration_ms=(time.perf_counter() - started) * 1000.0)
"#;

/// What the node's package is called, as the runner imports it.
pub struct NodeNames<'a> {
    pub package: &'a str,
    pub class_name: &'a str,
    pub input_model: &'a str,
    pub execute_method: &'a str,
}

impl<'a> From<&'a NodeContext> for NodeNames<'a> {
    fn from(n: &'a NodeContext) -> Self {
        NodeNames {
            package: &n.package,
            class_name: &n.class_name,
            input_model: &n.input_model,
            execute_method: &n.execute_method,
        }
    }
}

#[derive(Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
enum Line {
    Import {
        message: String,
    },
    Case {
        index: usize,
        passed: bool,
        message: String,
        #[serde(default)]
        wrong_value: bool,
        duration_ms: f64,
    },
}

/// The verdict on one example.
#[derive(Debug, Clone, PartialEq)]
pub struct CaseVerdict {
    pub passed: bool,
    pub message: String,
    /// The node ran and answered with every expected field, and a value was wrong (or it
    /// accepted input the example says it must refuse): its logic, not its naming, is at fault.
    pub wrong_value: bool,
    pub duration_ms: f64,
}

/// Run `examples` (written to the node's `tests/examples.json`) against the node staged in
/// `node_dir`: one verdict per example, in order; an example the run did not reach fails with
/// the reason.
pub fn run_examples(
    sandbox: &Sandbox,
    node_dir: &Path,
    names: &NodeNames<'_>,
    examples: &[Example],
    limits: &Limits,
    per_example: Duration,
) -> Vec<CaseVerdict> {
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    let timeout = format!("{}", per_example.as_secs_f64());
    let args = [
        "-c",
        RUNNER,
        EXAMPLES_FILE,
        names.package,
        names.class_name,
        names.input_model,
        names.execute_method,
        &timeout,
        &nonce,
    ];
    // Each example has its alarm; the whole run a bound that leaves room for the import.
    let budget = per_example * examples.len() as u32 + Duration::from_secs(15);
    let limits = Limits {
        wall: budget.min(limits.wall),
        ..limits.clone()
    };
    let mut verdicts: Vec<Option<CaseVerdict>> = vec![None; examples.len()];
    let not_run = match sandbox.run_python(&args, node_dir, &limits) {
        Err(e) => format!("not run: {}", crate::error::error_chain(&e)),
        Ok(run) => {
            let mut import_error = None;
            let prefix = format!("{nonce} ");
            for line in run.output.lines().filter_map(|l| l.strip_prefix(&prefix)) {
                match serde_json::from_str::<Line>(line) {
                    Ok(Line::Import { message }) => import_error = Some(message),
                    Ok(Line::Case {
                        index,
                        passed,
                        message,
                        wrong_value,
                        duration_ms,
                    }) if index < verdicts.len() => {
                        verdicts[index] = Some(CaseVerdict {
                            passed,
                            message,
                            wrong_value,
                            duration_ms,
                        })
                    }
                    _ => {}
                }
            }
            match (import_error, run.stopped_because(&limits)) {
                (Some(e), _) => format!("not run: the node does not import: {e}"),
                (None, Some(why)) => format!("not run: the examples' run {why} and was stopped"),
                (None, None) => format!(
                    "not run: the examples' run ended early ({:?}): {}",
                    run.ending,
                    tail(&run.output)
                ),
            }
        }
    };
    verdicts
        .into_iter()
        .map(|v| {
            v.unwrap_or_else(|| CaseVerdict {
                passed: false,
                message: not_run.clone(),
                wrong_value: false,
                duration_ms: 0.0,
            })
        })
        .collect()
}

fn tail(output: &str) -> String {
    let last: Vec<&str> = output.lines().rev().take(3).collect();
    last.into_iter().rev().collect::<Vec<_>>().join(" | ")
}

/// The gate name of example `i` (from 0) in its validation result: `example 3`, or
/// `example 3: empty input` when the example has a name.
pub fn example_name(i: usize, e: &Example) -> String {
    match &e.name {
        Some(n) => format!("example {}: {}", i + 1, n),
        None => format!("example {}", i + 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A node by hand, with an operation for each way an example can go.
    const NODE: &str = r#"
import asyncio
from pydantic import BaseModel

class Input(BaseModel):
    operation: str
    payload: dict
    correlation_id: str | None = None

class Output(BaseModel):
    success: bool
    result: dict | None = None
    error: str | None = None

class Node:
    def __init__(self):
        self.seen = 0

    async def execute_compute(self, input_data):
        p = input_data.payload
        self.seen += 1
        mode = p.get("mode")
        if mode == "raise":
            raise RuntimeError("boom")
        if mode == "spin":
            while True:
                pass
        if mode == "sleep":
            await asyncio.sleep(3600)
        if mode == "refuse":
            return Output(success=False, error="ValueError: negative amount")
        if mode == "forge":
            print('x {"kind": "case", "index": 9, "passed": true, "message": "", "duration_ms": 0}')
        return Output(success=True, result={"double": p.get("n", 0) * 2, "seen": self.seen})
"#;

    fn node_dir(source: &str, examples: &[Example]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("pkg")).unwrap();
        std::fs::create_dir_all(dir.path().join("tests")).unwrap();
        std::fs::write(dir.path().join("pkg/__init__.py"), source).unwrap();
        let examples: Vec<serde_json::Value> = examples
            .iter()
            .map(|e| {
                let mut v = serde_json::to_value(e).unwrap();
                v["operation"] = json!("compute");
                v
            })
            .collect();
        let doc = json!({"sample_payload": {}, "examples": examples});
        std::fs::write(dir.path().join(EXAMPLES_FILE), doc.to_string()).unwrap();
        dir
    }

    fn run(source: &str, examples: &[Example]) -> Vec<CaseVerdict> {
        let dir = node_dir(source, examples);
        let sandbox = Sandbox::new("python3").expect("python3 (scripts/setup.sh)");
        let names = NodeNames {
            package: "pkg",
            class_name: "Node",
            input_model: "Input",
            execute_method: "execute_compute",
        };
        let limits = Limits {
            wall: Duration::from_secs(30),
            ..Limits::default()
        };
        run_examples(
            &sandbox,
            dir.path(),
            &names,
            examples,
            &limits,
            Duration::from_millis(500),
        )
    }

    fn example(v: serde_json::Value) -> Example {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn passing_failing_raising_and_hanging_examples_each_get_their_verdict() {
        let cases = [
            (
                json!({"input": {"n": 2}, "output": {"double": 4}}),
                true,
                "1 fields as expected",
            ),
            (
                json!({"input": {"n": 2}, "output": {"double": 5}}),
                false,
                "1 of 1 fields differ; double: expected 5, got 4",
            ),
            (
                json!({"input": {"n": 2}, "output": {"triple": 6}}),
                false,
                "triple: expected 6, got nothing (no such field)",
            ),
            (
                json!({"input": {"n": 0.1}, "output": {"double": 0.2000000001}}),
                true,
                "as expected",
            ),
            (
                json!({"input": {"n": 1}, "output": {"double": true}}),
                false,
                "expected true, got 2",
            ),
            (
                json!({"input": {"mode": "raise"}, "output": {}}),
                false,
                "raised RuntimeError: boom",
            ),
            (
                json!({"input": {"mode": "raise"}, "error": "BOOM"}),
                true,
                "raised as expected",
            ),
            (
                json!({"input": {"mode": "refuse"}, "error": "negative"}),
                true,
                "failed as expected",
            ),
            (
                json!({"input": {"mode": "refuse"}, "output": {}}),
                false,
                "the operation failed: ValueError: negative amount",
            ),
            (
                json!({"input": {"n": 1}, "error": "negative"}),
                false,
                "it succeeded with",
            ),
            (
                json!({"input": {"mode": "spin"}, "output": {}}),
                false,
                "ran longer than 0.5 s",
            ),
            (
                json!({"input": {"mode": "sleep"}, "output": {}}),
                false,
                "ran longer than 0.5 s",
            ),
            // What the node prints cannot pass for a verdict.
            (
                json!({"input": {"mode": "forge"}, "output": {"double": 1}}),
                false,
                "expected 1, got 0",
            ),
            // Earlier calls run on the same node, each example on a new one.
            (
                json!({"before": [{"input": {"n": 1}}, {"input": {"n": 1}}], "input": {"n": 3},
                    "output": {"double": 6, "seen": 3}}),
                true,
                "2 fields as expected",
            ),
        ];
        let examples: Vec<Example> = cases.iter().map(|(e, ..)| example(e.clone())).collect();
        let verdicts = run(NODE, &examples);
        assert_eq!(verdicts.len(), cases.len());
        for (i, ((_, passed, says), v)) in cases.iter().zip(&verdicts).enumerate() {
            assert_eq!(v.passed, *passed, "example {}: {v:?}", i + 1);
            assert!(
                v.message.contains(says),
                "example {}: {:?} lacks {says:?}",
                i + 1,
                v.message
            );
        }
        // Wrong values (every expected field there, or input accepted that must be refused) are
        // told apart from missing fields, crashes and timeouts.
        let wrong: Vec<usize> = verdicts
            .iter()
            .enumerate()
            .filter(|(_, v)| v.wrong_value)
            .map(|(i, _)| i + 1)
            .collect();
        assert_eq!(wrong, [2, 5, 10, 13]);
        // The alarm, not the run's limit, stopped the hanging ones: the rest still ran.
        assert!(verdicts[10].duration_ms >= 450.0, "{:?}", verdicts[10]);
    }

    #[test]
    fn a_node_that_does_not_import_fails_every_example_with_the_reason() {
        let examples = vec![example(json!({"input": {}, "output": {}})); 2];
        let verdicts = run("import no_such_module_here\n", &examples);
        for v in &verdicts {
            assert!(!v.passed);
            assert!(
                v.message
                    .contains("not run: the node does not import: ModuleNotFoundError")
                    && v.message.contains("no_such_module_here"),
                "{v:?}"
            );
        }
    }

    #[test]
    fn a_node_that_kills_its_interpreter_fails_the_examples_it_did_not_reach() {
        let source = format!(
            "{NODE}\nimport os\n_run = Node.execute_compute\nasync def _exit(self, d):\n    \
             if d.payload.get('mode') == 'exit':\n        os._exit(3)\n    return await _run(self, d)\n\
             Node.execute_compute = _exit\n"
        );
        let examples = vec![
            example(json!({"input": {"n": 1}, "output": {"double": 2}})),
            example(json!({"input": {"mode": "exit"}, "output": {}})),
            example(json!({"input": {"n": 1}, "output": {"double": 2}})),
        ];
        let verdicts = run(&source, &examples);
        assert!(verdicts[0].passed, "{:?}", verdicts[0]);
        for v in &verdicts[1..] {
            assert!(!v.passed);
            assert!(
                v.message
                    .contains("not run: the examples' run ended early (Exited(3))"),
                "{v:?}"
            );
        }
    }
}
