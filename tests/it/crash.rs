//! Crash safety: `kill -9` of real `omnistream` processes in the middle of their work, in every
//! process that commits: ingest, the lake-sink, a reducer's commit, `lake compact` and the codegen
//! job with generated tests on.
//!
//! A kill counts as a kill point only when it cut work in half: the process was killed (it had not
//! finished), it had acknowledged or committed something since it started, and work was left (what
//! it acknowledged or committed is read from outside the process at the kill). Each test runs until
//! it has its quota of such kill points (100 in all); the delay before each kill adapts to where the
//! previous one landed. After the kills every raw table, the dead-letter table and the derived
//! tables are checked against DuckDB reading the Parquet files (an oracle that shares no code with
//! omnistream), and no staging directory may hold anything.
//!
//! `OMNISTREAM_CRASH_SEED` replays a run (each test prints its seed).

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::Value;

use crate::reducers::{assert_reducers_agree_with_duckdb, assert_unique_keys, duckdb};
use crate::{Env, describe};

/// How one kill ended.
struct Cut {
    /// Killed by the signal, not exited on its own.
    killed: bool,
    /// The last `acked_lines` an ingest printed before it died.
    acked_lines: usize,
}

/// The kill points of one kind of process, and the delay that makes the next kill land mid-work.
struct KillPoints {
    what: &'static str,
    quota: usize,
    counted: usize,
    tried: usize,
    delay_ms: f64,
    rng: ChaCha8Rng,
    seed: u64,
}

impl KillPoints {
    fn new(what: &'static str, quota: usize, delay_ms: f64, seed: u64) -> KillPoints {
        KillPoints {
            what,
            quota,
            counted: 0,
            tried: 0,
            delay_ms,
            rng: ChaCha8Rng::seed_from_u64(seed ^ (what.len() as u64).rotate_left(17)),
            seed,
        }
    }

    /// Whether more kill points are wanted; fails when kills keep missing the work.
    fn wanted(&self) -> bool {
        assert!(
            self.tried < self.quota * 8,
            "seed {}: only {} of {} kills of {} cut work in half",
            self.seed,
            self.counted,
            self.tried,
            self.what
        );
        self.counted < self.quota
    }

    /// Start `cmd` and kill it with SIGKILL after about the current delay.
    fn kill(&mut self, mut cmd: Command) -> Cut {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let acked = Arc::new(Mutex::new(0usize));
        let stdout = child.stdout.take().unwrap();
        let reader = {
            let acked = acked.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if let Ok(v) = serde_json::from_str::<Value>(&line)
                        && let Some(n) = v["acked_lines"].as_u64()
                    {
                        *acked.lock().unwrap() = n as usize;
                    }
                }
            })
        };
        let jitter = self.rng.random_range(0.5..1.5);
        std::thread::sleep(Duration::from_secs_f64(self.delay_ms * jitter / 1000.0));
        let _ = child.kill();
        let status = child.wait().unwrap();
        reader.join().unwrap();
        let acked_lines = *acked.lock().unwrap();
        Cut {
            killed: status.signal() == Some(9),
            acked_lines,
        }
    }

    /// Count the kill if it cut work in half (`done` committed since the start, `left` still to
    /// do), and move the delay towards the middle of the work.
    fn record(&mut self, cut: &Cut, done: u64, left: u64) {
        self.tried += 1;
        let counted = cut.killed && done > 0 && left > 0;
        if !cut.killed || left == 0 {
            self.delay_ms *= 0.75;
        } else if done == 0 {
            self.delay_ms *= 1.3;
        }
        self.delay_ms = self.delay_ms.clamp(5.0, 10_000.0);
        self.counted += counted as usize;
        eprintln!(
            "{} kill {}: killed={} committed={done} left={left} counted={counted} (next ~{:.0} ms)",
            self.what, self.tried, cut.killed, self.delay_ms
        );
    }
}

fn seed(test: &str) -> u64 {
    crate::replay_seed("OMNISTREAM_CRASH_SEED", test)
}

/// A job's committed offsets and its lag, as `jobs status` reports them.
fn job_progress(env: &Env, job: &str) -> (u64, u64) {
    let rows: Vec<Value> =
        serde_json::from_str(&env.ok(&["jobs", "status", job, "--format", "json"])).unwrap();
    let committed = rows[0]["committed_offsets"]
        .as_str()
        .unwrap()
        .replace(',', "")
        .parse()
        .unwrap();
    (committed, rows[0]["lag"].as_u64().unwrap())
}

