//! The command line: what each command does, its flags, and the environment variable of each.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "omnistream",
    version,
    about = "The data plane for self-improving code generation: an event log, a Parquet lake, SQL over history.",
    long_about = "omnistream keeps every event of LLM code generation (requests, model calls, validation \
results, node heartbeats) in a durable event log, lands them exactly once in a Parquet lake that \
DuckDB, polars and pyarrow read unchanged, and answers SQL over all of it.\n\n\
Everything runs on embedded defaults under ./omnistream-data; nothing needs a server.",
    after_help = "Getting started:\n  \
omnistream generate \"Create PostgreSQL writer Effect node\"   # generate a node, see every stage\n  \
omnistream simulate --generations 200     # write a realistic workload into the log\n  \
omnistream jobs run all --once            # land it in the lake and update the analytics\n  \
omnistream models                         # which model passes most, for what cost\n  \
omnistream sql \"SELECT model, count(*) FROM model_call GROUP BY model\"\n  \
omnistream lake tables                    # what the lake holds"
)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) global: GlobalArgs,

    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Global options")]
pub(crate) struct GlobalArgs {
    /// Data directory (event log under log/, lake under lake/). Overrides `data_dir` of the config.
    #[arg(long, global = true, env = "OMNISTREAM_DATA_DIR", value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,

    /// Config file (TOML). Default: ./omnistream.toml when it exists.
    #[arg(long, global = true, env = "OMNISTREAM_CONFIG", value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,

    /// Log filter for diagnostics on stderr, e.g. `info` or `omnistream_jobs=debug`.
    #[arg(
        long,
        global = true,
        env = "OMNISTREAM_LOG_LEVEL",
        default_value = "warn",
        value_name = "FILTER"
    )]
    pub(crate) log_level: String,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Generate an ONEX node from a request in plain words, and show every stage.
    #[command(
        long_about = "Publish a generation request and (by default) wait for its end, showing each \
stage as it completes, then the files written, the quality score with its dimensions, the models \
used, tokens, cost and duration. The codegen job runs the request: the one of `omnistream jobs run \
codegen|all` when one is running, otherwise this command runs it in-process.\n\n\
The default model is `template` (built in, no network). Configure HTTP models under [models] and \
[providers] in omnistream.toml (OpenAI-compatible or Anthropic).\n\n\
Exit status: 0 when the node was generated, 1 when the generation failed (the stage and the \
reason are printed) or on an error.",
        after_help = "Examples:\n  \
omnistream generate \"Create PostgreSQL writer Effect node\"\n  \
omnistream generate \"price calculator with tax rules\" --node-type compute --out ./nodes\n  \
omnistream generate \"Kafka publisher\" --model qwen --format json\n  \
omnistream generate \"metrics aggregator\" --no-wait     # publish only; prints the correlation id"
    )]
    Generate(GenerateArgs),

    /// Append events (one JSON object per line) to a topic; bad lines go to the dead-letter topic.
    #[command(
        long_about = "Append events to a topic of the event log, one JSON object per line, with the \
upstream field names (see docs/schemas.md). Every line is either accepted or sent to the dead-letter \
topic with the reason, the source and the line number; a bad line never stops the rest.\n\n\
Exit status: 0 when every line was accepted, 2 when some were rejected, 1 on an error."
    )]
    Ingest(IngestArgs),

    /// List, run and inspect jobs: the lake-sink, the SQL reducers and the codegen job.
    #[command(subcommand)]
    Jobs(JobsCommand),

    /// Rebuild a reducer's derived table from the raw lake, from a date on.
    #[command(
        long_about = "Recompute every window of a reducer from --from on (from the beginning \
when absent) out of the raw lake tables, and replace the derived table's rows for them in one commit. \
Use it after changing a reducer's SQL, or to repair history."
    )]
    Backfill(BackfillArgs),

    /// Leaderboard per model: pass rate, quality, cost per passing generation, p95 latency, trend.
    Models(ModelsArgs),

    /// The node registry: every node's latest state and liveness (active, stale, expired).
    Nodes(NodesArgs),

    /// Run a read-only SQL query over every lake table.
    #[command(
        long_about = "Run a DataFusion SQL query over the lake. Every raw table (one per topic, \
e.g. model_call, generation_completed, node_heartbeat) is available by name, with a `date` \
partition column. The SQL surface is read-only: queries only, no DDL, no COPY, no file access."
    )]
    Sql(SqlArgs),

    /// Inspect and maintain the Parquet lake.
    #[command(subcommand)]
    Lake(LakeCommand),

    /// The pattern store: good generations kept for retrieval into the next similar request.
    #[command(
        subcommand,
        long_about = "The pattern store is one LanceDB table (`patterns/patterns.lance` under the \
data directory). The pattern indexer job (`omnistream jobs run patterns`, part of `jobs run all`) \
stores every completed generation at or above the learning threshold; the codegen job retrieves \
from it by hybrid search (vector and BM25, fused by reciprocal rank). These commands store, search, \
inspect and maintain it by hand.",
        after_help = "Examples:\n  \
omnistream patterns store logic.py --node-type compute --domain files --quality 0.97\n  \
omnistream patterns query \"sha256 checksums of uploaded files\" --node-type compute\n  \
omnistream patterns list --lifecycle validated\n  \
omnistream patterns show 3f2a9c0d1e4b5a69\n  \
omnistream patterns optimize"
    )]
    Patterns(PatternsCommand),

    /// List topics with partitions, end offsets and consumer lag; or print a topic's schema.
    Topics(TopicsArgs),

    /// Write a realistic, seeded workload through the ingest path.
    #[command(
        long_about = "Write a realistic workload through the same path as `omnistream ingest`: \
several models with distinct latency, token, cost and quality distributions, failures and retries, \
stage timings, quorum votes, patterns, and dozens of nodes with introspection and heartbeats. \
The same seed gives the same events (ids included)."
    )]
    Simulate(SimulateArgs),

    /// Benchmarks, measured side by side with a peer (DuckDB) on the same data.
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Debug, Args)]
pub(crate) struct GenerateArgs {
    /// What to generate, in plain words, e.g. "Create PostgreSQL writer Effect node".
    #[arg(required_unless_present = "requests")]
    pub(crate) prompt: Option<String>,

