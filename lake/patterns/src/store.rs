//! The `patterns` table: one LanceDB table under the data directory. Writes are idempotent
//! (merge on pattern_id), reads are hybrid searches or scans, and `optimize` keeps files and
//! indexes in shape. Every method is async; callers outside a runtime use [`crate::blocking`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::RecordBatch;
use futures::TryStreamExt;
use lancedb::index::scalar::{FtsIndexBuilder, FullTextSearchQuery};
use lancedb::index::vector::{IvfHnswFlatIndexBuilder, IvfHnswSqIndexBuilder};
use lancedb::index::{Index, IndexType};
use lancedb::query::{ExecutableQuery, QueryBase, Select};
use lancedb::table::OptimizeAction;
use lancedb::{Connection, DistanceType, Table};
use serde::Serialize;

use crate::embed::Embedder;
use crate::error::{PatternsError, Result};
use crate::facts::FactsCache;
use crate::fusion::reciprocal_rank;
use crate::lifecycle::Lifecycle;
use crate::record::{self, Pattern};
use crate::rows::RowCache;

/// Name of the table (and of its directory, `patterns.lance`).
pub const TABLE: &str = "patterns";

/// Most patterns a query returns.
pub const MAX_TOP_K: usize = 20;

/// HNSW breadth by default: recall@10 0.989 at 100k rows (bench patterns), where Lance's own
/// default (15 for top 10) gives up recall for a fraction of a millisecond.
pub const DEFAULT_EF: usize = 64;

/// The vector index: an HNSW graph per IVF partition, over full vectors or scalar-quantised ones.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum VectorIndex {
    /// Full f32 vectors (4 bytes a dimension in memory): exact distances, no re-ranking needed.
    #[default]
    HnswFlat,
    /// 8-bit vectors (a quarter of the memory); distances approximate, so recall needs
    /// `refine_factor`, which reads full vectors back from disk.
    HnswSq,
}

impl VectorIndex {
    const ALL: [VectorIndex; 2] = [VectorIndex::HnswFlat, VectorIndex::HnswSq];

    /// The name in configuration and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            VectorIndex::HnswFlat => "hnsw_flat",
            VectorIndex::HnswSq => "hnsw_sq",
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                PatternsError::Invalid(format!("unknown vector index '{s}' (hnsw_flat or hnsw_sq)"))
            })
    }

    pub fn label(self) -> &'static str {
        match self {
            VectorIndex::HnswFlat => "IVF-HNSW-Flat",
            VectorIndex::HnswSq => "IVF-HNSW-SQ",
        }
    }

    fn index_type(self) -> IndexType {
        match self {
            VectorIndex::HnswFlat => IndexType::IvfHnswFlat,
            VectorIndex::HnswSq => IndexType::IvfHnswSq,
        }
    }

    fn index(self) -> Index {
        match self {
            VectorIndex::HnswFlat => Index::IvfHnswFlat(
                IvfHnswFlatIndexBuilder::default().distance_type(DistanceType::Cosine),
            ),
            VectorIndex::HnswSq => Index::IvfHnswSq(
                IvfHnswSqIndexBuilder::default().distance_type(DistanceType::Cosine),
            ),
        }
    }
}

#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Rows from which the table has a vector (ANN) index; below, an exact scan is faster.
    pub index_threshold: usize,
    /// Old table versions kept at least this long by `optimize` (readers may still use them).
    pub keep_versions: chrono::Duration,
    /// IVF partitions a vector search probes (more: better recall, slower); `None`: Lance's
    /// automatic probing.
    pub nprobes: Option<usize>,
    /// Candidates re-ranked by exact distance, as a multiple of top_k (`None`: no re-ranking;
    /// the index's quantised distances decide).
    pub refine_factor: Option<u32>,
    /// Breadth of the HNSW search (`None`: Lance's 1.5 x the candidates wanted, which loses
    /// recall at 1M rows).
    pub ef: Option<usize>,
    /// How the vector index keeps its vectors.
    pub vector_index: VectorIndex,
    /// Rows the search's row cache keeps.
    pub row_cache: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            index_threshold: 10_000,
            keep_versions: chrono::Duration::minutes(10),
            nprobes: None,
            refine_factor: None,
            ef: Some(DEFAULT_EF),
            vector_index: VectorIndex::default(),
            row_cache: crate::rows::DEFAULT_CAPACITY,
        }
    }
}

