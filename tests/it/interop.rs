//! The lake is plain Hive-partitioned Parquet: DuckDB, polars and pyarrow read it unchanged.
//! Needs the Python packages that `scripts/setup.sh` installs.

use std::path::Path;
use std::process::Output;

use crate::Env;

/// `python -c SCRIPT` (the interpreter of $OMNISTREAM_PYTHON), which must succeed.
fn python(script: &str, env: &[(&str, &Path)]) -> Output {
    let out = std::process::Command::new(
        std::env::var("OMNISTREAM_PYTHON").unwrap_or_else(|_| "python3".into()),
    )
    .arg("-c")
    .arg(script)
    .envs(env.iter().copied())
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "python failed (run scripts/setup.sh):\n{}",
        crate::describe(&out)
    );
    out
}

#[test]
fn duckdb_polars_and_pyarrow_read_the_lake_and_agree_with_omnistream() {
    let env = Env::new();
    env.ok(&["simulate", "--generations", "60", "--nodes", "4"]);
    env.ok(&["jobs", "run", "lake-sink", "--once"]);
    let ours = env.sql("SELECT count(*) AS n, round(sum(latency_ms), 3) AS s FROM model_call");
    let (n, s) = (
        ours[0]["n"].as_i64().unwrap(),
        ours[0]["s"].as_f64().unwrap(),
    );
    let lake = env.data().join("lake");
    let script = format!(
        r#"
import duckdb, polars as pl, pyarrow.dataset as ds
lake = "{lake}"
d = duckdb.sql(f"SELECT count(*), round(sum(latency_ms), 3), min(date)::VARCHAR FROM read_parquet('{{lake}}/model_call/*/*.parquet', hive_partitioning=true)").fetchall()[0]
p = pl.scan_parquet(f"{{lake}}/model_call/**/*.parquet", hive_partitioning=True).select(pl.len(), pl.col("latency_ms").sum().round(3)).collect().row(0)
t = ds.dataset(f"{{lake}}/model_call", format="parquet", partitioning="hive").to_table()
ts = str(t.schema.field("emitted_at").type)
print(d[0], d[1], d[2], p[0], p[1], t.num_rows, ts)
"#,
        lake = lake.display()
    );
    let out = python(&script, &[]);
    let text = String::from_utf8(out.stdout).unwrap();
    let f: Vec<&str> = text.split_whitespace().collect();
    assert_eq!(f[0].parse::<i64>().unwrap(), n, "duckdb count: {text}");
    assert!(
        (f[1].parse::<f64>().unwrap() - s).abs() < 1e-6,
        "duckdb sum: {text}"
    );
    assert_eq!(f[2], "2026-11-01", "duckdb hive partition: {text}");
    assert_eq!(f[3].parse::<i64>().unwrap(), n, "polars count: {text}");
    assert!(
        (f[4].parse::<f64>().unwrap() - s).abs() < 1e-6,
        "polars sum: {text}"
    );
    assert_eq!(f[5].parse::<i64>().unwrap(), n, "pyarrow rows: {text}");
    assert_eq!(
        (f[6], f[7]),
        ("timestamp[us,", "tz=UTC]"),
        "pyarrow time type: {text}"
    );
}

/// `bench ingest` end to end at a small size: the same events landed by omnistream and converted
/// by DuckDB (the bench fails unless both hold every event), with wall and CPU time for each side.
#[test]
fn bench_ingest_lands_the_events_and_reports_time_and_cpu_for_both_sides() {
    let env = Env::new();
    let dir = env.path("bench");
    let out = env.ok(&[
        "bench",
        "ingest",
        "--events",
        "3000",
        "--runs",
        "1",
        "--dir",
        dir.to_str().unwrap(),
    ]);
    let line = |label: &str| {
        out.lines()
            .map(str::trim_start)
            .find(|l| l.starts_with(label))
            .unwrap_or_else(|| panic!("no '{label}' line in:\n{out}"))
            .to_string()
    };
    // Every number on a line, in order.
    let numbers = |line: &str| -> Vec<f64> {
        line.split(|c: char| !(c.is_ascii_digit() || c == '.'))
            .filter_map(|w| w.parse().ok())
            .collect()
    };
    let total = numbers(&line("omnistream total"));
    let ratio = numbers(&line("ratio:"));
    let cpu = numbers(&line("CPU time:"));
    assert!(total[0] > 0.0, "{out}");
    assert!(ratio[0] > 0.0, "{out}");
    // omnistream's CPU, DuckDB's, and their ratio, which must agree (up to the rounding of the
    // printed seconds, a few percent at this size).
    assert!(cpu.len() == 3 && cpu[0] > 0.0 && cpu[1] > 0.0, "{out}");
    assert!((cpu[0] / cpu[1] / cpu[2] - 1.0).abs() < 0.05, "{out}");
}

