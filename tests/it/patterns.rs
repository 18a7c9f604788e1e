//! The pattern store through the real binary: `patterns store/query/show/list/optimize`, bad
//! input refused whole, and retrieval reaching generation (a stored logic.py makes the template
//! model pass a request it cannot pass cold; the generation's patterns_applied are the store's).

use std::process::Command;

use serde_json::Value;

use super::behaviour::checksum_request;
use super::codegen::with_models_writing_logic;
use super::model_server::{Reply, ScriptedServer};
use super::{Env, describe};

const CHECKSUM: &str = "import hashlib\n\n\ndef run(operation: str, payload: dict[str, object]) -> dict[str, object]:\n    \"\"\"Digest the content.\"\"\"\n    data = str(payload[\"content\"]).encode(\"utf-8\")\n    return {\"sha256\": hashlib.sha256(data).hexdigest(), \"size\": len(data)}\n";

fn json(env: &Env, args: &[&str]) -> Vec<Value> {
    let mut all = args.to_vec();
    all.extend(["--format", "json"]);
    serde_json::from_str(&env.ok(&all)).unwrap()
}

fn store_checksum(env: &Env, file: &str, code: &str) -> String {
    store_code(
        env,
        file,
        code,
        &["--domain", "files", "--operations", "checksum"],
        "SHA-256 checksum and size of uploaded content",
    )
}

/// `patterns store FILE` of `code` as a compute pattern of quality 0.97; `extra` adds flags.
pub(crate) fn store_code(
    env: &Env,
    file: &str,
    code: &str,
    extra: &[&str],
    description: &str,
) -> String {
    env.write(file, code);
    let mut args = vec![
        "patterns",
        "store",
        file,
        "--node-type",
        "compute",
        "--quality",
        "0.97",
        "--description",
        description,
    ];
    args.extend(extra);
    env.ok(&args)
}

#[test]
fn patterns_are_stored_once_found_shown_and_listed() {
    let env = Env::new();
    let out = store_checksum(&env, "checksum.py", CHECKSUM);
    assert!(out.starts_with("stored "), "{out}");
    let id = out.split_whitespace().nth(1).unwrap().to_string();
    // The same code reformatted, with a comment: the same pattern.
    let again = CHECKSUM
        .replace("    ", "  ")
        .replace("\n\n\n", "\n# digest\n");
    let out = store_checksum(&env, "again.py", &again);
    assert!(out.contains("is already stored"), "{out}");
    let listed = json(&env, &["patterns", "list"]);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["pattern_id"], id.as_str());
    assert_eq!(listed[0]["lifecycle"], "candidate");
    let found = json(
        &env,
        &[
            "patterns",
            "query",
            "sha256 checksum of a file",
            "--node-type",
            "compute",
        ],
    );
    assert_eq!(found[0]["pattern_id"], id.as_str(), "{found:?}");
    assert!(found[0]["relevance"].as_f64().unwrap() > 0.0);
    assert!(
        json(
            &env,
            &["patterns", "query", "sha256", "--node-type", "effect"]
        )
        .is_empty()
    );
    let shown = env.ok(&["patterns", "show", &id]);
    assert!(
        shown.contains("hashlib.sha256") && shown.contains("lineage: "),
        "{shown}"
    );
    let optimised = env.ok(&["patterns", "optimize"]);
    assert!(
        optimised.contains("1 rows") && optimised.contains("full-text index: yes"),
        "{optimised}"
    );
    // Every store was announced: one pattern-stored event.
    env.ok(&["jobs", "run", "lake-sink", "--once"]);
    assert_eq!(env.sql_int("SELECT count(*) FROM pattern_stored"), 1);
}

