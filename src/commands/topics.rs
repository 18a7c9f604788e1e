//! `omnistream topics [--schema TOPIC | --markdown]`

use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, RecordBatch, StringArray, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema};
use omnistream_streams::{EventLog, Topic};

use super::open_log;
use crate::cli::TopicsArgs;
use crate::config::Config;
use crate::error::Result;
use crate::output::{Output, outln};

pub(crate) async fn run(config: &Config, args: TopicsArgs) -> Result<()> {
    if args.markdown {
        let markdown = omnistream_streams::docs::schemas_markdown();
        outln!("{}", markdown.trim_end_matches('\n'));
        return Ok(());
    }
    let output = Output::new(args.output)?;
    if let Some(name) = args.schema {
        let topic = Topic::lookup(&name)?;
        let spec = topic.spec();
        eprintln!(
            "{} (lake table {}): {}",
            spec.name, spec.table, spec.description
        );
        let schema = Arc::new(Schema::new(vec![
            Field::new("column", DataType::Utf8, false),
            Field::new("arrow_type", DataType::Utf8, false),
            Field::new("nullable", DataType::Boolean, false),
            Field::new("description", DataType::Utf8, false),
        ]));
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(
                spec.fields.iter().map(|f| f.name),
            )),
            Arc::new(StringArray::from_iter_values(
                spec.fields.iter().map(|f| f.ty.arrow_type().to_string()),
            )),
            Arc::new(BooleanArray::from(
                spec.fields.iter().map(|f| !f.required).collect::<Vec<_>>(),
            )),
            Arc::new(StringArray::from_iter_values(
                spec.fields.iter().map(|f| f.doc),
            )),
        ];
        output
            .write_batches(schema.clone(), vec![RecordBatch::try_new(schema, columns)?])
            .await?;
        return Ok(());
    }
    let log = open_log(config)?;
    let groups = log.groups()?;
    let (mut names, mut tables, mut partitions, mut starts, mut ends, mut lags) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    for topic in Topic::ALL {
        let n = log.partitions(topic)?;
        let mut start = 0;
        let mut end_by_partition = Vec::new();
        for p in 0..n {
            let o = log.offsets(topic, p)?;
            start += o.start;
            end_by_partition.push(o.end);
        }
        let mut lag = Vec::new();
        for group in &groups {
            let committed = log.committed(group, topic)?;
            if committed.is_empty() {
                continue;
            }
            let behind: u64 = end_by_partition
                .iter()
                .enumerate()
                .map(|(p, end)| {
                    end.saturating_sub(committed.get(&(p as u32)).copied().unwrap_or(0))
                })
                .sum();
            lag.push(format!("{group}: {behind}"));
        }
        names.push(topic.name().to_string());
        tables.push(topic.table());
        partitions.push(n as u64);
        starts.push(start);
        ends.push(end_by_partition.iter().sum::<u64>());
        lags.push(if lag.is_empty() {
            "-".to_string()
        } else {
            lag.join(", ")
        });
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("topic", DataType::Utf8, false),
        Field::new("table", DataType::Utf8, false),
        Field::new("partitions", DataType::UInt64, false),
        Field::new("start_offsets", DataType::UInt64, false),
        Field::new("end_offsets", DataType::UInt64, false),
        Field::new("consumer_lag", DataType::Utf8, false),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(names)),
        Arc::new(StringArray::from(tables)),
        Arc::new(UInt64Array::from(partitions)),
        Arc::new(UInt64Array::from(starts)),
        Arc::new(UInt64Array::from(ends)),
        Arc::new(StringArray::from(lags)),
    ];
    output
        .write_batches(schema.clone(), vec![RecordBatch::try_new(schema, columns)?])
        .await?;
    Ok(())
}
