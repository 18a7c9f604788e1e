//! What every row of one table version satisfies, so a search can leave out a filter that keeps
//! every row.
//!
//! Retrieval for generation filters by quality and leaves deprecated patterns out, and in a
//! typical store every row passes both: the indexer stores nothing below the learning threshold,
//! and few patterns are ever deprecated. Lance answers such a filter from its scalar index all
//! the same, on each leg of each search: the B-tree turns `quality_score >= q` into a bitmap of
//! every row address, the largest single cost of a search on a 10k-row store (`perf` of
//! `bench codegen --patterns 10000`: 7.8 % of the process's CPU). The facts are read once per
//! table version instead; the search still checks each row it returns against the whole filter,
//! so a version that moved between the facts and the search serves nothing the filter refuses.

use arrow::array::{Array, Float64Array};
use futures::TryStreamExt;
use lancedb::Table;
use lancedb::query::{ExecutableQuery, QueryBase, Select};

use crate::error::Result;
use crate::store::Search;

/// Facts of one table version.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct TableFacts {
    /// The lowest quality score of any row (infinity for an empty table).
    pub min_quality: f64,
    pub any_deprecated: bool,
}

impl TableFacts {
    pub(crate) async fn read(table: &Table) -> Result<TableFacts> {
        let any_deprecated = table
            .count_rows(Some("lifecycle = 'deprecated'".to_string()))
            .await?
            > 0;
        let batches: Vec<_> = table
            .query()
            .select(Select::columns(&["quality_score"]))
            .execute()
            .await?
            .try_collect()
            .await?;
        let min_quality = batches
            .iter()
            .filter_map(|b| b.column(0).as_any().downcast_ref::<Float64Array>())
            // A missing or NaN score fails `quality_score >= q`, so it counts as the lowest.
            .flat_map(|a| {
                a.iter()
                    .map(|q| q.filter(|q| !q.is_nan()).unwrap_or(f64::NEG_INFINITY))
            })
            .fold(f64::INFINITY, f64::min);
        Ok(TableFacts {
            min_quality,
            any_deprecated,
        })
    }

    /// `s` without the filters every row of this version passes.
    pub(crate) fn narrow(&self, s: &Search) -> Search {
        let mut narrowed = s.clone();
        if narrowed.min_quality.is_some_and(|q| self.min_quality >= q) {
            narrowed.min_quality = None;
        }
        if !self.any_deprecated {
            narrowed.include_deprecated = true;
        }
        narrowed
    }
}

/// The facts of the newest version a search saw; read again when the version moves.
#[derive(Default)]
pub(crate) struct FactsCache {
    cached: tokio::sync::Mutex<Option<(u64, TableFacts)>>,
}

impl FactsCache {
    pub(crate) async fn at(&self, table: &Table, version: u64) -> Result<TableFacts> {
        // Held while reading, so concurrent searches at a new version read the facts once.
        let mut cached = self.cached.lock().await;
        match *cached {
            Some((v, facts)) if v == version => Ok(facts),
            _ => {
                let facts = TableFacts::read(table).await?;
                *cached = Some((version, facts));
                Ok(facts)
            }
        }
    }

    /// Pretend the facts of `version` are `facts` (a stale read, for tests).
    #[cfg(test)]
    pub(crate) async fn pretend(&self, version: u64, facts: TableFacts) {
        *self.cached.lock().await = Some((version, facts));
    }
}