/// Which sides of the search run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Mode {
    /// Vector and BM25, fused by reciprocal rank (BM25 is left out when the text has no words).
    #[default]
    Hybrid,
    /// Nearest vectors only.
    Vector,
    /// BM25 over the search text only.
    Text,
}

/// A hybrid search: text for BM25 and (embedded) for the vector side, and filters.
#[derive(Debug, Clone, Default)]
pub struct Search {
    pub text: String,
    pub mode: Mode,
    /// A vector to search by instead of the text's embedding.
    pub vector: Option<Vec<f32>>,
    pub node_type: Option<String>,
    pub domain: Option<String>,
    pub min_quality: Option<f64>,
    pub top_k: usize,
    /// Serve deprecated patterns too (never for generation).
    pub include_deprecated: bool,
    /// Only patterns of this module (e.g. `v1_0_0/logic.py`).
    pub module: Option<String>,
}

/// A pattern a search found, with its fused relevance (reciprocal rank fusion).
#[derive(Debug, Clone, Serialize)]
pub struct Hit {
    #[serde(flatten)]
    pub pattern: Pattern,
    pub relevance: f32,
}

impl Search {
    /// Whether `p` passes the search's filters: what the SQL of [`filter`] says, for a row.
    pub fn admits(&self, p: &Pattern) -> bool {
        (self.include_deprecated || p.lifecycle != Lifecycle::Deprecated)
            && self.node_type.as_ref().is_none_or(|t| *t == p.node_type)
            && self
                .domain
                .as_ref()
                .is_none_or(|d| Some(d) == p.domain.as_ref())
            && self.module.as_ref().is_none_or(|m| *m == p.module)
            && self.min_quality.is_none_or(|q| p.scores.quality >= q)
    }
}

/// What names a row in a search's answer: the pattern id (any version), or the row id (one
/// version, and no column read to answer it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    PatternId,
    RowId,
}

/// A search's answer before its row is read.
#[derive(Debug, Clone, PartialEq)]
pub struct IdHit {
    /// Empty in the answer of a search by row id alone (inside [`PatternStore::search`]).
    pub pattern_id: String,
    /// Where the row is in the table version searched.
    pub row_id: u64,
    pub relevance: f32,
}

/// What `optimize` did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct OptimizeReport {
    pub rows: usize,
    pub fragments_removed: u64,
    pub fragments_added: u64,
    pub versions_pruned: u64,
    pub bytes_removed: u64,
    pub vector_index: bool,
    pub fts_index: bool,
}

/// The Lance file format of the tables the store creates: 2.1, not lancedb 0.41's default 2.2.
/// Taking rows from a 2.2 file costs in proportion to the page for columns encoded as one
/// constant (counters at zero, `language`, `lifecycle`); a 10-row take of every column was 2.3x
/// slower than from 2.1 at 300k rows (pylance 14.0.2). lancedb for Python reads both.
pub const DATA_STORAGE_VERSION: &str = "2.1";

pub struct PatternStore {
    conn: Connection,
    dir: PathBuf,
    embedder: Arc<dyn Embedder>,
    options: StoreOptions,
    table: tokio::sync::Mutex<Option<Table>>,
    rows: RowCache,
    facts: FactsCache,
}

