//! Crash safety: `kill -9` of real `omnistream` processes at random points during ingest and
//! during the sink. After every kill, a clean sink must leave every acknowledged event in the lake
//! exactly once (by event_id), and nothing that was never sent.
//!
//! Each round ingests a fresh slice of a simulated workload and kills the ingest, then kills the
//! sink while it lands that slice, then checks the lake, then retries the slice as a producer
//! would. Only kills that hit a running process count as kill points.
//!
//! `OMNISTREAM_CRASH_POINTS` sets the number of kill points (default 50);
//! `OMNISTREAM_CRASH_SEED` replays a run (the seed is printed at the start and on failure).

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::{Rng, SeedableRng};

use crate::{Env, describe};

/// Small batches and frequent commits and rolls, so a kill lands in the middle of real work.
fn tune(cmd: &mut Command) -> &mut Command {
    cmd.env("OMNISTREAM_INGEST__BATCH_ROWS", "40")
        .env("OMNISTREAM_SINK__MAX_BATCH_ROWS", "120")
        .env("OMNISTREAM_SINK__ROLL_FILES", "3")
}

/// Start `cmd`, kill it with SIGKILL after `delay`; returns whether the kill hit a running process
/// and the last `acked_lines` it printed.
fn kill_after(mut cmd: Command, delay: Duration) -> (bool, usize) {
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
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                    && let Some(n) = v["acked_lines"].as_u64()
                {
                    *acked.lock().unwrap() = n as usize;
                }
            }
        })
    };
    std::thread::sleep(delay);
    let _ = child.kill();
    let status = child.wait().unwrap();
    reader.join().unwrap();
    let n = *acked.lock().unwrap();
    (status.signal() == Some(9), n)
}

struct Input {
    table: &'static str,
    /// Slices of the input, as (file, event ids in line order).
    slices: Vec<(std::path::PathBuf, Vec<String>)>,
    next: usize,
}

fn slice_input(dir: &Path, table: &'static str, slice_lines: usize) -> Input {
    let text = std::fs::read_to_string(dir.join(format!("{table}.jsonl"))).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let slices = lines
        .chunks(slice_lines)
        .enumerate()
        .map(|(i, chunk)| {
            let path = dir.join(format!("{table}-{i:03}.jsonl"));
            std::fs::write(&path, chunk.join("\n")).unwrap();
            let ids = chunk
                .iter()
                .map(|l| {
                    serde_json::from_str::<serde_json::Value>(l).unwrap()["event_id"]
                        .as_str()
                        .unwrap()
                        .to_string()
                })
                .collect();
            (path, ids)
        })
        .collect();
    Input {
        table,
        slices,
        next: 0,
    }
}

#[test]
fn nothing_acknowledged_is_lost_or_duplicated_across_kill_9() {
    let points: usize = std::env::var("OMNISTREAM_CRASH_POINTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let seed: u64 = std::env::var("OMNISTREAM_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| rand::rng().random());
    eprintln!("crash test: {points} kill points, OMNISTREAM_CRASH_SEED={seed}");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);

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
    // Every id a producer has had acknowledged so far, per input.
    let mut acked: [HashSet<String>; 2] = Default::default();
    let mut kills = 0;
    let mut round = 0;

    while kills < points {
        assert!(
            round < points * 4,
            "seed {seed}: only {kills} of {round} kills hit a running process"
        );
        let which = round % 2;
        let slice = inputs[which].next % inputs[which].slices.len();
        inputs[which].next += 1;
        let table = inputs[which].table;
        let (path, ids) = inputs[which].slices[slice].clone();

        // 1. Kill the ingest of a fresh slice.
        let mut cmd = env.cmd(&[
            "ingest",
            table,
            path.to_str().unwrap(),
            "--progress",
            "json",
        ]);
        tune(&mut cmd);
        let (hit, n) = kill_after(cmd, Duration::from_millis(rng.random_range(0..120)));
        kills += hit as usize;
        acked[which].extend(ids[..n].iter().cloned());
        eprintln!("round {round}: ingest {table} slice {slice} killed={hit} after {n} acked lines");

        // 2. Kill the sink while it lands what the ingest appended.
        let mut cmd = env.cmd(&["jobs", "run", "lake-sink", "--once"]);
        tune(&mut cmd);
        let (hit, _) = kill_after(cmd, Duration::from_millis(rng.random_range(0..160)));
        kills += hit as usize;
        eprintln!("round {round}: lake-sink killed={hit}");

        // 3. After a restart, every acknowledged event is in the lake exactly once.
        let mut clean = env.cmd(&["jobs", "run", "lake-sink", "--once"]);
        let out = tune(&mut clean).output().unwrap();
        assert!(
            out.status.success(),
            "seed {seed}, round {round}: the sink did not recover:\n{}",
            describe(&out)
        );
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
                "seed {seed}, round {round}: duplicates in {}",
                input.table
            );
            let missing = acked[i]
                .iter()
                .filter(|id| !unique.contains(id.as_str()))
                .count();
            assert_eq!(
                missing, 0,
                "seed {seed}, round {round}: {missing} acknowledged events missing from {}",
                input.table
            );
            let sent: HashSet<&str> = input
                .slices
                .iter()
                .flat_map(|(_, ids)| ids.iter().map(String::as_str))
                .collect();
            assert!(
                unique.is_subset(&sent),
                "seed {seed}, round {round}: {} holds events nobody sent",
                input.table
            );
        }

        // 4. The producer retries the slice until it is acknowledged whole.
        let mut retry = env.cmd(&["ingest", table, path.to_str().unwrap()]);
        let out = tune(&mut retry).output().unwrap();
        assert!(
            out.status.success(),
            "seed {seed}, round {round}: retry failed:\n{}",
            describe(&out)
        );
        acked[which].extend(ids);
        round += 1;
    }

    let mut sink = env.cmd(&["jobs", "run", "lake-sink", "--once"]);
    assert!(tune(&mut sink).output().unwrap().status.success());
    for (i, input) in inputs.iter().enumerate() {
        let n = env.sql_int(&format!("SELECT count(*) FROM {}", input.table)) as usize;
        let d = env.sql_int(&format!(
            "SELECT count(DISTINCT event_id) FROM {}",
            input.table
        )) as usize;
        assert_eq!(
            (n, d),
            (acked[i].len(), acked[i].len()),
            "seed {seed}: {}",
            input.table
        );
    }
    eprintln!(
        "crash test: {kills} kill points over {round} rounds, every acknowledged event landed once"
    );
}