    /// Generate every request of a JSONL file instead (prompt, node_type, model, operations,
    /// input and output fields, examples: docs/codegen.md); the whole file is checked first.
    #[arg(long, value_name = "FILE", conflicts_with = "prompt")]
    pub(crate) requests: Option<PathBuf>,

    /// Directory the node directory goes into (default: `codegen.output_dir`, ./generated).
    #[arg(long, env = "OMNISTREAM_GENERATE_OUT", value_name = "DIR")]
    pub(crate) out: Option<PathBuf>,

    /// Model: `template` or a name under [models] (default: `codegen.model`).
    #[arg(long, env = "OMNISTREAM_GENERATE_MODEL", value_name = "NAME")]
    pub(crate) model: Option<String>,

    /// Node type, when the prompt does not say: effect, compute, reducer or orchestrator.
    #[arg(long, value_name = "TYPE")]
    pub(crate) node_type: Option<String>,

    /// Publish the request and exit; prints its correlation id.
    #[arg(long)]
    pub(crate) no_wait: bool,

    /// Skip the judge-model quorum even when judges are configured.
    #[arg(long)]
    pub(crate) no_quorum: bool,

    /// Do not retrieve patterns for the request.
    #[arg(long)]
    pub(crate) no_intelligence: bool,

    /// Give up waiting after this many seconds (the generation itself goes on).
    #[arg(long, default_value_t = 600, value_name = "SECONDS")]
    pub(crate) timeout: u64,

    /// How to print the result.
    #[arg(long, value_enum, default_value = "table")]
    pub(crate) format: GenerateFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum GenerateFormat {
    /// Stage lines as they complete, then a summary.
    Table,
    /// One JSON object: the end event, the stages, the model calls and the gates.
    Json,
}

#[derive(Debug, Args)]
pub(crate) struct IngestArgs {
    /// Topic: full name (onex.evt.codegen.model-call.v1), short name (model-call) or table (model_call).
    pub(crate) topic: String,

