//! Configuration: defaults, then a TOML file, then `OMNISTREAM_*` environment variables (decision
//! 10). Nested keys use a double underscore: `OMNISTREAM_LOG__FSYNC=false` sets `[log] fsync`.
//!
//! figment is used because it layers providers exactly this way and names the source (file or
//! variable) of a bad value in its error.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

/// The whole configuration tree.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Config {
    /// Root of everything omnistream keeps: `log/` (the event log) and `lake/` (Parquet tables).
    pub(crate) data_dir: PathBuf,
    /// A directory of job files (`*.toml`) added to the built-in jobs (same name: replaces it).
    pub(crate) jobs_dir: Option<PathBuf>,
    pub(crate) log: LogConfig,
    pub(crate) ingest: IngestConfig,
    pub(crate) sink: SinkConfig,
    pub(crate) reducer: ReducerConfig,
    pub(crate) codegen: CodegenConfig,
    pub(crate) patterns: PatternsSection,
    /// Model provider endpoints by name: `[providers.NAME]`.
    pub(crate) providers: BTreeMap<String, ProviderSettings>,
    /// Models by the name requests use: `[models.NAME]`, served by a provider, with prices.
    pub(crate) models: BTreeMap<String, ModelSettings>,
}

/// Limits of every contained run of generated code (its tests, its examples): `[codegen.sandbox]`.
/// The time limit is `codegen.test_timeout_secs`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct SandboxConfig {
    /// Address space of each process, in MiB.
    pub(crate) memory_mb: u64,
    pub(crate) cpu_secs: u64,
    /// Largest file it may write, in MiB.
    pub(crate) file_mb: u64,
    /// Processes and threads at once.
    pub(crate) processes: u64,
    /// Output kept before the run is stopped, in KiB.
    pub(crate) output_kb: u64,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        let d = omnistream_codegen::sandbox::Limits::default();
        SandboxConfig {
            memory_mb: d.memory_bytes >> 20,
            cpu_secs: d.cpu_secs,
            file_mb: d.file_bytes >> 20,
            processes: d.processes,
            output_kb: d.output_bytes >> 10,
        }
    }
}

/// The codegen job (`omnistream generate`, `jobs run codegen`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct CodegenConfig {
    /// Generations run at once.
    pub(crate) concurrency: usize,
    /// Requests taken per batch (committed together).
    pub(crate) max_batch: usize,
    /// Where generated nodes go (requests may name another directory).
    pub(crate) output_dir: PathBuf,
    /// Absolute directories (besides `output_dir`) requests may name as their output directory.
    /// Default: the directory the job runs in, so `generate --out DIR` works under it.
    pub(crate) allowed_output_roots: Option<Vec<PathBuf>>,
    /// Model of requests that name none: `template` (built in, no network) or a `[models]` name.
    pub(crate) model: String,
    /// Judge models of the quorum (none: no quorum).
    pub(crate) judges: Vec<omnistream_codegen::Judge>,
    pub(crate) quorum: omnistream_codegen::QuorumRules,
    /// Refinement rounds when gates warn or the judges ask for changes.
    pub(crate) max_refinements: u32,
    /// What a refinement round sends the model: `feedback` (the problems found) or `resample`
    /// (the request again, in a fresh conversation at a higher temperature).
    pub(crate) refinement: omnistream_codegen::Refinement,
    /// Compile generated Python files with Python itself (gate G13).
    pub(crate) compile_check: bool,
    /// `all` files, or only those a model wrote or a patch `changed` (template output is checked
    /// by the syntax gate and the project's template tests).
    pub(crate) compile_scope: omnistream_codegen::CompileScope,
    /// Run the generated tests with pytest (gate G14).
    pub(crate) run_tests: bool,
    pub(crate) test_timeout_secs: u64,
    /// Time each example of a request may take (the behaviour gate, G15), in seconds.
    pub(crate) example_timeout_secs: f64,
    /// What an HTTP model writes: `import_first` (logic.py into the scaffold) or `rewrite`
    /// (node.py whole).
    pub(crate) strategy: omnistream_codegen::assemble::Strategy,
    /// The Python interpreter of the compile check and the tests.
    pub(crate) python: String,
    pub(crate) max_tokens: u32,
    pub(crate) temperature: f32,
    /// Requests older than this many seconds are skipped (imported history, abandoned requests).
    pub(crate) request_ttl_secs: u64,
    /// A JSON Schema every contract must satisfy besides the shipped one (gate G7).
    pub(crate) contract_rules: Option<PathBuf>,
    pub(crate) sandbox: SandboxConfig,
}

