//! The CLI, end to end: ingest with every kind of bad input, the sink, SQL, topics, lake, simulate.

use std::collections::BTreeSet;
use std::io::Read;
use std::process::{Command, Stdio};

use crate::{Env, describe, model_call, uuid};

#[test]
fn ingest_accepts_good_lines_and_dead_letters_each_bad_one_with_its_reason() {
    let env = Env::new();
    let mut input = Vec::new();
    let good = |n: u64| {
        model_call(
            &uuid(n),
            "gpt-4o-mini",
            "2026-11-20T10:00:00Z",
            100.0 + n as f64,
        )
    };
    let lines: Vec<Vec<u8>> = vec![
        good(1).into_bytes(),                                                   // 1
        b"{\"model\": \"m\", \"latency_ms\": 1".to_vec(),                       // 2 malformed
        br#"{"model":"m","latency_ms":"slow","success":true}"#.to_vec(),        // 3 wrong type
        br#"{"latency_ms":1,"success":true}"#.to_vec(),                         // 4 missing model
        b"{\"model\":\"\xff\xfe\",\"latency_ms\":1,\"success\":true}".to_vec(), // 5 invalid UTF-8
        b"   ".to_vec(),                                                        // 6 blank: skipped
        good(2).into_bytes(),                                                   // 7
        b"42".to_vec(),                                                         // 8 not an object
    ];
    for l in &lines {
        input.extend_from_slice(l);
        input.push(b'\n');
    }
    let file = env.write("calls.jsonl", &input);
    let out = env.run(&["ingest", "model-call", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("2 accepted into onex.evt.codegen.model-call.v1, 5 rejected"),
        "{stdout}"
    );
    assert!(
        stdout.contains("line 3: wrong_type (latency_ms)"),
        "{stdout}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("error: 5 of 7 lines rejected"),
        "{stderr}"
    );

    env.ok(&["jobs", "run", "lake-sink", "--once"]);
    assert_eq!(env.sql_int("SELECT count(*) FROM model_call"), 2);
    let dead = env.sql(
        "SELECT line_number, error_kind, field, source_file, original_topic, raw_bytes, encode(raw, 'hex') AS raw_hex \
         FROM dead_letter ORDER BY line_number",
    );
    let kinds: Vec<(i64, &str)> = dead
        .iter()
        .map(|r| {
            (
                r["line_number"].as_i64().unwrap(),
                r["error_kind"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            (2, "malformed_json"),
            (3, "wrong_type"),
            (4, "missing_field"),
            (5, "invalid_utf8"),
            (8, "not_an_object")
        ]
    );
    for row in &dead {
        let n = row["line_number"].as_i64().unwrap() as usize;
        assert_eq!(row["source_file"].as_str().unwrap(), file.to_str().unwrap());
        assert_eq!(row["original_topic"].as_str().unwrap(), "model-call");
        // The line is kept byte for byte, invalid UTF-8 included.
        let hex: String = lines[n - 1].iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(row["raw_hex"].as_str().unwrap(), hex);
        assert_eq!(
            row["raw_bytes"].as_i64().unwrap() as usize,
            lines[n - 1].len()
        );
    }
    assert_eq!(dead[2]["field"].as_str(), Some("model"));

    // Ingesting the same file again (a retry) duplicates nothing, dead letters included.
    let out = env.run(&["ingest", "model-call", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    env.ok(&["jobs", "run", "lake-sink", "--once"]);
    assert_eq!(env.sql_int("SELECT count(*) FROM model_call"), 2);
    assert_eq!(env.sql_int("SELECT count(*) FROM dead_letter"), 5);
}

#[test]
fn an_unknown_topic_is_refused_before_any_input_is_read() {
    let env = Env::new();
    let file = env.write("calls.jsonl", b"{\"a\":1}\n{\"b\":2}\n");
    let out = env.run(&["ingest", "modle-call", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(
        stderr.starts_with(
            "error: unknown topic 'modle-call' (did you mean 'model-call'?); known topics: "
        ),
        "{stderr}"
    );
    assert!(stderr.contains("generation-requested"), "{stderr}");
    // A name close to none is not given a suggestion.
    let out = env.run(&["ingest", "zzz", file.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("error: unknown topic 'zzz'; known topics: "),
        "{stderr}"
    );
    // Nothing was appended anywhere.
    env.ok(&["jobs", "run", "lake-sink", "--once"]);
    assert_eq!(env.sql_int("SELECT count(*) FROM dead_letter"), 0);
    assert_eq!(env.sql_int("SELECT count(*) FROM model_call"), 0);
}

#[test]
fn an_empty_file_is_a_warning_not_an_error() {
    let env = Env::new();
    let file = env.write("empty.jsonl", b"");
    let out = env.run(&["ingest", "node-heartbeat", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is empty"));
    let missing = env.run(&["ingest", "node-heartbeat", "no-such-file.jsonl"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("opening no-such-file.jsonl"));
}

#[test]
fn a_fifty_megabyte_line_is_dead_lettered_whole_and_the_rest_goes_on() {
    let env = Env::new();
    let mut input = Vec::with_capacity(52 << 20);
    input.extend_from_slice(model_call(&uuid(1), "m", "2026-11-20T10:00:00Z", 1.0).as_bytes());
    input.push(b'\n');
    let big_start = input.len();
    input.extend_from_slice(b"{\"model\":\"");
    input.resize(input.len() + (50 << 20), b'x');
    input.extend_from_slice(b"\",\"latency_ms\":1,\"success\":true}");
    let big_len = (input.len() - big_start) as i64;
    input.push(b'\n');
    input.extend_from_slice(model_call(&uuid(2), "m", "2026-11-20T10:00:01Z", 1.0).as_bytes());
    let file = env.write("big.jsonl", &input);
    let out = env.run(&["ingest", "model_call", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    env.ok(&["jobs", "run", "lake-sink", "--once"]);
    assert_eq!(env.sql_int("SELECT count(*) FROM model_call"), 2);
    let row = &env.sql("SELECT error_kind, line_number, raw_bytes, octet_length(CAST(raw AS VARCHAR)) AS kept, raw_truncated FROM dead_letter")[0];
    assert_eq!(row["error_kind"], "too_large");
    assert_eq!(row["line_number"], 2);
    assert_eq!(row["raw_bytes"].as_i64().unwrap(), big_len);
    assert_eq!(row["kept"].as_i64().unwrap(), big_len);
    assert_eq!(row["raw_truncated"], false);
}

#[test]
fn out_of_order_events_and_retried_event_ids_land_once() {
    let env = Env::new();
    // Newest first, across two days, with the same event_id sent twice in the file and again in a second file.
    let lines: Vec<String> = (0..40)
        .rev()
        .map(|i| {
            model_call(
                &uuid(i),
                "m",
                &format!("2026-11-{:02}T23:59:{:02}Z", 20 + i % 2, i),
                i as f64,
            )
        })
        .collect();
    let mut first = lines.join("\n");
    first.push('\n');
    first.push_str(&lines[5]);
    let first = env.write("a.jsonl", first);
    let second = env.write("b.jsonl", lines[10..20].join("\n"));
    env.ok(&["ingest", "model-call", first.to_str().unwrap()]);
    env.ok(&["jobs", "run", "lake-sink", "--once"]);
    env.ok(&["ingest", "model-call", second.to_str().unwrap()]);
    env.ok(&["jobs", "run", "lake-sink", "--once"]);
    assert_eq!(env.sql_int("SELECT count(*) FROM model_call"), 40);
    assert_eq!(
        env.sql_int("SELECT count(DISTINCT event_id) FROM model_call"),
        40
    );
    assert_eq!(
        env.sql_int("SELECT count(*) FROM model_call WHERE date = '2026-11-21'"),
        20
    );
}

#[test]
fn sql_writes_every_format_and_errors_are_one_clear_line() {
    let env = Env::new();
    env.ok(&["simulate", "--generations", "30", "--nodes", "5"]);
    env.ok(&["jobs", "run", "lake-sink", "--once"]);
    let query = "SELECT model, count(*) AS calls FROM model_call GROUP BY model ORDER BY model";
    let table = env.ok(&["sql", query]);
    assert!(
        table.contains("calls") && table.contains("gpt-4o-mini"),
        "{table}"
    );
    let csv = env.ok(&["sql", "--format", "csv", query]);
    assert!(csv.starts_with("model,calls\n"), "{csv}");
    let ndjson = env.ok(&["sql", "--format", "ndjson", query]);
    let json = env.sql(query);
    assert_eq!(ndjson.lines().count(), json.len());
    let out = env.path("out.parquet");
    env.ok(&[
        "sql",
        "--format",
        "parquet",
        "--output",
        out.to_str().unwrap(),
        query,
    ]);
    let file = std::fs::File::open(&out).unwrap();
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap();
    let rows: usize = reader.map(|b| b.unwrap().num_rows()).sum();
    assert_eq!(rows, json.len());

    for (bad, needle) in [
        ("SELECT * FROM no_such_table", "no_such_table"),
        ("SELEC 1", "SELEC"),
        ("SELECT sum(model) FROM model_call", "sum"),
        ("DROP TABLE model_call", "read-only"),
        ("COPY model_call TO 'x.csv'", "read-only"),
    ] {
        let out = env.run(&["sql", bad]);
        assert_eq!(out.status.code(), Some(1), "{bad}: {}", describe(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.trim_end().lines().count(), 1, "{bad}: {stderr}");
        assert!(
            stderr.starts_with("error: ") && stderr.to_lowercase().contains(&needle.to_lowercase()),
            "{bad}: {stderr}"
        );
        assert!(
            !stderr.contains("backtrace") && !stderr.contains("panicked"),
            "{stderr}"
        );
    }
    assert!(!env.path("x.csv").exists());
}

#[test]
fn topics_show_partitions_end_offsets_lag_and_schemas() {
    let env = Env::new();
    env.ok(&["simulate", "--generations", "20", "--nodes", "3"]);
    let before = env.sql_topics();
    let calls = before.iter().find(|r| r["table"] == "model_call").unwrap();
    assert!(calls["end_offsets"].as_i64().unwrap() > 0);
    assert_eq!(calls["partitions"], 1);
    assert_eq!(calls["consumer_lag"], "-");
    env.ok(&["jobs", "run", "lake-sink", "--once"]);
    let after = env.sql_topics();
    let calls = after.iter().find(|r| r["table"] == "model_call").unwrap();
    assert_eq!(calls["consumer_lag"], "lake-sink: 0");
    env.ok(&[
        "simulate",
        "--generations",
        "5",
        "--nodes",
        "0",
        "--seed",
        "9",
    ]);
    let later = env.sql_topics();
    let calls = later.iter().find(|r| r["table"] == "model_call").unwrap();
    assert_ne!(calls["consumer_lag"], "lake-sink: 0");

    let schema = env.ok(&["topics", "--schema", "model-call", "--format", "csv"]);
    insta::assert_snapshot!("model_call_schema", schema);
    let out = env.run(&["topics", "--schema", "model-cal"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("unknown topic 'model-cal' (did you mean 'model-call'?)")
    );
}

impl Env {
    fn sql_topics(&self) -> Vec<serde_json::Map<String, serde_json::Value>> {
        let out = self.ok(&["topics", "--format", "json"]);
        serde_json::from_str::<Vec<serde_json::Value>>(&out)
            .unwrap()
            .into_iter()
            .map(|v| v.as_object().unwrap().clone())
            .collect()
    }
}

#[test]
fn lake_tables_report_and_compaction_keeps_every_row() {
    let env = Env::new();
    for seed in 0..4 {
        env.ok(&[
            "simulate",
            "--generations",
            "10",
            "--nodes",
            "2",
            "--seed",
            &seed.to_string(),
        ]);
        env.ok(&["jobs", "run", "lake-sink", "--once"]);
    }
    let tables = env.ok(&["lake", "tables", "--format", "json"]);
    let tables: Vec<serde_json::Value> = serde_json::from_str(&tables).unwrap();
    let calls = tables.iter().find(|t| t["table"] == "model_call").unwrap();
    assert_eq!(calls["files"], 4);
    // Every table's row count, checked by DuckDB reading the Parquet files itself.
    for t in &tables {
        let (table, rows) = (t["table"].as_str().unwrap(), t["rows"].as_i64().unwrap());
        let dir = env.data().join("lake").join(table);
        let files = walk_parquet(&dir);
        if rows == 0 {
            assert!(
                files.is_empty(),
                "{table}: 0 rows reported, files {files:?}"
            );
            continue;
        }
        let counted = crate::reducers::duckdb(
            &env,
            &format!("SELECT count(*) AS n FROM read_parquet('{{lake}}/{table}/*/*.parquet')"),
        );
        assert_eq!(counted[0]["n"].as_i64(), Some(rows), "{table}");
    }
    assert!(
        calls["first_event"]
            .as_str()
            .unwrap()
            .starts_with("2026-11-01")
    );
    // An integer sum (microseconds): a float sum depends on the order rows are added in, which
    // changes with the files' boundaries.
    let checksum = "SELECT count(*) AS n, sum(CAST(round(latency_ms * 1000) AS BIGINT)) AS s, \
                    count(DISTINCT event_id) AS d FROM model_call";
    let before = env.sql(checksum);
    let out = env.ok(&["lake", "compact", "model_call"]);
    assert!(out.contains("4 files -> 1 files"), "{out}");
    assert_eq!(env.sql(checksum), before);
    let parts = std::fs::read_dir(env.data().join("lake/model_call/date=2026-11-01"))
        .unwrap()
        .count();
    assert_eq!(parts, 1);
    assert!(
        env.ok(&["lake", "compact", "model_call"])
            .contains("nothing to do")
    );
    let out = env.run(&["lake", "compact", "no_table"]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn simulate_is_seeded_and_covers_the_platform() {
    let a = Env::new();
    let b = Env::new();
    for env in [&a, &b] {
        env.ok(&[
            "simulate",
            "--generations",
            "40",
            "--nodes",
            "6",
            "--seed",
            "11",
        ]);
        env.ok(&["jobs", "run", "lake-sink", "--once"]);
    }
    let ids = |env: &Env| {
        env.ok(&[
            "sql",
            "--format",
            "csv",
            "SELECT event_id, emitted_at FROM model_call ORDER BY event_id",
        ])
    };
    assert_eq!(ids(&a), ids(&b));
    let c = Env::new();
    c.ok(&[
        "simulate",
        "--generations",
        "40",
        "--nodes",
        "6",
        "--seed",
        "12",
    ]);
    c.ok(&["jobs", "run", "lake-sink", "--once"]);
    assert_ne!(ids(&a), ids(&c));
    let models: BTreeSet<String> = a
        .sql("SELECT DISTINCT model FROM model_call")
        .iter()
        .map(|r| r["model"].as_str().unwrap().to_string())
        .collect();
    // What the workload of seed 11 gives: every simulated model, three failed calls, every node.
    assert_eq!(models.len(), 6, "{models:?}");
    assert_eq!(
        a.sql_int("SELECT count(*) FROM model_call WHERE NOT success"),
        3
    );
    assert_eq!(
        a.sql_int("SELECT count(DISTINCT node_id) FROM node_heartbeat"),
        6
    );
    assert_eq!(a.sql_int("SELECT count(*) FROM generation_requested"), 40);
    assert_eq!(
        a.sql_int("SELECT (SELECT count(*) FROM generation_completed) + (SELECT count(*) FROM generation_failed)"),
        40
    );
}

#[test]
fn follow_mode_lands_new_events_and_stops_cleanly_on_sigterm() {
    let env = Env::new();
    let sink = crate::Running::spawn(
        env.cmd(&["jobs", "run", "lake-sink"])
            .stdout(Stdio::piped()),
    );
    env.ok(&["simulate", "--generations", "5", "--nodes", "1"]);
    let expected = {
        let out = env.ok(&["topics", "--format", "json"]);
        let v: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
        v.iter().find(|t| t["table"] == "model_call").unwrap()["end_offsets"]
            .as_i64()
            .unwrap()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while env.sql_int("SELECT count(*) FROM model_call") < expected {
        assert!(
            std::time::Instant::now() < deadline,
            "follow mode did not land the events"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    super::terminate(&sink);
    let out = sink.wait_with_output();
    assert!(out.status.success(), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("lake-sink:"));
    // A second sink can start once the first has stopped (its lock is released).
    env.ok(&["jobs", "run", "lake-sink", "--once"]);
}

#[test]
fn help_teaches_and_bad_usage_is_explained() {
    let env = Env::new();
    let help = env.ok(&["--help"]);
    insta::assert_snapshot!("help", help);
    let out = env.run(&["jobs", "run", "no-such-job", "--once"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains(
        "unknown job 'no-such-job' (jobs: lake-sink, codegen, patterns, model_performance"
    ));
    let out = env
        .cmd(&["sql", "SELECT 1"])
        .env("OMNISTREAM_LOG__FSNC", "false")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("fsnc"),
        "{}",
        describe(&out)
    );
}

#[test]
fn a_relative_data_dir_works_from_any_working_directory() {
    let env = Env::new();
    let run = |args: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_omnistream"));
        let out = cmd
            .current_dir(env.dir.path())
            .args(["--data-dir", "relative-data"])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", describe(&out));
        String::from_utf8(out.stdout).unwrap()
    };
    run(&["simulate", "--generations", "3", "--nodes", "1"]);
    run(&["jobs", "run", "lake-sink", "--once"]);
    let out = run(&[
        "sql",
        "--format",
        "csv",
        "SELECT count(*) AS n FROM generation_requested",
    ]);
    assert_eq!(out, "n\n3\n");
    assert!(
        env.dir
            .path()
            .join("relative-data/lake/generation_requested")
            .is_dir()
    );
}

#[test]
fn every_lake_table_exports_through_every_output_format() {
    let env = Env::new();
    env.ok(&["simulate", "--generations", "20"]);
    env.ok(&["jobs", "run", "all", "--once"]);
    let tables = env.sql_rows_of(&["lake", "tables", "--format", "json"]);
    assert!(tables.len() >= 12, "{tables:?}");
    let mut nested_seen = 0;
    for t in &tables {
        let table = t["table"].as_str().unwrap();
        let rows = t["rows"].as_u64().unwrap();
        let query = format!("SELECT * FROM {table}");
        for format in ["table", "csv", "json", "ndjson", "parquet"] {
            let file = env.path(&format!("{table}.{format}"));
            let out = env.run(&[
                "sql",
                "--format",
                format,
                "--max-rows",
                "1000000",
                "-o",
                file.to_str().unwrap(),
                &query,
            ]);
            assert!(
                out.status.success(),
                "{table} as {format}: {}",
                describe(&out)
            );
        }
        // CSV: every row back, nested values as JSON text (as DuckDB writes them).
        let csv = std::fs::File::open(env.path(&format!("{table}.csv"))).unwrap();
        let (schema, _) = arrow::csv::reader::Format::default()
            .with_header(true)
            .infer_schema(
                std::fs::File::open(env.path(&format!("{table}.csv"))).unwrap(),
                None,
            )
            .unwrap();
        let reader = arrow::csv::ReaderBuilder::new(std::sync::Arc::new(schema.clone()))
            .with_header(true)
            .build(csv)
            .unwrap();
        let batches: Vec<_> = reader.map(Result::unwrap).collect();
        let read: usize = batches.iter().map(|b| b.num_rows()).sum();
        assert_eq!(read as u64, rows, "{table}: rows read back from CSV");
        let json: Vec<serde_json::Value> =
            serde_json::from_slice(&std::fs::read(env.path(&format!("{table}.json"))).unwrap())
                .unwrap();
        assert_eq!(json.len() as u64, rows, "{table}: rows read back from JSON");
        for (name, value) in json
            .first()
            .and_then(|r| r.as_object())
            .into_iter()
            .flatten()
        {
            if !(value.is_array() || value.is_object()) {
                continue;
            }
            // The CSV cell of a nested column holds the same value as JSON text.
            let column = batches[0]
                .column_by_name(name)
                .unwrap_or_else(|| panic!("{table}.{name} in the CSV"));
            let cell = arrow::util::display::array_value_to_string(column, 0).unwrap();
            let parsed: serde_json::Value = serde_json::from_str(&cell)
                .unwrap_or_else(|e| panic!("{table}.{name}: {cell:?} is not JSON: {e}"));
            assert_eq!(&parsed, value, "{table}.{name}");
            nested_seen += 1;
        }
    }
    assert!(nested_seen > 0, "some table has a nested column");
}

#[test]
fn a_closed_pipe_ends_output_quietly_and_loses_nothing() {
    let env = Env::new();
    env.ok(&["simulate", "--generations", "200"]);
    env.ok(&["jobs", "run", "lake-sink", "--once"]);
    // More than a pipe holds, so the writer sees the reader go away.
    for format in ["csv", "table", "json"] {
        let mut child = env
            .cmd(&[
                "sql",
                "--format",
                format,
                "--max-rows",
                "1000000",
                "SELECT * FROM model_call",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = [0u8; 16];
        child.stdout.take().unwrap().read_exact(&mut first).unwrap();
        // The read end is dropped here: the rest of the output has nowhere to go.
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{format}: {}", describe(&out));
        assert_eq!(String::from_utf8_lossy(&out.stderr), "", "{format}");
    }
    // A generation whose reader went away still ends with its end event.
    let mut child = env
        .cmd(&[
            "generate",
            "Create PostgreSQL writer Effect node",
            "--format",
            "table",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
    env.ok(&["jobs", "run", "lake-sink", "--once"]);
    assert_eq!(
        env.sql_int(
            "SELECT count(*) FROM generation_completed WHERE source = 'omnistream-codegen'"
        ),
        1
    );
}

/// The Parquet files under a table's directory.
fn walk_parquet(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk_parquet(&path));
        } else if path.extension().is_some_and(|e| e == "parquet") {
            out.push(path);
        }
    }
    out
}

impl Env {
    fn sql_rows_of(&self, args: &[&str]) -> Vec<serde_json::Map<String, serde_json::Value>> {
        let out = self.ok(args);
        serde_json::from_str::<Vec<serde_json::Value>>(&out)
            .unwrap_or_else(|e| panic!("{e}: {out}"))
            .into_iter()
            .map(|v| v.as_object().unwrap().clone())
            .collect()
    }
}

#[test]
fn a_full_disk_stops_ingest_with_the_line_to_resume_from_and_the_resume_loses_nothing() {
    if !crate::can_mount_tmpfs() {
        eprintln!("skipped: this machine does not allow a user namespace to mount a tmpfs");
        return;
    }
    let env = Env::new();
    // Events without an event_id: a full re-run would duplicate them, a resume must not.
    let lines: Vec<String> = (0..20_000)
        .map(|i| {
            serde_json::json!({
                "correlation_id": format!("c-{i}"), "emitted_at": "2026-11-20T10:00:00Z",
                "model": "m", "latency_ms": i, "success": true, "input_tokens": 10,
                "output_tokens": 5, "error_type": "x".repeat(48),
            })
            .to_string()
        })
        .collect();
    let input = env.write("calls.jsonl", lines.join("\n") + "\n");
    let data = env.data();
    std::fs::create_dir_all(&data).unwrap();
    // One mount namespace for the whole story: a 1 MiB filesystem fills up during the first
    // ingest, then grows, and the printed resume command finishes the work.
    let script = r#"
        set -u
        mount -t tmpfs -o size=1m tmpfs "$DATA" || exit 90
        "$BIN" --data-dir "$DATA" ingest model-call "$INPUT" --progress none >first.out 2>first.err
        echo $? >first.rc
        mount -o remount,size=256m "$DATA" || exit 91
        line=$(sed -n 's/.*--from-line \([0-9][0-9]*\).*/\1/p' first.err)
        "$BIN" --data-dir "$DATA" ingest model-call "$INPUT" --progress none --from-line "$line" >second.out 2>&1 || exit 92
        "$BIN" --data-dir "$DATA" jobs run lake-sink --once >/dev/null 2>&1 || exit 93
        "$BIN" --data-dir "$DATA" sql --format csv "SELECT count(*) AS n, count(DISTINCT correlation_id) AS d FROM model_call" >count.csv 2>&1 || exit 94
    "#;
    let status = env
        .in_mount_namespace(script)
        .env("INPUT", &input)
        .env("OMNISTREAM_INGEST__BATCH_ROWS", "500")
        .status()
        .unwrap();
    let read = |name: &str| std::fs::read_to_string(env.path(name)).unwrap_or_default();
    assert!(
        status.success(),
        "{status}: first: {} second: {} count: {}",
        read("first.err"),
        read("second.out"),
        read("count.csv")
    );
    assert_eq!(read("first.rc").trim(), "1", "{}", read("first.err"));
    let first = read("first.err");
    let mut err_lines = first.lines();
    let head = err_lines.next().unwrap_or_default();
    assert!(
        head.starts_with("error: ingest stopped: ") && head.contains("--from-line "),
        "{first}"
    );
    assert!(first.contains("No space left on device"), "{first}");
    let resumed_at: u64 = head
        .rsplit("--from-line ")
        .next()
        .and_then(|n| n.trim().parse().ok())
        .unwrap();
    assert!(
        resumed_at > 1 && resumed_at < 20_000,
        "the disk filled part way: {first}"
    );
    let acknowledged: u64 = head
        .trim_start_matches("error: ingest stopped: ")
        .split(' ')
        .next()
        .unwrap()
        .replace(',', "")
        .parse()
        .unwrap();
    assert_eq!(
        acknowledged,
        resumed_at - 1,
        "every line before the resume line was an event"
    );
    assert_eq!(
        read("count.csv"),
        "n,d\n20000,20000\n",
        "every line once, none twice"
    );
}