    /// Input file of newline-delimited JSON, or `-` for standard input.
    pub(crate) file: String,

    /// `source` recorded on events that do not name one.
    #[arg(
        long,
        env = "OMNISTREAM_INGEST_SOURCE",
        default_value = "omnistream-ingest"
    )]
    pub(crate) source: String,

    /// Progress display: a bar on a terminal, JSON lines on stdout (one per durable batch), or none.
    #[arg(long, value_enum, default_value = "auto")]
    pub(crate) progress: ProgressMode,

    /// Start at this line (1-based), skipping the ones before: resumes an ingest that stopped
    /// after acknowledging them (it prints the line to resume from).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) from_line: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ProgressMode {
    /// A progress bar when stderr is a terminal, nothing otherwise.
    Auto,
    /// A progress bar.
    Bar,
    /// One JSON object per durable batch on stdout: {"acked_lines":..,"accepted":..,"rejected":..}.
    Json,
    /// Nothing but the summary.
    None,
}

#[derive(Debug, Subcommand)]
pub(crate) enum JobsCommand {
    /// The jobs of this deployment: built in, plus those of `jobs_dir`.
    List {
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Run a job, or `all` of them in one process.
    Run(JobRunArgs),
    /// Committed offsets, lag, last batch, rows written and last error of each job.
    Status {
        /// One job; every job when absent.
        name: Option<String>,
        #[command(flatten)]
        output: OutputArgs,
    },
}

#[derive(Debug, Args)]
pub(crate) struct JobRunArgs {
    /// Job name (see `omnistream jobs list`), or `all`.
    pub(crate) name: String,

    /// Take in what is there now, commit, and exit (`all`: the sink first, then each reducer).
    #[arg(long, conflicts_with = "follow")]
    pub(crate) once: bool,

    /// Follow new events until Ctrl-C or SIGTERM (the default); the batch in flight is committed.
    #[arg(long)]
    pub(crate) follow: bool,

