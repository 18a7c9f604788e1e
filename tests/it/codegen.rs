//! The codegen job through the real binary: `omnistream generate`, the pipeline's events in the
//! lake and the reducers, a generated node running and appearing in the registry, and every model
//! failure ending as a recorded generation-failed, never a crash.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::model_server::{Reply, ScriptedServer, judgement};
use super::{Env, describe, terminate};

/// Configure models served by `server` (provider `scripted`), fast retries. A model `judge-a` on
/// the wire is `judge_a` in the config (environment variable names have no dashes). These tests
/// script whole node.py answers: the `rewrite` strategy (import-first has its own tests).
pub(crate) fn with_models(cmd: &mut Command, server: &ScriptedServer, models: &[&str]) {
    cmd.env("OMNISTREAM_CODEGEN__STRATEGY", "rewrite");
    with_models_writing_logic(cmd, server, models);
}

/// Configure models served by `server`, which answer as import-first asks (logic.py).
pub(crate) fn with_models_writing_logic(
    cmd: &mut Command,
    server: &ScriptedServer,
    models: &[&str],
) {
    cmd.env("OMNISTREAM_PROVIDERS__SCRIPTED__FORMAT", "openai")
        .env("OMNISTREAM_PROVIDERS__SCRIPTED__BASE_URL", &server.url)
        .env("OMNISTREAM_PROVIDERS__SCRIPTED__MAX_RETRIES", "2")
        .env("OMNISTREAM_PROVIDERS__SCRIPTED__BACKOFF_INITIAL_MS", "1")
        .env("OMNISTREAM_PROVIDERS__SCRIPTED__BACKOFF_MAX_MS", "5")
        .env("OMNISTREAM_PROVIDERS__SCRIPTED__TIMEOUT_SECS", "0.5");
    for m in models {
        let key = m.to_uppercase().replace('-', "_");
        cmd.env(format!("OMNISTREAM_MODELS__{key}__PROVIDER"), "scripted")
            .env(format!("OMNISTREAM_MODELS__{key}__MODEL"), m)
            .env(format!("OMNISTREAM_MODELS__{key}__INPUT_PER_MTOK"), "1.0")
            .env(format!("OMNISTREAM_MODELS__{key}__OUTPUT_PER_MTOK"), "2.0");
    }
}