/// The pattern store (`patterns/` under the data directory) and the indexer job: `[patterns]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct PatternsSection {
    /// Retrieve stored patterns in the codegen job's intelligence stage (the catalog otherwise).
    pub(crate) retrieval: bool,
    /// `hashing` (built in, deterministic), `minilm` (all-MiniLM-L6-v2 in-process) or
    /// `openai:<model>` (an OpenAI-compatible `/v1/embeddings` endpoint).
    pub(crate) embedder: String,
    /// `minilm`: the model folder (model.safetensors, config.json, tokenizer.json); default
    /// `all-MiniLM-L6-v2` under `$OMNISTREAM_MODELS_DIR` or `/var/tmp/omnistream-models`.
    pub(crate) embedder_model_dir: Option<PathBuf>,
    /// `openai:<model>`: the API's base URL, up to `/v1`.
    pub(crate) embedder_url: String,
    /// `openai:<model>`: the environment variable holding its API key, if it needs one.
    pub(crate) embedder_api_key_env: Option<String>,
    /// `openai:<model>`: the dimension its vectors have.
    pub(crate) embedder_dim: usize,
    /// Quality from which a completed generation is stored (its examples must all pass too).
    pub(crate) learning_threshold: f64,
    /// Patterns retrieved per generation (at most 20).
    pub(crate) top_k: usize,
    /// Lowest quality of a retrieved pattern.
    pub(crate) min_quality: f64,
    /// Reuse a retrieved pattern's logic that passes every example of a request as it is,
    /// before asking a model (requests without examples never reuse).
    pub(crate) reuse_verified: bool,
    /// Rows from which the table has a vector index (below it, exact search is faster).
    pub(crate) index_threshold: usize,
    /// How often the indexer optimises the table (compaction, version pruning, indexes).
    pub(crate) optimize_every_secs: u64,
    /// Old table versions younger than this are kept by optimisation (readers may use them).
    pub(crate) keep_versions_mins: i64,
    /// Events the indexer takes per topic per step.
    pub(crate) max_batch: usize,
    /// IVF partitions a vector search probes (unset: Lance's automatic probing).
    pub(crate) nprobes: Option<usize>,
    /// Re-rank this many times top_k candidates by exact distance (unset: no re-ranking).
    pub(crate) refine_factor: Option<u32>,
    /// Breadth of the HNSW search (unset: Lance's 1.5 x the candidates wanted).
    pub(crate) ef: Option<usize>,
    /// The vector index: `hnsw_flat` (full vectors) or `hnsw_sq` (8-bit, a quarter of the
    /// memory; recall needs `refine_factor`).
    pub(crate) vector_index: String,
    /// Rows of search results kept in memory (emptied by every write to the table).
    pub(crate) row_cache: usize,
}

impl Default for PatternsSection {
    fn default() -> Self {
        let store = omnistream_patterns::StoreOptions::default();
        let indexer = omnistream_patterns::IndexerOptions::default();
        let codegen = omnistream_codegen::CodegenOptions::default();
        let embed = omnistream_patterns::embed::EmbedderSettings::default();
        PatternsSection {
            retrieval: true,
            embedder: "hashing".into(),
            embedder_model_dir: None,
            embedder_url: embed.url,
            embedder_api_key_env: None,
            embedder_dim: embed.dim,
            learning_threshold: codegen.learning_threshold,
            top_k: codegen.retrieval_top_k,
            min_quality: codegen.retrieval_min_quality,
            reuse_verified: codegen.reuse_verified,
            index_threshold: store.index_threshold,
            optimize_every_secs: indexer.optimize_every.as_secs(),
            keep_versions_mins: store.keep_versions.num_minutes(),
            max_batch: indexer.max_batch,
            nprobes: store.nprobes,
            refine_factor: store.refine_factor,
            ef: store.ef,
            vector_index: store.vector_index.as_str().into(),
            row_cache: store.row_cache,
        }
    }
}