    /// First recompute the reducer's windows from this date (YYYY-MM-DD or RFC 3339) on.
    #[arg(long, value_name = "DATE")]
    pub(crate) from: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct BackfillArgs {
    /// Reducer job name (see `omnistream jobs list`).
    pub(crate) name: String,

    /// First day (YYYY-MM-DD) or instant (RFC 3339) to recompute; everything when absent.
    #[arg(long, value_name = "DATE")]
    pub(crate) from: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct ModelsArgs {
    /// Only generations and calls of this node type (effect, compute, reducer, orchestrator).
    #[arg(long, value_name = "TYPE")]
    pub(crate) node_type: Option<String>,

    /// Only the last DUR, e.g. 24h or 7d (of wall-clock time); all of history when absent.
    #[arg(long, value_name = "DUR")]
    pub(crate) since: Option<String>,

    #[command(flatten)]
    pub(crate) output: OutputArgs,
}

#[derive(Debug, Args)]
pub(crate) struct NodesArgs {
    /// Judge liveness at this time (RFC 3339) instead of now, e.g. at the end of a replayed workload.
    #[arg(long, value_name = "TIME")]
    pub(crate) at: Option<String>,

    #[command(flatten)]
    pub(crate) output: OutputArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum OutputFormat {
    /// A table for people (at most --max-rows rows).
    Table,
    Csv,
    /// A JSON array of objects.
    Json,
    /// One JSON object per line.
    Ndjson,
    /// Parquet (needs --output, or a pipe).
    Parquet,
}

#[derive(Debug, Args)]
pub(crate) struct SqlArgs {
    /// The query, e.g. "SELECT model, avg(latency_ms) FROM model_call GROUP BY model".
    pub(crate) query: String,

    #[command(flatten)]
    pub(crate) output: OutputArgs,
}

#[derive(Debug, Args, Clone)]
pub(crate) struct OutputArgs {
    /// Output format.
    #[arg(
        long,
        short = 'f',
        value_enum,
        default_value = "table",
        env = "OMNISTREAM_FORMAT"
    )]
    pub(crate) format: OutputFormat,

    /// Write to this file instead of stdout.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub(crate) output: Option<PathBuf>,

    /// Rows shown in table format (the rest is counted); other formats write every row.
    #[arg(long, default_value_t = 1000)]
    pub(crate) max_rows: usize,
}

#[derive(Debug, Subcommand)]
pub(crate) enum LakeCommand {
    /// Each table with rows, files, bytes and the first and last event time.
    Tables {
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Merge small files (of one table, or of all) into files of the target size, atomically.
    Compact(CompactArgs),
}

#[derive(Debug, Subcommand)]
pub(crate) enum PatternsCommand {
    /// Store a file of code as a pattern (deduplicated by normalised code, versioned by similarity).
    Store(PatternStoreArgs),
    /// Hybrid search: the patterns nearest to the text, by meaning and by words.
    Query(PatternQueryArgs),
    /// One pattern: its code, scores, counters and lineage.
    Show {
        /// The pattern id (16 hex digits).
        id: String,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Every pattern (of a lifecycle), newest first.
    List {
        /// Only patterns of this lifecycle.
        #[arg(long, value_parser = ["candidate", "validated", "deprecated"])]
        lifecycle: Option<String>,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Compact the table's files, prune old versions, update and build its indexes.
    Optimize,
    /// Re-run the gates and the quality score over stored patterns (resumable; scores in the lake).
    #[command(
        long_about = "Judge stored patterns again with the current gates (contract, syntax, ONEX \
naming and structure, imports, assembly, Python's compile) and weights: each pattern gets the new \
score and scorer version, every score is appended to the lake table `pattern_scores`, and a \
pattern the scorer no longer passes is deprecated. Patterns already scored by the scorer version \
are left alone, so a run that was stopped (even by kill -9) resumes where it was."
    )]
    Rescore(PatternRescoreArgs),
    /// Embed every pattern again with the configured embedder (after changing `patterns.embedder`).
    #[command(
        long_about = "Compute every stored pattern's vector again with the configured embedder \
(patterns.embedder), so the store can move to another embedder or dimension and keep its patterns, \
lineage, counters and scores. The table is rewritten in one commit: a run that is stopped leaves \
the old table as it was. The pattern indexer must not run meanwhile (they share a lock)."
    )]
    Reembed,
}

#[derive(Debug, Args)]
pub(crate) struct PatternRescoreArgs {
    /// The scorer version to score with (default: the built-in scorer's).
    #[arg(long, value_name = "VERSION")]
    pub(crate) scorer: Option<String>,
    /// Only patterns matching this predicate over the table's columns, e.g. "node_type = 'effect'".
    #[arg(long = "where", value_name = "SQL")]
    pub(crate) filter: Option<String>,
    /// Patterns per batch (one lake commit each).
    #[arg(long, default_value_t = 64)]
    pub(crate) batch: usize,
    /// The Python interpreter of the compile check.
    #[arg(long, env = "OMNISTREAM_PYTHON", default_value = "python3")]
    pub(crate) python: String,
}

#[derive(Debug, Args)]
pub(crate) struct PatternStoreArgs {
    /// The code to keep (UTF-8, at most 1 MiB).
    pub(crate) file: PathBuf,
    /// effect, compute, reducer or orchestrator.
    #[arg(long)]
    pub(crate) node_type: String,
    /// Business domain, e.g. `files`.
    #[arg(long)]
    pub(crate) domain: String,
    /// Quality of the code, 0 to 1.
    #[arg(long, default_value_t = 1.0)]
    pub(crate) quality: f64,
    /// What the code does (searched by text and by meaning). Default: the file's name.
    #[arg(long)]
    pub(crate) description: Option<String>,
    /// The operations the code handles, comma-separated (e.g. `checksum,verify`).
    #[arg(long, value_delimiter = ',')]
    pub(crate) operations: Vec<String>,
    /// The node's file the code is: `logic` (v1_0_0/logic.py, a node's own logic) or `node`.
    #[arg(long, default_value = "logic", value_parser = ["logic", "node"])]
    pub(crate) module: String,
    /// The service's snake_case name, normalised out of the code for dedup.
    #[arg(long)]
    pub(crate) service_name: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct PatternQueryArgs {
    /// What to look for, in words.
    pub(crate) text: String,
    #[arg(long)]
    pub(crate) node_type: Option<String>,
    #[arg(long)]
    pub(crate) domain: Option<String>,
    /// Lowest quality, 0 to 1.
    #[arg(long)]
    pub(crate) min_quality: Option<f64>,
    /// Patterns returned, 1 to 20.
    #[arg(long, default_value_t = 5)]
    pub(crate) top_k: usize,
    /// Show deprecated patterns too (generation never gets them).
    #[arg(long)]
    pub(crate) include_deprecated: bool,
    /// Which sides of the search run: both fused by rank (what generation uses), or one alone.
    #[arg(long, value_enum, default_value = "hybrid")]
    pub(crate) mode: SearchMode,
    #[command(flatten)]
    pub(crate) output: OutputArgs,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum SearchMode {
    /// Vector and BM25, fused by reciprocal rank.
    Hybrid,
    /// Nearest vectors only (meaning).
    Vector,
    /// BM25 over the search text only (words).
    Text,
}

#[derive(Debug, Args)]
pub(crate) struct CompactArgs {
    /// Table to compact; every table when absent.
    pub(crate) table: Option<String>,

    /// Target file size, e.g. 128MiB; files at or above it are left alone.
    #[arg(long, value_name = "SIZE")]
    pub(crate) target_file_size: Option<bytesize::ByteSize>,
}

#[derive(Debug, Args)]
pub(crate) struct TopicsArgs {
    /// Print the Arrow schema of this topic instead of the list.
    #[arg(long, value_name = "TOPIC", conflicts_with = "markdown")]
    pub(crate) schema: Option<String>,

    /// Print the schema reference of every topic as Markdown (docs/schemas.md).
    #[arg(long)]
    pub(crate) markdown: bool,

    #[command(flatten)]
    pub(crate) output: OutputArgs,
}

#[derive(Debug, Args)]
pub(crate) struct SimulateArgs {
    /// Number of generations (each brings its stages, model calls and validation results).
    #[arg(long, short = 'n', default_value_t = 100)]
    pub(crate) generations: u64,

    /// Random seed: the same seed gives the same events.
    #[arg(long, default_value_t = 42)]
    pub(crate) seed: u64,

    /// Simulated time of the first event (RFC 3339), or `now` for the current time minus the span.
    #[arg(long, default_value = "2026-11-01T00:00:00Z")]
    pub(crate) start: String,

    /// Nodes that send introspection and heartbeats.
    #[arg(long, default_value_t = 40)]
    pub(crate) nodes: u32,

    /// Generations per simulated minute.
    #[arg(long, default_value_t = 30.0)]
    pub(crate) rate: f64,

    /// Fraction of events delivered late (after events that happened after them).
    #[arg(long, default_value_t = 0.01)]
    pub(crate) late_fraction: f64,

    /// Fraction of events sent twice with the same event_id (a producer's retry).
    #[arg(long, default_value_t = 0.005)]
    pub(crate) duplicate_fraction: f64,

    /// Write one JSONL file per topic into this directory instead of ingesting.
    #[arg(long, value_name = "DIR")]
    pub(crate) jsonl_dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum BenchCommand {
    /// Land N simulated model-call events from JSONL into the lake (ingest, then sink), side by
    /// side with DuckDB converting the same file to Parquet.
    Ingest(BenchIngestArgs),
    /// The model_performance query over N model-call rows of the lake, side by side with DuckDB
    /// and polars on the same Parquet files.
    Query(BenchQueryArgs),
    /// The cost of one incremental reducer batch as history grows (it should stay flat).
    Batch(BenchBatchArgs),
    /// Freshness in follow mode: from append to the reducer's committed output, at a given rate.
    Freshness(BenchFreshnessArgs),
    /// Generations per second with the template model and the data plane's overhead per
    /// generation, side by side with the bare work in Python (Jinja2, write, compile).
    Codegen(BenchCodegenArgs),
    /// Does the loop learn? Eval requests against a cold store, then the store warmed by
    /// generating the train requests (only passing work is stored), then the eval requests again.
    Learning(BenchLearningArgs),
    /// The pattern store at scale: N synthetic patterns stored, indexed and searched (latency,
    /// recall@k against exact search), side by side with FAISS HNSW on the same vectors.
    Patterns(BenchPatternsArgs),
}

#[derive(Debug, Args)]
pub(crate) struct BenchPatternsArgs {
    /// Patterns stored.
    #[arg(long, default_value_t = 100_000)]
    pub(crate) rows: usize,
    /// Dimensions of the (synthetic, clustered, unit) vectors.
    #[arg(long, default_value_t = 384)]
    pub(crate) dim: usize,
    /// Queries timed, one at a time.
    #[arg(long, default_value_t = 200)]
    pub(crate) queries: usize,
    #[arg(long, default_value_t = 10)]
    pub(crate) top_k: usize,
    /// IVF partitions probed (default: Lance's automatic probing).
    #[arg(long)]
    pub(crate) nprobes: Option<usize>,
    /// Re-rank this many times top_k candidates by exact distance.
    #[arg(long)]
    pub(crate) refine_factor: Option<u32>,
    /// Breadth of the HNSW search.
    #[arg(long, default_value_t = omnistream_patterns::store::DEFAULT_EF)]
    pub(crate) ef: usize,
    /// The vector index: hnsw_flat (full vectors) or hnsw_sq (8-bit vectors).
    #[arg(long, default_value = omnistream_patterns::VectorIndex::default().as_str())]
    pub(crate) vector_index: String,
    /// Skip the FAISS peer.
    #[arg(long)]
    pub(crate) no_peer: bool,
    /// Work directory (emptied first).
    #[arg(long, value_name = "DIR")]
    pub(crate) dir: Option<PathBuf>,
    /// Python interpreter of the peer (needs faiss-cpu and numpy).
    #[arg(long, env = "OMNISTREAM_PYTHON", default_value = "python3")]
    pub(crate) python: String,
}

#[derive(Debug, Args)]
pub(crate) struct BenchLearningArgs {
    /// Requests (JSONL, as `generate --requests`) whose passing generations warm the store.
    #[arg(
        long,
        value_name = "FILE",
        default_value = "requests/learning_train.jsonl"
    )]
    pub(crate) train: PathBuf,
    /// Requests measured cold and warm; none may be a train request word for word.
    #[arg(
        long,
        value_name = "FILE",
        default_value = "requests/learning_eval.jsonl"
    )]
    pub(crate) eval: PathBuf,
    /// The model under test: `template` or a name under [models].
    #[arg(long, value_name = "NAME", default_value = "template")]
    pub(crate) model: String,
    /// The model that generates the train requests (default: the model under test, which then
    /// learns from its own passing work).
    #[arg(long, value_name = "NAME")]
    pub(crate) warm_model: Option<String>,
    /// Refinement rounds of the train generations (default: `codegen.max_refinements`, as the
    /// eval rounds). Training is offline work: more tries buy the store verified solutions that
    /// later requests reuse without a model call.
    #[arg(long, value_name = "N")]
    pub(crate) train_refinements: Option<u32>,
    /// Generations at once.
    #[arg(long, default_value_t = std::thread::available_parallelism().map_or(2, |n| n.get()))]
    pub(crate) concurrency: usize,
    /// Work directory (emptied first).
    #[arg(long, value_name = "DIR")]
    pub(crate) dir: Option<PathBuf>,
    /// Python interpreter of the compile check and the examples.
    #[arg(long, env = "OMNISTREAM_PYTHON", default_value = "python3")]
    pub(crate) python: String,
    #[command(flatten)]
    pub(crate) output: OutputArgs,
}