#[test]
fn bad_input_gets_one_clear_line_and_changes_nothing() {
    let env = Env::new();
    store_checksum(&env, "checksum.py", CHECKSUM);
    env.write("latin1.py", b"x = '\xe9'\n");
    let big = env.path("big.py");
    std::fs::write(&big, vec![b'#'; 50 << 20]).unwrap();
    let big = big.to_str().unwrap().to_string();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec![
                "patterns",
                "store",
                "missing.py",
                "--node-type",
                "compute",
                "--domain",
                "d",
            ],
            "missing.py",
        ),
        (
            vec![
                "patterns",
                "store",
                "latin1.py",
                "--node-type",
                "compute",
                "--domain",
                "d",
            ],
            "is not UTF-8",
        ),
        (
            vec![
                "patterns",
                "store",
                &big,
                "--node-type",
                "compute",
                "--domain",
                "d",
            ],
            "a pattern keeps at most",
        ),
        (
            vec![
                "patterns",
                "store",
                "checksum.py",
                "--node-type",
                "widget",
                "--domain",
                "d",
            ],
            "node type 'widget' is not one of",
        ),
        (
            vec![
                "patterns",
                "store",
                "checksum.py",
                "--node-type",
                "compute",
                "--domain",
                "d",
                "--quality",
                "2",
            ],
            "--quality must be between 0 and 1",
        ),
        (
            vec!["patterns", "store", "checksum.py", "--domain", "d"],
            "--node-type",
        ),
        (
            vec!["patterns", "query", "x", "--top-k", "0"],
            "top_k must be between 1 and 20",
        ),
        (
            vec!["patterns", "query", "x", "--top-k", "21"],
            "top_k must be between 1 and 20",
        ),
        (
            vec!["patterns", "query", "x", "--min-quality", "1.5"],
            "min_quality must be between 0 and 1",
        ),
        (
            vec!["patterns", "query", "x", "--top-k", "many"],
            "invalid value 'many'",
        ),
        (vec!["patterns", "show", "nope"], "is not a pattern id"),
        (
            vec!["patterns", "show", "0123456789abcdef"],
            "no pattern has the id",
        ),
        (
            vec!["patterns", "list", "--lifecycle", "retired"],
            "invalid value 'retired'",
        ),
    ];
    for (args, expected) in cases {
        let out = env.run(&args);
        assert!(!out.status.success(), "{args:?}: {}", describe(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?}: {}", describe(&out));
    }
    let out = env
        .cmd(&["patterns", "query", "checksum"])
        .env("OMNISTREAM_PATTERNS__VECTOR_INDEX", "ivf_pq")
        .output()
        .unwrap();
    assert!(!out.status.success(), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "patterns.vector_index: unknown vector index 'ivf_pq' (hnsw_flat or hnsw_sq)"
        ),
        "{stderr}"
    );
    assert_eq!(json(&env, &["patterns", "list"]).len(), 1);
}

