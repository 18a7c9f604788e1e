//! The Python interpreter as the gates' oracle: a long-lived `python3` worker compiles generated
//! files (G13, `py_compile` semantics without writing .pyc) and says which modules it cannot import
//! (G4, G11), so a generation costs no interpreter start-up; pytest runs the generated tests (G14).

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use crate::sandbox::{Limits, Sandbox};

use serde::Deserialize;
use serde_json::json;

const WORKER: &str = r#"
import importlib.util, json, sys
for line in sys.stdin:
    req = json.loads(line)
    if req["op"] == "compile":
        errors = []
        for path in req["paths"]:
            try:
                with open(path, "rb") as f:
                    compile(f.read(), path, "exec", dont_inherit=True)
            except SyntaxError as e:
                errors.append({"path": path, "line": e.lineno or 0, "message": e.msg})
            except (OSError, ValueError) as e:
                errors.append({"path": path, "line": 0, "message": str(e)})
        print(json.dumps({"errors": errors}), flush=True)
    elif req["op"] == "missing":
        missing = []
        for name in req["modules"]:
            try:
                if importlib.util.find_spec(name) is None:
                    missing.append(name)
            except (ImportError, ValueError):
                missing.append(name)
        print(json.dumps({"missing": missing}), flush=True)
"#;

/// The worker could not answer.
#[derive(Debug, thiserror::Error)]
pub enum PythonError {
    #[error("cannot start {python}")]
    Start {
        python: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{python} stopped answering")]
    Stopped { python: String },
    #[error("unexpected answer from the Python worker")]
    Answer(#[source] serde_json::Error),
}

#[derive(Debug, Clone, Deserialize)]
pub struct CompileError {
    pub path: String,
    pub line: i64,
    pub message: String,
}

#[derive(Deserialize)]
struct CompileReply {
    errors: Vec<CompileError>,
}

#[derive(Deserialize)]
struct MissingReply {
    missing: Vec<String>,
}

/// One worker process; restarted when it dies.
pub struct PythonWorker {
    python: String,
    process: Option<(Child, ChildStdin, BufReader<ChildStdout>)>,
    /// Whether a module is importable: the interpreter's packages do not change under a job.
    importable: std::collections::HashMap<String, bool>,
}

impl PythonWorker {
    pub fn new(python: &str) -> Self {
        PythonWorker {
            python: python.to_string(),
            process: None,
            importable: std::collections::HashMap::new(),
        }
    }

    fn ask(&mut self, request: serde_json::Value) -> Result<String, PythonError> {
        for _ in 0..2 {
            if self.process.is_none() {
                let mut child = Command::new(&self.python)
                    .args(["-I", "-u", "-c", WORKER])
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::null())
                    .spawn()
                    .map_err(|source| PythonError::Start {
                        python: self.python.clone(),
                        source,
                    })?;
                let stdin = child.stdin.take().expect("piped");
                let stdout = BufReader::new(child.stdout.take().expect("piped"));
                self.process = Some((child, stdin, stdout));
            }
            let (_, stdin, stdout) = self.process.as_mut().expect("started above");
            let mut line = String::new();
            let ok = writeln!(stdin, "{request}").is_ok()
                && stdin.flush().is_ok()
                && stdout.read_line(&mut line).is_ok_and(|n| n > 0);
            if ok {
                return Ok(line);
            }
            // The worker died (killed, out of memory): start a fresh one and ask once more.
            if let Some((mut child, _, _)) = self.process.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        Err(PythonError::Stopped {
            python: self.python.clone(),
        })
    }

    /// Compile every file (no .pyc written): the syntax errors Python itself reports.
    pub fn compile(&mut self, paths: &[&Path]) -> Result<Vec<CompileError>, PythonError> {
        let paths: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        let reply = self.ask(json!({"op": "compile", "paths": paths}))?;
        serde_json::from_str::<CompileReply>(&reply)
            .map(|r| r.errors)
            .map_err(PythonError::Answer)
    }

    /// The modules of `names` this interpreter cannot import.
    pub fn missing_modules(&mut self, names: &[String]) -> Result<Vec<String>, PythonError> {
        let unknown: Vec<&String> = names
            .iter()
            .filter(|n| !self.importable.contains_key(*n))
            .collect();
        if !unknown.is_empty() {
            let reply = self.ask(json!({"op": "missing", "modules": unknown}))?;
            let missing = serde_json::from_str::<MissingReply>(&reply)
                .map(|r| r.missing)
                .map_err(PythonError::Answer)?;
            for n in unknown {
                self.importable.insert(n.clone(), !missing.contains(n));
            }
        }
        Ok(names
            .iter()
            .filter(|n| self.importable.get(*n) == Some(&false))
            .cloned()
            .collect())
    }
}

impl Drop for PythonWorker {
    fn drop(&mut self) {
        if let Some((mut child, stdin, _)) = self.process.take() {
            drop(stdin); // EOF ends the worker's loop
            let deadline = Instant::now() + Duration::from_millis(200);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The outcome of the generated tests.
#[derive(Debug, Clone)]
pub struct TestRun {
    pub passed: bool,
    /// The summary line pytest printed (or why it could not run).
    pub summary: String,
    pub output_tail: String,
}

/// Run `pytest` on the node's tests, contained (see [`crate::sandbox`]), in the node directory,
/// without leaving caches behind.
pub fn run_pytest(sandbox: &Sandbox, node_dir: &Path, limits: &Limits) -> TestRun {
    let args = ["-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"];
    let run = match sandbox.run_python(&args, node_dir, limits) {
        Ok(run) => run,
        Err(e) => {
            return TestRun {
                passed: false,
                summary: format!("cannot run pytest: {}", crate::error::error_chain(&e)),
                output_tail: String::new(),
            };
        }
    };
    let tail: Vec<&str> = run.output.lines().rev().take(25).collect();
    let output_tail = tail.into_iter().rev().collect::<Vec<_>>().join("\n");
    if let Some(why) = run.stopped_because(limits) {
        return TestRun {
            passed: false,
            summary: format!("the tests {why} and were stopped"),
            output_tail,
        };
    }
    let summary = run
        .output
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
        .to_string();
    TestRun {
        passed: run.succeeded(),
        summary: if summary.contains("No module named pytest") {
            "pytest is not installed (scripts/setup.sh installs it)".into()
        } else {
            summary
        },
        output_tail,
    }
}
