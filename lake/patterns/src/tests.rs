//! The store against a real LanceDB table in a temporary directory: dedup, lineage, hybrid
//! search, filters, the embedder check, optimisation, and the indexer over a real event log.

use std::sync::Arc;

use omnistream_streams::{EmbeddedLog, EmbeddedLogConfig, Event, EventLog, Topic};
use serde_json::json;

use crate::embed::{DEFAULT_DIM, Embedder, HashingEmbedder};
use crate::facts::TableFacts;
use crate::indexer::{self, IndexReport, Indexer, IndexerOptions, StorageRequest};
use crate::lifecycle::Lifecycle;
use crate::record::{Pattern, Scores};
use crate::store::{Mode, PatternStore, Search, StoreOptions, VectorIndex};
use crate::uses::UseLog;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

async fn open(dir: &std::path::Path) -> PatternStore {
    PatternStore::open(
        dir,
        Arc::new(HashingEmbedder::default()),
        StoreOptions::default(),
    )
    .await
    .unwrap()
}

fn request(code: &str, node_type: &str, description: &str) -> StorageRequest {
    StorageRequest {
        node_type: node_type.into(),
        domain: Some("files".into()),
        module: Some("v1_0_0/logic.py".into()),
        code: code.into(),
        description: Some(description.into()),
        operations: vec!["checksum".into()],
        scores: Scores {
            quality: 0.97,
            ..Scores::default()
        },
        scorer_version: Some("quality-v2".into()),
        ..StorageRequest::default()
    }
}

pub(crate) fn pattern(code: &str, node_type: &str, description: &str) -> Pattern {
    indexer::candidate(&request(code, node_type, description)).unwrap()
}

async fn store_one(store: &PatternStore, p: Pattern) -> (IndexReport, Vec<indexer::Change>) {
    let mut report = IndexReport::default();
    let changes = indexer::store_new(store, vec![p], &mut report)
        .await
        .unwrap();
    (report, changes)
}

const HASHER: &str = "import hashlib\n\n\ndef run(operation: str, payload: dict) -> dict:\n    \"\"\"Checksums of the files.\"\"\"\n    out = {}\n    for f in payload['files']:\n        out[f['name']] = hashlib.sha256(f['data'].encode()).hexdigest()\n    return {'checksums': out}\n";

#[test]
fn the_same_code_up_to_formatting_and_comments_is_stored_once() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    rt.block_on(async {
        let store = open(dir.path()).await;
        let (r, changes) = store_one(&store, pattern(HASHER, "compute", "sha256 checksums")).await;
        assert_eq!((r.stored, r.duplicates, changes.len()), (1, 0, 1));
        assert_eq!(changes[0].change, "created");
        let reformatted = HASHER
            .replace("    ", "  ")
            .replace("out = {}", "out = {}  # by name")
            .replace("\n\n\n", "\n# checksums\n");
        let (r, changes) = store_one(&store, pattern(&reformatted, "compute", "again")).await;
        assert_eq!((r.stored, r.duplicates, changes.len()), (0, 1, 0));
        assert_eq!(store.count().await.unwrap(), 1);
    });
}