impl PatternStore {
    /// The store under `dir` (created on first write). Refuses a table another embedder wrote.
    pub async fn open(
        dir: &Path,
        embedder: Arc<dyn Embedder>,
        options: StoreOptions,
    ) -> Result<PatternStore> {
        let uri = dir.to_str().ok_or_else(|| {
            PatternsError::Invalid(format!("{} is not valid UTF-8", dir.display()))
        })?;
        let conn = lancedb::connect(uri)
            .read_consistency_interval(std::time::Duration::from_millis(500))
            .storage_option("new_table_data_storage_version", DATA_STORAGE_VERSION)
            .execute()
            .await?;
        let store = PatternStore {
            conn,
            dir: dir.to_path_buf(),
            embedder,
            rows: RowCache::new(options.row_cache),
            facts: FactsCache::default(),
            options,
            table: tokio::sync::Mutex::new(None),
        };
        store.table().await?;
        Ok(store)
    }

    #[cfg(test)]
    pub(crate) fn facts(&self) -> &FactsCache {
        &self.facts
    }

    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    pub fn embedder(&self) -> &Arc<dyn Embedder> {
        &self.embedder
    }

    pub fn table_path(&self) -> PathBuf {
        self.dir.join(format!("{TABLE}.lance"))
    }

    /// The table, when it exists; its embedder checked once.
    pub(crate) async fn table(&self) -> Result<Option<Table>> {
        let mut cached = self.table.lock().await;
        if cached.is_none() && self.table_path().exists() {
            let table = self.conn.open_table(TABLE).execute().await.map_err(|e| {
                PatternsError::from(e).context(format!(
                    "opening the pattern table {}",
                    self.table_path().display()
                ))
            })?;
            self.check_embedder(&table).await?;
            ensure_text_index(&table).await;
            *cached = Some(table);
        }
        Ok(cached.clone())
    }

    async fn check_embedder(&self, table: &Table) -> Result<()> {
        let (stored, stored_dim) =
            record::stored_embedder(&*table.schema().await?).unwrap_or_default();
        let e = &self.embedder;
        if stored != e.name() || stored_dim != e.dim() {
            return Err(PatternsError::EmbedderMismatch {
                path: self.table_path().display().to_string(),
                stored,
                stored_dim,
                configured: e.name().to_string(),
                configured_dim: e.dim(),
            });
        }
        Ok(())
    }

    /// The table, created (with its full-text index) when it does not exist yet.
    async fn table_for_write(&self, first: &RecordBatch) -> Result<(Table, bool)> {
        if let Some(t) = self.table().await? {
            return Ok((t, false));
        }
        let Some(table) = create_or_open(&self.conn, TABLE, first).await? else {
            // Another writer created it first: write into theirs.
            let table = self.table().await?.ok_or_else(|| {
                PatternsError::Internal("the pattern table vanished after its creation".into())
            })?;
            return Ok((table, false));
        };
        // BM25 needs an index to search by; building it on a handful of rows is cheap, and
        // `optimize` keeps it current.
        create_text_index(&table).await?;
        *self.table.lock().await = Some(table.clone());
        Ok((table, true))
    }

    /// The embeddings of `texts`, checked against the table's dimension.
    pub async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>> {
        crate::embed::embed_checked(self.embedder.as_ref(), texts).await
    }

    /// Insert the patterns whose id is not in the table yet (the others are left alone).
    /// Returns how many rows the table gained.
    pub async fn insert_new(&self, patterns: &[Pattern]) -> Result<u64> {
        self.merge(patterns, false).await
    }

    /// Insert or replace the patterns by id.
    pub async fn upsert(&self, patterns: &[Pattern]) -> Result<u64> {
        self.merge(patterns, true).await
    }

    async fn merge(&self, patterns: &[Pattern], update: bool) -> Result<u64> {
        if patterns.is_empty() {
            return Ok(0);
        }
        let schema = record::schema(self.embedder.name(), self.embedder.dim());
        let batch = record::to_batch(patterns, &schema)?;
        let (table, created) = self.table_for_write(&batch).await?;
        if created {
            return Ok(patterns.len() as u64);
        }
        let mut merge = table.merge_insert(&["pattern_id"]);
        merge.when_not_matched_insert_all();
        if update {
            merge.when_matched_update_all(None);
        }
        let reader = arrow::record_batch::RecordBatchIterator::new([Ok(batch)], schema);
        let result = merge.execute(Box::new(reader)).await?;
        Ok(result.num_inserted_rows + if update { result.num_updated_rows } else { 0 })
    }