fn generate_json(cmd: &mut Command) -> (bool, Value, String) {
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let value: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("no JSON result ({e}):\n{}", describe(&out)));
    (
        out.status.success(),
        value,
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn generate_writes_a_validated_node_and_its_events_reach_the_analytics() {
    let env = Env::new();
    let out = env.run(&[
        "generate",
        "Create PostgreSQL writer Effect node",
        "--out",
        "nodes",
    ]);
    assert!(out.status.success(), "{}", describe(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    for stage in [
        "prompt_parsing",
        "intelligence_gathering",
        "contract_building",
        "pre_validation",
        "code_generation",
        "event_bus_integration",
        "post_validation",
        "file_writing",
        "compilation_test",
    ] {
        assert!(stdout.contains(stage), "stage {stage} not shown:\n{stdout}");
    }
    assert!(stdout.contains("quality    1.000 A+ (passed)"), "{stdout}");
    let node = env.path("nodes/node_database_postgresql_writer_effect");
    for f in [
        "start_node.py",
        "v1_0_0/node.py",
        "v1_0_0/contract.yaml",
        "v1_0_0/event_bus.py",
        "v1_0_0/models/input.py",
        "tests/test_node.py",
    ] {
        assert!(node.join(f).exists(), "{f} missing");
    }
    let node_py = std::fs::read_to_string(node.join("v1_0_0/node.py")).unwrap();
    assert!(
        node_py.contains("class NodePostgresqlWriterEffect(EventBusMixin):"),
        "event bus not integrated:\n{node_py}"
    );
    assert!(!env.path("nodes/.omnistream-failed").exists());

    env.ok(&["jobs", "run", "all", "--once"]);
    let done = env.sql("SELECT * FROM generation_completed");
    assert_eq!(done.len(), 1);
    let d = &done[0];
    assert_eq!(d["passed"], true);
    assert_eq!(d["node_type"], "effect");
    assert_eq!(d["service_name"], "postgresql_writer");
    assert_eq!(d["primary_model"], "template");
    assert_eq!(d["quality_score"].as_f64(), Some(1.0));
    let correlation = d["correlation_id"].as_str().unwrap().to_string();
    let stages = env.sql_int(&format!(
        "SELECT count(*) FROM stage_completed WHERE correlation_id = '{correlation}' AND success"
    ));
    assert_eq!(stages, 9);
    let gates: Vec<String> = env
        .sql(&format!(
            "SELECT gate_id FROM validation_result WHERE correlation_id = '{correlation}' AND status = 'pass' ORDER BY gate_id"
        ))
        .iter()
        .map(|r| r["gate_id"].as_str().unwrap().to_string())
        .collect();
    for g in [
        "G1", "G5", "G6", "G7", "G9", "G10", "G11", "G12", "G13", "G14",
    ] {
        assert!(gates.iter().any(|x| x == g), "{g} not passed: {gates:?}");
    }
    assert_eq!(
        env.sql_int("SELECT count(*) FROM generation_started"),
        1,
        "one start"
    );
    // The reducers saw the generation.
    assert_eq!(
        env.sql_int("SELECT sum(generations) FROM generation_summary WHERE granularity = '1h'"),
        1
    );
    assert_eq!(
        env.sql_int("SELECT count(*) FROM model_call WHERE model = 'template' AND success"),
        1
    );
}

#[test]
fn a_generated_node_runs_and_appears_in_the_registry() {
    let env = Env::new();
    env.ok(&[
        "generate",
        "payment workflow orchestrator",
        "--out",
        "nodes",
    ]);
    let node = env.path("nodes/node_billing_payment_workflow_orchestrator");
    let spool = env.path("spool");
    let out = Command::new("python3")
        .arg("start_node.py")
        .args(["--heartbeats", "3", "--interval", "0.05", "--spool"])
        .arg(&spool)
        .current_dir(&node)
        .output()
        .unwrap();
    assert!(out.status.success(), "start_node.py: {}", describe(&out));
    for topic in ["node-introspection", "node-heartbeat"] {
        let file = spool.join(format!("{topic}.jsonl"));
        env.ok(&["ingest", topic, file.to_str().unwrap()]);
    }
    env.ok(&["jobs", "run", "all", "--once"]);
    let nodes = env.sql("SELECT * FROM node_registry");
    assert_eq!(nodes.len(), 1, "{nodes:?}");
    let n = &nodes[0];
    assert_eq!(n["node_name"], "NodePaymentWorkflowOrchestrator");
    assert_eq!(n["node_type"], "orchestrator");
    assert_eq!(n["heartbeats"].as_i64(), Some(3));
    assert_eq!(n["contract_drift"], false);
    // The hash the node announces is the one of the contract the codegen job wrote.
    let contract = std::fs::read(node.join("v1_0_0/contract.yaml")).unwrap();
    let hash: String = Sha256::digest(&contract)
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(n["contract_hash"].as_str(), Some(hash.as_str()));
    let nodes_cli = env.ok(&["nodes"]);
    assert!(
        nodes_cli.contains("NodePaymentWorkflowOrchestrator"),
        "{nodes_cli}"
    );
}

#[test]
fn bad_requests_fail_at_their_stage_with_a_reason_and_an_end_event() {
    let env = Env::new();
    let out = env.run(&["generate", "Create a new Effect node"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("generation failed at prompt_parsing (PARSE_FAILED): no service name"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");

    let out = env.run(&["generate", "price calculator", "--model", "gpt-9"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("unknown model 'gpt-9' (models: template"),
        "{}",
        describe(&out)
    );

    let out = env.run(&["generate", "price calculator", "--out", "../escape"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("must not contain '..'"),
        "{}",
        describe(&out)
    );

    // A request published without waiting is generated by the next run of the job.
    let id = env
        .ok(&["generate", "metrics aggregator", "--no-wait"])
        .trim()
        .to_string();
    env.ok(&["jobs", "run", "all", "--once"]);
    let failed: Vec<(String, String)> = env
        .sql("SELECT failed_stage, error_code FROM generation_failed ORDER BY failed_stage")
        .iter()
        .map(|r| {
            (
                r["failed_stage"].as_str().unwrap().to_string(),
                r["error_code"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        failed,
        vec![
            (
                "pre_validation".to_string(),
                "PRE_VALIDATION_FAILED".to_string()
            ),
            ("prompt_parsing".to_string(), "PARSE_FAILED".to_string())
        ]
    );
    assert_eq!(
        env.sql_int(&format!(
            "SELECT count(*) FROM generation_completed WHERE correlation_id = '{id}'"
        )),
        1,
        "the --no-wait request was generated by the job"
    );
}

#[test]
fn model_errors_are_recorded_attempt_by_attempt_and_never_stop_the_job() {
    // 429, 500, garbage: three attempts (max_retries 2), then the generation fails honestly.
    let server = ScriptedServer::start(|n, _| match n {
        0 => Reply::Status(429),
        1 => Reply::Status(500),
        _ => Reply::Garbage,
    });
    let env = Env::new();
    let mut cmd = env.cmd(&[
        "generate",
        "Create PostgreSQL writer Effect node",
        "--model",
        "flaky",
        "--format",
        "json",
    ]);
    with_models(&mut cmd, &server, &["flaky"]);
    let (ok, result, stderr) = generate_json(&mut cmd);
    assert!(!ok);
    assert!(
        stderr.contains("generation failed at code_generation (MODEL_UNAVAILABLE)"),
        "{stderr}"
    );
    assert_eq!(result["status"], "failed");
    assert_eq!(result["end"]["is_retryable"], true);
    let kinds: Vec<&str> = result["model_calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["error_type"].as_str().unwrap_or("ok"))
        .collect();
    assert_eq!(
        kinds,
        vec!["rate_limited", "server_error", "malformed_response"]
    );
    assert_eq!(server.calls_for("flaky"), 3);

    // A model that answers, but with no code: the syntax gate fails it; refinement is tried.
    let server = ScriptedServer::start(|_, _| Reply::Text("I am sorry, I cannot do that.".into()));
    let mut cmd = env.cmd(&[
        "generate",
        "Kafka publisher effect",
        "--model",
        "mute",
        "--format",
        "json",
    ]);
    with_models(&mut cmd, &server, &["mute"]);
    cmd.env("OMNISTREAM_CODEGEN__MAX_REFINEMENTS", "1");
    let (ok, result, _) = generate_json(&mut cmd);
    assert!(!ok);
    assert_eq!(result["end"]["failed_stage"], "post_validation");
    assert!(
        result["end"]["error_message"]
            .as_str()
            .unwrap()
            .contains("G9 python_syntax"),
        "{result}"
    );
    assert_eq!(
        server.calls_for("mute"),
        2,
        "one generation, one refinement"
    );
    let calls = result["model_calls"].as_array().unwrap();
    assert!(calls.iter().all(|c| c["success"] == true));
    // Priced from the table: input tokens at $1/M plus output tokens at $2/M, per call, and the
    // end event's total is their sum.
    let mut cost = 0.0;
    for c in calls {
        let (input, output) = (
            c["input_tokens"].as_f64().unwrap(),
            c["output_tokens"].as_f64().unwrap(),
        );
        let expected = input * 1e-6 + output * 2e-6;
        assert!(
            (c["cost_usd"].as_f64().unwrap() - expected).abs() < 1e-12,
            "{c}"
        );
        cost += expected;
    }
    let total = result["end"]["total_cost_usd"].as_f64().unwrap();
    assert!((total - cost).abs() < 1e-12, "{total} vs {cost}");

    // A slow model times out; the job carries on with the next request.
    let server = ScriptedServer::start(|_, _| Reply::Slow(Duration::from_secs(3)));
    let mut cmd = env.cmd(&[
        "generate",
        "S3 uploader effect",
        "--model",
        "slow",
        "--no-wait",
    ]);
    with_models(&mut cmd, &server, &["slow"]);
    assert!(cmd.output().unwrap().status.success());
    env.ok(&["generate", "text tokenizer compute node", "--no-wait"]);
    let mut cmd = env.cmd(&["jobs", "run", "codegen", "--once"]);
    with_models(&mut cmd, &server, &["slow"]);
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    env.ok(&["jobs", "run", "all", "--once"]);
    let timeouts = env
        .sql_int("SELECT count(*) FROM model_call WHERE model = 'slow' AND error_type = 'timeout'");
    assert_eq!(timeouts, 3);
    assert_eq!(
        env.sql_int(
            "SELECT count(*) FROM generation_completed WHERE service_name = 'text_tokenizer'"
        ),
        1
    );
    // Every request has exactly one end.
    assert_eq!(
        env.sql_int("SELECT count(*) FROM generation_requested"),
        env.sql_int(
            "SELECT (SELECT count(*) FROM generation_completed) + (SELECT count(*) FROM generation_failed)"
        )
    );
}

#[test]
fn the_quorum_weighs_votes_and_needs_sixty_percent_to_answer() {
    // judge_a (weight 2) passes, judge_b (1) asks for changes, judge_c (1) is down.
    let server = ScriptedServer::start(|_, body| match body["model"].as_str() {
        Some("judge-a") => Reply::Text(judgement(92, "PASS")),
        Some("judge-b") => Reply::Text(judgement(70, "RETRY")),
        _ => Reply::Status(503),
    });
    let env = Env::new();
    let judges = r#"[{model = "judge_a", weight = 2.0}, {model = "judge_b", weight = 1.0}, {model = "judge_c", weight = 1.0}]"#;
    let run = |prompt: &str, judges: &str| {
        let mut cmd = env.cmd(&["generate", prompt, "--format", "json"]);
        with_models(&mut cmd, &server, &["judge-a", "judge-b", "judge-c"]);
        cmd.env("OMNISTREAM_CODEGEN__JUDGES", judges);
        generate_json(&mut cmd)
    };
    // 2 of 3 answered (67 %); pass share 2/3 >= 0.6: PASS.
    let (ok, result, stderr) = run("price calculator compute node", judges);
    assert!(ok, "{stderr}\n{result}");
    let votes: Vec<&Value> = result["validation_results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["gate_id"] == "QUORUM")
        .collect();
    assert_eq!(votes.len(), 3);
    let vote = |m: &str| votes.iter().find(|v| v["voter_model"] == m).unwrap();
    assert_eq!(vote("judge_a")["recommendation"], "PASS");
    assert_eq!(vote("judge_a")["weight"].as_f64(), Some(2.0));
    assert_eq!(vote("judge_b")["recommendation"], "RETRY");
    assert_eq!(vote("judge_c")["status"], "error");
    let decision = result["validation_results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["gate_id"] == "QUORUM_DECISION")
        .unwrap();
    assert_eq!(decision["recommendation"], "PASS");

    // judge_c is down: 1 of 2 judges answering is below 60 %, so there is no verdict.
    let (ok, result, stderr) = run(
        "metrics aggregator reducer",
        r#"[{model = "judge_a", weight = 1.0}, {model = "judge_c", weight = 1.0}]"#,
    );
    assert!(!ok);
    assert_eq!(
        result["end"]["error_code"], "QUORUM_UNAVAILABLE",
        "{stderr}"
    );
    assert_eq!(result["end"]["is_retryable"], true);

    // A heavy RETRY with no model to refine: the judges' wish is recorded as the failure.
    let (ok, result, _) = run(
        "order book reducer for trading",
        r#"[{model = "judge_a", weight = 1.0}, {model = "judge_b", weight = 3.0}]"#,
    );
    assert!(!ok);
    assert_eq!(result["end"]["error_code"], "QUORUM_RETRY_EXHAUSTED");
    assert!(
        result["end"]["error_message"]
            .as_str()
            .unwrap()
            .contains("connection pooling"),
        "{result}"
    );
}

#[test]
fn history_and_finished_requests_are_not_generated_again() {
    let env = Env::new();
    // Simulated history: its requests are old and already have their outcomes.
    env.ok(&["simulate", "--generations", "20", "--nodes", "2"]);
    // A request someone else already finished (its end event is in the log).
    let id = env
        .ok(&["generate", "price calculator compute node", "--no-wait"])
        .trim()
        .to_string();
    let done = format!(
        r#"{{"correlation_id": "{id}", "total_duration_seconds": 1.5, "source": "elsewhere"}}"#
    );
    env.run_with_stdin(&["ingest", "generation-completed", "-"], done.as_bytes());
    // And one that is fresh.
    env.ok(&["generate", "metrics aggregator reducer", "--no-wait"]);
    env.ok(&["jobs", "run", "all", "--once"]);
    let ours = env
        .sql("SELECT service_name FROM generation_completed WHERE source = 'omnistream-codegen'");
    assert_eq!(ours.len(), 1, "{ours:?}");
    assert_eq!(ours[0]["service_name"], "metrics_aggregator");
    assert_eq!(
        env.sql_int("SELECT count(*) FROM generation_started WHERE source = 'omnistream-codegen'"),
        1
    );
    let status = env.ok(&["jobs", "status", "codegen", "--format", "json"]);
    assert!(
        status.contains("\"lag\":0") || status.contains("\"lag\": 0"),
        "{status}"
    );
}

#[test]
fn generate_waits_for_a_running_codegen_job_and_shows_its_stages() {
    let env = Env::new();
    let job = crate::Running::spawn(
        env.cmd(&["jobs", "run", "codegen"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped()),
    );
    // Until the job holds its lock, generate would run the request itself; wait for it.
    let status = env.data().join("jobs/codegen.json");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(&status).is_ok_and(|s| s.contains("running")) {
        assert!(
            std::time::Instant::now() < deadline,
            "the job did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = env.run(&["generate", "fraud risk scorer compute node"]);
    assert!(out.status.success(), "{}", describe(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("compilation_test"), "{stdout}");
    assert!(stdout.contains("generated compute node"), "{stdout}");
    assert!(
        env.path("generated/node_risk_fraud_risk_scorer_compute/v1_0_0/node.py")
            .exists()
    );
    // A second job on the same data refuses clearly.
    let second = env.run(&["jobs", "run", "codegen", "--once"]);
    assert!(!second.status.success());
    assert!(
        String::from_utf8_lossy(&second.stderr).contains("another process runs the codegen job"),
        "{}",
        describe(&second)
    );
    terminate(&job);
    assert!(job.wait().success());
}

#[test]
fn the_compile_scope_says_what_was_compiled() {
    let env = Env::new();
    let g13 = |prompt: &str, scope: &str| -> String {
        let out = env
            .cmd(&["generate", prompt, "--format", "json"])
            .env("OMNISTREAM_CODEGEN__COMPILE_SCOPE", scope)
            .env("OMNISTREAM_CODEGEN__RUN_TESTS", "false")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", describe(&out));
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        v["validation_results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["gate_id"] == "G13")
            .unwrap()["message"]
            .as_str()
            .unwrap()
            .to_string()
    };
    // Every file: the node's 11 Python files (12 with the event bus).
    assert_eq!(
        g13("price calculator compute node", "all"),
        "11 files compiled"
    );
    assert_eq!(g13("Kafka publisher effect", "all"), "12 files compiled");
    // Only what a patch changed: the Effect node's patched node.py; nothing for a Compute node.
    assert_eq!(g13("S3 uploader effect", "changed"), "1 files compiled");
    assert_eq!(
        g13("text tokenizer compute node", "changed"),
        "0 files compiled"
    );
}

#[test]
fn requests_cannot_write_outside_the_allowed_directories() {
    let env = Env::new();
    let elsewhere = tempfile::tempdir().unwrap();
    let out = env.run(&[
        "generate",
        "price calculator compute node",
        "--out",
        elsewhere.path().to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("G6 output_directory"), "{stderr}");
    assert!(stderr.contains("codegen.allowed_output_roots"), "{stderr}");
    assert_eq!(std::fs::read_dir(elsewhere.path()).unwrap().count(), 0);
    // Allowed once configured.
    let out = env
        .cmd(&[
            "generate",
            "price calculator compute node",
            "--out",
            elsewhere.path().to_str().unwrap(),
        ])
        .env(
            "OMNISTREAM_CODEGEN__ALLOWED_OUTPUT_ROOTS",
            format!("[\"{}\"]", elsewhere.path().display()),
        )
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    assert!(
        elsewhere
            .path()
            .join("node_billing_price_calculator_compute")
            .exists()
    );
}

/// What the pipeline last asked the model (the system prompt comes first).
pub(crate) fn last_user_message(body: &Value) -> &str {
    body["messages"]
        .as_array()
        .and_then(|m| m.iter().rev().find(|m| m["role"] == "user"))
        .and_then(|m| m["content"].as_str())
        .unwrap_or_default()
}

/// The starting point (the template's node.py) a generation prompt carries, with `extra` at the
/// end: a model answer that changes exactly one thing.
fn starting_point_with(body: &Value, extra: &str) -> String {
    let prompt = last_user_message(body);
    let start = prompt.rfind("```python\n").map(|i| i + "```python\n".len());
    let skeleton = start
        .and_then(|s| prompt[s..].find("```").map(|e| &prompt[s..s + e]))
        .unwrap_or_default();
    format!("```python\n{skeleton}{extra}```")
}

/// Every failure code docs/codegen.md lists that a model's answer or a judge can cause, each from
/// one deterministic answer; the failing node's files are kept under `.omnistream-failed/` and the
/// message says where.
#[test]
fn each_documented_failure_has_its_code_and_keeps_the_files() {
    let server = ScriptedServer::start(|_, body| {
        let answer = |extra: &str| Reply::Text(starting_point_with(body, extra));
        let prompt = last_user_message(body);
        match body["model"].as_str() {
            Some("judge-no") => Reply::Text(judgement(10, "FAIL")),
            // tree-sitter reads it, Python refuses to compile it.
            _ if prompt.contains("compile broken") => answer(
                "\n\ndef _broken() -> None:\n    \"\"\"Refer to a name no scope binds.\"\"\"\n    nonlocal missing\n",
            ),
            // Compiles, and every test fails at import.
            _ if prompt.contains("import broken") => {
                answer("\n\nraise RuntimeError(\"broken on purpose\")\n")
            }
            // Compiles, and importing it never ends.
            _ if prompt.contains("sleeping") => answer("\n\nimport time\n\ntime.sleep(600)\n"),
            // Not Python at all.
            _ if prompt.contains("garbled") => Reply::Text("```python\ndef (:\n```".into()),
            _ => answer(""),
        }
    });
    let env = Env::new();
    let run = |prompt: &str, extra_env: &[(&str, &str)]| {
        let mut cmd = env.cmd(&["generate", prompt, "--model", "coder", "--format", "json"]);
        with_models(&mut cmd, &server, &["coder", "judge-no"]);
        cmd.env("OMNISTREAM_PROVIDERS__SCRIPTED__TIMEOUT_SECS", "5")
            .env("OMNISTREAM_CODEGEN__MAX_REFINEMENTS", "0")
            .env("OMNISTREAM_CODEGEN__TEST_TIMEOUT_SECS", "3");
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let (ok, result, stderr) = generate_json(&mut cmd);
        assert!(!ok, "{prompt}: {result}");
        (result["end"].clone(), stderr)
    };
    // (prompt, extra environment, failed stage, error code, what the message says)
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str, &'a str, &'a str);
    let cases: [Case<'_>; 5] = [
        (
            "compile broken price calculator",
            &[],
            "compilation_test",
            "COMPILE_ERROR",
            "no binding for nonlocal 'missing'",
        ),
        (
            "import broken price calculator",
            &[],
            "compilation_test",
            "TESTS_FAILED",
            "G14 generated tests: ",
        ),
        (
            "sleeping price calculator",
            &[],
            "compilation_test",
            "TESTS_FAILED",
            "ran longer than 3s and were stopped",
        ),
        (
            "garbled price calculator",
            &[],
            "post_validation",
            "VALIDATION_FAILED",
            "G9 python_syntax",
        ),
        (
            "judged price calculator",
            &[(
                "OMNISTREAM_CODEGEN__JUDGES",
                r#"[{model = "judge_no", weight = 1.0}]"#,
            )],
            "post_validation",
            "QUORUM_FAILED",
            "the judges reject the node",
        ),
    ];
    for (prompt, extra_env, stage, code, reason) in cases {
        let (end, stderr) = run(prompt, extra_env);
        assert_eq!(end["failed_stage"], stage, "{prompt}: {end}\n{stderr}");
        assert_eq!(end["error_code"], code, "{prompt}: {end}");
        let message = end["error_message"].as_str().unwrap();
        assert!(message.contains(reason), "{prompt}: {message}");
        if code == "QUORUM_FAILED" {
            continue;
        }
        let kept = message
            .rsplit("(files kept in ")
            .next()
            .filter(|_| message.contains("(files kept in "))
            .map(|p| std::path::PathBuf::from(p.trim_end_matches(')')))
            .unwrap_or_else(|| panic!("{prompt}: no kept files in {message}"));
        assert!(
            kept.starts_with(env.path("generated/.omnistream-failed")),
            "{prompt}: {kept:?}"
        );
        assert!(kept.join("v1_0_0/node.py").is_file(), "{prompt}: {kept:?}");
    }
    // No failed generation left a node under its own name.
    let visible: Vec<String> = std::fs::read_dir(env.path("generated"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    assert!(visible.is_empty(), "{visible:?}");
}

#[test]
fn a_contract_that_breaks_the_teams_rules_fails_at_g7_with_contract_invalid() {
    let env = Env::new();
    let strict = env.write(
        "strict.json",
        r#"{"required": ["owner"], "properties": {"description": {"maxLength": 12}}}"#,
    );
    let lenient = env.write("lenient.json", r#"{"required": ["name", "node_type"]}"#);
    let generate = |rules: &std::path::Path, out: &str| {
        let mut cmd = env.cmd(&["generate", "price calculator compute node", "--out", out]);
        cmd.args(["--format", "json"])
            .env("OMNISTREAM_CODEGEN__CONTRACT_RULES", rules)
            .env("OMNISTREAM_CODEGEN__RUN_TESTS", "false");
        generate_json(&mut cmd)
    };
    let (ok, result, stderr) = generate(&strict, "strict");
    assert!(!ok, "{result}");
    let end = &result["end"];
    assert_eq!(end["failed_stage"], "contract_building", "{end}\n{stderr}");
    assert_eq!(end["error_code"], "CONTRACT_INVALID", "{end}");
    let message = end["error_message"].as_str().unwrap();
    for says in [
        "\"owner\" is a required property",
        "/description: ",
        "is longer than 12 characters",
        strict.to_str().unwrap(),
    ] {
        assert!(message.contains(says), "{says}: {message}");
    }
    // Nothing was written: the contract comes before any file.
    assert!(
        !env.path("strict").exists()
            || std::fs::read_dir(env.path("strict")).unwrap().all(|e| e
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with('.'))
    );

    // Rules the contract meets change nothing.
    let (ok, result, _) = generate(&lenient, "lenient");
    assert!(ok, "{result}");

    // Rules that are not a schema stop the command before anything runs, naming the file.
    let broken = env.write("broken.json", r#"{"type": 12}"#);
    let out = env
        .cmd(&["generate", "price calculator compute node"])
        .env("OMNISTREAM_CODEGEN__CONTRACT_RULES", &broken)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("codegen.contract_rules: ")
            && stderr.contains(&format!("{} is not a JSON Schema", broken.display())),
        "{stderr}"
    );
}

#[test]
fn a_full_output_disk_fails_the_generation_with_write_failed_and_leaves_nothing() {
    if !crate::can_mount_tmpfs() {
        eprintln!("skipped: this machine does not allow a user namespace to mount a tmpfs");
        return;
    }
    let env = Env::new();
    std::fs::create_dir_all(env.path("out")).unwrap();
    // One page of space: the output directory's write probe fits, the node's files do not.
    let script = r#"
        set -u
        mount -t tmpfs -o size=4k tmpfs out || exit 90
        "$BIN" --data-dir "$DATA" generate "price calculator compute node" --out out \
            --format json >gen.json 2>gen.err
        echo $? >gen.rc
        find out >files.txt
    "#;
    let status = env
        .in_mount_namespace(script)
        .env("OMNISTREAM_CODEGEN__RUN_TESTS", "false")
        .status()
        .unwrap();
    let read = |name: &str| std::fs::read_to_string(env.path(name)).unwrap_or_default();
    assert!(status.success(), "{status}: {}", read("gen.err"));
    assert_eq!(read("gen.rc").trim(), "1", "{}", read("gen.err"));
    let result: Value = serde_json::from_str(&read("gen.json")).unwrap();
    let end = &result["end"];
    assert_eq!(end["failed_stage"], "file_writing", "{end}");
    assert_eq!(end["error_code"], "WRITE_FAILED", "{end}");
    let message = end["error_message"].as_str().unwrap();
    assert!(message.contains("No space left on device"), "{message}");
    // No node appeared and nothing stayed in staging: only the (empty) staging directory.
    let listing = read("files.txt");
    let files: Vec<&str> = listing.lines().map(str::trim).collect();
    assert_eq!(files, ["out", "out/.omnistream-staging"], "{message}");
    // The failure is in the log like any other end.
    env.ok(&["jobs", "run", "lake-sink", "--once"]);
    assert_eq!(
        env.sql_int("SELECT count(*) FROM generation_failed WHERE error_code = 'WRITE_FAILED'"),
        1
    );
}

/// Model-written code that misbehaves when its tests import it: each is stopped, reported as a
/// G14 failure with the reason, and the job goes on to the next request (one benign request at
/// the end passes).
#[test]
fn model_code_that_misbehaves_is_stopped_and_the_job_goes_on() {
    use omnistream_codegen::sandbox::{Isolation, NetworkIsolation};
    let isolation = Isolation::detect();
    // SAFETY: geteuid(2) cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    if isolation.landlock.is_none()
        || (root && isolation.pids_cgroup.is_none())
        || !matches!(isolation.network, NetworkIsolation::Namespace { .. })
    {
        eprintln!(
            "skipped: this machine lacks part of the isolation ({})",
            isolation.describe()
        );
        return;
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let env = Env::new();
    let victim = env.write("victim.txt", "intact");
    let victim_path = victim.display().to_string();
    // (word in the request, code appended to node.py, what G14 must say; "" when it passes)
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "keys",
            "\nimport os\nif [k for k in os.environ if 'KEY' in k or k.startswith('OMNISTREAM')]:\n    raise RuntimeError('saw ' + ' '.join(os.environ))\n".into(),
            "",
        ),
        (
            "socket",
            format!("\nimport socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)\n"),
            "ConnectionRefusedError",
        ),
        (
            "forks",
            "\nimport os, time\nwhile True:\n    if os.fork() == 0:\n        time.sleep(60)\n        os._exit(0)\n".into(),
            "BlockingIOError",
        ),
        (
            "lingers",
            "\nimport subprocess\nsubprocess.Popen(['sleep', '600'])\n".into(),
            "the tests left processes running and were stopped",
        ),
        (
            "chatty",
            // pytest captures what a test prints; at exit it prints to the run's own output.
            "\nimport atexit\natexit.register(lambda: print('x' * 5_000_000))\n".into(),
            "printed more than",
        ),
        (
            "escapes",
            format!("\nopen({victim_path:?}, 'w').write('owned')\n"),
            "PermissionError",
        ),
        (
            "symlinked",
            format!("\nimport os, pathlib\np = pathlib.Path(__file__).parent / 'link.txt'\nif not p.is_symlink():\n    os.symlink({victim_path:?}, p)\nopen(p, 'w').write('owned')\n"),
            "PermissionError",
        ),
        (
            "greedy",
            "\nb = bytearray(10 * 1024 ** 3)\n".into(),
            "MemoryError",
        ),
        (
            "sleepy",
            "\nimport time\ntime.sleep(600)\n".into(),
            "ran longer than 8s",
        ),
        ("plain", String::new(), ""),
    ];
    let answers: Vec<(String, String)> = cases
        .iter()
        .map(|(word, code, _)| (format!("{word} price calculator"), code.clone()))
        .collect();
    let server = ScriptedServer::start(move |_, body| {
        let prompt = last_user_message(body);
        let extra = answers
            .iter()
            .find(|(p, _)| prompt.contains(p.as_str()))
            .map(|(_, code)| code.as_str())
            .unwrap_or_default();
        Reply::Text(starting_point_with(body, extra))
    });
    for (word, _, _) in &cases {
        let (prompt, out) = (
            format!("{word} price calculator compute node"),
            format!("out/{word}"),
        );
        let mut cmd = env.cmd(&["generate", &prompt, "--model", "coder", "--out", &out]);
        with_models(cmd.arg("--no-wait"), &server, &["coder"]);
        let done = cmd.output().unwrap();
        assert!(done.status.success(), "{}", describe(&done));
    }
    let mut cmd = env.cmd(&["jobs", "run", "codegen", "--once"]);
    with_models(&mut cmd, &server, &["coder"]);
    cmd.env("OMNISTREAM_PROVIDERS__SCRIPTED__TIMEOUT_SECS", "5")
        .env("OMNISTREAM_CODEGEN__MAX_REFINEMENTS", "0")
        .env("OMNISTREAM_CODEGEN__TEST_TIMEOUT_SECS", "8")
        .env("OMNISTREAM_CODEGEN__CONCURRENCY", "2")
        .env("OMNISTREAM_CODEGEN__SANDBOX__PROCESSES", "32")
        .env("OPENAI_API_KEY", "sk-must-not-leak");
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    env.ok(&["jobs", "run", "lake-sink", "--once"]);
    assert!(
        listener.accept().is_err(),
        "generated code reached a socket outside"
    );
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "intact");
    for (word, _, says) in &cases {
        let rows = env.sql(&format!(
            "SELECT r.correlation_id, c.passed, f.error_code, v.message \
             FROM generation_requested r \
             LEFT JOIN generation_completed c ON c.correlation_id = r.correlation_id \
             LEFT JOIN generation_failed f ON f.correlation_id = r.correlation_id \
             LEFT JOIN validation_result v ON v.correlation_id = r.correlation_id AND v.gate_id = 'G14' \
             WHERE r.prompt LIKE '{word} %'"
        ));
        assert_eq!(rows.len(), 1, "{word}: {rows:?}");
        let row = &rows[0];
        let field = |k: &str| row.get(k).cloned().unwrap_or(Value::Null);
        let message = field("message").as_str().unwrap_or_default().to_string();
        assert!(!message.contains("sk-must-not-leak"), "{word}: {message}");
        if says.is_empty() {
            assert_eq!(field("passed"), true, "{word}: {row:?}");
        } else {
            assert_eq!(field("error_code"), "TESTS_FAILED", "{word}: {row:?}");
            assert!(message.contains(says), "{word}: G14 says {message}");
        }
    }
}

#[test]
fn neither_the_root_nor_the_home_directory_is_ever_an_output_root() {
    let env = Env::new();
    let out = env
        .cmd(&["generate", "price calculator compute node"])
        .env("OMNISTREAM_CODEGEN__OUTPUT_DIR", "/")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("codegen.output_dir: / is / or the home directory"),
        "{stderr}"
    );
    // Run from the home directory, a request may not name a place under it (only output_dir).
    let target = env.path("nodes").display().to_string();
    let mut cmd = env.cmd(&[
        "generate",
        "price calculator compute node",
        "--out",
        &target,
    ]);
    cmd.args(["--format", "json"])
        .env("HOME", env.dir.path())
        .env("OMNISTREAM_CODEGEN__RUN_TESTS", "false");
    let (ok, result, _) = generate_json(&mut cmd);
    assert!(!ok, "{result}");
    let message = result["end"]["error_message"].as_str().unwrap();
    assert!(message.contains("allowed_output_roots"), "{message}");
    assert!(!env.path("nodes").exists());
}

/// Pids of processes whose working directory is under `dir`.
fn processes_under(dir: &std::path::Path) -> Vec<u32> {
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    std::fs::read_dir("/proc")
        .unwrap()
        .map_while(Result::ok)
        .filter_map(|e| e.file_name().to_string_lossy().parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd.starts_with(&dir))
        })
        .collect()
}

#[test]
fn a_contained_run_dies_with_a_job_killed_by_kill_9() {
    let server = ScriptedServer::start(|_, body| {
        Reply::Text(starting_point_with(
            body,
            "\nimport time\ntime.sleep(600)\n",
        ))
    });
    let env = Env::new();
    let mut cmd = env.cmd(&[
        "generate",
        "sleepy price calculator compute node",
        "--model",
        "coder",
    ]);
    with_models(cmd.args(["--out", "out", "--no-wait"]), &server, &["coder"]);
    assert!(cmd.output().unwrap().status.success());
    let mut cmd = env.cmd(&["jobs", "run", "codegen"]);
    with_models(&mut cmd, &server, &["coder"]);
    cmd.env("OMNISTREAM_CODEGEN__TEST_TIMEOUT_SECS", "120")
        .env("OMNISTREAM_PROVIDERS__SCRIPTED__TIMEOUT_SECS", "5")
        .env("OMNISTREAM_CODEGEN__MAX_REFINEMENTS", "0")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut job = crate::Running::spawn(&mut cmd);
    let out = env.path("out");
    let started = std::time::Instant::now();
    while processes_under(&out).is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "pytest never started"
        );
        assert!(
            job.try_wait().is_none(),
            "the job ended before its tests ran"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let pid = libc::pid_t::try_from(job.id()).unwrap();
    // SAFETY: kill(2) of the job this test started and has not waited for.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    let status = job.wait();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9)
    );
    let killed = std::time::Instant::now();
    while !processes_under(&out).is_empty() {
        assert!(
            killed.elapsed() < Duration::from_secs(5),
            "the contained run outlived its job: {:?}",
            processes_under(&out)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