/// `/` and the home directory: never a root requests may write under.
fn too_wide(dir: &Path) -> bool {
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .and_then(|h| std::fs::canonicalize(h).ok());
    dir.parent().is_none() || home.is_some_and(|h| h == dir)
}

/// A configured output root as an absolute path, refused when it is `/` or the home directory.
fn writable_root(key: &str, dir: &Path) -> crate::error::Result<PathBuf> {
    let absolute = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    if too_wide(&absolute) {
        return Err(crate::error::CliError::Config(format!(
            "{key}: {} is / or the home directory; generated nodes need a directory of their own",
            absolute.display()
        )));
    }
    Ok(absolute)
}

impl Default for CodegenConfig {
    fn default() -> Self {
        let d = omnistream_codegen::CodegenOptions::default();
        CodegenConfig {
            concurrency: d.concurrency,
            max_batch: d.max_batch,
            output_dir: d.output_root,
            allowed_output_roots: None,
            model: d.default_model,
            judges: d.judges,
            quorum: d.quorum,
            max_refinements: d.max_refinements,
            refinement: d.refinement,
            compile_check: d.compile_check,
            compile_scope: d.compile_scope,
            run_tests: d.run_tests,
            test_timeout_secs: d.limits.wall.as_secs(),
            example_timeout_secs: d.example_timeout.as_secs_f64(),
            strategy: d.strategy,
            python: d.python,
            max_tokens: d.max_tokens,
            temperature: d.temperature,
            request_ttl_secs: d.request_ttl.as_secs(),
            contract_rules: None,
            sandbox: SandboxConfig::default(),
        }
    }
}

/// A model provider endpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProviderSettings {
    /// `openai` (any OpenAI-compatible chat completions endpoint) or `anthropic`.
    pub(crate) format: omnistream_connectors::models::WireFormat,
    /// e.g. `http://127.0.0.1:8088/v1` or `https://api.anthropic.com/v1`.
    pub(crate) base_url: String,
    /// Name of the environment variable holding the API key (keeps keys out of files).
    #[serde(default)]
    pub(crate) api_key_env: Option<String>,
    /// The key itself, when it must be in the file.
    #[serde(default)]
    pub(crate) api_key: Option<String>,
    #[serde(default = "default_timeout_secs")]
    pub(crate) timeout_secs: f64,
    #[serde(default = "default_max_retries")]
    pub(crate) max_retries: u32,
    #[serde(default = "default_backoff_initial_ms")]
    pub(crate) backoff_initial_ms: u64,
    #[serde(default = "default_backoff_max_ms")]
    pub(crate) backoff_max_ms: u64,
    /// Circuit breaker: this many failures within `breaker_window_secs` open it for
    /// `breaker_cooldown_secs`.
    #[serde(default = "default_breaker_failures")]
    pub(crate) breaker_failures: u32,
    #[serde(default = "default_breaker_window_secs")]
    pub(crate) breaker_window_secs: u64,
    #[serde(default = "default_breaker_cooldown_secs")]
    pub(crate) breaker_cooldown_secs: u64,
}

fn default_timeout_secs() -> f64 {
    120.0
}
fn default_max_retries() -> u32 {
    3
}
fn default_backoff_initial_ms() -> u64 {
    500
}
fn default_backoff_max_ms() -> u64 {
    20_000
}
fn default_breaker_failures() -> u32 {
    5
}
fn default_breaker_window_secs() -> u64 {
    60
}
fn default_breaker_cooldown_secs() -> u64 {
    30
}

