//! `omnistream sql "QUERY"`

use futures::StreamExt;

use super::open_lake;
use crate::cli::SqlArgs;
use crate::config::Config;
use crate::error::Result;
use crate::output::Output;

pub(crate) async fn run(config: &Config, args: SqlArgs) -> Result<()> {
    let output = Output::new(args.output)?;
    let lake = open_lake(config)?;
    // A compaction committed while the query starts may remove files it planned to read: when
    // the first batch fails and the lake has moved on, plan again on the new snapshot.
    let mut attempts = 0;
    loop {
        let snapshot = lake.snapshot()?;
        let ctx = omnistream_lake::session(&lake, &snapshot)?;
        omnistream_jobs::views::register(&ctx, &omnistream_jobs::views::ViewParams::default())
            .await?;
        // The pattern store's tables join with the lake's (patterns, pattern_uses).
        for (name, table) in
            omnistream_patterns::store::sql_tables(&config.patterns_config()?.dir).await?
        {
            ctx.register_table(name.as_str(), table)
                .map_err(omnistream_lake::LakeError::from)?;
        }
        let (schema, mut stream) = omnistream_lake::query_stream(&ctx, &args.query).await?;
        let first = stream.next().await;
        if let Some(Err(e)) = &first
            && attempts < 3
            && lake.snapshot()?.seq != snapshot.seq
        {
            attempts += 1;
            tracing::debug!(error = %e, "the lake changed under the query; planning it again");
            continue;
        }
        let rest = futures::stream::iter(first).chain(stream);
        let stream = Box::pin(
            datafusion::physical_plan::stream::RecordBatchStreamAdapter::new(schema.clone(), rest),
        );
        output.write_stream(schema, stream).await?;
        return Ok(());
    }
}
