//! The `pattern_uses` table: one row per (generation, pattern it applied), with the outcome.
//! Keyed by both, so a re-read event never counts a use twice; a pattern's counters are
//! recomputed from its rows, so recomputing after a crash gives the same counters.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::{Array, BooleanArray, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use futures::TryStreamExt;
use lancedb::query::{ExecutableQuery, QueryBase};
use lancedb::{Connection, Table};

use crate::error::Result;

pub const USES_TABLE: &str = "pattern_uses";

/// A generation that applied a pattern, and whether it passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Use {
    pub pattern_id: String,
    pub correlation_id: String,
    pub success: bool,
    pub emitted_at_us: i64,
}

pub struct UseLog {
    conn: Connection,
    dir: PathBuf,
    table: tokio::sync::Mutex<Option<Table>>,
}

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("use_id", DataType::Utf8, false),
        Field::new("pattern_id", DataType::Utf8, false),
        Field::new("correlation_id", DataType::Utf8, false),
        Field::new("success", DataType::Boolean, false),
        Field::new(
            "emitted_at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
    ]))
}

impl UseLog {
    pub fn new(conn: Connection, dir: PathBuf) -> UseLog {
        UseLog {
            conn,
            dir,
            table: tokio::sync::Mutex::new(None),
        }
    }

    async fn table(&self) -> Result<Option<Table>> {
        let mut cached = self.table.lock().await;
        if cached.is_none() && self.dir.join(format!("{USES_TABLE}.lance")).exists() {
            *cached = Some(self.conn.open_table(USES_TABLE).execute().await?);
        }
        Ok(cached.clone())
    }

    /// Record the uses not recorded yet.
    pub async fn insert_new(&self, uses: &[Use]) -> Result<()> {
        if uses.is_empty() {
            return Ok(());
        }
        let batch = to_batch(uses)?;
        let Some(table) = self.table().await? else {
            let t = crate::store::create_or_open(&self.conn, USES_TABLE, &batch).await?;
            if let Some(t) = t {
                *self.table.lock().await = Some(t);
                return Ok(());
            }
            return Box::pin(self.insert_new(uses)).await;
        };
        let mut merge = table.merge_insert(&["use_id"]);
        merge.when_not_matched_insert_all();
        let reader = arrow::record_batch::RecordBatchIterator::new([Ok(batch)], schema());
        merge.execute(Box::new(reader)).await?;
        Ok(())
    }

    /// The outcomes of each pattern's recorded uses, oldest first.
    pub async fn outcomes(&self, pattern_ids: &[String]) -> Result<BTreeMap<String, Vec<bool>>> {
        let Some(table) = self.table().await? else {
            return Ok(BTreeMap::new());
        };
        let list = pattern_ids
            .iter()
            .filter(|i| crate::store::valid_id(i))
            .map(|i| format!("'{i}'"))
            .collect::<Vec<_>>()
            .join(", ");
        if list.is_empty() {
            return Ok(BTreeMap::new());
        }
        let batches: Vec<RecordBatch> = table
            .query()
            .only_if(format!("pattern_id IN ({list})"))
            .execute()
            .await?
            .try_collect()
            .await?;
        let mut by_pattern: BTreeMap<String, Vec<(i64, String, bool)>> = BTreeMap::new();
        for b in &batches {
            for u in from_batch(b) {
                by_pattern.entry(u.pattern_id).or_default().push((
                    u.emitted_at_us,
                    u.correlation_id,
                    u.success,
                ));
            }
        }
        Ok(by_pattern
            .into_iter()
            .map(|(id, mut uses)| {
                uses.sort();
                (id, uses.into_iter().map(|u| u.2).collect())
            })
            .collect())
    }
}

fn to_batch(uses: &[Use]) -> Result<RecordBatch> {
    let s = |f: fn(&Use) -> String| -> Arc<dyn Array> {
        Arc::new(uses.iter().map(|u| Some(f(u))).collect::<StringArray>())
    };
    Ok(RecordBatch::try_new(
        schema(),
        vec![
            s(|u| format!("{}/{}", u.correlation_id, u.pattern_id)),
            s(|u| u.pattern_id.clone()),
            s(|u| u.correlation_id.clone()),
            Arc::new(
                uses.iter()
                    .map(|u| Some(u.success))
                    .collect::<BooleanArray>(),
            ),
            Arc::new(
                uses.iter()
                    .map(|u| Some(u.emitted_at_us))
                    .collect::<TimestampMicrosecondArray>()
                    .with_timezone("UTC"),
            ),
        ],
    )?)
}

fn from_batch(b: &RecordBatch) -> Vec<Use> {
    let s = |n: &str| {
        b.column_by_name(n)
            .and_then(|c| c.as_any().downcast_ref::<StringArray>())
    };
    let (Some(ids), Some(corr)) = (s("pattern_id"), s("correlation_id")) else {
        return Vec::new();
    };
    let ok = b
        .column_by_name("success")
        .and_then(|c| c.as_any().downcast_ref::<BooleanArray>());
    let at = b
        .column_by_name("emitted_at")
        .and_then(|c| c.as_any().downcast_ref::<TimestampMicrosecondArray>());
    (0..b.num_rows())
        .map(|r| Use {
            pattern_id: ids.value(r).to_string(),
            correlation_id: corr.value(r).to_string(),
            success: ok.is_some_and(|a| a.value(r)),
            emitted_at_us: at.map_or(0, |a| a.value(r)),
        })
        .collect()
}