    /// Patterns by id (those that exist), in no particular order.
    pub async fn get_many(&self, ids: &[String]) -> Result<Vec<Pattern>> {
        let ids: Vec<&String> = ids.iter().filter(|i| valid_id(i)).collect();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let list = ids
            .iter()
            .map(|i| format!("'{i}'"))
            .collect::<Vec<_>>()
            .join(", ");
        self.scan(Some(format!("pattern_id IN ({list})")), None)
            .await
    }

    /// One pattern by id.
    pub async fn get(&self, id: &str) -> Result<Pattern> {
        if !valid_id(id) {
            return Err(PatternsError::Invalid(format!(
                "'{id}' is not a pattern id (16 lowercase hex digits)"
            )));
        }
        self.get_many(&[id.to_string()])
            .await?
            .pop()
            .ok_or_else(|| PatternsError::NotFound(id.to_string()))
    }

    /// Every pattern matching `filter` (an SQL predicate built by this crate), up to `limit`.
    pub async fn scan(&self, filter: Option<String>, limit: Option<usize>) -> Result<Vec<Pattern>> {
        let Some(table) = self.table().await? else {
            return Ok(Vec::new());
        };
        let mut q = table.query();
        if let Some(f) = filter {
            q = q.only_if(f);
        }
        if let Some(l) = limit {
            q = q.limit(l);
        }
        patterns_of(&q).await
    }

    /// Patterns of a lifecycle (all when `None`), newest first.
    pub async fn list(&self, lifecycle: Option<Lifecycle>) -> Result<Vec<Pattern>> {
        let filter = lifecycle.map(|l| format!("lifecycle = '{}'", l.as_str()));
        let mut all = self.scan(filter, None).await?;
        all.sort_by(|a, b| (b.created_at_us, &b.pattern_id).cmp(&(a.created_at_us, &a.pattern_id)));
        Ok(all)
    }

    pub async fn count(&self) -> Result<usize> {
        match self.table().await? {
            Some(t) => Ok(t.count_rows(None).await?),
            None => Ok(0),
        }
    }

    /// The hybrid search: vector and BM25, fused by reciprocal rank, filters applied first
    /// (those every row of the table passes left out, see [`crate::facts`]); the rows from the
    /// row cache where it has them, each checked against the whole filter.
    pub async fn search(&self, s: &Search) -> Result<Vec<Hit>> {
        check_search(s)?;
        let Some(table) = self.table().await? else {
            return Ok(Vec::new());
        };
        let version = table.version().await?;
        let narrowed = self.facts.at(&table, version).await?.narrow(s);
        let mut hits = match self.search_at(&table, version, &narrowed).await? {
            Some(hits) => hits,
            // The table moved while the search ran: row ids alone may name other rows now.
            None => {
                let found = self.ids_in(&table, &narrowed, Key::PatternId).await?;
                self.rows_of(&table, &found).await?
            }
        };
        hits.retain(|h| s.admits(&h.pattern));
        Ok(hits)
    }

    /// The search answered by row ids alone, which spares each leg a read of the pattern_id
    /// column (`perf`: 5.5 % of `bench codegen --patterns 10000`'s CPU); `None` when the table
    /// is no longer at `version` after the legs or the read of the rows, since row ids name
    /// rows only within one version.
    pub(crate) async fn search_at(
        &self,
        table: &Table,
        version: u64,
        s: &Search,
    ) -> Result<Option<Vec<Hit>>> {
        let found = self.ids_in(table, s, Key::RowId).await?;
        if table.version().await? != version {
            return Ok(None);
        }
        self.rows.at_version(version);
        let mut rows: HashMap<u64, Arc<Pattern>> = found
            .iter()
            .filter_map(|h| Some((h.row_id, self.rows.get(h.row_id, version)?)))
            .collect();
        let missing: Vec<u64> = found
            .iter()
            .map(|h| h.row_id)
            .filter(|r| !rows.contains_key(r))
            .collect();
        if !missing.is_empty() {
            let taken = rows_with_ids(&table.take_row_ids(missing).with_row_id()).await?;
            if table.version().await? != version {
                return Ok(None);
            }
            for (row_id, p) in taken {
                let p = Arc::new(p);
                self.rows.insert(version, row_id, p.clone());
                rows.insert(row_id, p);
            }
        }
        Ok(Some(
            found
                .iter()
                .filter_map(|h| {
                    Some(Hit {
                        pattern: Pattern::clone(rows.get(&h.row_id)?),
                        relevance: h.relevance,
                    })
                })
                .collect(),
        ))
    }

