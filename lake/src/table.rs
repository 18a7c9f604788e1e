//! A lake table as a DataFusion [`TableProvider`]: exactly the files of one snapshot, so a query
//! sees a consistent table even while a sink commits or a compaction swaps files underneath.

use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::{Array, BooleanArray, Date32Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::DFSchema;
use datafusion::common::ScalarValue;
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::listing::helpers::expr_applicable_for_cols;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder, ParquetSource};
use datafusion::datasource::table_schema::TableSchema;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::Result as DfResult;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;

use crate::lake::DATE_COLUMN;
use crate::txlog::{DataFile, TableDef};

/// One table of one lake snapshot.
#[derive(Debug)]
pub struct LakeTableProvider {
    root: PathBuf,
    def: TableDef,
    file_schema: SchemaRef,
    /// File schema plus the `date` partition column when partitioned.
    schema: SchemaRef,
    files: Vec<DataFile>,
}

impl LakeTableProvider {
    pub fn new(root: PathBuf, def: TableDef, files: Vec<DataFile>) -> Self {
        let file_schema = Arc::new(def.schema.clone());
        let mut fields: Vec<Field> = file_schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        if def.partitioned_by_date {
            fields.push(date_field());
        }
        let schema = Arc::new(Schema::new(fields));
        LakeTableProvider {
            root,
            def,
            file_schema,
            schema,
            files,
        }
    }

    /// Files whose partition passes every filter that only concerns the partition column, and
    /// whose time range can hold rows passing the filters on the time column.
    fn prune(&self, state: &dyn Session, filters: &[Expr]) -> DfResult<Vec<&DataFile>> {
        let (lower, upper) = match &self.def.time_column {
            Some(column) => time_bounds(filters, column),
            None => (None, None),
        };
        let files = self.prune_partitions(state, filters)?;
        Ok(files
            .into_iter()
            .filter(|f| {
                let below = matches!((upper, f.min_time_us), (Some((u, inclusive)), Some(min)) if min > u || (min == u && !inclusive));
                let above = matches!((lower, f.max_time_us), (Some((l, inclusive)), Some(max)) if max < l || (max == l && !inclusive));
                !below && !above
            })
            .collect())
    }

    /// Files whose partition passes every filter that only concerns the partition column.
    fn prune_partitions(&self, state: &dyn Session, filters: &[Expr]) -> DfResult<Vec<&DataFile>> {
        let partition_filters: Vec<&Expr> = filters
            .iter()
            .filter(|f| self.def.partitioned_by_date && expr_applicable_for_cols(&[DATE_COLUMN], f))
            .collect();
        if partition_filters.is_empty() {
            return Ok(self.files.iter().collect());
        }
        let mut dates: Vec<&str> = self
            .files
            .iter()
            .filter_map(|f| f.date.as_deref())
            .collect();
        dates.sort_unstable();
        dates.dedup();
        let days: Date32Array = dates.iter().map(|d| Some(days_since_epoch(d))).collect();
        let partition_schema = Arc::new(Schema::new(vec![date_field()]));
        let batch = RecordBatch::try_new(partition_schema.clone(), vec![Arc::new(days)])?;
        let df_schema = DFSchema::try_from(partition_schema.as_ref().clone())?;
        let mut keep = vec![true; dates.len()];
        for filter in partition_filters {
            let expr = state.create_physical_expr((*filter).clone(), &df_schema)?;
            let result = expr.evaluate(&batch)?.into_array(dates.len())?;
            let Some(mask) = result.as_any().downcast_ref::<BooleanArray>() else {
                continue;
            };
            for (i, k) in keep.iter_mut().enumerate() {
                *k &= mask.is_valid(i) && mask.value(i);
            }
        }
        let kept: Vec<&str> = dates
            .iter()
            .zip(keep)
            .filter(|(_, k)| *k)
            .map(|(d, _)| *d)
            .collect();
        Ok(self
            .files
            .iter()
            .filter(|f| f.date.as_deref().is_some_and(|d| kept.contains(&d)))
            .collect())
    }
}

/// Bounds on `column` implied by filters of the form `column <op> timestamp literal`:
/// (lower, upper), each with whether it is inclusive.
type Bound = Option<(i64, bool)>;

