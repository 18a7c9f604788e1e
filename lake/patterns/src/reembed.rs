//! `patterns reembed`: every pattern's vector again, with the configured embedder, so a store
//! can move to another embedder (or dimension) without losing its patterns, lineage or counts.
//! The rewritten table is one commit (a Lance overwrite): a run cut short, even by `kill -9`,
//! leaves the old table as it was, and running it again starts over.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lancedb::database::CreateTableMode;
use serde::Serialize;

use crate::embed::{Embedder, embed_checked};
use crate::error::{PatternsError, Result};
use crate::record::{self, Pattern};
use crate::store::{PatternStore, StoreOptions, TABLE, patterns_of};

/// Texts embedded per call (and per progress step).
const BATCH: usize = 64;

/// What a re-embedding did.
#[derive(Debug, Clone, Serialize)]
pub struct ReembedReport {
    pub rows: usize,
    /// The embedder and dimension the table had (`None` when it recorded none).
    pub from: Option<(String, usize)>,
    pub to: (String, usize),
    pub elapsed: Duration,
}

/// Re-embeds the table under `dir` with `embedder`, holding the indexer's lock (`lock`) so no
/// indexer writes meanwhile. `progress(done, total)` follows the embedding.
pub async fn run(
    dir: &Path,
    embedder: Arc<dyn Embedder>,
    options: StoreOptions,
    lock: &Path,
    mut progress: impl FnMut(u64, u64),
) -> Result<ReembedReport> {
    let started = Instant::now();
    let _lock = omnistream_streams::io::lock_exclusively(lock)?
        .ok_or_else(|| PatternsError::Busy(lock.to_path_buf()))?;
    let to = (embedder.name().to_string(), embedder.dim());
    let mut report = ReembedReport {
        rows: 0,
        from: None,
        to,
        elapsed: Duration::ZERO,
    };
    if !dir.join(format!("{TABLE}.lance")).exists() {
        return Ok(report);
    }
    let uri = dir.to_string_lossy();
    let conn = lancedb::connect(&uri).execute().await?;
    let table = conn.open_table(TABLE).execute().await?;
    report.from = record::stored_embedder(&*table.schema().await?);
    let mut patterns = patterns_of(&table.query()).await?;
    report.rows = patterns.len();
    embed_all(embedder.as_ref(), &mut patterns, &mut progress).await?;
    let schema = record::schema(embedder.name(), embedder.dim());
    let batch = record::to_batch(&patterns, &schema)?;
    let table = conn
        .create_table(TABLE, batch)
        .mode(CreateTableMode::Overwrite)
        .execute()
        .await
        .map_err(|e| PatternsError::from(e).context("rewriting the pattern table"))?;
    // An overwrite leaves the old indexes behind: BM25 needs its index at once (a kill before
    // it is built leaves that to the next open of the store), the vector and scalar indexes
    // come with optimisation (from the size threshold on).
    crate::store::create_text_index(&table).await?;
    PatternStore::open(dir, embedder, options)
        .await?
        .optimize()
        .await?;
    report.elapsed = started.elapsed();
    Ok(report)
}

async fn embed_all(
    embedder: &dyn Embedder,
    patterns: &mut [Pattern],
    progress: &mut impl FnMut(u64, u64),
) -> Result<()> {
    let total = patterns.len() as u64;
    let mut done = 0;
    progress(0, total);
    for chunk in patterns.chunks_mut(BATCH) {
        let texts: Vec<String> = chunk.iter().map(|p| p.search_text.clone()).collect();
        let vectors = embed_checked(embedder, &texts).await?;
        for (p, v) in chunk.iter_mut().zip(vectors) {
            p.embedding = v;
        }
        done += chunk.len() as u64;
        progress(done, total);
    }
    Ok(())
}
