//! The DataFusion session over the lake: every table of a snapshot registered by its name, and a
//! read-only SQL surface (no DDL, no DML such as COPY, no other statements, no file URLs).

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::common::ParamValues;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::{SQLOptions, SessionConfig, SessionContext};
use futures::TryStreamExt;
use omnistream_streams::Topic;

use crate::error::{LakeError, Result};
use crate::lake::Lake;
use crate::table::LakeTableProvider;
use crate::txlog::{Snapshot, TableDef};

/// The definition of the raw lake table of a topic: the topic's schema, partitioned by the date of
/// `emitted_at`.
pub fn raw_table_def(topic: Topic) -> TableDef {
    TableDef {
        name: topic.table().to_string(),
        schema: topic.schema().as_ref().clone(),
        partitioned_by_date: true,
        time_column: Some(omnistream_streams::envelope::EMITTED_AT.to_string()),
    }
}

/// Options that make SQL read-only: queries only.
pub fn read_only() -> SQLOptions {
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
}

/// A DataFusion session with every table of `snapshot` registered, plus the raw table of every
/// topic (empty until something lands), so queries do not fail just because nothing arrived yet.
pub fn session(lake: &Lake, snapshot: &Snapshot) -> Result<SessionContext> {
    session_with(lake, snapshot, None)
}

/// [`session`] with at most `target_partitions` parallel streams per query (default: one per core).
pub fn session_with(
    lake: &Lake,
    snapshot: &Snapshot,
    target_partitions: Option<usize>,
) -> Result<SessionContext> {
    let mut config = SessionConfig::new()
        .with_information_schema(true)
        .with_default_catalog_and_schema("datafusion", "public");
    if let Some(n) = target_partitions {
        config = config.with_target_partitions(n.max(1));
    }
    let ctx = SessionContext::new_with_config(config);
    for topic in Topic::ALL {
        if !snapshot.tables.contains_key(topic.table()) {
            let provider =
                LakeTableProvider::new(lake.root().to_path_buf(), raw_table_def(topic), vec![]);
            ctx.register_table(topic.table(), Arc::new(provider))?;
        }
    }
    for (name, table) in &snapshot.tables {
        let files = table.files.values().cloned().collect();
        let provider = LakeTableProvider::new(lake.root().to_path_buf(), table.def.clone(), files);
        ctx.register_table(name.as_str(), Arc::new(provider))?;
    }
    Ok(ctx)
}

/// Plan a read-only query.
pub async fn plan_query(ctx: &SessionContext, sql: &str) -> Result<LogicalPlan> {
    let plan = ctx.state().create_logical_plan(sql).await?;
    read_only().verify_plan(&plan).map_err(|e| {
        LakeError::Plan(format!(
            "{}; the SQL surface is read-only (queries only)",
            crate::error::describe_datafusion_error(&e)
        ))
    })?;
    Ok(plan)
}

/// Run a read-only query and stream its results.
pub async fn query_stream(
    ctx: &SessionContext,
    sql: &str,
) -> Result<(SchemaRef, SendableRecordBatchStream)> {
    let plan = plan_query(ctx, sql).await?;
    let df = ctx.execute_logical_plan(plan).await?;
    let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
    let stream = df.execute_stream().await?;
    Ok((schema, stream))
}

/// [`plan_query`] with its `$name` parameters bound to `params` (DataFusion placeholders).
pub async fn plan_query_with(
    ctx: &SessionContext,
    sql: &str,
    params: ParamValues,
) -> Result<LogicalPlan> {
    Ok(plan_query(ctx, sql).await?.with_param_values(params)?)
}

/// [`query`] with its `$name` parameters bound to `params`.
pub async fn query_with(
    ctx: &SessionContext,
    sql: &str,
    params: ParamValues,
) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let plan = plan_query_with(ctx, sql, params).await?;
    let df = ctx.execute_logical_plan(plan).await?;
    let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
    let batches = df.collect().await?;
    Ok((schema, batches))
}

/// Run a read-only query and collect its results.
pub async fn query(ctx: &SessionContext, sql: &str) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let (schema, stream) = query_stream(ctx, sql).await?;
    let batches: Vec<RecordBatch> = stream.try_collect().await.map_err(LakeError::from)?;
    Ok((schema, batches))
}