/// A model requests can name.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ModelSettings {
    /// A `[providers]` name.
    pub(crate) provider: String,
    /// The model's name on the wire (default: this entry's name).
    #[serde(default)]
    pub(crate) model: Option<String>,
    /// USD per million input tokens (unset: cost unknown, recorded as null).
    #[serde(default)]
    pub(crate) input_per_mtok: Option<f64>,
    #[serde(default)]
    pub(crate) output_per_mtok: Option<f64>,
}

/// The SQL reducers.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct ReducerConfig {
    /// At most this many new events per input partition per batch (one commit per batch).
    pub(crate) max_batch_rows: usize,
}

impl Default for ReducerConfig {
    fn default() -> Self {
        ReducerConfig {
            max_batch_rows: omnistream_jobs::ReducerOptions::default().max_batch_rows,
        }
    }
}

/// The embedded event log.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct LogConfig {
    /// A segment file is closed and a new one started at this size.
    pub(crate) segment_bytes: u64,
    /// Partitions of topics created from now on.
    pub(crate) default_partitions: u32,
    /// Delete closed segments older than this many hours (unset: keep everything).
    pub(crate) retention_hours: Option<u64>,
    /// Sync every append to disk before acknowledging it. Off trades power-loss durability for speed.
    pub(crate) fsync: bool,
}

/// `omnistream ingest` and every other producer path.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct IngestConfig {
    /// Events per appended batch (one synced frame per partition).
    pub(crate) batch_rows: usize,
    /// Lines longer than this are sent to the dead-letter topic as `too_large`.
    pub(crate) max_event_bytes: usize,
    /// At most this much of a rejected line is kept in the dead-letter topic.
    pub(crate) dead_letter_max_raw_bytes: usize,
    /// Threads decoding JSON in parallel (default: the number of cores, at most 4).
    pub(crate) decode_threads: usize,
}

/// The lake-sink job.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct SinkConfig {
    /// Records per partition per round (one commit per round).
    pub(crate) max_batch_rows: usize,
    /// How often follow mode polls the log when caught up, in milliseconds.
    pub(crate) poll_interval_ms: u64,
    /// Rolling policy: merge a date partition's files of one size tier once there are this many.
    pub(crate) roll_files: usize,
    /// Compaction target: files at or above this size are left alone.
    pub(crate) target_file_bytes: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("./omnistream-data"),
            jobs_dir: None,
            log: LogConfig::default(),
            ingest: IngestConfig::default(),
            sink: SinkConfig::default(),
            reducer: ReducerConfig::default(),
            codegen: CodegenConfig::default(),
            patterns: PatternsSection::default(),
            providers: BTreeMap::new(),
            models: BTreeMap::new(),
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 128 * 1024 * 1024,
            default_partitions: 1,
            retention_hours: None,
            fsync: true,
        }
    }
}

impl Default for IngestConfig {
    fn default() -> Self {
        let d = omnistream_connectors::IngestOptions::default();
        IngestConfig {
            batch_rows: d.batch_rows,
            max_event_bytes: d.max_event_bytes,
            dead_letter_max_raw_bytes: d.dead_letter_max_raw_bytes,
            decode_threads: d.decode_threads,
        }
    }
}

impl Default for SinkConfig {
    fn default() -> Self {
        let d = omnistream_jobs::LakeSinkOptions::default();
        SinkConfig {
            max_batch_rows: d.max_batch_rows,
            poll_interval_ms: d.poll_interval.as_millis() as u64,
            roll_files: d.roll_files,
            target_file_bytes: d.compact.target_file_bytes,
        }
    }
}

/// The default config file, used when it exists and no other file is named.
pub(crate) const DEFAULT_CONFIG_FILE: &str = "omnistream.toml";

/// Environment variables that belong to the CLI itself, not to the config tree.
const CLI_ONLY_ENV: &[&str] = &["config", "log_level"];

