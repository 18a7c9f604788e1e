//! The store as the codegen job sees it: a [`PatternSource`] for the intelligence stage, and the
//! factory that builds the indexer job for the runner.

use std::path::PathBuf;
use std::sync::Arc;

use omnistream_codegen::{PatternQuery, PatternRef, PatternSource, RetrievalError, StoredCode};
use omnistream_jobs::{Job, JobEnv, JobError, JobFactory, JobKind, JobSpec, StepReport};

use crate::embed::Embedder;
use crate::indexer::{Indexer, IndexerOptions};
use crate::store::{MAX_TOP_K, PatternStore, Search, StoreOptions};
use crate::uses::UseLog;

/// Retrieval for the codegen job: a hybrid search, deprecated patterns left out.
pub struct StoreSource {
    store: Arc<PatternStore>,
    runtime: tokio::runtime::Handle,
}

impl StoreSource {
    pub fn new(store: Arc<PatternStore>, runtime: tokio::runtime::Handle) -> Self {
        StoreSource { store, runtime }
    }
}

impl std::fmt::Debug for StoreSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreSource")
            .field("table", &self.store.table_path())
            .finish()
    }
}

impl PatternSource for StoreSource {
    fn retrieve(&self, q: &PatternQuery<'_>) -> Result<Vec<PatternRef>, RetrievalError> {
        let search = Search {
            text: q.text.to_string(),
            node_type: Some(q.node_type.as_str().to_string()),
            min_quality: Some(q.min_quality),
            top_k: q.top_k.clamp(1, MAX_TOP_K),
            ..Search::default()
        };
        let hits = self.runtime.block_on(self.store.search(&search))?;
        Ok(hits
            .into_iter()
            .map(|h| {
                let p = h.pattern;
                PatternRef {
                    name: format!("{} {} v{}", p.node_type, p.pattern_id, p.version),
                    description: p.description.clone(),
                    source: "pattern_store".into(),
                    id: Some(p.pattern_id),
                    code: Some(StoredCode {
                        module: p.module,
                        code: p.code,
                        operations: p.operations,
                        prompt: p.description,
                    }),
                    relevance: Some(h.relevance),
                    quality: Some(p.scores.quality),
                }
            })
            .collect())
    }
}

/// Where the store is and how it is run.
#[derive(Clone)]
pub struct PatternsConfig {
    /// The directory of the LanceDB database (the `patterns` table is `patterns.lance` in it).
    pub dir: PathBuf,
    pub embedder: Arc<dyn Embedder>,
    pub store: StoreOptions,
    pub indexer: IndexerOptions,
}

impl PatternsConfig {
    pub async fn open(&self) -> crate::Result<PatternStore> {
        PatternStore::open(&self.dir, self.embedder.clone(), self.store.clone()).await
    }
}

/// Builds the pattern indexer for the runner (`jobs run patterns`, `jobs run all`).
pub struct PatternsFactory {
    pub config: PatternsConfig,
}

struct IndexerJob<'a>(Indexer<'a>);

impl Job for IndexerJob<'_> {
    fn step(&mut self) -> omnistream_jobs::Result<StepReport> {
        let r = self.0.step()?;
        Ok(StepReport {
            events: r.events,
            rows: r.stored + r.lifecycle_changes,
        })
    }
}

impl JobFactory for PatternsFactory {
    fn build<'a>(
        &self,
        spec: &JobSpec,
        env: JobEnv<'a>,
    ) -> omnistream_jobs::Result<Box<dyn Job + 'a>> {
        if !matches!(spec.kind, JobKind::Patterns) {
            return Err(JobError::Internal(format!(
                "the patterns factory cannot build {} ({} job)",
                spec.name,
                spec.kind.name()
            )));
        }
        let store = env.runtime.block_on(self.config.open())?;
        let uses = UseLog::new(store.connection().clone(), self.config.dir.clone());
        let indexer = Indexer::new(
            env.log,
            Arc::new(store),
            uses,
            env.runtime.clone(),
            env.state_dir,
            self.config.indexer.clone(),
        )?;
        Ok(Box::new(IndexerJob(indexer)))
    }
}