/// lancedb for Python (PyPI's newest, one release behind the Rust crate) opens the pattern table
/// the binary wrote: the same rows, the embedder recorded in the schema, and the same answers from
/// the full-text index and from a vector search.
#[test]
fn lancedb_python_reads_the_pattern_table_and_its_indexes() {
    let env = Env::new();
    let codes = [
        (
            "checksum.py",
            "import hashlib\n\n\ndef run(operation: str, payload: dict) -> dict:\n    \"\"\"Digest.\"\"\"\n    return {\"sha256\": hashlib.sha256(str(payload[\"content\"]).encode()).hexdigest()}\n",
            "sha256 checksum of uploaded content",
        ),
        (
            "size.py",
            "def run(operation: str, payload: dict) -> dict:\n    \"\"\"Size.\"\"\"\n    return {\"size\": len(str(payload[\"content\"]))}\n",
            "size of uploaded content in bytes",
        ),
        (
            "sender.py",
            "def run(operation: str, payload: dict) -> dict:\n    \"\"\"Queue.\"\"\"\n    return {\"queued\": [payload[\"to\"]]}\n",
            "queue an email message for a recipient",
        ),
    ];
    for (file, code, description) in codes {
        crate::patterns::store_code(&env, file, code, &["--domain", "files"], description);
    }
    let ours: Vec<serde_json::Value> =
        serde_json::from_str(&env.ok(&["patterns", "list", "--format", "json"])).unwrap();
    let mut ids: Vec<&str> = ours
        .iter()
        .map(|p| p["pattern_id"].as_str().unwrap())
        .collect();
    ids.sort();
    let text: Vec<serde_json::Value> = serde_json::from_str(&env.ok(&[
        "patterns",
        "query",
        "uploaded content sha256",
        "--mode",
        "text",
        "--format",
        "json",
    ]))
    .unwrap();
    let text_ids: Vec<&str> = text
        .iter()
        .map(|p| p["pattern_id"].as_str().unwrap())
        .collect();
    let script = format!(
        r#"
import json, lancedb, numpy as np
t = lancedb.connect("{dir}").open_table("patterns")
rows = t.to_arrow()
meta = {{k.decode(): v.decode() for k, v in (rows.schema.metadata or {{}}).items()}}
ids = sorted(rows.column("pattern_id").to_pylist())
fts = t.search("uploaded content sha256", query_type="fts").limit(5).to_arrow().column("pattern_id").to_pylist()
vectors = np.array(rows.column("embedding").to_pylist(), dtype=np.float32)
probe = vectors[0]
exact = [rows.column("pattern_id")[int(i)].as_py() for i in np.argsort(-(vectors @ probe))]
ann = t.search(probe.tolist()).distance_type("cosine").limit(3).to_arrow().column("pattern_id").to_pylist()
print(json.dumps({{"ids": ids, "embedder": meta.get("omnistream.embedder"), "dim": meta.get("omnistream.embedding_dim"), "fts": fts, "exact": exact, "ann": ann, "version": lancedb.__version__}}))
"#,
        dir = env.data().join("patterns").display()
    );
    let out = python(&script, &[]);
    let py: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(py["ids"], serde_json::json!(ids), "{py}");
    assert_eq!(
        (py["embedder"].as_str(), py["dim"].as_str()),
        (Some("hashing"), Some("384")),
        "{py}"
    );
    assert_eq!(py["fts"], serde_json::json!(text_ids), "{py}");
    assert_eq!(py["ann"], py["exact"], "{py}");
}

/// notebooks/patterns.ipynb runs against a store the binary wrote (its code cells in order, as a
/// script), so the notebook a user opens does not rot.
#[test]
fn the_patterns_notebook_runs_against_a_real_store() {
    let env = Env::new();
    crate::patterns::store_code(
        &env,
        "checksum.py",
        "import hashlib\n\n\ndef run(operation: str, payload: dict) -> dict:\n    \"\"\"Digest.\"\"\"\n    return {\"sha256\": hashlib.sha256(str(payload[\"content\"]).encode()).hexdigest()}\n",
        &["--domain", "files"],
        "sha256 checksum of uploaded content",
    );
    let path = crate::repo_root().join("notebooks/patterns.ipynb");
    let nb: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let script: String = nb["cells"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["cell_type"] == "code")
        .map(|c| {
            let lines: Vec<&str> = c["source"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|l| l.as_str())
                .collect();
            lines.concat() + "\n"
        })
        .collect();
    let data = env.data();
    let out = python(&script, &[("OMNISTREAM_DATA_DIR", data.as_path())]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("1 patterns, embedded with hashing 384"),
        "{text}"
    );
    assert!(
        text.contains("sha256 checksum of uploaded content"),
        "{text}"
    );
}