fn time_bounds(filters: &[Expr], column: &str) -> (Bound, Bound) {
    use datafusion::logical_expr::{BinaryExpr, Operator};
    let mut lower: Bound = None;
    let mut upper: Bound = None;
    let mut tighten_lower = |v: i64, inclusive: bool| {
        if lower.is_none_or(|(l, _)| v > l) {
            lower = Some((v, inclusive));
        }
    };
    let mut tighten_upper = |v: i64, inclusive: bool| {
        if upper.is_none_or(|(u, _)| v < u) {
            upper = Some((v, inclusive));
        }
    };
    let mut stack: Vec<&Expr> = filters.iter().collect();
    while let Some(expr) = stack.pop() {
        let Expr::BinaryExpr(BinaryExpr { left, op, right }) = expr else {
            continue;
        };
        if *op == Operator::And {
            stack.push(left);
            stack.push(right);
            continue;
        }
        let (op, value) = match (left.as_ref(), right.as_ref()) {
            (Expr::Column(c), Expr::Literal(v, _)) if c.name == column => (*op, v),
            (Expr::Literal(v, _), Expr::Column(c)) if c.name == column => match op.swap() {
                Some(op) => (op, v),
                None => continue,
            },
            _ => continue,
        };
        let Some((micros, exact)) = timestamp_micros(value) else {
            continue;
        };
        // A literal finer than microseconds is rounded outwards, so no file is wrongly skipped.
        match op {
            Operator::Gt => tighten_lower(micros, !exact),
            Operator::GtEq => tighten_lower(micros, true),
            Operator::Lt if exact => tighten_upper(micros, false),
            Operator::Lt | Operator::LtEq => tighten_upper(micros, true),
            Operator::Eq => {
                tighten_lower(micros, true);
                tighten_upper(micros, true);
            }
            _ => {}
        }
    }
    (lower, upper)
}

/// A timestamp literal in microseconds (rounded down), and whether that is exact.
fn timestamp_micros(value: &ScalarValue) -> Option<(i64, bool)> {
    match value {
        ScalarValue::TimestampMicrosecond(Some(v), _) => Some((*v, true)),
        ScalarValue::TimestampNanosecond(Some(v), _) => {
            Some((v.div_euclid(1000), v.rem_euclid(1000) == 0))
        }
        ScalarValue::TimestampMillisecond(Some(v), _) => Some((v * 1000, true)),
        ScalarValue::TimestampSecond(Some(v), _) => Some((v * 1_000_000, true)),
        _ => None,
    }
}

fn date_field() -> Field {
    Field::new(DATE_COLUMN, DataType::Date32, false)
}

fn days_since_epoch(date: &str) -> i32 {
    chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d")
        .map(|d| (d - chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()).num_days() as i32)
        .unwrap_or(0)
}

#[async_trait]
impl TableProvider for LakeTableProvider {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        Ok(filters
            .iter()
            .map(|f| {
                if self.def.partitioned_by_date && expr_applicable_for_cols(&[DATE_COLUMN], f) {
                    TableProviderFilterPushDown::Exact
                } else {
                    TableProviderFilterPushDown::Inexact
                }
            })
            .collect())
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let files = self.prune(state, filters)?;
        if files.is_empty() {
            let schema = match projection {
                Some(p) => Arc::new(self.schema.project(p)?),
                None => self.schema.clone(),
            };
            return Ok(Arc::new(EmptyExec::new(schema)));
        }
        // Spread files over the target partitions, largest first onto the lightest group.
        let groups_wanted = state.config().target_partitions().max(1).min(files.len());
        let mut sorted = files;
        sorted.sort_by_key(|f| std::cmp::Reverse(f.bytes));
        let mut groups: Vec<(u64, Vec<PartitionedFile>)> = vec![(0, vec![]); groups_wanted];
        for file in sorted {
            let lightest = groups.iter_mut().min_by_key(|(bytes, _)| *bytes).unwrap();
            lightest.0 += file.bytes;
            let path = self.root.join(&file.path);
            let mut pf = PartitionedFile::new(path.to_string_lossy().to_string(), file.bytes);
            if self.def.partitioned_by_date {
                let day = file.date.as_deref().map(days_since_epoch).unwrap_or(0);
                pf = pf.with_partition_values(vec![ScalarValue::Date32(Some(day))]);
            }
            lightest.1.push(pf);
        }
        let partition_cols = if self.def.partitioned_by_date {
            vec![Arc::new(date_field())]
        } else {
            vec![]
        };
        let source = ParquetSource::new(TableSchema::new(self.file_schema.clone(), partition_cols));
        let config =
            FileScanConfigBuilder::new(ObjectStoreUrl::local_filesystem(), Arc::new(source))
                .with_file_groups(
                    groups
                        .into_iter()
                        .map(|(_, files)| FileGroup::new(files))
                        .collect(),
                )
                .with_projection_indices(projection.cloned())?
                .with_limit(limit)
                .build();
        ParquetFormat::default()
            .create_physical_plan(state, config)
            .await
    }
}