#[test]
fn versions_follow_similarity_to_the_nearest_pattern_of_the_same_type() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    rt.block_on(async {
        let store = open(dir.path()).await;
        let (_, c) = store_one(&store, pattern(HASHER, "compute", "sha256 checksums")).await;
        let root = c[0].pattern.pattern_id.clone();
        // A one-word change: a patch of it.
        let patch = HASHER.replace("hexdigest()", "hexdigest().upper()");
        let (_, c) = store_one(&store, pattern(&patch, "compute", "sha256 checksums upper")).await;
        let p = &c[0].pattern;
        assert_eq!((c[0].change, p.version.as_str()), ("version_created", "1.0.1"));
        assert_eq!((p.parent_ids.clone(), p.lineage_id.clone()), (vec![root.clone()], root.clone()));
        // A larger change (two more lines of behaviour): a minor version.
        let minor = HASHER.replace(
            "    return {'checksums': out}\n",
            "    sizes = {f['name']: len(f['data']) for f in payload['files']}\n    total = sum(sizes.values())\n    return {'checksums': out, 'sizes': sizes, 'total': total}\n",
        );
        let s = crate::normalise::similarity(
            &crate::normalise::normalise(HASHER, &Default::default()),
            &crate::normalise::normalise(&minor, &Default::default()),
        );
        assert!((0.7..=0.9).contains(&s), "similarity {s}");
        let (_, c) = store_one(&store, pattern(&minor, "compute", "sha256 checksums sizes")).await;
        assert_eq!(c[0].pattern.version, "1.1.0");
        // Unrelated code: a pattern of its own.
        let other = "def run(operation: str, payload: dict) -> dict:\n    \"\"\"Sum.\"\"\"\n    return {'total': sum(payload['values'])}\n";
        let (_, c) = store_one(&store, pattern(other, "compute", "sum of values")).await;
        assert_eq!((c[0].change, c[0].pattern.version.as_str()), ("created", "1.0.0"));
        assert!(c[0].pattern.parent_ids.is_empty());
        // The same code under another node type is compared with that type's patterns only.
        let (_, c) = store_one(&store, pattern(&patch.replace("sha256", "md5"), "effect", "md5")).await;
        assert_eq!(c[0].pattern.version, "1.0.0");
    });
}

/// Patterns with chosen vectors: the test decides what is near.
fn with_vector(code: &str, node_type: &str, text: &str, axis: usize, quality: f64) -> Pattern {
    let mut p = pattern(code, node_type, text);
    p.search_text = text.into();
    p.scores.quality = quality;
    let mut v = vec![0.0f32; DEFAULT_DIM];
    v[axis] = 1.0;
    v[(axis + 1) % DEFAULT_DIM] = 0.2;
    crate::embed::normalise(&mut v);
    p.embedding = v;
    p
}

fn axis(i: usize) -> Vec<f32> {
    let mut v = vec![0.0f32; DEFAULT_DIM];
    v[i] = 1.0;
    v
}

#[test]
fn hybrid_search_finds_by_words_and_by_vector_and_honours_filters() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    rt.block_on(async {
        let store = open(dir.path()).await;
        let mut rows = Vec::new();
        for i in 0..40 {
            rows.push(with_vector(
                &format!("x = {i}\n"),
                "compute",
                &format!("filler number {i}"),
                10 + i,
                0.9,
            ));
        }
        // Only the text side finds this one: its vector is far from the query's.
        rows.push(with_vector(
            "a = 'zebra'\n",
            "compute",
            "zebra stripes counter",
            200,
            0.95,
        ));
        // Only the vector side finds this one: no word in common with the query.
        rows.push(with_vector(
            "b = 1\n",
            "compute",
            "unrelated words here",
            300,
            0.95,
        ));
        // Deprecated, other type, other domain, low quality: filtered out.
        let mut deprecated = with_vector("c = 1\n", "compute", "zebra deprecated", 300, 0.99);
        deprecated.lifecycle = Lifecycle::Deprecated;
        rows.push(deprecated);
        rows.push(with_vector("d = 1\n", "effect", "zebra effect", 300, 0.99));
        let mut other_domain = with_vector("e = 1\n", "compute", "zebra elsewhere", 300, 0.99);
        other_domain.domain = Some("billing".into());
        rows.push(other_domain);
        rows.push(with_vector("f = 1\n", "compute", "zebra poor", 300, 0.5));
        store.insert_new(&rows).await.unwrap();
        let ids = |hits: &[crate::store::Hit]| -> Vec<String> {
            hits.iter().map(|h| h.pattern.search_text.clone()).collect()
        };
        let search = Search {
            text: "zebra".into(),
            vector: Some(axis(300)),
            node_type: Some("compute".into()),
            domain: Some("files".into()),
            min_quality: Some(0.8),
            top_k: 2,
            ..Search::default()
        };
        let hits = store.search(&search).await.unwrap();
        let found = ids(&hits);
        assert!(
            found.contains(&"zebra stripes counter".to_string()),
            "{found:?}"
        );
        assert!(
            found.contains(&"unrelated words here".to_string()),
            "{found:?}"
        );
        // Either side alone misses the other's find.
        let text_only = store
            .search(&Search {
                mode: Mode::Text,
                ..search.clone()
            })
            .await
            .unwrap();
        assert_eq!(ids(&text_only), ["zebra stripes counter"]);
        let vector_only = store
            .search(&Search {
                mode: Mode::Vector,
                ..search.clone()
            })
            .await
            .unwrap();
        assert!(ids(&vector_only).contains(&"unrelated words here".to_string()));
        assert!(!ids(&vector_only).contains(&"zebra stripes counter".to_string()));
        // Without the filters, the filtered rows come back.
        let all = store
            .search(&Search {
                node_type: None,
                domain: None,
                min_quality: None,
                include_deprecated: true,
                top_k: 20,
                ..search.clone()
            })
            .await
            .unwrap();
        for t in [
            "zebra deprecated",
            "zebra effect",
            "zebra elsewhere",
            "zebra poor",
        ] {
            assert!(
                ids(&all).contains(&t.to_string()),
                "{t} missing from {:?}",
                ids(&all)
            );
        }
        // top_k out of range, a quality beyond 1: clear errors.
        for bad in [
            Search {
                top_k: 0,
                ..search.clone()
            },
            Search {
                top_k: 21,
                ..search.clone()
            },
        ] {
            let e = store.search(&bad).await.unwrap_err().to_string();
            assert!(e.contains("top_k must be between 1 and 20"), "{e}");
        }
        let e = store
            .search(&Search {
                min_quality: Some(1.5),
                ..search.clone()
            })
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("min_quality must be between 0 and 1"), "{e}");
        // A filter value with a quote is a value, not SQL.
        let none = store
            .search(&Search {
                node_type: Some("x' OR '1'='1".into()),
                ..search.clone()
            })
            .await
            .unwrap();
        assert!(none.is_empty());
    });
}

