//! `omnistream patterns ...`: store, search, inspect and maintain the pattern store; and the
//! wiring of the store into the codegen job (retrieval) and the runner (the indexer job).

use std::sync::Arc;

use arrow::array::{ArrayRef, Float32Array, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use omnistream_codegen::{CodegenFactory, CodegenOptions};
use omnistream_jobs::{Job, JobEnv, JobFactory, JobKind, JobSpec};
use omnistream_patterns::indexer::{self, IndexReport, StorageRequest};
use omnistream_patterns::record::Scores;
use omnistream_patterns::store::Mode;
use omnistream_patterns::{
    Hit, Lifecycle, Pattern, PatternStore, PatternsFactory, Search, StoreSource,
};

use crate::cli::{
    OutputArgs, PatternQueryArgs, PatternRescoreArgs, PatternStoreArgs, PatternsCommand, SearchMode,
};
use crate::config::Config;
use crate::error::{CliError, Result};
use crate::output::{Output, print_line};

/// Largest file `patterns store` reads (what a pattern may keep).
const MAX_FILE_BYTES: u64 = indexer::MAX_CODE_BYTES as u64;

pub(crate) async fn run(config: &Config, cmd: PatternsCommand) -> Result<()> {
    if let PatternsCommand::Rescore(args) = cmd {
        return super::blocking("patterns rescore", config, move |config, runtime| {
            rescore(config, args, &runtime)
        })
        .await;
    }
    if let PatternsCommand::Reembed = cmd {
        return reembed(config).await;
    }
    let store = config.patterns_config()?.open().await?;
    match cmd {
        PatternsCommand::Rescore(_) | PatternsCommand::Reembed => unreachable!("handled above"),
        PatternsCommand::Store(args) => store_file(config, &store, args).await,
        PatternsCommand::Query(args) => query(&store, args).await,
        PatternsCommand::Show { id, output } => show(&store, &id, output).await,
        PatternsCommand::List { lifecycle, output } => {
            let lifecycle = lifecycle.as_deref().and_then(Lifecycle::parse);
            let patterns = store.list(lifecycle).await?;
            let hits: Vec<(Pattern, Option<f32>)> =
                patterns.into_iter().map(|p| (p, None)).collect();
            write(&hits, output).await
        }
        PatternsCommand::Optimize => {
            let r = store.optimize().await?;
            print_line(format_args!(
                "optimised {}: {} rows; {} fragments compacted into {}; {} old versions pruned ({} bytes); vector index: {}; full-text index: {}",
                store.table_path().display(),
                r.rows,
                r.fragments_removed,
                r.fragments_added,
                r.versions_pruned,
                r.bytes_removed,
                if r.vector_index {
                    "yes"
                } else {
                    "not yet (below patterns.index_threshold)"
                },
                if r.fts_index { "yes" } else { "no" },
            ));
            Ok(())
        }
    }
}

async fn store_file(config: &Config, store: &PatternStore, args: PatternStoreArgs) -> Result<()> {
    let path = &args.file;
    let meta =
        std::fs::metadata(path).map_err(|e| CliError::Usage(format!("{}: {e}", path.display())))?;
    if meta.len() > MAX_FILE_BYTES {
        return Err(CliError::Usage(format!(
            "{} is {} bytes; a pattern keeps at most {MAX_FILE_BYTES} (nothing was stored)",
            path.display(),
            meta.len()
        )));
    }
    let bytes =
        std::fs::read(path).map_err(|e| CliError::Usage(format!("{}: {e}", path.display())))?;
    let code = String::from_utf8(bytes).map_err(|e| {
        CliError::Usage(format!(
            "{} is not UTF-8 (byte {} is invalid; nothing was stored)",
            path.display(),
            e.utf8_error().valid_up_to()
        ))
    })?;
    if !(0.0..=1.0).contains(&args.quality) {
        return Err(CliError::Usage(format!(
            "--quality must be between 0 and 1, not {}",
            args.quality
        )));
    }
    let module = match args.module.as_str() {
        "node" => "v1_0_0/node.py",
        _ => "v1_0_0/logic.py",
    };
    let description = args.description.clone().unwrap_or_else(|| {
        path.file_stem()
            .map(|s| s.to_string_lossy().replace(['_', '-'], " "))
            .unwrap_or_default()
    });
    let request = StorageRequest {
        node_type: args.node_type.clone(),
        domain: Some(args.domain.clone()),
        service_name: args.service_name.clone(),
        module: Some(module.into()),
        code,
        description: Some(description),
        operations: args.operations.clone(),
        scores: Scores {
            quality: args.quality,
            ..Scores::default()
        },
        scorer_version: Some("manual".into()),
        ..StorageRequest::default()
    };
    let pattern = indexer::candidate(&request)
        .map_err(|e| CliError::Usage(format!("{}: {e} (nothing was stored)", path.display())))?;
    let mut report = IndexReport::default();
    let changes = indexer::store_new(store, vec![pattern.clone()], &mut report).await?;
    let log = super::open_log(config)?;
    indexer::emit_changes(&log, &changes)?;
    match changes.first() {
        Some(c) => print_line(format_args!(
            "stored {} ({} {}, version {}{})",
            c.pattern.pattern_id,
            c.pattern.node_type,
            c.change.replace('_', " "),
            c.pattern.version,
            c.pattern
                .parent_ids
                .first()
                .map(|p| format!(", from {p}"))
                .unwrap_or_default()
        )),
        None => print_line(format_args!(
            "{} is already stored (the same code, up to formatting, comments and names)",
            pattern.pattern_id
        )),
    }
    Ok(())
}

async fn query(store: &PatternStore, args: PatternQueryArgs) -> Result<()> {
    let search = Search {
        text: args.text.clone(),
        node_type: args.node_type.clone(),
        domain: args.domain.clone(),
        min_quality: args.min_quality,
        top_k: args.top_k,
        include_deprecated: args.include_deprecated,
        mode: match args.mode {
            SearchMode::Hybrid => Mode::Hybrid,
            SearchMode::Vector => Mode::Vector,
            SearchMode::Text => Mode::Text,
        },
        ..Search::default()
    };
    let hits: Vec<Hit> = store.search(&search).await?;
    let rows = hits
        .into_iter()
        .map(|h| (h.pattern, Some(h.relevance)))
        .collect::<Vec<_>>();
    write(&rows, args.output).await
}

async fn show(store: &PatternStore, id: &str, output: OutputArgs) -> Result<()> {
    let p = store.get(id).await?;
    let mut lineage = vec![p.clone()];
    // Up the parents to the lineage's first pattern.
    while let Some(parent) = lineage.last().and_then(|l| l.parent_ids.first()).cloned() {
        match store.get(&parent).await {
            Ok(pp) if !lineage.iter().any(|l| l.pattern_id == pp.pattern_id) => lineage.push(pp),
            _ => break,
        }
    }
    let children = store
        .scan(
            Some(format!("array_has(parent_ids, '{}')", p.pattern_id)),
            None,
        )
        .await
        .unwrap_or_default();
    if matches!(output.format, crate::cli::OutputFormat::Table) {
        print_line(format_args!(
            "pattern {} ({} {}, {})",
            p.pattern_id,
            p.node_type,
            p.domain.as_deref().unwrap_or("-"),
            p.module
        ));
        print_line(format_args!("  {}", p.description));
        print_line(format_args!(
            "  quality {:.3} (scorer {}), lifecycle {}, version {}",
            p.scores.quality, p.scorer_version, p.lifecycle, p.version
        ));
        print_line(format_args!(
            "  used {} times, {} passed, failure streak {}",
            p.usage_count, p.success_count, p.failure_streak
        ));
        let chain: Vec<String> = lineage
            .iter()
            .map(|l| format!("{} v{}", l.pattern_id, l.version))
            .collect();
        print_line(format_args!("  lineage: {}", chain.join(" <- ")));
        for c in &children {
            print_line(format_args!("  child: {} v{}", c.pattern_id, c.version));
        }
        print_line(format_args!(
            "  from generation {} ({})",
            p.correlation_id.as_deref().unwrap_or("-"),
            p.model.as_deref().unwrap_or("-")
        ));
        print_line(format_args!("\n{}", p.code));
        return Ok(());
    }
    let rows: Vec<(Pattern, Option<f32>)> = lineage.into_iter().map(|l| (l, None)).collect();
    write(&rows, output).await
}

/// Patterns as rows for the chosen format.
async fn write(rows: &[(Pattern, Option<f32>)], output: OutputArgs) -> Result<()> {
    let s = |f: &dyn Fn(&Pattern) -> Option<String>| -> ArrayRef {
        Arc::new(rows.iter().map(|(p, _)| f(p)).collect::<StringArray>())
    };
    let i = |f: &dyn Fn(&Pattern) -> i64| -> ArrayRef {
        Arc::new(rows.iter().map(|(p, _)| Some(f(p))).collect::<Int64Array>())
    };
    let wide = !matches!(output.format, crate::cli::OutputFormat::Table);
    let mut fields = vec![
        Field::new("pattern_id", DataType::Utf8, false),
        Field::new("node_type", DataType::Utf8, false),
        Field::new("domain", DataType::Utf8, true),
        Field::new("lifecycle", DataType::Utf8, false),
        Field::new("version", DataType::Utf8, false),
        Field::new("quality", DataType::Float64, false),
        Field::new("uses", DataType::Int64, false),
        Field::new("passed", DataType::Int64, false),
        Field::new("relevance", DataType::Float32, true),
        Field::new("description", DataType::Utf8, false),
    ];
    let mut columns: Vec<ArrayRef> = vec![
        s(&|p| Some(p.pattern_id.clone())),
        s(&|p| Some(p.node_type.clone())),
        s(&|p| p.domain.clone()),
        s(&|p| Some(p.lifecycle.to_string())),
        s(&|p| Some(p.version.clone())),
        Arc::new(
            rows.iter()
                .map(|(p, _)| Some(p.scores.quality))
                .collect::<Float64Array>(),
        ),
        i(&|p| p.usage_count),
        i(&|p| p.success_count),
        Arc::new(rows.iter().map(|(_, r)| *r).collect::<Float32Array>()),
        s(&|p| {
            Some(if wide {
                p.description.clone()
            } else {
                short(&p.description, 60)
            })
        }),
    ];
    if wide {
        fields.push(Field::new("parent_ids", DataType::Utf8, false));
        columns.push(s(&|p| Some(p.parent_ids.join(","))));
        fields.push(Field::new("module", DataType::Utf8, false));
        columns.push(s(&|p| Some(p.module.clone())));
        fields.push(Field::new("code", DataType::Utf8, false));
        columns.push(s(&|p| Some(p.code.clone())));
    }
    let schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(schema.clone(), columns)?;
    Output::new(output)?
        .write_batches(schema, vec![batch])
        .await?;
    Ok(())
}

fn short(text: &str, max: usize) -> String {
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() <= max {
        return one_line;
    }
    let cut: String = one_line.chars().take(max - 1).collect();
    format!("{cut}…")
}

fn rescore(
    config: &Config,
    args: PatternRescoreArgs,
    runtime: &tokio::runtime::Handle,
) -> Result<()> {
    use omnistream_patterns::rescore::{self, RescoreOptions};
    let store = runtime.block_on(config.patterns_config()?.open())?;
    let lake = super::open_lake(config)?;
    let mut worker = omnistream_codegen::pipeline::Worker::new(&args.python);
    let options = RescoreOptions {
        scorer: args
            .scorer
            .unwrap_or_else(|| omnistream_codegen::gates::SCORER_VERSION.to_string()),
        filter: args.filter,
        batch: args.batch.max(1),
    };
    let bar = super::progress_bar("patterns");
    let report = rescore::run(
        &store,
        &lake,
        runtime,
        &mut worker,
        &options,
        |done, total| {
            bar.set_length(total);
            bar.set_position(done);
        },
    )?;
    bar.finish_and_clear();
    print_line(format_args!(
        "re-scored {} patterns with {} ({} resumed from an interrupted run, {} deprecated) in {:.1} s: {:.1} patterns/s",
        report.scored + report.resumed,
        options.scorer,
        report.resumed,
        report.deprecated,
        report.elapsed.as_secs_f64(),
        report.rows_per_sec()
    ));
    Ok(())
}

/// `patterns reembed`, with a progress bar over the embedding.
async fn reembed(config: &Config) -> Result<()> {
    let pc = config.patterns_config()?;
    let bar = super::progress_bar("patterns");
    let lock = config
        .status_dir()
        .join(format!("{}.lock", omnistream_patterns::PATTERNS));
    let report = omnistream_patterns::reembed::run(
        &pc.dir,
        pc.embedder.clone(),
        pc.store.clone(),
        &lock,
        |done, total| {
            bar.set_length(total);
            bar.set_position(done);
        },
    )
    .await;
    bar.finish_and_clear();
    let report = match report {
        Err(omnistream_patterns::PatternsError::Busy(_)) => {
            return Err(CliError::Usage(
                "the pattern indexer is running (jobs run patterns or all): stop it, then re-embed"
                    .into(),
            ));
        }
        r => r?,
    };
    let from = report
        .from
        .as_ref()
        .map(|(name, dim)| format!("{name} ({dim} dimensions)"))
        .unwrap_or_else(|| "no recorded embedder".into());
    print_line(format_args!(
        "re-embedded {} patterns from {from} to {} ({} dimensions) in {:.1} s",
        report.rows,
        report.to.0,
        report.to.1,
        report.elapsed.as_secs_f64()
    ));
    Ok(())
}

/// Give the codegen job the store to retrieve from, when retrieval is on.
pub(crate) fn attach(
    options: &mut CodegenOptions,
    config: &Config,
    runtime: &tokio::runtime::Handle,
) -> Result<()> {
    if !config.patterns.retrieval {
        return Ok(());
    }
    let store = runtime.block_on(config.patterns_config()?.open())?;
    options.patterns = Some(Arc::new(StoreSource::new(Arc::new(store), runtime.clone())));
    Ok(())
}

/// The jobs built outside the jobs crate: codegen and the pattern indexer.
pub(crate) struct ExternalJobs {
    pub(crate) codegen: CodegenFactory,
    pub(crate) patterns: PatternsFactory,
}

impl ExternalJobs {
    pub(crate) fn new(config: &Config, runtime: &tokio::runtime::Handle) -> Result<Self> {
        let mut options = config.codegen_options()?;
        attach(&mut options, config, runtime)?;
        Ok(ExternalJobs {
            codegen: CodegenFactory { options },
            patterns: PatternsFactory {
                config: config.patterns_config()?,
            },
        })
    }
}

impl JobFactory for ExternalJobs {
    fn build<'a>(
        &self,
        spec: &JobSpec,
        env: JobEnv<'a>,
    ) -> omnistream_jobs::Result<Box<dyn Job + 'a>> {
        match spec.kind {
            JobKind::Patterns => self.patterns.build(spec, env),
            _ => self.codegen.build(spec, env),
        }
    }
}