#[test]
fn a_table_deleted_under_the_store_is_an_error_and_a_corrupt_one_too() {
    let env = Env::new();
    store_checksum(&env, "checksum.py", CHECKSUM);
    let table = env.data().join("patterns/patterns.lance");
    // Corrupt: the version manifests gone.
    std::fs::remove_dir_all(table.join("_versions")).unwrap();
    let out = env.run(&["patterns", "list"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("error: opening the pattern table"),
        "{stderr}"
    );
    // Deleted whole: an empty store again, and storing works.
    std::fs::remove_dir_all(&table).unwrap();
    assert!(json(&env, &["patterns", "list"]).is_empty());
    assert!(store_checksum(&env, "checksum.py", CHECKSUM).starts_with("stored "));
}

/// The shipped checksum request (three examples the templates cannot pass).
#[test]
fn a_stored_logic_pattern_reaches_generation_and_its_use_is_counted() {
    let env = Env::new();
    env.write("one.jsonl", checksum_request() + "\n");
    let generate = |env: &Env| generate_one(env, |_| {});
    // Cold: the template model cannot compute a checksum.
    let cold = generate(&env);
    assert_eq!(cold["status"], "failed", "{cold}");
    assert_eq!(cold["error_code"], "EXAMPLES_FAILED", "{cold}");
    let out = store_checksum(&env, "checksum.py", CHECKSUM);
    let id = out.split_whitespace().nth(1).unwrap().to_string();
    // Warm: it reuses the stored logic and passes every example.
    let warm = generate(&env);
    assert_eq!(warm["status"], "completed", "{warm}");
    assert_eq!(
        (
            warm["examples_passed"].as_i64(),
            warm["examples_total"].as_i64()
        ),
        (Some(3), Some(3))
    );
    env.ok(&["jobs", "run", "lake-sink", "--once"]);
    let rows = env.sql(
        "SELECT array_to_string(patterns_applied, ',') AS applied, \
                array_to_string(intelligence_sources, ',') AS sources \
         FROM generation_completed",
    );
    assert_eq!(rows.len(), 1);
    let applied = rows[0]["applied"].as_str().unwrap();
    assert!(applied.split(',').any(|a| a == id), "{applied}");
    assert_eq!(rows[0]["sources"], "pattern_store");
    let stored: Vec<String> = json(&env, &["patterns", "list"])
        .iter()
        .map(|p| p["pattern_id"].as_str().unwrap().to_string())
        .collect();
    for a in applied.split(',') {
        assert!(
            stored.contains(&a.to_string()),
            "{a} of {applied} is not in {stored:?}"
        );
    }
    // The store's tables join with the lake's in `omnistream sql`.
    let joined = env.sql_int(
        "SELECT count(*) FROM generation_completed g JOIN patterns p \
         ON array_has(g.patterns_applied, p.pattern_id) WHERE p.node_type = 'compute'",
    );
    assert_eq!(joined, 1);
    // The stage event shows what was retrieved, how relevant, and how long it took.
    let stage = env.sql(
        "SELECT stage_output FROM stage_completed WHERE stage_name = 'intelligence_gathering' \
         ORDER BY emitted_at DESC LIMIT 1",
    );
    let output: Value = serde_json::from_str(stage[0]["stage_output"].as_str().unwrap()).unwrap();
    assert!(output["retrieval_ms"].as_f64().is_some(), "{output}");
    assert_eq!(output["patterns"][0], id.as_str(), "{output}");
    // generate ran the indexer: the use is counted against the pattern.
    let shown = json(&env, &["patterns", "show", &id]);
    assert_eq!(
        (shown[0]["uses"].as_i64(), shown[0]["passed"].as_i64()),
        (Some(1), Some(1)),
        "{shown:?}"
    );
}

#[test]
fn rescore_gives_the_current_score_deprecates_what_no_longer_passes_and_resumes() {
    let env = Env::new();
    store_checksum(&env, "checksum.py", CHECKSUM);
    let broken = CHECKSUM.replace("def run(operation: str,", "def run(operation: str");
    let out = store_checksum(&env, "broken.py", &broken);
    let broken_id = out.split_whitespace().nth(1).unwrap().to_string();
    env.write("sum.py", "def run(operation: str, payload: dict[str, object]) -> dict[str, object]:\n    \"\"\"Add the values.\"\"\"\n    return {\"total\": sum(payload[\"values\"])}\n");
    env.ok(&[
        "patterns",
        "store",
        "sum.py",
        "--node-type",
        "compute",
        "--domain",
        "math",
        "--operations",
        "total",
    ]);
    let out = env.ok(&["patterns", "rescore"]);
    assert!(
        out.starts_with(
            "re-scored 3 patterns with quality-v2 (0 resumed from an interrupted run, 1 deprecated)"
        ),
        "{out}"
    );
    for p in json(&env, &["patterns", "list"]) {
        let deprecated = p["pattern_id"] == broken_id.as_str();
        assert_eq!(p["lifecycle"] == "deprecated", deprecated, "{p}");
    }
    let broken_score = env.sql(&format!(
        "SELECT passed, failed_gates, previous_scorer_version FROM pattern_scores \
         WHERE pattern_id = '{broken_id}'"
    ));
    assert_eq!(broken_score[0]["passed"], false, "{broken_score:?}");
    assert!(
        broken_score[0]["failed_gates"]
            .as_str()
            .unwrap()
            .contains("G9"),
        "{broken_score:?}"
    );
    assert_eq!(broken_score[0]["previous_scorer_version"], "manual");
    assert_eq!(
        env.sql_int("SELECT count(*) FROM pattern_scores WHERE scorer_version = 'quality-v2'"),
        3
    );
    assert_eq!(
        env.sql_int("SELECT count(*) FROM patterns WHERE scorer_version = 'quality-v2'"),
        3
    );
    // Nothing left for this scorer; another one with a filter takes only what matches.
    assert!(
        env.ok(&["patterns", "rescore"])
            .starts_with("re-scored 0 patterns")
    );
    let out = env.ok(&[
        "patterns",
        "rescore",
        "--scorer",
        "quality-v3",
        "--where",
        "domain = 'math'",
    ]);
    assert!(
        out.starts_with("re-scored 1 patterns with quality-v3"),
        "{out}"
    );
    // A filter that is not SQL: one clear line.
    let out = env.run(&[
        "patterns",
        "rescore",
        "--scorer",
        "v4",
        "--where",
        "domain = = 'x'",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("selecting the patterns to re-score (--where domain = = 'x')"),
        "{}",
        describe(&out)
    );
}

const SENDER: &str = "def run(operation: str, payload: dict[str, object]) -> dict[str, object]:\n    \"\"\"Queue the message.\"\"\"\n    outbox = list(payload.get(\"outbox\", []))\n    outbox.append({\"to\": payload[\"to\"], \"subject\": payload[\"subject\"]})\n    return {\"queued\": len(outbox)}\n";

fn with_embedder<'a>(
    env: &Env,
    args: &[&str],
    embedder: &[(&'a str, &'a str)],
) -> std::process::Output {
    env.cmd(args)
        .envs(embedder.iter().copied())
        .output()
        .unwrap()
}

/// From the built-in embedder to all-MiniLM-L6-v2 in-process, then to a real `/v1/embeddings`
/// server (llama.cpp's, serving SmolLM2 with mean pooling): each move refused until re-embedded,
/// every pattern kept, and a bad dimension refused without touching the table.
#[test]
fn reembed_moves_the_store_to_minilm_and_to_an_http_embedder() {
    let env = Env::new();
    let id = store_checksum(&env, "checksum.py", CHECKSUM);
    let id = id.split_whitespace().nth(1).unwrap().to_string();
    store_code(
        &env,
        "sender.py",
        SENDER,
        &["--domain", "mail"],
        "queue an email message for a recipient",
    );
    let minilm_dir = super::models::models_dir().join("all-MiniLM-L6-v2");
    let minilm = [
        ("OMNISTREAM_PATTERNS__EMBEDDER", "minilm"),
        (
            "OMNISTREAM_PATTERNS__EMBEDDER_MODEL_DIR",
            minilm_dir.to_str().unwrap(),
        ),
    ];
    let query = [
        "patterns",
        "query",
        "fingerprint the bytes of an upload",
        "--mode",
        "vector",
        "--format",
        "json",
    ];
    let out = with_embedder(&env, &query, &minilm);
    assert!(!out.status.success(), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("'hashing' (384 dimensions)") && stderr.contains("patterns reembed"),
        "{stderr}"
    );

    let out = with_embedder(&env, &["patterns", "reembed"], &minilm);
    assert!(out.status.success(), "{}", describe(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains(
            "re-embedded 2 patterns from hashing (384 dimensions) to minilm (384 dimensions)"
        ),
        "{said}"
    );
    // A paraphrase sharing no word with either description: only meaning finds it.
    let out = with_embedder(&env, &query, &minilm);
    let hits: Vec<Value> =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", describe(&out)));
    assert_eq!(hits.len(), 2);
    assert_eq!(hits[0]["pattern_id"], id.as_str(), "{hits:?}");

    let server = super::models::serve(
        "SmolLM2-135M-Instruct.Q4_1.gguf",
        "smol",
        &[("EMBEDDING", "1")],
    );
    let http = |dim: &'static str| {
        [
            ("OMNISTREAM_PATTERNS__EMBEDDER", "openai:smol".to_string()),
            ("OMNISTREAM_PATTERNS__EMBEDDER_URL", server.url.clone()),
            ("OMNISTREAM_PATTERNS__EMBEDDER_DIM", dim.to_string()),
        ]
    };
    let out = env
        .cmd(&["patterns", "reembed"])
        .envs(http("384"))
        .output()
        .unwrap();
    assert!(!out.status.success(), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("embedder_dim = 576"), "{stderr}");
    // Nothing changed: MiniLM still reads the table.
    assert!(with_embedder(&env, &query, &minilm).status.success());

    let out = env
        .cmd(&["patterns", "reembed"])
        .envs(http("576"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("to openai:smol (576 dimensions)"), "{said}");
    let out = env
        .cmd(&["patterns", "query", "sha256 checksum", "--format", "json"])
        .envs(http("576"))
        .output()
        .unwrap();
    let hits: Vec<Value> =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", describe(&out)));
    assert_eq!(hits[0]["pattern_id"], id.as_str(), "{hits:?}");
    assert!(!with_embedder(&env, &query, &minilm).status.success());
    drop(server);
}

/// `bench learning` with the template model on the shipped sets: both eval rounds reported, the
/// cold one served by the catalog only, the warm one by patterns the train round stored (and
/// only those: the cold round's passing answers never reach the store); and an eval set that
/// repeats the train set is refused.
#[test]
fn bench_learning_reports_a_cold_and_a_warm_round_learning_from_the_train_round_only() {
    let env = Env::new();
    let sets = super::repo_root().join("requests");
    let (train, eval) = (
        sets.join("learning_train.jsonl"),
        sets.join("learning_eval.jsonl"),
    );
    let work = env.path("work");
    let out = env.ok(&[
        "bench",
        "learning",
        "--train",
        train.to_str().unwrap(),
        "--eval",
        eval.to_str().unwrap(),
        "--dir",
        work.to_str().unwrap(),
        "--format",
        "ndjson",
    ]);
    let rounds: Vec<Value> = out
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rounds.len(), 2, "{out}");
    let (cold, warm) = (&rounds[0], &rounds[1]);
    assert_eq!(
        (cold["round"].as_str(), warm["round"].as_str()),
        (Some("cold"), Some("warm"))
    );
    let eval_lines = std::fs::read_to_string(&eval).unwrap().lines().count() as u64;
    assert_eq!(cold["generations"].as_u64(), Some(eval_lines));
    assert_eq!(cold["from_store"], 0, "{cold}");
    assert!(warm["from_store"].as_u64().unwrap() >= 1, "{warm}");
    let passing = warm["passing"].as_f64().unwrap();
    let rate = warm["functional_pass_rate"].as_f64().unwrap();
    assert!((rate - passing / eval_lines as f64).abs() < 1e-3, "{warm}");
    // "store warmed: P of N train generations passed; S patterns stored (D duplicates)"
    let warmed = out
        .lines()
        .find(|l| l.starts_with("store warmed:"))
        .unwrap();
    let numbers: Vec<u64> = warmed
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|w| w.parse().ok())
        .collect();
    let [passed, _, stored, duplicates] = numbers[..] else {
        panic!("{warmed}")
    };
    assert!(passed >= 1, "{warmed}");
    assert!(
        stored + duplicates <= passed,
        "more indexed than the train round passed: {warmed}"
    );

    let out = env.run(&[
        "bench",
        "learning",
        "--train",
        train.to_str().unwrap(),
        "--eval",
        train.to_str().unwrap(),
        "--dir",
        work.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("must be distinct"),
        "{}",
        describe(&out)
    );
}

/// `bench patterns` at a small scale: stores, indexes and searches through the store, and the
/// FAISS peer answers on the same vectors; with exact re-ranking the recall is all but complete.
#[test]
fn bench_patterns_reports_rate_latency_and_recall_for_both_sides() {
    let env = Env::new();
    let work = env.path("work");
    let out = env.ok(&[
        "bench",
        "patterns",
        "--rows",
        "3000",
        "--queries",
        "30",
        "--refine-factor",
        "10",
        "--dir",
        work.to_str().unwrap(),
    ]);
    assert!(
        out.contains("stored 3000 patterns")
            && out.contains("IVF-HNSW-Flat")
            && out.contains("with every row read")
            && out.contains("at efSearch 512"),
        "{out}"
    );
    let recall = |side: &str| -> f64 {
        let line = out
            .lines()
            .find(|l| l.starts_with(side) && l.contains("recall@10 "))
            .unwrap_or_else(|| panic!("{out}"));
        let at = line.find("recall@10 ").unwrap() + "recall@10 ".len();
        line[at..]
            .split(|c: char| c == ';' || c.is_whitespace())
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert!(recall("omnistream") >= 0.95, "{out}");
    assert!(recall("FAISS") > 0.5, "{out}");
}

#[test]
fn a_stored_pattern_that_passes_the_examples_is_reused_without_a_model_call() {
    let wrong = CHECKSUM.replace("sha256(data)", "md5(data)");
    let answer = format!("```python\n{wrong}```");
    let server = ScriptedServer::start(move |_, _| Reply::Text(answer.clone()));
    let env = Env::new();
    env.write("one.jsonl", checksum_request() + "\n");
    let generate = |env: &Env, reuse: bool| {
        generate_one(env, |cmd| {
            with_coder(&server)(cmd);
            cmd.env("OMNISTREAM_PATTERNS__REUSE_VERIFIED", reuse.to_string());
        })
    };
    let calls = || server.requests.lock().unwrap().len();
    // A stored pattern that fails this request's examples is not reused: the model is asked.
    store_checksum(&env, "wrong.py", &wrong);
    let first = generate(&env, true);
    assert_eq!(first["error_code"], "EXAMPLES_FAILED", "{first}");
    let asked = calls();
    assert!(asked >= 1, "the model was not asked");
    // One that passes them is reused as it is: no model call, every example passes.
    let out = store_checksum(&env, "right.py", CHECKSUM);
    let id = out.split_whitespace().nth(1).unwrap().to_string();
    let reused = generate(&env, true);
    assert_eq!(reused["status"], "completed", "{reused}");
    assert_eq!(reused["examples_passed"], 3, "{reused}");
    assert_eq!(calls(), asked, "a model call despite a passing pattern");
    assert_reused(&env, &id);
    // Reuse turned off: the model is asked again.
    let off = generate(&env, false);
    assert_eq!(off["error_code"], "EXAMPLES_FAILED", "{off}");
    assert!(calls() > asked, "reuse was not turned off");
}

/// The template model reuses verified patterns too: of two stored checksum modules, it takes the
/// one that passes the request's examples, whichever ranks first.
#[test]
fn the_template_model_reuses_the_stored_pattern_that_passes_the_examples() {
    let env = Env::new();
    env.write("one.jsonl", checksum_request() + "\n");
    store_checksum(
        &env,
        "wrong.py",
        &CHECKSUM.replace("sha256(data)", "md5(data)"),
    );
    let out = store_checksum(&env, "right.py", CHECKSUM);
    let id = out.split_whitespace().nth(1).unwrap().to_string();
    let row = generate_one(&env, |_| {});
    assert_eq!(row["status"], "completed", "{row}");
    assert_eq!(row["examples_passed"], 3, "{row}");
    assert_reused(&env, &id);
}

/// `generate --requests one.jsonl --out nodes --format json`, `configure`d (a model, an
/// environment variable), and its one result row.
fn generate_one(env: &Env, configure: impl FnOnce(&mut Command)) -> Value {
    let mut cmd = env.cmd(&[
        "generate",
        "--requests",
        "one.jsonl",
        "--out",
        "nodes",
        "--format",
        "json",
    ]);
    configure(&mut cmd);
    let out = cmd.output().unwrap();
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", describe(&out)))
}

/// Generation by the model `coder`, whose answers `server` scripts.
fn with_coder(server: &ScriptedServer) -> impl FnOnce(&mut Command) + '_ {
    move |cmd| {
        cmd.args(["--model", "coder"]);
        with_models_writing_logic(cmd, server, &["coder"]);
    }
}

/// The latest generation's code_generation stage output, once the lake has it.
fn code_generation_output(env: &Env) -> String {
    env.ok(&["jobs", "run", "lake-sink", "--once"]);
    let stage = env.sql(
        "SELECT stage_output FROM stage_completed WHERE stage_name = 'code_generation' \
         ORDER BY emitted_at DESC LIMIT 1",
    );
    stage[0]["stage_output"].as_str().unwrap().to_string()
}

/// The latest generation's code_generation stage says it reused pattern `id`.
fn assert_reused(env: &Env, id: &str) {
    let output = code_generation_output(env);
    assert!(output.contains(&format!("reused pattern {id}")), "{output}");
}

/// A stored pattern the request's examples show computing wrong values is never the model's
/// worked example (a small model copies the bug); one that fails only on field names still is,
/// since its logic may be right.
#[test]
fn a_pattern_the_examples_show_wrong_is_not_the_worked_example() {
    use super::codegen::last_user_message;
    let answer = format!("```python\n{CHECKSUM}```");
    let server = ScriptedServer::start(move |_, _| Reply::Text(answer.clone()));
    let wrong_values = CHECKSUM.replace("sha256(data)", "md5(data)");
    // Two result keys renamed: adapting the names would be a guess, so it is not reused.
    let other_names = CHECKSUM
        .replace("{\"sha256\":", "{\"digest\":")
        .replace("\"size\":", "\"length\":");
    for (code, marker, shown) in [
        (&wrong_values, "md5", false),
        (&other_names, "digest", true),
    ] {
        let env = Env::new();
        env.write("one.jsonl", checksum_request() + "\n");
        store_checksum(&env, "stored.py", code);
        let asked = server.requests.lock().unwrap().len();
        // The model's answer (the right module) passes.
        let row = generate_one(&env, with_coder(&server));
        assert_eq!(row["status"], "completed", "{row}");
        let requests = server.requests.lock().unwrap().clone();
        let prompt = last_user_message(&requests[asked]);
        assert!(
            prompt.contains("For another request"),
            "no worked example: {prompt}"
        );
        assert_eq!(
            prompt.contains(marker),
            shown,
            "the stored {marker} pattern shown: {shown}? {prompt}"
        );
    }
}

/// Stored code solving the same work under another field name is adapted (the one differing
/// payload key renamed) and reused once the request's examples pass: the palindrome checker
/// stored for `text` serves a request that calls it `sentence`.
#[test]
fn a_stored_pattern_is_reused_under_the_requests_own_field_names() {
    const PALINDROME: &str = "def run(operation: str, payload: dict[str, object]) -> dict[str, object]:\n    \"\"\"Whether the text reads the same backwards, ignoring case and punctuation.\"\"\"\n    text: str = payload[\"text\"]\n    letters = [c.lower() for c in text if c.isalnum()]\n    return {\"palindrome\": letters == letters[::-1]}\n";
    let env = Env::new();
    let request = r#"{"prompt": "Create mirror phrase Compute node checking if a sentence reads the same backwards", "node_type": "compute", "operations": ["validate"], "input": {"sentence": "str"}, "output": {"palindrome": "bool"}, "examples": [{"input": {"sentence": "Was it a car or a cat I saw?"}, "output": {"palindrome": true}}, {"input": {"sentence": "Rust"}, "output": {"palindrome": false}}]}"#;
    env.write("one.jsonl", format!("{request}\n"));
    let out = store_code(
        &env,
        "palindrome.py",
        PALINDROME,
        &["--domain", "text", "--operations", "validate"],
        "Palindrome checker ignoring case, spaces and punctuation",
    );
    let id = out.split_whitespace().nth(1).unwrap().to_string();
    let row = generate_one(&env, |_| {});
    assert_eq!(row["status"], "completed", "{row}");
    assert_eq!(row["examples_passed"], 2, "{row}");
    let output = code_generation_output(&env);
    assert!(output.contains(&format!("reused pattern {id}")), "{output}");
    assert!(output.contains("field text renamed sentence"), "{output}");
    let written = std::fs::read_to_string(
        std::fs::read_dir(env.path("nodes"))
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.path().join("v1_0_0/logic.py"))
            .find(|p| p.exists())
            .expect("the node's logic.py"),
    )
    .unwrap();
    assert!(written.contains("payload[\"sentence\"]"), "{written}");
}