struct Other;

impl Embedder for Other {
    fn name(&self) -> &str {
        "other"
    }
    fn dim(&self) -> usize {
        16
    }
    fn embed<'a>(
        &'a self,
        texts: &'a [String],
    ) -> futures::future::BoxFuture<'a, crate::Result<Vec<Vec<f32>>>> {
        Box::pin(async move { Ok(texts.iter().map(|_| vec![0.25; 16]).collect()) })
    }
}

#[test]
fn a_table_of_another_embedder_is_refused_with_what_to_run() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    rt.block_on(async {
        let store = open(dir.path()).await;
        store_one(&store, pattern(HASHER, "compute", "sha256")).await;
        drop(store);
        let e = PatternStore::open(dir.path(), Arc::new(Other), StoreOptions::default())
            .await
            .err()
            .expect("refused")
            .to_string();
        assert!(
            e.contains("'hashing' (384 dimensions)") && e.contains("patterns reembed"),
            "{e}"
        );
    });
}

#[test]
fn reembed_moves_the_table_to_another_embedder_and_keeps_every_pattern() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    rt.block_on(async {
        let store = open(dir.path()).await;
        store_one(&store, pattern(HASHER, "compute", "sha256 checksums")).await;
        let other = "def run(operation: str, payload: dict) -> dict:\n    \"\"\"Sum.\"\"\"\n    return {'total': sum(payload['values'])}\n";
        store_one(&store, pattern(other, "compute", "sum of values")).await;
        let before = store.list(None).await.unwrap();
        drop(store);
        let small: Arc<dyn Embedder> = Arc::new(HashingEmbedder::new(32));
        let lock = dir.path().join("patterns.lock");
        let mut seen = Vec::new();
        let report = crate::reembed::run(
            dir.path(),
            small.clone(),
            StoreOptions::default(),
            &lock,
            |done, total| seen.push((done, total)),
        )
        .await
        .unwrap();
        assert_eq!(report.rows, 2);
        assert_eq!(report.from, Some(("hashing".to_string(), DEFAULT_DIM)));
        assert_eq!(report.to, ("hashing".to_string(), 32));
        assert_eq!(seen.last(), Some(&(2, 2)));
        // The old embedder is now the one refused; the new one reads every pattern unchanged.
        assert!(PatternStore::open(dir.path(), Arc::new(HashingEmbedder::default()), StoreOptions::default()).await.is_err());
        let store = PatternStore::open(dir.path(), small, StoreOptions::default()).await.unwrap();
        let after = store.list(None).await.unwrap();
        assert_eq!(after.len(), before.len());
        for (a, b) in after.iter().zip(&before) {
            assert_eq!((&a.pattern_id, &a.code, &a.version, a.usage_count), (&b.pattern_id, &b.code, &b.version, b.usage_count));
            assert_eq!(a.embedding.len(), 32);
        }
        let hits = store
            .search(&Search { text: "sum of values".into(), top_k: 2, ..Search::default() })
            .await
            .unwrap();
        assert_eq!(hits[0].pattern.code, other, "text and vector sides both work after the rewrite");
    });
}

