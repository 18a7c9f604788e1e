//! `omnistream bench patterns`: the pattern store at scale. N synthetic patterns with clustered
//! unit vectors (real embeddings cluster by topic; uniform random vectors in 384 dimensions are
//! all nearly equidistant, which no index is built for) are stored through the store's own write
//! path, indexed, then searched: query latency and recall@k against exact search, side by side
//! with FAISS HNSW on the same vectors and queries.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use omnistream_patterns::store::Mode;
use omnistream_patterns::{HashingEmbedder, PatternStore, Search, StoreOptions, VectorIndex};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use serde_json::Value;

use super::stats::percentile;
use crate::cli::BenchPatternsArgs;
use crate::config::Config;
use crate::error::{CliError, Result};
use crate::output::outln;
use omnistream_streams::io::IoContext;

const PEER: &str = include_str!("patterns_peer.py");

/// Patterns per write (one merge each).
const BATCH: usize = 10_000;

pub(crate) async fn run(config: &Config, args: BenchPatternsArgs) -> Result<()> {
    super::blocking("bench patterns", config, move |_, runtime| {
        bench(args, runtime)
    })
    .await
}

/// Clustered unit vectors: a centre per thousand rows, each vector its centre plus noise.
struct Vectors {
    dim: usize,
    centres: Vec<Vec<f32>>,
    noise: Normal<f32>,
    rng: ChaCha8Rng,
}

impl Vectors {
    fn new(rows: usize, dim: usize, seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let unit = Normal::new(0.0, 1.0).expect("a valid normal");
        let centres = (0..(rows / 1000).max(16))
            .map(|_| unit_vector((0..dim).map(|_| unit.sample(&mut rng)).collect()))
            .collect();
        let noise = Normal::new(0.0, 0.6 / (dim as f32).sqrt()).expect("a valid normal");
        Vectors {
            dim,
            centres,
            noise,
            rng,
        }
    }

    fn next(&mut self, seed: u64) -> Vec<f32> {
        let c = &self.centres[(seed.wrapping_mul(2654435761) % self.centres.len() as u64) as usize];
        let v = (0..self.dim)
            .map(|i| c[i] + self.noise.sample(&mut self.rng))
            .collect();
        unit_vector(v)
    }
}

fn unit_vector(mut v: Vec<f32>) -> Vec<f32> {
    omnistream_patterns::embed::normalise(&mut v);
    v
}

fn bench(args: BenchPatternsArgs, runtime: tokio::runtime::Handle) -> Result<()> {
    let work = super::bench_dir(args.dir.as_deref(), "omnistream-bench-patterns")?;
    let options = StoreOptions {
        index_threshold: 1,
        nprobes: args.nprobes,
        refine_factor: args.refine_factor,
        ef: Some(args.ef),
        vector_index: VectorIndex::parse(&args.vector_index)?,
        ..StoreOptions::default()
    };
    let embedder = Arc::new(HashingEmbedder::new(args.dim));
    let store = runtime.block_on(PatternStore::open(
        &work.join("patterns"),
        embedder,
        options.clone(),
    ))?;
    outln!(
        "bench patterns: {} patterns of {} dimensions, {} queries, top {}",
        args.rows,
        args.dim,
        args.queries,
        args.top_k
    );
    let mut source = Vectors::new(args.rows, args.dim, 42);
    let (ids, vectors, store_secs) = fill(&store, &runtime, &mut source, args.rows)?;
    outln!(
        "stored {} patterns in {:.1} s: {:.0} patterns/s (merge on pattern_id, batches of {BATCH})",
        ids.len(),
        store_secs,
        ids.len() as f64 / store_secs
    );
    let started = Instant::now();
    let report = runtime.block_on(store.optimize())?;
    outln!(
        "optimised and indexed in {:.1} s (vector index: {})",
        started.elapsed().as_secs_f64(),
        if report.vector_index {
            options.vector_index.label()
        } else {
            "none"
        }
    );
    let queries: Vec<Vec<f32>> = (0..args.queries as u64)
        .map(|q| source.next(q * 7 + 3))
        .collect();
    let exact = ground_truth(&store, &runtime, &ids, &vectors, &queries, args.top_k)?;
    let t = search(&store, &runtime, &queries, &exact, &ids, args.top_k)?;
    outln!(
        "omnistream (LanceDB)  query p50 {:.2} ms, p99 {:.2} ms, recall@{} {:.3} (ids and scores)",
        percentile(&t.ids, 0.5),
        percentile(&t.ids, 0.99),
        args.top_k,
        t.recall
    );
    outln!(
        "omnistream (LanceDB)  query p50 {:.2} ms, p99 {:.2} ms with every row read (row cache cold)",
        percentile(&t.rows, 0.5),
        percentile(&t.rows, 0.99),
    );
    if args.no_peer {
        return Ok(());
    }
    peer(&args, &work, &vectors, &queries, &exact)
}