    /// The search without its rows: ids, where the rows are, and relevance, best first.
    pub async fn search_ids(&self, s: &Search) -> Result<Vec<IdHit>> {
        check_search(s)?;
        match self.table().await? {
            Some(table) => self.ids_in(&table, s, Key::PatternId).await,
            None => Ok(Vec::new()),
        }
    }

    /// Each leg's answer, fused. By [`Key::RowId`], the hits' pattern ids are empty.
    async fn ids_in(&self, table: &Table, s: &Search, key: Key) -> Result<Vec<IdHit>> {
        // Each leg names its score column (Lance warns when it adds one on its own).
        let leg = |score: &str| {
            let columns: &[&str] = match key {
                Key::PatternId => &["pattern_id", score],
                Key::RowId => &[score],
            };
            let q = table
                .query()
                .select(Select::columns(columns))
                .with_row_id()
                .limit(s.top_k);
            match filter(s) {
                Some(f) => q.only_if(f),
                None => q,
            }
        };
        let text = async {
            let q = leg("_score").full_text_search(FullTextSearchQuery::new(s.text.clone()));
            id_hits(&collect(q.execute().await?).await?, s.top_k, key)
        };
        if s.mode == Mode::Text {
            return text.await;
        }
        let vector = match &s.vector {
            Some(v) => v.clone(),
            None => self.embed(std::slice::from_ref(&s.text)).await?.remove(0),
        };
        let q = self.tuned(leg("_distance").nearest_to(vector)?, s.top_k)?;
        let nearest = async { id_hits(&collect(q.execute().await?).await?, s.top_k, key) };
        if s.mode == Mode::Vector || s.text.trim().is_empty() {
            return nearest.await;
        }
        let (nearest, text) = futures::try_join!(nearest, text)?;
        Ok(match key {
            Key::PatternId => reciprocal_rank(&[nearest, text], s.top_k, |h| h.pattern_id.clone()),
            Key::RowId => reciprocal_rank(&[nearest, text], s.top_k, |h| h.row_id),
        })
    }

    /// A vector query with the store's probing, HNSW breadth and re-ranking.
    fn tuned(
        &self,
        q: lancedb::query::VectorQuery,
        top_k: usize,
    ) -> Result<lancedb::query::VectorQuery> {
        let mut q = q.distance_type(DistanceType::Cosine);
        if let Some(n) = self.options.nprobes {
            q = q.nprobes(n.max(1))?;
        }
        if let Some(ef) = self.options.ef {
            // Lance refuses a breadth below the candidates wanted.
            let wanted = top_k * self.options.refine_factor.unwrap_or(1).max(1) as usize;
            q = q.ef(ef.max(wanted));
        }
        if let Some(f) = self.options.refine_factor {
            q = q.refine_factor(f);
        }
        Ok(q)
    }