#[test]
fn optimize_compacts_and_builds_the_vector_index_past_the_threshold() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    rt.block_on(async {
        let options = StoreOptions {
            index_threshold: 300,
            keep_versions: chrono::Duration::zero(),
            ..StoreOptions::default()
        };
        let store = PatternStore::open(dir.path(), Arc::new(HashingEmbedder::default()), options)
            .await
            .unwrap();
        fill_fragments(&store).await;
        let r = store.optimize().await.unwrap();
        assert_eq!(r.rows, 400);
        assert!(r.fragments_removed >= 3 && r.fragments_added == 1, "{r:?}");
        assert!(r.vector_index && r.fts_index, "{r:?}");
        // Searches still find by vector and by text after the index is built.
        let hits = store
            .search(&Search {
                text: "pattern 123".into(),
                top_k: 5,
                ..Search::default()
            })
            .await
            .unwrap();
        assert!(hits.iter().any(|h| h.pattern.description == "pattern 123"));
    });
}

/// `body` run against a store holding [`fill_fragments`]' patterns, its table and its directory.
fn with_filled_store(body: impl AsyncFnOnce(&PatternStore, &lancedb::Table, &std::path::Path)) {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    rt.block_on(async {
        let store = open(dir.path()).await;
        fill_fragments(&store).await;
        let table = store.table().await.unwrap().unwrap();
        body(&store, &table, dir.path()).await;
    });
}

/// Four fragments of 100 compute patterns, "pattern N" each.
async fn fill_fragments(store: &PatternStore) {
    for chunk in 0..4 {
        let rows: Vec<Pattern> = (0..100)
            .map(|i| {
                let n = chunk * 100 + i;
                let mut p = pattern(
                    &format!("value = {n}\n"),
                    "compute",
                    &format!("pattern {n}"),
                );
                p.embedding = HashingEmbedder::default().vector(&format!("pattern {n}"));
                p
            })
            .collect();
        store.insert_new(&rows).await.unwrap();
    }
}