type Filled = (Vec<String>, Vec<Vec<f32>>, f64);

fn fill(
    store: &PatternStore,
    runtime: &tokio::runtime::Handle,
    source: &mut Vectors,
    rows: usize,
) -> Result<Filled> {
    let bar = super::progress_bar("patterns");
    bar.set_length(rows as u64);
    let (mut ids, mut vectors, mut secs) = (Vec::with_capacity(rows), Vec::new(), 0.0);
    for start in (0..rows).step_by(BATCH) {
        let batch: Vec<_> = (start..(start + BATCH).min(rows))
            .map(|k| {
                let mut p = super::patterns::synthetic_pattern(k as u64);
                p.embedding = source.next(k as u64);
                p
            })
            .collect();
        let started = Instant::now();
        runtime.block_on(store.insert_new(&batch))?;
        secs += started.elapsed().as_secs_f64();
        for p in batch {
            ids.push(p.pattern_id);
            vectors.push(p.embedding);
        }
        bar.set_position(ids.len() as u64);
    }
    bar.finish_and_clear();
    Ok((ids, vectors, secs))
}

/// Queries whose exact answer is also computed here, to check Lance's flat scan.
const CROSS_CHECKED: usize = 3;

/// The exact top k of every query, by Lance's exhaustive scan (SIMD, in the optimised
/// dependency: the naive loop below takes minutes per thousand queries at 1M rows in a debug
/// build), checked against the naive loop on the first few queries.
fn ground_truth(
    store: &PatternStore,
    runtime: &tokio::runtime::Handle,
    ids: &[String],
    vectors: &[Vec<f32>],
    queries: &[Vec<f32>],
    top_k: usize,
) -> Result<Vec<Vec<usize>>> {
    let position: HashMap<&str, usize> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i))
        .collect();
    let bar = super::progress_bar("exact searches");
    bar.set_length(queries.len() as u64);
    let mut exact = Vec::with_capacity(queries.len());
    for (n, q) in queries.iter().enumerate() {
        let found = runtime.block_on(store.exact_ids(q, top_k))?;
        let mut truth: Vec<usize> = found
            .iter()
            .filter_map(|id| position.get(id.as_str()).copied())
            .collect();
        if n < CROSS_CHECKED {
            let mut naive = nearest(vectors, q, top_k);
            naive.sort_unstable();
            truth.sort_unstable();
            if naive != truth {
                return Err(CliError::Internal(format!(
                    "the exhaustive scan disagrees with the exact loop on query {n}: {truth:?} vs {naive:?}"
                )));
            }
        }
        exact.push(truth);
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(exact)
}

/// Exact top k by cosine (dot product of unit vectors).
fn nearest(vectors: &[Vec<f32>], q: &[f32], k: usize) -> Vec<usize> {
    let mut scored: Vec<(f32, usize)> = vectors
        .iter()
        .enumerate()
        .map(|(i, v)| (omnistream_patterns::embed::cosine(v, q), i))
        .collect();
    let k = k.min(scored.len());
    scored.select_nth_unstable_by(k.saturating_sub(1), |a, b| b.0.total_cmp(&a.0));
    scored.truncate(k);
    scored.into_iter().map(|(_, i)| i).collect()
}