    /// The rows of `found`, in its order: read by row id, and those a compaction moved since the
    /// search (their row id no longer holds them) by pattern id.
    pub(crate) async fn rows_of(&self, table: &Table, found: &[IdHit]) -> Result<Vec<Hit>> {
        let mut rows: HashMap<String, Pattern> = HashMap::new();
        let take = table.take_row_ids(found.iter().map(|h| h.row_id).collect());
        match patterns_of(&take).await {
            Ok(taken) => rows.extend(taken.into_iter().map(|p| (p.pattern_id.clone(), p))),
            Err(e) => tracing::debug!("reading rows by id failed, reading by pattern id: {e}"),
        }
        let moved: Vec<String> = found
            .iter()
            .filter(|h| !rows.contains_key(&h.pattern_id))
            .map(|h| h.pattern_id.clone())
            .collect();
        if !moved.is_empty() {
            let by_id = self.get_many(&moved).await?;
            rows.extend(by_id.into_iter().map(|p| (p.pattern_id.clone(), p)));
        }
        Ok(found
            .iter()
            .filter_map(|h| {
                Some(Hit {
                    pattern: rows.get(&h.pattern_id)?.clone(),
                    relevance: h.relevance,
                })
            })
            .collect())
    }

    /// The nearest patterns of a node type to a vector (lineage candidates), deprecated included.
    pub async fn nearest(&self, vector: &[f32], node_type: &str, k: usize) -> Result<Vec<Pattern>> {
        let Some(table) = self.table().await? else {
            return Ok(Vec::new());
        };
        let q = table
            .query()
            .only_if(format!("node_type = {}", quote(node_type)))
            .nearest_to(vector.to_vec())?
            .distance_type(DistanceType::Cosine)
            .limit(k);
        patterns_of(&q).await
    }

    /// The ids of the `k` patterns nearest to `vector` by an exhaustive (flat) scan, the vector
    /// index bypassed: the ground truth a recall is measured against.
    pub async fn exact_ids(&self, vector: &[f32], k: usize) -> Result<Vec<String>> {
        let Some(table) = self.table().await? else {
            return Ok(Vec::new());
        };
        let q = table
            .query()
            .select(Select::columns(&["pattern_id", "_distance"]))
            .nearest_to(vector.to_vec())?
            .distance_type(DistanceType::Cosine)
            .bypass_vector_index()
            .limit(k);
        let batches: Vec<RecordBatch> = q.execute().await?.try_collect().await?;
        let mut ids = Vec::with_capacity(k);
        for b in &batches {
            ids.extend(
                crate::columns::Rows::new(b)
                    .iter()
                    .filter_map(|r| r.str("pattern_id")),
            );
        }
        Ok(ids)
    }

    /// Compact files, prune old versions, bring indexes up to date, and build the vector index
    /// once the table has `index_threshold` rows.
    pub async fn optimize(&self) -> Result<OptimizeReport> {
        let Some(table) = self.table().await? else {
            return Ok(OptimizeReport::default());
        };
        let mut report = OptimizeReport::default();
        let compacted = table
            .optimize(OptimizeAction::Compact {
                options: Default::default(),
                remap_options: None,
            })
            .await?;
        if let Some(c) = compacted.compaction {
            report.fragments_removed = c.fragments_removed as u64;
            report.fragments_added = c.fragments_added as u64;
        }
        let pruned = table
            .optimize(OptimizeAction::Prune {
                older_than: Some(self.options.keep_versions),
                delete_unverified: Some(false),
                error_if_tagged_old_versions: Some(false),
            })
            .await?;
        if let Some(p) = pruned.prune {
            report.versions_pruned = p.old_versions;
            report.bytes_removed = p.bytes_removed;
        }
        ensure_text_index(&table).await;
        self.ensure_vector_index(&table).await?;
        table
            .optimize(OptimizeAction::Index(Default::default()))
            .await?;
        report.rows = table.count_rows(None).await?;
        let indices = table.list_indices().await?;
        report.vector_index = indices.iter().any(|i| i.columns == ["embedding"]);
        report.fts_index = indices.iter().any(|i| i.columns == ["search_text"]);
        Ok(report)
    }