#[test]
fn filters_every_row_passes_are_left_out_and_each_row_is_still_checked() {
    with_filled_store(async |store, table, _| {
        let good = Search {
            min_quality: Some(0.9),
            ..by_text("zebra stripes")
        };
        let facts = TableFacts::read(table).await.unwrap();
        assert_eq!(facts.min_quality, 0.97);
        assert!(!facts.any_deprecated);
        let narrowed = facts.narrow(&good);
        assert_eq!(narrowed.min_quality, None);
        assert!(narrowed.include_deprecated);
        // A quality above every row's is still a filter.
        assert_eq!(
            facts
                .narrow(&Search {
                    min_quality: Some(0.98),
                    ..good.clone()
                })
                .min_quality,
            Some(0.98)
        );

        let zebra = |code: &str, text: &str| {
            let mut p = pattern(code, "compute", text);
            p.embedding = HashingEmbedder::default().vector(text);
            p
        };
        let mut poor = zebra("poor = 1\n", "zebra stripes poor");
        poor.scores.quality = 0.5;
        let mut old = zebra("old = 1\n", "zebra stripes old");
        old.lifecycle = Lifecycle::Deprecated;
        store.insert_new(&[poor, old]).await.unwrap();
        let facts = TableFacts::read(table).await.unwrap();
        assert_eq!((facts.min_quality, facts.any_deprecated), (0.5, true));
        assert_eq!(facts.narrow(&good).min_quality, Some(0.9));
        assert!(!facts.narrow(&good).include_deprecated);
        let served = |hits: Vec<crate::store::Hit>| -> Vec<String> {
            hits.into_iter().map(|h| h.pattern.description).collect()
        };
        let all = served(
            store
                .search(&Search {
                    min_quality: None,
                    include_deprecated: true,
                    ..good.clone()
                })
                .await
                .unwrap(),
        );
        assert!(all.contains(&"zebra stripes poor".to_string()), "{all:?}");
        assert!(all.contains(&"zebra stripes old".to_string()), "{all:?}");
        assert!(
            served(store.search(&good).await.unwrap())
                .iter()
                .all(|d| !d.contains("zebra"))
        );

        // Facts a version behind the search (another writer moved the table in between) say
        // every row passes: the rows the filter refuses are still not served.
        let version = table.version().await.unwrap();
        let stale = TableFacts {
            min_quality: 1.0,
            any_deprecated: false,
        };
        store.facts().pretend(version, stale).await;
        let hits = served(store.search(&good).await.unwrap());
        assert!(hits.iter().all(|d| !d.contains("zebra")), "{hits:?}");
    });
}

#[test]
fn rows_found_by_row_id_are_served_only_at_the_version_searched() {
    with_filled_store(async |store, table, _| {
        let before = table.version().await.unwrap();
        // The best match alone: ties below it may come back in another order.
        let search = Search {
            top_k: 1,
            ..by_text("pattern 42")
        };
        let hits = store.search_at(table, before, &search).await.unwrap();
        assert_eq!(hits.unwrap()[0].pattern.description, "pattern 42");
        // Any write moves the version, and the answer at `before` is refused, even when every
        // row it found is cached.
        let mut other = pattern("other = 1\n", "compute", "zebra stripes");
        other.embedding = HashingEmbedder::default().vector("zebra stripes");
        store.insert_new(&[other]).await.unwrap();
        let stale = store.search_at(table, before, &search).await.unwrap();
        assert!(stale.is_none());
        // A compaction moves every row; the search still finds it.
        store.optimize().await.unwrap();
        let hits = store.search(&by_text("pattern 42")).await.unwrap();
        assert_eq!(hits[0].pattern.description, "pattern 42");
    });
}

fn by_text(text: &str) -> Search {
    Search {
        text: text.into(),
        top_k: 3,
        ..Search::default()
    }
}

#[test]
fn a_cached_row_gives_way_to_a_write_by_this_store_or_another_one() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    rt.block_on(async {
        let (ours, theirs) = (open(dir.path()).await, open(dir.path()).await);
        fill_fragments(&ours).await;
        let first = ours.search(&by_text("pattern 42")).await.unwrap();
        let mut p = first[0].pattern.clone();
        assert_eq!(p.description, "pattern 42");
        // The same search again is served from the cache, and agrees.
        assert_eq!(
            ours.search(&by_text("pattern 42")).await.unwrap()[0].pattern,
            p
        );
        p.usage_count = 7;
        ours.upsert(std::slice::from_ref(&p)).await.unwrap();
        let hit = &ours.search(&by_text("pattern 42")).await.unwrap()[0];
        assert_eq!(hit.pattern.usage_count, 7, "our own write is seen at once");
        p.usage_count = 9;
        theirs.upsert(std::slice::from_ref(&p)).await.unwrap();
        // Another writer's version is seen within the read-consistency interval (500 ms).
        tokio::time::sleep(std::time::Duration::from_millis(700)).await;
        let hit = &ours.search(&by_text("pattern 42")).await.unwrap()[0];
        assert_eq!(
            hit.pattern.usage_count, 9,
            "another store's write is seen too"
        );
    });
}