/// Latencies of the id searches (what the peer answers too) and of the searches with their
/// rows (each query's rows read once: the row cache starts empty), and the recall.
struct Timings {
    ids: Vec<f64>,
    rows: Vec<f64>,
    recall: f64,
}

fn search(
    store: &PatternStore,
    runtime: &tokio::runtime::Handle,
    queries: &[Vec<f32>],
    exact: &[Vec<usize>],
    ids: &[String],
    top_k: usize,
) -> Result<Timings> {
    let searches: Vec<Search> = queries
        .iter()
        .map(|q| Search {
            vector: Some(q.clone()),
            mode: Mode::Vector,
            top_k,
            include_deprecated: true,
            ..Search::default()
        })
        .collect();
    let (mut t, mut found) = (
        Timings {
            ids: Vec::new(),
            rows: Vec::new(),
            recall: 0.0,
        },
        0,
    );
    for (s, truth) in searches.iter().zip(exact) {
        let started = Instant::now();
        let hits = runtime.block_on(store.search_ids(s))?;
        t.ids.push(millis(started));
        found += truth
            .iter()
            .filter(|&&i| hits.iter().any(|h| h.pattern_id == ids[i]))
            .count();
    }
    for s in &searches {
        let started = Instant::now();
        runtime.block_on(store.search(s))?;
        t.rows.push(millis(started));
    }
    t.ids.sort_by(f64::total_cmp);
    t.rows.sort_by(f64::total_cmp);
    t.recall = found as f64 / (queries.len() * top_k).max(1) as f64;
    Ok(t)
}

fn millis(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

/// FAISS HNSW (M 32) on the same vectors, queries and ground truth, in Python.
fn peer(
    args: &BenchPatternsArgs,
    work: &Path,
    vectors: &[Vec<f32>],
    queries: &[Vec<f32>],
    exact: &[Vec<usize>],
) -> Result<()> {
    let write = |name: &str, rows: &mut dyn Iterator<Item = Vec<u8>>| -> Result<()> {
        let path = work.join(name);
        let mut f = std::io::BufWriter::new(
            fs::File::create(&path).io_context(|| format!("creating {}", path.display()))?,
        );
        for r in rows {
            f.write_all(&r)
                .io_context(|| format!("writing {}", path.display()))?;
        }
        f.flush()
            .io_context(|| format!("writing {}", path.display()))?;
        Ok(())
    };
    let f32s = |v: &Vec<f32>| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    write("vectors.f32", &mut vectors.iter().map(f32s))?;
    write("queries.f32", &mut queries.iter().map(f32s))?;
    let i64s = |v: &Vec<usize>| v.iter().flat_map(|&i| (i as i64).to_le_bytes()).collect();
    write("exact.i64", &mut exact.iter().map(i64s))?;
    let script = work.join("patterns_peer.py");
    fs::write(&script, PEER).io_context(|| format!("writing {}", script.display()))?;
    let out = Command::new(&args.python)
        .arg(&script)
        .arg(work)
        .arg(args.dim.to_string())
        .arg(args.top_k.to_string())
        .output()
        .io_context(|| format!("running {}", args.python))?;
    if !out.status.success() {
        return Err(CliError::Usage(format!(
            "the FAISS peer failed (scripts/setup.sh installs faiss-cpu): {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let r: Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| CliError::Internal(format!("the FAISS peer's report: {e}")))?;
    let num = |v: &Value, k: &str| v[k].as_f64().unwrap_or(f64::NAN);
    outln!(
        "FAISS HNSW (M 32)     built in {:.1} s ({:.0} vectors/s)",
        num(&r, "build_s"),
        num(&r, "rows_per_s"),
    );
    for s in r["searches"].as_array().into_iter().flatten() {
        outln!(
            "FAISS HNSW (M 32)     query p50 {:.2} ms, p99 {:.2} ms, recall@{} {:.3} at efSearch {}",
            num(s, "p50_ms"),
            num(s, "p99_ms"),
            args.top_k,
            num(s, "recall"),
            s["ef"]
        );
    }
    Ok(())
}
