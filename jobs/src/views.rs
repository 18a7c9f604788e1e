//! SQL views over the derived tables (`sql/views/*.sql`): registered in every SQL session once
//! the tables they read exist, and rendered with other parameters by `omnistream models|nodes`.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::datasource::ViewTable;
use datafusion::prelude::SessionContext;

use crate::error::{JobError, Result};
use crate::reducer::substitute;
use crate::spec::VIEWS;

/// Parameters of the views: `$now` (liveness reference), `$since` (leaderboard start),
/// `$node_type` (leaderboard filter, `NULL` for all).
#[derive(Debug, Clone)]
pub struct ViewParams {
    pub now: String,
    pub since: String,
    pub node_type: String,
}

impl Default for ViewParams {
    fn default() -> Self {
        ViewParams {
            now: "now()".into(),
            since: "TIMESTAMP '1970-01-01T00:00:00Z'".into(),
            node_type: "NULL".into(),
        }
    }
}

/// The SQL of a view with its parameters filled in.
pub fn render(name: &str, params: &ViewParams) -> Result<String> {
    let (_, sql) = VIEWS
        .iter()
        .find(|(n, _)| *n == name)
        .ok_or_else(|| JobError::Internal(format!("no view {name}")))?;
    let values = BTreeMap::from([
        ("now", params.now.clone()),
        ("since", params.since.clone()),
        ("node_type", params.node_type.clone()),
    ]);
    substitute(name, sql, &values)
}

/// Register every view whose tables exist (a view over a table not written yet is skipped).
pub async fn register(ctx: &SessionContext, params: &ViewParams) -> Result<Vec<&'static str>> {
    let mut registered = Vec::new();
    for (name, _) in VIEWS {
        let sql = render(name, params)?;
        let Ok(plan) = ctx.state().create_logical_plan(&sql).await else {
            continue;
        };
        let view = ViewTable::new(plan, Some(sql));
        ctx.register_table(*name, Arc::new(view))
            .map_err(|e| JobError::Internal(e.to_string()))?;
        registered.push(*name);
    }
    Ok(registered)
}