    /// From `index_threshold` rows: the vector index of the configured kind (rebuilt when the
    /// table has another kind), and scalar indexes on the filtered columns (every search
    /// prefilters by them; without an index that is a scan of each column).
    async fn ensure_vector_index(&self, table: &Table) -> Result<()> {
        if table.count_rows(None).await? < self.options.index_threshold {
            return Ok(());
        }
        let indexed: Vec<(Vec<String>, IndexType)> = table
            .list_indices()
            .await?
            .into_iter()
            .map(|i| (i.columns, i.index_type))
            .collect();
        let kind = self.options.vector_index;
        if !indexed
            .iter()
            .any(|(c, t)| c == &["embedding"] && *t == kind.index_type())
        {
            // Replaces an index of another kind on the column.
            table
                .create_index(&["embedding"], kind.index())
                .execute()
                .await?;
        }
        let scalar = [
            ("node_type", Index::Bitmap(Default::default())),
            ("lifecycle", Index::Bitmap(Default::default())),
            ("module", Index::Bitmap(Default::default())),
            ("domain", Index::Bitmap(Default::default())),
            ("quality_score", Index::BTree(Default::default())),
            // Reads by id (`get`, `show`, a moved row) and merges on pattern_id.
            ("pattern_id", Index::BTree(Default::default())),
        ];
        for (column, index) in scalar {
            if !indexed.iter().any(|(c, _)| c == &[column]) {
                table.create_index(&[column], index).execute().await?;
            }
        }
        Ok(())
    }
}

pub(crate) async fn create_text_index(table: &Table) -> Result<()> {
    table
        .create_index(&["search_text"], Index::FTS(FtsIndexBuilder::default()))
        .execute()
        .await?;
    Ok(())
}

/// The BM25 index, when a table lacks it: a table's creation and its index are two commits
/// (here and in `reembed`), and a process killed between them leaves a table text search
/// cannot use. A failure (another process building it at the same moment) is left to the next
/// open or `optimize`.
async fn ensure_text_index(table: &Table) {
    let has = match table.list_indices().await {
        Ok(indices) => indices.iter().any(|i| i.columns == ["search_text"]),
        Err(e) => {
            tracing::warn!("listing the pattern table's indexes: {e}");
            return;
        }
    };
    if !has && let Err(e) = create_text_index(table).await {
        tracing::warn!("building the pattern table's text index: {e}");
    }
}

/// The store's tables (those that exist) as DataFusion tables, for `omnistream sql`: read
/// through Lance's own provider, so filters and projections reach the Lance scan.
pub async fn sql_tables(
    dir: &Path,
) -> Result<Vec<(String, Arc<dyn datafusion::catalog::TableProvider>)>> {
    let mut out: Vec<(String, Arc<dyn datafusion::catalog::TableProvider>)> = Vec::new();
    let names = [TABLE, crate::uses::USES_TABLE];
    if !names
        .iter()
        .any(|n| dir.join(format!("{n}.lance")).exists())
    {
        return Ok(out);
    }
    let uri = dir.to_string_lossy();
    let conn = lancedb::connect(&uri).execute().await?;
    for name in names {
        if !dir.join(format!("{name}.lance")).exists() {
            continue;
        }
        let table = conn.open_table(name).execute().await.map_err(|e| {
            PatternsError::from(e).context(format!("opening the {name} table for SQL"))
        })?;
        let adapter =
            lancedb::table::datafusion::BaseTableAdapter::try_new(table.base_table().clone())
                .await?;
        out.push((name.to_string(), Arc::new(adapter)));
    }
    Ok(out)
}

/// The patterns a query finds, every batch of its answer decoded.
pub(crate) async fn patterns_of(query: &impl ExecutableQuery) -> Result<Vec<Pattern>> {
    let batches: Vec<RecordBatch> = query.execute().await?.try_collect().await?;
    let mut out = Vec::new();
    for b in &batches {
        out.extend(record::from_batch(b)?);
    }
    Ok(out)
}

/// The rows a query read, each with its row id (the query asks for `_rowid`).
async fn rows_with_ids(query: &impl ExecutableQuery) -> Result<Vec<(u64, Pattern)>> {
    let batches = collect(query.execute().await?).await?;
    let mut out = Vec::new();
    for b in &batches {
        out.extend(
            row_ids(b)?
                .values()
                .iter()
                .copied()
                .zip(record::from_batch(b)?),
        );
    }
    Ok(out)
}