impl Config {
    /// Load defaults, then `file` (or `./omnistream.toml` when it exists), then the environment.
    pub(crate) fn load(file: Option<&Path>) -> Result<Config, Box<figment::Error>> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        match file {
            Some(path) => {
                if !path.exists() {
                    return Err(Box::new(figment::Error::from(format!(
                        "config file {} does not exist",
                        path.display()
                    ))));
                }
                figment = figment.merge(Toml::file_exact(path));
            }
            None if Path::new(DEFAULT_CONFIG_FILE).exists() => {
                figment = figment.merge(Toml::file_exact(DEFAULT_CONFIG_FILE));
            }
            None => {}
        }
        figment = figment.merge(
            Env::prefixed("OMNISTREAM_")
                .split("__")
                .ignore(CLI_ONLY_ENV),
        );
        figment.extract().map_err(Box::new)
    }

    pub(crate) fn log_dir(&self) -> PathBuf {
        self.data_dir.join("log")
    }

    pub(crate) fn lake_dir(&self) -> PathBuf {
        self.data_dir.join("lake")
    }

    /// Where job status files live.
    pub(crate) fn status_dir(&self) -> PathBuf {
        self.data_dir.join("jobs")
    }

    pub(crate) fn log_config(&self) -> omnistream_streams::EmbeddedLogConfig {
        let mut c = omnistream_streams::EmbeddedLogConfig::new(self.log_dir());
        c.segment_bytes = self.log.segment_bytes;
        c.default_partitions = self.log.default_partitions;
        c.retention = self
            .log
            .retention_hours
            .map(|h| std::time::Duration::from_secs(h * 3600));
        c.fsync = self.log.fsync;
        c
    }

    pub(crate) fn ingest_options(&self, source: &str) -> omnistream_connectors::IngestOptions {
        omnistream_connectors::IngestOptions {
            batch_rows: self.ingest.batch_rows.max(1),
            batch_bytes: omnistream_connectors::IngestOptions::default().batch_bytes,
            max_event_bytes: self.ingest.max_event_bytes,
            dead_letter_max_raw_bytes: self.ingest.dead_letter_max_raw_bytes,
            decode_threads: self.ingest.decode_threads.max(1),
            defaults: omnistream_connectors::EnvelopeDefaults {
                source: source.to_string(),
            },
            from_line: 1,
        }
    }

    pub(crate) fn reducer_options(&self) -> omnistream_jobs::ReducerOptions {
        omnistream_jobs::ReducerOptions {
            max_batch_rows: self.reducer.max_batch_rows.max(1),
        }
    }

    /// The codegen job's options: providers connected, models routed, prices tabled. Errors name
    /// the model or provider that is misconfigured.
    pub(crate) fn codegen_options(
        &self,
    ) -> crate::error::Result<omnistream_codegen::CodegenOptions> {
        let bad = crate::error::CliError::Config;
        use omnistream_codegen::{CodegenOptions, ModelRoute, TEMPLATE_MODEL};
        use omnistream_connectors::models::{
            BreakerConfig, HttpProvider, Price, PriceTable, ProviderConfig,
        };
        use std::time::Duration;
        let mut providers: BTreeMap<String, Arc<HttpProvider>> = BTreeMap::new();
        for (name, p) in &self.providers {
            let mut c = ProviderConfig::new(name.clone(), p.format, p.base_url.clone());
            c.api_key = match (&p.api_key, &p.api_key_env) {
                (Some(k), _) => Some(k.clone()),
                (None, Some(var)) => std::env::var(var).ok().filter(|k| !k.is_empty()),
                (None, None) => None,
            };
            if !(p.timeout_secs.is_finite() && p.timeout_secs > 0.0) {
                return Err(bad(format!(
                    "providers.{name}.timeout_secs must be positive"
                )));
            }
            c.timeout = Duration::from_secs_f64(p.timeout_secs);
            c.max_retries = p.max_retries;
            c.backoff_initial = Duration::from_millis(p.backoff_initial_ms);
            c.backoff_max = Duration::from_millis(p.backoff_max_ms);
            c.breaker = BreakerConfig {
                failures: p.breaker_failures,
                window: Duration::from_secs(p.breaker_window_secs),
                cooldown: Duration::from_secs(p.breaker_cooldown_secs),
            };
            let provider =
                HttpProvider::new(c).map_err(|e| bad(format!("providers.{name}: {e}")))?;
            providers.insert(name.clone(), Arc::new(provider));
        }
        let mut models = BTreeMap::new();
        let mut prices = PriceTable::default();
        for (name, m) in &self.models {
            if name == TEMPLATE_MODEL {
                return Err(bad(format!(
                    "models.{name}: '{TEMPLATE_MODEL}' is the built-in model"
                )));
            }
            let provider = providers.get(&m.provider).ok_or_else(|| {
                bad(format!(
                    "models.{name}.provider: no provider '{}' (providers: {})",
                    m.provider,
                    self.providers
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?;
            models.insert(
                name.clone(),
                ModelRoute {
                    provider: provider.clone(),
                    model: m.model.clone().unwrap_or_else(|| name.clone()),
                },
            );
            if m.input_per_mtok.is_some() || m.output_per_mtok.is_some() {
                prices.0.insert(
                    name.clone(),
                    Price {
                        input_per_mtok: m.input_per_mtok.unwrap_or(0.0),
                        output_per_mtok: m.output_per_mtok.unwrap_or(0.0),
                    },
                );
            }
        }
        let c = &self.codegen;
        if c.model != TEMPLATE_MODEL && !models.contains_key(&c.model) {
            return Err(bad(format!(
                "codegen.model: '{}' is neither '{TEMPLATE_MODEL}' nor a [models] entry",
                c.model
            )));
        }
        for j in &c.judges {
            if !models.contains_key(&j.model) {
                return Err(bad(format!(
                    "codegen.judges: '{}' is not a [models] entry",
                    j.model
                )));
            }
        }
        Ok(CodegenOptions {
            concurrency: c.concurrency.max(1),
            max_batch: c.max_batch.max(1),
            // Absolute, so events and messages say exactly where nodes went.
            output_root: writable_root("codegen.output_dir", &c.output_dir)?,
            allowed_output_roots: match &c.allowed_output_roots {
                Some(roots) => roots
                    .iter()
                    .map(|r| writable_root("codegen.allowed_output_roots", r))
                    .collect::<crate::error::Result<_>>()?,
                // The working directory, unless it is / or the home directory: requests must
                // not get to write anywhere under those.
                None => std::env::current_dir()
                    .into_iter()
                    .filter(|d| !too_wide(d))
                    .collect(),
            },
            default_model: c.model.clone(),
            models,
            prices,
            judges: c.judges.clone(),
            quorum: c.quorum,
            max_refinements: c.max_refinements,
            refinement: c.refinement,
            compile_check: c.compile_check,
            compile_scope: c.compile_scope,
            run_tests: c.run_tests,
            python: c.python.clone(),
            max_tokens: c.max_tokens.max(1),
            temperature: c.temperature,
            request_ttl: Duration::from_secs(c.request_ttl_secs),
            contract_rules: c
                .contract_rules
                .as_deref()
                .map(omnistream_codegen::contract::ContractRules::load)
                .transpose()
                .map_err(|e| {
                    bad(format!(
                        "codegen.contract_rules: {}",
                        omnistream_codegen::error::error_chain(&e)
                    ))
                })?
                .map(Arc::new),
            limits: omnistream_codegen::sandbox::Limits {
                wall: Duration::from_secs(c.test_timeout_secs.max(1)),
                cpu_secs: c.sandbox.cpu_secs.max(1),
                memory_bytes: c.sandbox.memory_mb.max(64) << 20,
                file_bytes: c.sandbox.file_mb.max(1) << 20,
                processes: c.sandbox.processes.max(1),
                output_bytes: c.sandbox.output_kb.max(1) << 10,
            },
            example_timeout: Duration::from_secs_f64(c.example_timeout_secs.clamp(0.01, 3600.0)),
            strategy: c.strategy,
            patterns: None,
            retrieval_top_k: self
                .patterns
                .top_k
                .clamp(1, omnistream_patterns::store::MAX_TOP_K),
            retrieval_min_quality: self.patterns.min_quality.clamp(0.0, 1.0),
            learning_threshold: self.patterns.learning_threshold,
            reuse_verified: self.patterns.reuse_verified,
        })
    }

    /// Where the pattern store is and how it runs. Errors name a bad key.
    pub(crate) fn patterns_config(
        &self,
    ) -> crate::error::Result<omnistream_patterns::PatternsConfig> {
        let p = &self.patterns;
        let defaults = omnistream_patterns::embed::EmbedderSettings::default();
        let settings = omnistream_patterns::embed::EmbedderSettings {
            model_dir: p.embedder_model_dir.clone().unwrap_or(defaults.model_dir),
            url: p.embedder_url.clone(),
            api_key: p
                .embedder_api_key_env
                .as_deref()
                .and_then(|var| std::env::var(var).ok())
                .filter(|k| !k.is_empty()),
            dim: p.embedder_dim.max(1),
            timeout: defaults.timeout,
        };
        let embedder = omnistream_patterns::embed::by_name(&p.embedder, &settings)
            .map_err(|e| crate::error::CliError::Config(format!("patterns.embedder: {e}")))?;
        Ok(omnistream_patterns::PatternsConfig {
            dir: self.data_dir.join("patterns"),
            embedder: Arc::from(embedder),
            store: omnistream_patterns::StoreOptions {
                index_threshold: p.index_threshold,
                keep_versions: chrono::Duration::minutes(p.keep_versions_mins.max(0)),
                nprobes: p.nprobes,
                refine_factor: p.refine_factor,
                ef: p.ef,
                vector_index: omnistream_patterns::VectorIndex::parse(&p.vector_index).map_err(
                    |e| crate::error::CliError::Config(format!("patterns.vector_index: {e}")),
                )?,
                row_cache: p.row_cache,
            },
            indexer: omnistream_patterns::IndexerOptions {
                max_batch: p.max_batch.max(1),
                optimize_every: std::time::Duration::from_secs(p.optimize_every_secs.max(1)),
            },
        })
    }

    pub(crate) fn sink_options(&self) -> omnistream_jobs::LakeSinkOptions {
        let mut o = omnistream_jobs::LakeSinkOptions {
            max_batch_rows: self.sink.max_batch_rows.max(1),
            poll_interval: std::time::Duration::from_millis(self.sink.poll_interval_ms.max(1)),
            roll_files: self.sink.roll_files,
            ..Default::default()
        };
        o.compact.target_file_bytes = self.sink.target_file_bytes;
        o
    }
}

#[cfg(test)]
// figment::Jail's closures return figment's (large) error type.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;

    #[test]
    fn file_then_environment_override_defaults() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "custom.toml",
                "data_dir = \"/tmp/x\"\n[log]\nfsync = false\nsegment_bytes = 1024\n",
            )?;
            jail.set_env("OMNISTREAM_LOG__SEGMENT_BYTES", "2048");
            jail.set_env("OMNISTREAM_CONFIG", "ignored-by-the-tree");
            let c = Config::load(Some(Path::new("custom.toml"))).map_err(|e| e.to_string())?;
            assert_eq!(c.data_dir, PathBuf::from("/tmp/x"));
            assert!(!c.log.fsync);
            assert_eq!(c.log.segment_bytes, 2048);
            assert_eq!(c.ingest.batch_rows, IngestConfig::default().batch_rows);
            Ok(())
        });
    }

    #[test]
    fn a_typo_names_the_key() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("bad.toml", "[log]\nfsnc = false\n")?;
            let err = Config::load(Some(Path::new("bad.toml")))
                .unwrap_err()
                .to_string();
            assert!(err.contains("fsnc"), "{err}");
            Ok(())
        });
    }
}