#[test]
fn rows_are_found_by_id_when_a_compaction_moved_them_after_the_search() {
    with_filled_store(async |store, _, _| {
        let found = store.search_ids(&by_text("pattern 342")).await.unwrap();
        assert!(!found.is_empty());
        let r = store.optimize().await.unwrap();
        assert!(r.fragments_removed >= 3, "the rows moved: {r:?}");
        // Row ids from before the compaction: the rows are still the ones the search found.
        let table = store.table().await.unwrap().unwrap();
        let rows = store.rows_of(&table, &found).await.unwrap();
        let ids: Vec<&str> = rows.iter().map(|h| h.pattern.pattern_id.as_str()).collect();
        let wanted: Vec<&str> = found.iter().map(|h| h.pattern_id.as_str()).collect();
        assert_eq!(ids, wanted);
        assert_eq!(rows[0].pattern.description, "pattern 342");
    });
}

#[test]
fn optimize_gives_the_table_the_configured_kind_of_vector_index() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    rt.block_on(async {
        let with = |kind| StoreOptions {
            index_threshold: 100,
            vector_index: kind,
            ..StoreOptions::default()
        };
        let kind_of = |store: PatternStore| async move {
            let table = store.table().await.unwrap().unwrap();
            let indices = table.list_indices().await.unwrap();
            let vector: Vec<_> = indices
                .iter()
                .filter(|i| i.columns == ["embedding"])
                .collect();
            assert_eq!(vector.len(), 1, "{indices:?}");
            vector[0].index_type.clone()
        };
        let embedder = || Arc::new(HashingEmbedder::default());
        let sq = PatternStore::open(dir.path(), embedder(), with(VectorIndex::HnswSq))
            .await
            .unwrap();
        fill_fragments(&sq).await;
        sq.optimize().await.unwrap();
        assert_eq!(kind_of(sq).await, lancedb::index::IndexType::IvfHnswSq);
        let flat = PatternStore::open(dir.path(), embedder(), with(VectorIndex::HnswFlat))
            .await
            .unwrap();
        flat.optimize().await.unwrap();
        let hits = flat.search(&by_text("pattern 7")).await.unwrap();
        assert_eq!(hits[0].pattern.description, "pattern 7");
        assert_eq!(kind_of(flat).await, lancedb::index::IndexType::IvfHnswFlat);
    });
}

#[test]
fn a_table_left_without_its_text_index_gets_it_back_when_the_store_opens() {
    with_filled_store(async |store, table, dir| {
        let fts = table.list_indices().await.unwrap();
        let fts = fts.iter().find(|i| i.columns == ["search_text"]).unwrap();
        table.drop_index(&fts.name).await.unwrap();
        let text = Search {
            mode: Mode::Text,
            ..by_text("pattern 99")
        };
        assert!(
            store.search(&text).await.is_err(),
            "no BM25 without its index"
        );
        let reopened = open(dir).await;
        let hits = reopened.search(&text).await.unwrap();
        assert_eq!(hits[0].pattern.description, "pattern 99");
    });
}

fn log(dir: &std::path::Path) -> EmbeddedLog {
    EmbeddedLog::open(EmbeddedLogConfig::new(dir.join("log"))).unwrap()
}

fn publish(log: &EmbeddedLog, topic: Topic, correlation_id: &str, payload: serde_json::Value) {
    let event = Event::new(topic, correlation_id, None, "test")
        .payload(payload)
        .unwrap();
    let mut d = omnistream_connectors::EventDecoder::new(
        topic,
        omnistream_connectors::EnvelopeDefaults {
            source: "test".into(),
        },
    );
    d.push_value(event.into_json()).unwrap();
    log.append(topic, &d.finish()).unwrap();
}

fn indexer<'a>(
    log: &'a EmbeddedLog,
    dir: &std::path::Path,
    rt: &tokio::runtime::Runtime,
) -> Indexer<'a> {
    let store = rt.block_on(open(&dir.join("patterns")));
    let uses = UseLog::new(store.connection().clone(), dir.join("patterns"));
    Indexer::new(
        log,
        Arc::new(store),
        uses,
        rt.handle().clone(),
        dir,
        IndexerOptions::default(),
    )
    .unwrap()
}