/// Files left in a staging directory (the lake's writers' and the codegen job's): after a clean
/// run of every process that was killed, there must be none.
fn staged_leftovers(env: &Env) -> Vec<PathBuf> {
    fn walk(dir: &Path, staging: bool, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.map_while(Result::ok) {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            let inside = staging || name == "staging" || name == ".omnistream-staging";
            if path.is_dir() {
                walk(&path, inside, out);
            } else if staging {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(env.dir.path(), false, &mut out);
    out
}

fn assert_nothing_staged(env: &Env, context: &str) {
    let left = staged_leftovers(env);
    assert!(left.is_empty(), "{context}: left in staging: {left:?}");
}

/// `count(*)` and `count(DISTINCT event_id)` of a raw table, read by DuckDB from its Parquet files.
fn duckdb_counts(env: &Env, table: &str) -> (i64, i64) {
    let rows = duckdb(
        env,
        &format!(
            "SELECT count(*) AS n, count(DISTINCT event_id) AS d \
             FROM read_parquet('{{lake}}/{table}/*/*.parquet', hive_partitioning = true)"
        ),
    );
    (
        rows[0]["n"].as_i64().unwrap(),
        rows[0]["d"].as_i64().unwrap(),
    )
}

// ---------------------------------------------------------------------------------------------
// ingest and the lake-sink

/// One slice of an input file: its path and, per line, the event id (None for a line that is
/// meant to be dead-lettered).
struct Slice {
    path: PathBuf,
    lines: Vec<Option<String>>,
}

struct Input {
    table: &'static str,
    slices: Vec<Slice>,
    next: usize,
}

/// Cut a simulated table into slices, with two lines per slice that cannot be accepted.
fn slice_input(dir: &Path, table: &'static str, slice_lines: usize) -> Input {
    let text = std::fs::read_to_string(dir.join(format!("{table}.jsonl"))).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let slices = lines
        .chunks(slice_lines)
        .enumerate()
        .map(|(i, chunk)| {
            let mut text: Vec<String> = chunk.iter().map(|l| l.to_string()).collect();
            text.insert(text.len() / 3, format!("{{\"event_id\": \"broken-{i}\""));
            text.insert(text.len() * 2 / 3, "[\"not\", \"an\", \"object\"]".into());
            let path = dir.join(format!("{table}-{i:03}.jsonl"));
            std::fs::write(&path, text.join("\n")).unwrap();
            let lines = text
                .iter()
                .map(|l| {
                    serde_json::from_str::<Value>(l)
                        .ok()
                        .and_then(|v| v["event_id"].as_str().map(str::to_string))
                })
                .collect();
            Slice { path, lines }
        })
        .collect();
    Input {
        table,
        slices,
        next: 0,
    }
}

/// What producers have had acknowledged: event ids per table, and the dead-lettered lines as
/// (file, 1-based line number).
#[derive(Default)]
struct Acked {
    ids: [HashSet<String>; 2],
    dead: HashSet<(String, i64)>,
}

impl Acked {
    fn take(&mut self, which: usize, slice: &Slice, lines: usize) {
        for (i, line) in slice.lines[..lines].iter().enumerate() {
            match line {
                Some(id) => {
                    self.ids[which].insert(id.clone());
                }
                None => {
                    let file = slice.path.to_str().unwrap().to_string();
                    self.dead.insert((file, i as i64 + 1));
                }
            }
        }
    }
}

/// Small batches and frequent commits and rolls, so a kill lands in the middle of real work.
fn tune(cmd: &mut Command) -> &mut Command {
    cmd.env("OMNISTREAM_INGEST__BATCH_ROWS", "40")
        .env("OMNISTREAM_SINK__MAX_BATCH_ROWS", "60")
        .env("OMNISTREAM_SINK__ROLL_FILES", "3")
}

fn sink_once(env: &Env, context: &str) {
    let mut clean = env.cmd(&["jobs", "run", "lake-sink", "--once"]);
    let out = tune(&mut clean).output().unwrap();
    assert!(
        out.status.success(),
        "{context}: the sink did not recover:\n{}",
        describe(&out)
    );
}

/// Every acknowledged event (and dead letter) is in the lake exactly once, and nothing else is.
fn assert_lake_holds(env: &Env, inputs: &[Input; 2], acked: &Acked, context: &str) {
    for (i, input) in inputs.iter().enumerate() {
        let rows = env.sql(&format!("SELECT event_id FROM {}", input.table));
        let landed: Vec<&str> = rows
            .iter()
            .map(|r| r["event_id"].as_str().unwrap())
            .collect();
        let unique: HashSet<&str> = landed.iter().copied().collect();
        assert_eq!(
            landed.len(),
            unique.len(),
            "{context}: duplicates in {}",
            input.table
        );
        let missing = acked.ids[i]
            .iter()
            .filter(|id| !unique.contains(id.as_str()))
            .count();
        assert_eq!(
            missing, 0,
            "{context}: {missing} acknowledged events missing from {}",
            input.table
        );
        let sent: HashSet<&str> = input
            .slices
            .iter()
            .flat_map(|s| s.lines.iter().flatten().map(String::as_str))
            .collect();
        assert!(
            unique.is_subset(&sent),
            "{context}: {} holds events nobody sent",
            input.table
        );
    }
    let dead = env.sql("SELECT source_file, line_number FROM dead_letter");
    let landed: Vec<(String, i64)> = dead
        .iter()
        .map(|r| {
            (
                r["source_file"].as_str().unwrap().to_string(),
                r["line_number"].as_i64().unwrap(),
            )
        })
        .collect();
    let unique: HashSet<(String, i64)> = landed.iter().cloned().collect();
    assert_eq!(
        landed.len(),
        unique.len(),
        "{context}: duplicate dead letters"
    );
    assert!(
        acked.dead.is_subset(&unique),
        "{context}: {} acknowledged dead letters missing",
        acked.dead.difference(&unique).count()
    );
}

#[test]
fn nothing_acknowledged_is_lost_or_duplicated_across_kill_9_of_ingest_and_the_sink() {
    let seed = seed("ingest and sink");
    let env = Env::new();
    let jsonl = env.path("jsonl");
    env.ok(&[
        "simulate",
        "--generations",
        "6000",
        "--nodes",
        "40",
        "--jsonl-dir",
        jsonl.to_str().unwrap(),
        "--duplicate-fraction",
        "0.01",
        "--late-fraction",
        "0.02",
    ]);
    let mut inputs = [
        slice_input(&jsonl, "model_call", 600),
        slice_input(&jsonl, "node_heartbeat", 300),
    ];
    let mut acked = Acked::default();
    let mut ingests = KillPoints::new("ingest", 30, 60.0, seed);
    let mut sinks = KillPoints::new("lake-sink", 30, 80.0, seed);
    let mut round = 0;
    while ingests.wanted() || sinks.wanted() {
        let context = format!("seed {seed}, round {round}");
        let which = round % 2;
        let input = &mut inputs[which];
        let slice = &input.slices[input.next % input.slices.len()];
        input.next += 1;
        let (table, path) = (input.table, slice.path.to_str().unwrap());

        // 1. Kill the ingest of a fresh slice.
        let mut cmd = env.cmd(&["ingest", table, path, "--progress", "json"]);
        tune(&mut cmd);
        let cut = ingests.kill(cmd);
        let left = slice.lines.len() - cut.acked_lines;
        ingests.record(&cut, cut.acked_lines as u64, left as u64);
        acked.take(which, slice, cut.acked_lines);

        // 2. Kill the sink while it lands what the ingest appended.
        let (before, _) = job_progress(&env, "lake-sink");
        let mut cmd = env.cmd(&["jobs", "run", "lake-sink", "--once"]);
        tune(&mut cmd);
        let cut = sinks.kill(cmd);
        let (at_kill, lag) = job_progress(&env, "lake-sink");
        sinks.record(&cut, at_kill.saturating_sub(before), lag);

        // 3. After a restart, every acknowledged event is in the lake exactly once.
        sink_once(&env, &context);
        assert_lake_holds(&env, &inputs, &acked, &context);

        // 4. The producer retries the slice until it is acknowledged whole.
        let input = &inputs[which];
        let slice = &input.slices[(input.next - 1) % input.slices.len()];
        let mut retry = env.cmd(&["ingest", table, slice.path.to_str().unwrap()]);
        let out = tune(&mut retry).output().unwrap();
        // Exit status 2: every slice has its two lines that go to the dead-letter topic.
        assert!(
            out.status.code() == Some(2) && String::from_utf8_lossy(&out.stderr).contains("2 of"),
            "{context}: retry failed:\n{}",
            describe(&out)
        );
        acked.take(which, slice, slice.lines.len());
        round += 1;
    }

    sink_once(&env, "at the end");
    assert_lake_holds(&env, &inputs, &acked, "at the end");
    for (i, input) in inputs.iter().enumerate() {
        let n = acked.ids[i].len() as i64;
        assert_eq!(duckdb_counts(&env, input.table), (n, n), "{}", input.table);
    }
    let dead = duckdb(
        &env,
        "SELECT count(*) AS n, count(DISTINCT (source_file, line_number)) AS d \
         FROM read_parquet('{lake}/dead_letter/*/*.parquet', hive_partitioning = true)",
    );
    let n = acked.dead.len() as i64;
    assert_eq!(
        (dead[0]["n"].as_i64(), dead[0]["d"].as_i64()),
        (Some(n), Some(n))
    );
    assert_nothing_staged(&env, "at the end");
    eprintln!(
        "seed {seed}: {} ingest and {} sink kill points over {round} rounds",
        ingests.counted, sinks.counted
    );
}

// ---------------------------------------------------------------------------------------------
// a reducer's commit

#[test]
fn derived_tables_stay_exactly_once_across_kill_9_of_reducer_commits() {
    let seed = seed("reducers");
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let env = Env::new();
    let mut points = KillPoints::new("reducer", 20, 150.0, seed);
    let reducers = ["model_performance", "generation_summary"];
    let mut round: usize = 0;
    while points.wanted() {
        let reducer = reducers[round % 2];
        if job_progress(&env, reducer).1 == 0 {
            // New work, some of it for windows already computed.
            let start = format!("2026-11-01T0{}:00:00Z", rng.random_range(0..3));
            env.ok(&[
                "simulate",
                "--generations",
                "200",
                "--nodes",
                "8",
                "--seed",
                &round.to_string(),
                "--start",
                &start,
                "--late-fraction",
                "0.05",
                "--duplicate-fraction",
                "0.02",
            ]);
            env.ok(&["jobs", "run", "lake-sink", "--once"]);
        }
        let (before, _) = job_progress(&env, reducer);
        let mut cmd = env.cmd(&["jobs", "run", reducer, "--once"]);
        cmd.env("OMNISTREAM_REDUCER__MAX_BATCH_ROWS", "40");
        let cut = points.kill(cmd);
        let (at_kill, lag) = job_progress(&env, reducer);
        points.record(&cut, at_kill.saturating_sub(before), lag);
        if points.counted % 5 == 4 {
            env.ok(&["jobs", "run", "all", "--once"]);
            let context = format!("seed {seed}, round {round}");
            assert_reducers_agree_with_duckdb(&env, &context);
            assert_unique_keys(&env, &context);
        }
        round += 1;
    }
    env.ok(&["jobs", "run", "all", "--once"]);
    let context = format!("seed {seed}, after {} kill points", points.counted);
    assert_reducers_agree_with_duckdb(&env, &context);
    assert_unique_keys(&env, &context);
    assert_nothing_staged(&env, &context);
}

// ---------------------------------------------------------------------------------------------
// lake compact

/// Per raw table, (rows, files, partitions) as `lake tables` reports them.
fn lake_tables(env: &Env) -> BTreeMap<String, (i64, i64, i64)> {
    let rows: Vec<Value> =
        serde_json::from_str(&env.ok(&["lake", "tables", "--format", "json"])).unwrap();
    rows.iter()
        .map(|r| {
            let n = |k: &str| r[k].as_i64().unwrap();
            (
                r["table"].as_str().unwrap().to_string(),
                (n("rows"), n("files"), n("partitions")),
            )
        })
        .collect()
}

/// Files, and files beyond one per partition (what a compaction still has to merge).
fn files_and_excess(tables: &BTreeMap<String, (i64, i64, i64)>) -> (u64, u64) {
    tables.values().fold((0, 0), |(f, x), (_, files, parts)| {
        (
            f + *files as u64,
            x + (*files - (*parts).max(1)).max(0) as u64,
        )
    })
}

#[test]
fn compaction_loses_and_duplicates_nothing_across_kill_9() {
    let seed = seed("compaction");
    let env = Env::new();
    let mut points = KillPoints::new("lake compact", 10, 150.0, seed);
    let mut round: usize = 0;
    while points.wanted() {
        let context = format!("seed {seed}, round {round}");
        let tables = lake_tables(&env);
        if files_and_excess(&tables).1 < 20 {
            // Small files to merge, in several tables and days.
            env.ok(&[
                "simulate",
                "--generations",
                "80",
                "--nodes",
                "6",
                "--seed",
                &round.to_string(),
                "--start",
                &format!("2026-11-0{}T23:59:50Z", 1 + round % 4),
            ]);
            let mut sink = env.cmd(&["jobs", "run", "lake-sink", "--once"]);
            let out = sink
                .env("OMNISTREAM_SINK__MAX_BATCH_ROWS", "25")
                .output()
                .unwrap();
            assert!(out.status.success(), "{}", describe(&out));
        }
        let before = lake_tables(&env);
        let (files_before, _) = files_and_excess(&before);
        let cut = points.kill(env.cmd(&["lake", "compact"]));
        let after = lake_tables(&env);
        let (files_at_kill, excess) = files_and_excess(&after);
        points.record(&cut, files_before.saturating_sub(files_at_kill), excess);
        let rows = |t: &BTreeMap<String, (i64, i64, i64)>| -> Vec<(String, i64)> {
            t.iter().map(|(k, v)| (k.clone(), v.0)).collect()
        };
        assert_eq!(rows(&before), rows(&after), "{context}: rows changed");
        // An external reader sees every row exactly once as soon as any omnistream process has
        // opened the lake since the kill (`lake tables` above did).
        for (table, (n, _, _)) in &after {
            assert_eq!(duckdb_counts(&env, table), (*n, *n), "{context}: {table}");
        }
        round += 1;
    }
    env.ok(&["lake", "compact"]);
    assert_nothing_staged(&env, &format!("seed {seed}"));
}

// ---------------------------------------------------------------------------------------------
// the codegen job, generated tests on

#[test]
fn every_request_ends_exactly_once_across_kill_9_of_the_codegen_job() {
    let seed = seed("codegen");
    let env = Env::new();
    let prompts = [
        "Create PostgreSQL writer Effect node",
        "price calculator compute node",
        "metrics aggregator reducer",
        "payment workflow orchestrator",
        "Kafka publisher effect",
    ];
    let tuned = |cmd: &mut Command| {
        cmd.env("OMNISTREAM_CODEGEN__RUN_TESTS", "true")
            .env("OMNISTREAM_CODEGEN__MAX_BATCH", "2")
            .env("OMNISTREAM_CODEGEN__CONCURRENCY", "2");
    };
    let mut points = KillPoints::new("codegen", 10, 1500.0, seed);
    let mut requests = 0;
    while points.wanted() {
        if job_progress(&env, "codegen").1 < 4 {
            for _ in 0..6 {
                let out = format!("out/{requests}");
                env.ok(&[
                    "generate",
                    prompts[requests % prompts.len()],
                    "--out",
                    &out,
                    "--no-wait",
                ]);
                requests += 1;
            }
        }
        let (before, _) = job_progress(&env, "codegen");
        let mut cmd = env.cmd(&["jobs", "run", "codegen", "--once"]);
        tuned(&mut cmd);
        let cut = points.kill(cmd);
        let (at_kill, lag) = job_progress(&env, "codegen");
        points.record(&cut, at_kill.saturating_sub(before), lag);
    }
    let mut cmd = env.cmd(&["jobs", "run", "codegen", "--once"]);
    tuned(&mut cmd);
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    env.ok(&["jobs", "run", "lake-sink", "--once"]);
    let ends = env.sql(
        "SELECT r.correlation_id, \
                (SELECT count(*) FROM generation_completed c WHERE c.correlation_id = r.correlation_id) \
              + (SELECT count(*) FROM generation_failed f WHERE f.correlation_id = r.correlation_id) AS ends \
         FROM generation_requested r",
    );
    assert_eq!(ends.len(), requests, "seed {seed}");
    for e in &ends {
        assert_eq!(e["ends"].as_i64(), Some(1), "seed {seed}: {e:?}");
    }
    let completed = duckdb(
        &env,
        "SELECT count(*) AS n, count(DISTINCT correlation_id) AS d, count(*) FILTER (WHERE passed) AS p \
         FROM read_parquet('{lake}/generation_completed/*/*.parquet', hive_partitioning = true)",
    );
    let n = Some(requests as i64);
    assert_eq!(
        (
            completed[0]["n"].as_i64(),
            completed[0]["d"].as_i64(),
            completed[0]["p"].as_i64()
        ),
        (n, n, n),
        "seed {seed}: every request completes once and passes its generated tests"
    );
    for i in 0..requests {
        let dir = env.path(&format!("out/{i}"));
        let nodes: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map_while(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with("node_"))
            .collect();
        assert_eq!(nodes.len(), 1, "{}", dir.display());
        assert!(nodes[0].path().join("v1_0_0/node.py").exists());
    }
    assert_nothing_staged(&env, &format!("seed {seed}"));
}

/// The lifecycle a pattern's outcomes call for (the thresholds of docs/patterns.md, written out
/// again here as the oracle).
fn expected_lifecycle(outcomes: &[bool]) -> &'static str {
    let mut state = "candidate";
    let (mut uses, mut ok, mut streak) = (0i64, 0i64, 0i64);
    for &o in outcomes {
        uses += 1;
        ok += o as i64;
        streak = if o { 0 } else { streak + 1 };
        if state == "deprecated" {
            continue;
        }
        let rate = ok as f64 / uses as f64;
        if (uses >= 10 && rate < 0.4) || streak >= 5 {
            state = "deprecated";
        } else if uses >= 5 && rate >= 0.6 && streak < 3 {
            state = "validated";
        }
    }
    state
}

#[test]
fn patterns_and_their_uses_are_counted_exactly_once_across_kill_9_of_the_indexer() {
    let seed = seed("patterns");
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let env = Env::new();
    let tuned = |cmd: &mut Command| {
        cmd.env("OMNISTREAM_PATTERNS__MAX_BATCH", "8");
    };
    // 120 distinct pieces of code, 40 of them requested again reformatted (the same pattern).
    let code = |i: usize, indent: &str| {
        format!(
            "def run(operation: str, payload: dict) -> dict:\n{indent}\"\"\"Variant {i}.\"\"\"\n{indent}total = payload['x'] * {} + {}\n{indent}return {{'total': total, 'variant_{i}': True}}\n",
            i % 13 + 2,
            i * 7
        )
    };
    let mut lines = Vec::new();
    for i in 0..160 {
        let (n, indent) = if i < 120 {
            (i, "    ")
        } else {
            (i - 120, "  ")
        };
        let node_type = ["compute", "effect"][n % 2];
        lines.push(
            serde_json::json!({
                "correlation_id": format!("gen-{i}"), "node_type": node_type,
                "domain": "d", "code_sample": code(n, indent), "quality_score": 0.96,
                "module": "v1_0_0/logic.py", "embedding_text": format!("variant {n} total"),
            })
            .to_string(),
        );
    }
    std::fs::write(env.path("requests.jsonl"), lines.join("\n") + "\n").unwrap();
    env.ok(&["ingest", "pattern-storage-requested", "requests.jsonl"]);
    let mut points = KillPoints::new("patterns", 10, 800.0, seed);
    let run_until_done = |points: &mut KillPoints| {
        while points.wanted() {
            let (before, _) = job_progress(&env, "patterns");
            let mut cmd = env.cmd(&["jobs", "run", "patterns", "--once"]);
            tuned(&mut cmd);
            let cut = points.kill(cmd);
            let (at_kill, lag) = job_progress(&env, "patterns");
            points.record(&cut, at_kill.saturating_sub(before), lag);
            if lag == 0 {
                break;
            }
        }
        let mut cmd = env.cmd(&["jobs", "run", "patterns", "--once"]);
        tuned(&mut cmd);
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{}", describe(&out));
    };
    while points.wanted() {
        run_until_done(&mut points);
        if points.wanted() {
            // More work for more kill points: the same requests again (all duplicates now).
            env.ok(&["ingest", "pattern-storage-requested", "requests.jsonl"]);
        }
    }
    let list = |env: &Env| -> Vec<Value> {
        serde_json::from_str(&env.ok(&["patterns", "list", "--format", "json"])).unwrap()
    };
    let patterns = list(&env);
    let ids: Vec<String> = patterns
        .iter()
        .map(|p| p["pattern_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 120, "seed {seed}: one pattern per distinct code");
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 120, "seed {seed}");

    // Uses: 500 generations, each applying one to three patterns, passing or not.
    let mut outcomes: BTreeMap<String, Vec<bool>> = BTreeMap::new();
    let (mut completed, mut failed) = (Vec::new(), Vec::new());
    for g in 0..500 {
        let applied: Vec<String> = (0..rng.random_range(1..=3))
            .map(|_| ids[rng.random_range(0..ids.len() / 4)].clone())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let passed = rng.random_bool(0.55);
        let at = format!("2026-11-01T00:{:02}:{:02}.{:06}Z", g / 60 % 60, g % 60, g);
        for a in &applied {
            outcomes.entry(a.clone()).or_default().push(passed);
        }
        let correlation_id = format!("use-{g}");
        if passed || g % 2 == 0 {
            completed.push(
                serde_json::json!({"correlation_id": correlation_id, "emitted_at": at,
                "total_duration_seconds": 1.0, "passed": passed, "patterns_applied": applied})
                .to_string(),
            );
        } else {
            failed.push(
                serde_json::json!({"correlation_id": correlation_id, "emitted_at": at,
                "failed_stage": "post_validation", "error_message": "examples failed",
                "patterns_applied": applied})
                .to_string(),
            );
        }
    }
    std::fs::write(env.path("completed.jsonl"), completed.join("\n") + "\n").unwrap();
    std::fs::write(env.path("failed.jsonl"), failed.join("\n") + "\n").unwrap();
    env.ok(&["ingest", "generation-completed", "completed.jsonl"]);
    env.ok(&["ingest", "generation-failed", "failed.jsonl"]);
    let mut points = KillPoints::new("pattern uses", 10, 800.0, seed ^ 1);
    while points.wanted() {
        run_until_done(&mut points);
        if points.wanted() {
            // Again: the same generations' end events (every use already counted).
            env.ok(&["ingest", "generation-completed", "completed.jsonl"]);
            env.ok(&["ingest", "generation-failed", "failed.jsonl"]);
        }
    }
    for p in list(&env) {
        let id = p["pattern_id"].as_str().unwrap();
        let o = outcomes.get(id).cloned().unwrap_or_default();
        let ok = o.iter().filter(|x| **x).count() as i64;
        assert_eq!(
            (
                p["uses"].as_i64(),
                p["passed"].as_i64(),
                p["lifecycle"].as_str()
            ),
            (Some(o.len() as i64), Some(ok), Some(expected_lifecycle(&o))),
            "seed {seed}: {id}"
        );
    }
    // One created event per pattern in the lake, however often the indexer was cut.
    env.ok(&["jobs", "run", "lake-sink", "--once"]);
    let created = env.sql_int(
        "SELECT count(*) FROM pattern_stored WHERE change IN ('created', 'version_created')",
    );
    assert_eq!(created, 120, "seed {seed}");
}

/// 240 indexed patterns (compute, "scale calculator N"), scored by scorer `old`.
fn env_with_240_patterns() -> Env {
    let env = Env::new();
    let lines: Vec<String> = (0..240)
        .map(|i| {
            serde_json::json!({
                "correlation_id": format!("gen-{i}"), "node_type": "compute", "domain": "d",
                "code_sample": format!("def run(operation: str, payload: dict) -> dict:\n    \"\"\"Scale by {i}.\"\"\"\n    return {{'value': payload['x'] * {i}}}\n"),
                "quality_score": 0.96, "scorer_version": "old", "module": "v1_0_0/logic.py",
                "operations": ["scale"], "business_description": format!("scale calculator {i}"),
            })
            .to_string()
        })
        .collect();
    std::fs::write(env.path("requests.jsonl"), lines.join("\n") + "\n").unwrap();
    env.ok(&["ingest", "pattern-storage-requested", "requests.jsonl"]);
    env.ok(&["jobs", "run", "patterns", "--once"]);
    env
}

#[test]
fn rescoring_scores_each_pattern_once_per_scorer_across_kill_9() {
    let seed = seed("rescore");
    let env = env_with_240_patterns();
    let progress = |env: &Env, scorer: &str| -> (u64, u64) {
        let scored = env
            .sql(&format!(
                "SELECT count(*) AS n FROM pattern_scores WHERE scorer_version = '{scorer}'"
            ))
            .first()
            .and_then(|r| r["n"].as_u64())
            .unwrap_or(0);
        let left = env.sql_int(&format!(
            "SELECT count(*) FROM patterns WHERE scorer_version <> '{scorer}'"
        ));
        (scored, left as u64)
    };
    // A first scorer, uncut: the lake has its `pattern_scores` table from then on.
    env.ok(&["patterns", "rescore", "--scorer", "quality-initial"]);
    let mut points = KillPoints::new("rescore", 20, 1500.0, seed);
    let mut scorers = Vec::new();
    while points.wanted() {
        // Each round a new scorer version: all 240 patterns to score again.
        let scorer = format!("quality-r{}", scorers.len());
        loop {
            let (before, _) = progress(&env, &scorer);
            let cut =
                points.kill(env.cmd(&["patterns", "rescore", "--batch", "4", "--scorer", &scorer]));
            let (at_kill, left) = progress(&env, &scorer);
            points.record(&cut, at_kill.saturating_sub(before), left);
            if left == 0 || !points.wanted() {
                break;
            }
        }
        let out = env.run(&["patterns", "rescore", "--scorer", &scorer]);
        assert!(out.status.success(), "{}", describe(&out));
        scorers.push(scorer);
    }
    for scorer in &scorers {
        let rows = env.sql(&format!(
            "SELECT count(*) AS n, count(DISTINCT pattern_id) AS d FROM pattern_scores \
             WHERE scorer_version = '{scorer}'"
        ));
        assert_eq!(
            (rows[0]["n"].as_i64(), rows[0]["d"].as_i64()),
            (Some(240), Some(240)),
            "seed {seed}: {scorer} scored every pattern exactly once"
        );
    }
    let last = scorers.last().unwrap();
    assert_eq!(
        env.sql_int(&format!(
            "SELECT count(*) FROM patterns WHERE scorer_version = '{last}'"
        )),
        240
    );
}

/// `patterns reembed` rewrites the table in one commit: a kill at any point leaves every pattern
/// under one embedder, the old or the new, searchable, and a run to the end finishes the move.
#[test]
fn reembedding_leaves_every_pattern_under_one_embedder_across_kill_9() {
    let seed = seed("reembed");
    let env = env_with_240_patterns();
    let minilm = crate::models::models_dir().join("all-MiniLM-L6-v2");
    let embedders: [Vec<(&str, String)>; 2] = [
        vec![("OMNISTREAM_PATTERNS__EMBEDDER", "hashing".into())],
        vec![
            ("OMNISTREAM_PATTERNS__EMBEDDER", "minilm".into()),
            (
                "OMNISTREAM_PATTERNS__EMBEDDER_MODEL_DIR",
                minilm.to_string_lossy().into_owned(),
            ),
        ],
    ];
    let cmd = |args: &[&str], with: usize| {
        let mut c = env.cmd(args);
        c.envs(embedders[with].iter().map(|(k, v)| (k, v)));
        c
    };
    // Which embedder reads the table; it must hold all 240 patterns and answer a search.
    let reader = |stage: &str| -> usize {
        for with in 0..2 {
            let out = cmd(&["patterns", "list", "--format", "json"], with)
                .output()
                .unwrap();
            if !out.status.success() {
                continue;
            }
            let rows: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(rows.len(), 240, "seed {seed}, {stage}: every pattern kept");
            let query = [
                "patterns",
                "query",
                "scale calculator 17",
                "--format",
                "json",
            ];
            let out = cmd(&query, with).output().unwrap();
            assert!(
                out.status.success(),
                "seed {seed}, {stage}: {}",
                describe(&out)
            );
            let hits: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
            assert!(
                !hits.is_empty(),
                "seed {seed}, {stage}: the search finds patterns"
            );
            return with;
        }
        panic!("seed {seed}, {stage}: neither embedder reads the table");
    };
    assert_eq!(reader("before"), 0);
    // An uncut move there and back times a run, so that kills spread over all of one (the
    // delay's jitter is 0.5x to 1.5x of 0.8 runs), the commit and the index build after it
    // included.
    let mut run_ms = 0.0;
    for to in [1, 0] {
        let started = std::time::Instant::now();
        let out = cmd(&["patterns", "reembed"], to).output().unwrap();
        assert!(out.status.success(), "seed {seed}: {}", describe(&out));
        // The kills are all of moves to MiniLM until one finishes (the slower direction).
        if to == 1 {
            run_ms = started.elapsed().as_secs_f64() * 1000.0;
        }
    }
    let mut points = KillPoints::new("reembed", 12, run_ms * 0.8, seed);
    let mut at = reader("after the timed runs");
    assert_eq!(at, 0);
    while points.wanted() {
        let cut = points.kill(cmd(&["patterns", "reembed"], 1 - at));
        let now = reader(&format!("kill {}", points.tried + 1));
        // Mid-work: killed while the old table still stood.
        points.record(&cut, 1, (now == at) as u64);
        at = now;
    }
    for to in [1 - at, at] {
        let out = cmd(&["patterns", "reembed"], to).output().unwrap();
        assert!(out.status.success(), "seed {seed}: {}", describe(&out));
        assert_eq!(reader("after an uncut run"), to);
    }
}
