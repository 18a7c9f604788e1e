//! `omnistream sql "QUERY"`

use super::open_lake;
use crate::cli::SqlArgs;
use crate::config::Config;
use crate::error::Result;
use crate::output::Output;

pub async fn run(config: &Config, args: SqlArgs) -> Result<()> {
    let output = Output::new(args.output)?;
    let lake = open_lake(config)?;
    let snapshot = lake.snapshot()?;
    let ctx = omnistream_lake::session(&lake, &snapshot)?;
    omnistream_jobs::views::register(&ctx, &omnistream_jobs::views::ViewParams::default()).await?;
    let (schema, stream) = omnistream_lake::query_stream(&ctx, &args.query).await?;
    output.write_stream(schema, stream).await?;
    Ok(())
}