#[test]
fn the_indexer_stores_requests_and_moves_lifecycle_by_outcomes() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let log = log(dir.path());
    publish(
        &log,
        Topic::PatternStorageRequested,
        "gen-0",
        json!({
            "node_type": "compute", "domain": "files", "code_sample": HASHER, "quality_score": 0.97,
            "operations": ["checksum"], "module": "v1_0_0/logic.py", "embedding_text": "sha256 checksums",
        }),
    );
    // Bad requests are skipped with a reason, never stored.
    publish(
        &log,
        Topic::PatternStorageRequested,
        "gen-bad",
        json!({
            "node_type": "widget", "code_sample": "x = 1", "quality_score": 0.99,
        }),
    );
    publish(
        &log,
        Topic::PatternStorageRequested,
        "gen-empty",
        json!({
            "node_type": "compute", "code_sample": "  ", "quality_score": 0.99,
        }),
    );
    let mut ix = indexer(&log, dir.path(), &rt);
    let r = ix.step().unwrap();
    assert_eq!((r.stored, r.rejected), (1, 2), "{r:?}");
    let listed = rt.block_on(async { ix_store(dir.path()).await.list(None).await.unwrap() });
    let id = listed[0].pattern_id.clone();
    // Five uses, the last two failing: 3/5 = 0.6 with a streak of 2 -> validated.
    for (i, ok) in [true, true, true, false, false].into_iter().enumerate() {
        let c = format!("use-{i}");
        if ok {
            publish(
                &log,
                Topic::GenerationCompleted,
                &c,
                json!({
                    "total_duration_seconds": 1.0, "passed": true, "patterns_applied": [id],
                }),
            );
        } else {
            publish(
                &log,
                Topic::GenerationFailed,
                &c,
                json!({
                    "failed_stage": "compilation_test", "error_code": "EXAMPLES_FAILED",
                    "error_message": "no", "patterns_applied": [id],
                }),
            );
        }
    }
    // Failures that judge no code are no uses: a bad output directory, an unreachable model.
    for (stage, code) in [
        ("pre_validation", "PRE_VALIDATION_FAILED"),
        ("code_generation", "MODEL_UNAVAILABLE"),
    ] {
        publish(
            &log,
            Topic::GenerationFailed,
            &format!("not-a-use-{code}"),
            json!({
                "failed_stage": stage, "error_code": code, "error_message": "no",
                "patterns_applied": [id],
            }),
        );
    }
    // A use of an id nobody stored is ignored.
    publish(
        &log,
        Topic::GenerationCompleted,
        "use-x",
        json!({
            "total_duration_seconds": 1.0, "passed": true, "patterns_applied": ["0123456789abcdef", "idempotent upsert"],
        }),
    );
    let r = ix.step().unwrap();
    assert_eq!((r.uses, r.lifecycle_changes), (5, 1), "{r:?}");
    let p = rt.block_on(async { ix_store(dir.path()).await.get(&id).await.unwrap() });
    assert_eq!(
        (
            p.usage_count,
            p.success_count,
            p.failure_streak,
            p.lifecycle
        ),
        (5, 3, 2, Lifecycle::Validated)
    );
    // Nothing new: nothing done.
    assert_eq!(ix.step().unwrap(), IndexReport::default());
    // Every change became a pattern-stored event.
    let stored: usize = log
        .read(Topic::PatternStored, 0, 0, 100)
        .unwrap()
        .iter()
        .map(|b| b.batch.num_rows())
        .sum();
    assert_eq!(stored, 2);
}

async fn ix_store(dir: &std::path::Path) -> PatternStore {
    open(&dir.join("patterns")).await
}

/// The store writes Lance 2.1 files (rows are taken from them in a fraction of 2.2's time).
#[test]
fn the_table_is_written_in_the_chosen_lance_file_format() {
    with_filled_store(async |_, table, _| {
        let manifest = table.as_native().unwrap().manifest().await.unwrap();
        let version = manifest.data_storage_format.version.to_string();
        assert_eq!(version, crate::store::DATA_STORAGE_VERSION);
    });
}