/// Run the pattern indexer here until it has nothing left, unless another process runs it.
pub(crate) fn index_pending(
    config: &Config,
    log: &dyn omnistream_streams::EventLog,
    runtime: &tokio::runtime::Handle,
) -> Result<Option<IndexReport>> {
    let pc = config.patterns_config()?;
    let store = runtime.block_on(pc.open())?;
    let uses = omnistream_patterns::uses::UseLog::new(store.connection().clone(), pc.dir.clone());
    let mut indexer = match omnistream_patterns::Indexer::new(
        log,
        Arc::new(store),
        uses,
        runtime.clone(),
        &config.status_dir(),
        pc.indexer.clone(),
    ) {
        Ok(i) => i,
        Err(omnistream_patterns::PatternsError::Busy(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let mut total = IndexReport::default();
    loop {
        let r = indexer.step()?;
        if r.events == 0 {
            return Ok(Some(total));
        }
        total.events += r.events;
        total.stored += r.stored;
        total.duplicates += r.duplicates;
        total.rejected += r.rejected;
        total.uses += r.uses;
        total.lifecycle_changes += r.lifecycle_changes;
    }
}

/// Words synthetic patterns are described with (what requests talk about).
const VOCABULARY: &[&str] = &[
    "postgres",
    "writer",
    "kafka",
    "publisher",
    "price",
    "calculator",
    "metrics",
    "aggregator",
    "payment",
    "workflow",
    "checksum",
    "files",
    "slug",
    "titles",
    "words",
    "counter",
    "cache",
    "session",
    "inventory",
    "stock",
    "reader",
    "deployment",
    "coordinator",
    "email",
    "sender",
    "tax",
    "billing",
    "invoice",
    "orders",
    "users",
    "events",
    "queue",
    "retry",
    "webhook",
    "temperature",
    "average",
    "balance",
    "account",
    "upsert",
    "records",
    "report",
    "daily",
];

/// Store `n` synthetic patterns (valid logic modules of every node type, described with the
/// vocabulary) in the configured store, in batches; returns how long it took.
pub(crate) fn fill_synthetic(
    config: &Config,
    n: u64,
    runtime: &tokio::runtime::Handle,
) -> Result<std::time::Duration> {
    let store = runtime.block_on(config.patterns_config()?.open())?;
    let started = std::time::Instant::now();
    let mut i = 0u64;
    while i < n {
        let batch: Vec<Pattern> = (i..(i + 5000).min(n)).map(synthetic_pattern).collect();
        runtime.block_on(async {
            let texts: Vec<String> = batch.iter().map(|p| p.search_text.clone()).collect();
            let vectors = store.embed(&texts).await?;
            let batch: Vec<Pattern> = batch
                .into_iter()
                .zip(vectors)
                .map(|(mut p, v)| {
                    p.embedding = v;
                    p
                })
                .collect();
            store.insert_new(&batch).await
        })?;
        i += 5000;
    }
    runtime.block_on(store.optimize())?;
    Ok(started.elapsed())
}

/// Synthetic pattern `k` (without its embedding): one of the four node types, a description of
/// words from the vocabulary, a `run` of its own, a quality between 0.95 and 0.99.
pub(crate) fn synthetic_pattern(k: u64) -> Pattern {
    use omnistream_codegen::parse::NodeType;
    let types = [
        NodeType::Compute,
        NodeType::Effect,
        NodeType::Reducer,
        NodeType::Orchestrator,
    ];
    let t = types[(k % 4) as usize];
    let word =
        |s: u64| VOCABULARY[((k.wrapping_mul(2654435761) >> s) % VOCABULARY.len() as u64) as usize];
    let description = format!("{} {} {} {} node", word(3), word(11), word(19), t.as_str());
    let code = format!(
        "{}:\n    \"\"\"Synthetic pattern {k}: {description}.\"\"\"\n    return {{\"operation\": operation, \"pattern\": {k}}}\n",
        omnistream_codegen::assemble::run_signature(t)
    );
    let request = StorageRequest {
        node_type: t.as_str().into(),
        domain: Some(word(27).into()),
        module: Some("v1_0_0/logic.py".into()),
        code,
        description: Some(description),
        operations: vec![word(5).into()],
        scores: Scores {
            quality: 0.95 + (k % 5) as f64 / 100.0,
            ..Scores::default()
        },
        scorer_version: Some("synthetic".into()),
        ..StorageRequest::default()
    };
    indexer::candidate(&request).expect("synthetic patterns are valid")
}