#[derive(Debug, Args)]
pub(crate) struct BenchCodegenArgs {
    /// Generations to run (default 1000; with --requests, one per request of the file).
    #[arg(long, short = 'n')]
    pub(crate) generations: Option<u64>,
    /// Requests of a JSONL file (as `generate --requests`), cycled to --generations: the report
    /// adds the functional pass rate (every example passes) beside the gate pass rate.
    #[arg(long, value_name = "FILE")]
    pub(crate) requests: Option<PathBuf>,
    /// Model of requests that name none: `template` (default) or a name under [models]; the
    /// Python peer runs only with the template model.
    #[arg(long, value_name = "NAME")]
    pub(crate) model: Option<String>,
    /// Generations at once (and processes of the Python peer). The template model is CPU work,
    /// so the default is one per core; `codegen.concurrency` (4) suits models over HTTP.
    #[arg(long, default_value_t = std::thread::available_parallelism().map_or(2, |n| n.get()))]
    pub(crate) concurrency: usize,
    /// Skip the compile check (G13) on both sides.
    #[arg(long)]
    pub(crate) no_compile: bool,
    /// Compile every generated file on both sides (`codegen.compile_scope = "all"`), not only
    /// what a model wrote or a patch changed (the default scope: the Effect and Orchestrator
    /// node modules, patched for the event bus; the peer compiles the same modules).
    #[arg(long, conflicts_with = "no_compile")]
    pub(crate) compile_all: bool,
    /// Also run every generated node's tests with pytest (G14; dominated by Python start-up).
    #[arg(long)]
    pub(crate) tests: bool,
    /// Work directory (emptied first).
    #[arg(long, value_name = "DIR")]
    pub(crate) dir: Option<PathBuf>,
    /// Python interpreter of the compile check and the peer (needs jinja2).
    #[arg(long, env = "OMNISTREAM_PYTHON", default_value = "python3")]
    pub(crate) python: String,

