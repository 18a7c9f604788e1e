//! Configuration: defaults, then a TOML file, then `OMNISTREAM_*` environment variables (decision
//! 10). Nested keys use a double underscore: `OMNISTREAM_LOG__FSYNC=false` sets `[log] fsync`.
//!
//! figment is used because it layers providers exactly this way and names the source (file or
//! variable) of a bad value in its error.

use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

/// The whole configuration tree.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Root of everything omnistream keeps: `log/` (the event log) and `lake/` (Parquet tables).
    pub data_dir: PathBuf,
    /// A directory of job files (`*.toml`) added to the built-in jobs (same name: replaces it).
    pub jobs_dir: Option<PathBuf>,
    pub log: LogConfig,
    pub ingest: IngestConfig,
    pub sink: SinkConfig,
    pub reducer: ReducerConfig,
}

/// The SQL reducers.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReducerConfig {
    /// At most this many new events per input partition per batch (one commit per batch).
    pub max_batch_rows: usize,
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
pub struct LogConfig {
    /// A segment file is closed and a new one started at this size.
    pub segment_bytes: u64,
    /// Partitions of topics created from now on.
    pub default_partitions: u32,
    /// Delete closed segments older than this many hours (unset: keep everything).
    pub retention_hours: Option<u64>,
    /// Sync every append to disk before acknowledging it. Off trades power-loss durability for speed.
    pub fsync: bool,
}

/// `omnistream ingest` and every other producer path.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// Events per appended batch (one synced frame per partition).
    pub batch_rows: usize,
    /// Lines longer than this are sent to the dead-letter topic as `too_large`.
    pub max_event_bytes: usize,
    /// At most this much of a rejected line is kept in the dead-letter topic.
    pub dead_letter_max_raw_bytes: usize,
    /// Threads decoding JSON in parallel (default: the number of cores, at most 4).
    pub decode_threads: usize,
}

/// The lake-sink job.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SinkConfig {
    /// Records per partition per round (one commit per round).
    pub max_batch_rows: usize,
    /// How often follow mode polls the log when caught up, in milliseconds.
    pub poll_interval_ms: u64,
    /// Rolling policy: merge a date partition's files of one size tier once there are this many.
    pub roll_files: usize,
    /// Compaction target: files at or above this size are left alone.
    pub target_file_bytes: u64,
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
pub const DEFAULT_CONFIG_FILE: &str = "omnistream.toml";

/// Environment variables that belong to the CLI itself, not to the config tree.
const CLI_ONLY_ENV: &[&str] = &["config", "log_level"];

impl Config {
    /// Load defaults, then `file` (or `./omnistream.toml` when it exists), then the environment.
    pub fn load(file: Option<&Path>) -> Result<Config, Box<figment::Error>> {
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

    pub fn log_dir(&self) -> PathBuf {
        self.data_dir.join("log")
    }

    pub fn lake_dir(&self) -> PathBuf {
        self.data_dir.join("lake")
    }

    /// Where job status files live.
    pub fn status_dir(&self) -> PathBuf {
        self.data_dir.join("jobs")
    }

    pub fn log_config(&self) -> omnistream_streams::EmbeddedLogConfig {
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

    pub fn ingest_options(&self, source: &str) -> omnistream_connectors::IngestOptions {
        omnistream_connectors::IngestOptions {
            batch_rows: self.ingest.batch_rows.max(1),
            batch_bytes: omnistream_connectors::IngestOptions::default().batch_bytes,
            max_event_bytes: self.ingest.max_event_bytes,
            dead_letter_max_raw_bytes: self.ingest.dead_letter_max_raw_bytes,
            decode_threads: self.ingest.decode_threads.max(1),
            defaults: omnistream_connectors::EnvelopeDefaults {
                source: source.to_string(),
            },
        }
    }

    pub fn reducer_options(&self) -> omnistream_jobs::ReducerOptions {
        omnistream_jobs::ReducerOptions {
            max_batch_rows: self.reducer.max_batch_rows.max(1),
        }
    }

    pub fn sink_options(&self) -> omnistream_jobs::LakeSinkOptions {
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