/// The `_rowid` column of rows read or found `.with_row_id()`.
fn row_ids(b: &RecordBatch) -> Result<arrow::array::UInt64Array> {
    use arrow::array::{Array, UInt64Array};
    b.column_by_name("_rowid")
        .and_then(|c| c.as_any().downcast_ref::<UInt64Array>().cloned())
        .ok_or_else(|| PatternsError::Internal("rows read without _rowid".into()))
}

/// A new table holding `first`; `None` when another writer created it meanwhile.
pub(crate) async fn create_or_open(
    conn: &Connection,
    name: &str,
    first: &RecordBatch,
) -> Result<Option<Table>> {
    match conn.create_table(name, first.clone()).execute().await {
        Ok(t) => Ok(Some(t)),
        Err(lancedb::Error::TableAlreadyExists { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn check_search(s: &Search) -> Result<()> {
    if s.top_k == 0 || s.top_k > MAX_TOP_K {
        return Err(PatternsError::Invalid(format!(
            "top_k must be between 1 and {MAX_TOP_K}, not {}",
            s.top_k
        )));
    }
    if let Some(q) = s.min_quality
        && !(0.0..=1.0).contains(&q)
    {
        return Err(PatternsError::Invalid(format!(
            "min_quality must be between 0 and 1, not {q}"
        )));
    }
    Ok(())
}

/// The search's filters as an SQL predicate (values quoted, so no filter is injected).
fn filter(s: &Search) -> Option<String> {
    let mut parts = Vec::new();
    if !s.include_deprecated {
        parts.push("lifecycle <> 'deprecated'".to_string());
    }
    if let Some(t) = &s.node_type {
        parts.push(format!("node_type = {}", quote(t)));
    }
    if let Some(d) = &s.domain {
        parts.push(format!("domain = {}", quote(d)));
    }
    if let Some(m) = &s.module {
        parts.push(format!("module = {}", quote(m)));
    }
    if let Some(q) = s.min_quality {
        parts.push(format!("quality_score >= {q}"));
    }
    (!parts.is_empty()).then(|| parts.join(" AND "))
}

/// An SQL string literal.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// 16 lowercase hex digits.
pub fn valid_id(id: &str) -> bool {
    id.len() == 16
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

async fn collect(
    stream: impl futures::Stream<Item = lancedb::Result<RecordBatch>>,
) -> Result<Vec<RecordBatch>> {
    Ok(stream.try_collect().await?)
}

/// The ids (by `key`), row ids and relevance of a search's result.
fn id_hits(batches: &[RecordBatch], top_k: usize, key: Key) -> Result<Vec<IdHit>> {
    let mut hits = Vec::new();
    for b in batches {
        if b.num_rows() == 0 {
            continue;
        }
        let relevance = relevance(b);
        let row_ids = row_ids(b)?;
        for (i, r) in crate::columns::Rows::new(b).iter().enumerate() {
            let pattern_id = match key {
                Key::RowId => String::new(),
                Key::PatternId => match r.str("pattern_id") {
                    Some(id) => id,
                    None => continue,
                },
            };
            hits.push(IdHit {
                pattern_id,
                row_id: row_ids.value(i),
                relevance: relevance.get(i).copied().unwrap_or(0.0),
            });
        }
        debug_assert_eq!(row_ids.len(), b.num_rows());
    }
    hits.truncate(top_k);
    Ok(hits)
}

/// The relevance column of a result: BM25's `_score`, or 1 - cosine distance.
fn relevance(b: &RecordBatch) -> Vec<f32> {
    use arrow::array::{Array, Float32Array};
    let col = |n: &str| {
        b.column_by_name(n)
            .and_then(|c| c.as_any().downcast_ref::<Float32Array>().cloned())
    };
    if let Some(r) = col("_score") {
        return r.iter().map(|v| v.unwrap_or(0.0)).collect();
    }
    if let Some(d) = col("_distance") {
        return (0..d.len()).map(|i| 1.0 - d.value(i)).collect();
    }
    Vec::new()
}