    /// Fill the pattern store with this many synthetic patterns first, so every generation's
    /// intelligence stage searches a warm store (0: an empty store).
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub(crate) patterns: u64,
}

#[derive(Debug, Args)]
pub(crate) struct BenchQueryArgs {
    /// Model-call rows in the lake.
    #[arg(long, default_value_t = 10_000_000)]
    pub(crate) events: u64,
    /// Work directory (kept, and reused when it already holds the rows).
    #[arg(long, value_name = "DIR")]
    pub(crate) dir: Option<PathBuf>,
    /// Python interpreter with duckdb and polars (scripts/setup.sh installs them).
    #[arg(long, env = "OMNISTREAM_PYTHON", default_value = "python3")]
    pub(crate) python: String,
    /// Runs of each engine (alternating); medians are reported.
    #[arg(long, default_value_t = 3)]
    pub(crate) runs: usize,
}

#[derive(Debug, Args)]
pub(crate) struct BenchBatchArgs {
    /// History sizes (model-call rows already reduced), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1000000,10000000")]
    pub(crate) history: Vec<u64>,
    /// New events per measured batch.
    #[arg(long, default_value_t = 20_000)]
    pub(crate) batch: u64,
    /// Measured batches per history size; the median is reported.
    #[arg(long, default_value_t = 5)]
    pub(crate) runs: usize,
    /// Work directory (a temporary one when absent).
    #[arg(long, value_name = "DIR")]
    pub(crate) dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct BenchFreshnessArgs {
    /// Events appended per second.
    #[arg(long, default_value_t = 20_000)]
    pub(crate) rate: u64,
    /// How long to append.
    #[arg(long, default_value_t = 30)]
    pub(crate) seconds: u64,
    /// Work directory (a temporary one when absent).
    #[arg(long, value_name = "DIR")]
    pub(crate) dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct BenchIngestArgs {
    /// Events in the JSONL file.
    #[arg(long, default_value_t = 1_000_000)]
    pub(crate) events: u64,

    /// Work directory (a temporary one when absent; kept when given).
    #[arg(long, value_name = "DIR")]
    pub(crate) dir: Option<PathBuf>,

    /// Python interpreter with the duckdb package (scripts/setup.sh installs it).
    #[arg(long, env = "OMNISTREAM_PYTHON", default_value = "python3")]
    pub(crate) python: String,

    /// Skip the DuckDB side.
    #[arg(long)]
    pub(crate) no_peer: bool,

    /// Runs of each side (alternating); medians are reported, so one noisy run does not decide.
    #[arg(long, default_value_t = 3)]
    pub(crate) runs: usize,
}
