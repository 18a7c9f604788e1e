//! `omnistream models` and `omnistream nodes`: the leaderboard and the node registry, as queries
//! over the derived tables (the same SQL as the `model_leaderboard` and `node_registry` views).

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Float64Type, Schema};
use omnistream_jobs::reducer::timestamp_literal;
use omnistream_jobs::views::{self, ViewParams};

use super::open_lake;
use crate::cli::{ModelsArgs, NodesArgs};
use crate::config::Config;
use crate::error::{CliError, Result};
use crate::output::Output;

async fn session(
    config: &Config,
) -> Result<(omnistream_lake::Lake, datafusion::prelude::SessionContext)> {
    let lake = open_lake(config)?;
    let snapshot = lake.snapshot()?;
    let ctx = omnistream_lake::session(&lake, &snapshot)?;
    Ok((lake, ctx))
}

fn needs(snapshot_tables: &[&str], ctx: &datafusion::prelude::SessionContext) -> Result<()> {
    for table in snapshot_tables {
        if !ctx.table_exist(*table).unwrap_or(false) {
            return Err(CliError::Usage(format!(
                "there is no {table} table yet: run `omnistream jobs run all --once` (or follow mode) first"
            )));
        }
    }
    Ok(())
}

pub(crate) async fn models(config: &Config, args: ModelsArgs) -> Result<()> {
    let output = Output::new(args.output)?;
    let (_lake, ctx) = session(config).await?;
    needs(&["generation_summary", "model_performance"], &ctx)?;
    let mut params = ViewParams::default();
    if let Some(since) = &args.since {
        let d = humantime::parse_duration(since).map_err(|e| {
            CliError::Usage(format!(
                "--since '{since}' is not a duration like 24h or 7d ({e})"
            ))
        })?;
        params.since = timestamp_literal(
            (chrono::Utc::now() - chrono::Duration::from_std(d).unwrap_or_default())
                .timestamp_micros(),
        );
    }
    if let Some(t) = &args.node_type {
        params.node_type = format!("'{}'", t.replace('\'', "''"));
    }
    let sql = format!(
        "SELECT model, generations, round(pass_rate, 3) AS pass_rate, round(functional_pass_rate, 3) AS functional_pass_rate, \
         round(gate_pass_rate, 3) AS gate_pass_rate, round(mean_quality, 3) AS mean_quality, \
         round(cost_per_passing_generation, 5) AS cost_per_passing_generation, round(p95_latency_ms, 1) AS p95_latency_ms, \
         calls, round(call_error_rate, 3) AS call_error_rate, round(total_cost_usd, 4) AS total_cost_usd \
         FROM ({}) ORDER BY cost_per_passing_generation NULLS LAST",
        views::render("model_leaderboard", &params)?
    );
    let (_, batches) = omnistream_lake::query(&ctx, &sql).await?;
    // Trend: pass rate over each model's last eight hourly windows, as a sparkline.
    let trend_sql = format!(
        "SELECT primary_model, window_start, CAST(sum(passing) AS DOUBLE) / sum(generations) AS pass_rate \
         FROM generation_summary WHERE granularity = '1h' AND window_start >= {} AND ({nt} IS NULL OR node_type = {nt}) \
         GROUP BY 1, 2 ORDER BY 1, 2",
        params.since,
        nt = params.node_type
    );
    let (_, trend_batches) = omnistream_lake::query(&ctx, &trend_sql).await?;
    let mut series: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for b in &trend_batches {
        let models = b.column(0).as_string::<i32>();
        let rates = b.column(2).as_primitive::<Float64Type>();
        for i in 0..b.num_rows() {
            series
                .entry(models.value(i).to_string())
                .or_default()
                .push(rates.value(i));
        }
    }
    let mut out = Vec::new();
    for batch in batches {
        let models = batch
            .column_by_name("model")
            .unwrap()
            .as_string::<i32>()
            .clone();
        let trend: StringArray = (0..batch.num_rows())
            .map(|i| {
                Some(sparkline(
                    series
                        .get(models.value(i))
                        .map(|v| &v[v.len().saturating_sub(8)..])
                        .unwrap_or(&[]),
                ))
            })
            .collect();
        let mut fields: Vec<Field> = batch
            .schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        fields.push(Field::new("trend_pass_rate_8h", DataType::Utf8, false));
        let mut columns = batch.columns().to_vec();
        columns.push(Arc::new(trend));
        out.push(RecordBatch::try_new(
            Arc::new(Schema::new(fields)),
            columns,
        )?);
    }
    let schema = out
        .first()
        .map(|b| b.schema())
        .unwrap_or_else(|| Arc::new(Schema::empty()));
    output.write_batches(schema, out).await?;
    Ok(())
}

/// Values in 0..=1 as block characters.
fn sparkline(values: &[f64]) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    values
        .iter()
        .map(|v| {
            if v.is_nan() {
                ' '
            } else {
                BARS[((v.clamp(0.0, 1.0)) * 7.0).round() as usize]
            }
        })
        .collect()
}

pub(crate) async fn nodes(config: &Config, args: NodesArgs) -> Result<()> {
    let output = Output::new(args.output)?;
    let (_lake, ctx) = session(config).await?;
    needs(&["node_activity"], &ctx)?;
    let mut params = ViewParams::default();
    if let Some(at) = &args.at {
        let t = chrono::DateTime::parse_from_rfc3339(at)
            .map_err(|e| CliError::Usage(format!("--at '{at}' is not an RFC 3339 time ({e})")))?;
        params.now = timestamp_literal(t.timestamp_micros());
    }
    let sql = format!(
        "SELECT node_id, node_name, node_type, liveness, last_heartbeat_at, heartbeats, missed_heartbeats, \
         contract_hash, contract_drift FROM ({}) ORDER BY liveness, node_name, node_id",
        views::render("node_registry", &params)?
    );
    let (schema, batches) = omnistream_lake::query(&ctx, &sql).await?;
    let active: usize = batches
        .iter()
        .map(|b| {
            let l = b.column_by_name("liveness").unwrap().as_string::<i32>();
            (0..l.len()).filter(|i| l.value(*i) == "active").count()
        })
        .sum();
    let total: usize = batches.iter().map(|b| b.num_rows()).sum();
    eprintln!("{active} of {total} nodes active");
    output.write_batches(schema, batches).await?;
    Ok(())
}
