//! Job specifications: one TOML file per job (built in under `jobs/specs/`, or in a directory of
//! the user's), naming what the job reads, what it runs and what it writes.
//!
//! ```toml
//! name = "model_performance"
//! kind = "reducer"
//! inputs = ["model_call"]
//! sql = "model_performance.sql"
//! output = "model_performance"
//! windows = ["1m", "1h"]
//! trigger = "250ms"
//! parallelism = 1
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use datafusion::common::ScalarValue;
use omnistream_streams::Topic;
use serde::Deserialize;

use crate::error::{JobError, Result};

/// What a job does, as a job file names it (`kind = "reducer"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum RawKind {
    Sink,
    Reducer,
    Codegen,
    Patterns,
}

/// What a job does, with what only that kind of job has.
#[derive(Debug, Clone)]
pub enum JobKind {
    /// Every topic into its raw lake table (the lake-sink).
    Sink,
    /// A SQL file over lake tables, kept current window by window.
    Reducer(ReducerSpec),
    /// Generation requests into validated ONEX nodes.
    Codegen,
    /// Generations worth learning from into the pattern store, and their later uses.
    Patterns,
}

impl JobKind {
    /// The kind as job files name it.
    pub fn name(&self) -> &'static str {
        match self {
            JobKind::Sink => "sink",
            JobKind::Reducer(_) => "reducer",
            JobKind::Codegen => "codegen",
            JobKind::Patterns => "patterns",
        }
    }
}

/// What a reducer runs and writes.
#[derive(Debug, Clone)]
pub struct ReducerSpec {
    pub sql: SqlSource,
    /// The derived table it keeps current.
    pub output: String,
    pub windows: Vec<Window>,
    /// An event also touches the windows this far before it (for joins whose other side may
    /// land in an earlier window).
    pub lookback: Duration,
    /// Bounds DataFusion's partitions for the reducer's queries.
    pub parallelism: usize,
    /// Extra `$name` parameters of the SQL, bound as DataFusion parameters.
    pub params: BTreeMap<String, ScalarValue>,
}

/// A job file as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpec {
    name: String,
    kind: RawKind,
    #[serde(default)]
    description: String,
    #[serde(default)]
    inputs: Vec<String>,
    sql: Option<String>,
    output: Option<String>,
    #[serde(default)]
    windows: Vec<String>,
    #[serde(default = "default_trigger")]
    trigger: String,
    #[serde(default = "default_parallelism")]
    parallelism: usize,
    #[serde(default)]
    params: BTreeMap<String, toml::Value>,
    lookback: Option<String>,
}

fn default_trigger() -> String {
    "250ms".into()
}

fn default_parallelism() -> usize {
    1
}

/// A window width, e.g. `1m` for one minute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// As written in the spec (`1m`, `1h`): also the `granularity` value of output rows.
    pub label: String,
    pub width: Duration,
}

impl Window {
    pub fn micros(&self) -> i64 {
        self.width.as_micros() as i64
    }

    /// The interval as SQL understands it, e.g. `60 seconds`.
    pub fn sql_interval(&self) -> String {
        format!("{} seconds", self.width.as_secs())
    }
}

/// A checked job specification.
#[derive(Debug, Clone)]
pub struct JobSpec {
    pub name: String,
    pub kind: JobKind,
    pub description: String,
    /// Raw tables the job reads (their topics feed it).
    pub inputs: Vec<Topic>,
    /// How often follow mode looks for new input.
    pub trigger: Duration,
    /// Where the spec came from (`built-in` or a path), for messages.
    pub origin: String,
}

impl JobSpec {
    /// What the job runs, when it is a reducer.
    pub fn reducer(&self) -> Option<&ReducerSpec> {
        match &self.kind {
            JobKind::Reducer(r) => Some(r),
            _ => None,
        }
    }

    /// The derived table a reducer writes.
    pub fn output(&self) -> Option<&str> {
        self.reducer().map(|r| r.output.as_str())
    }
}

/// A reducer's SQL and where it came from.
#[derive(Debug, Clone)]
pub struct SqlSource {
    pub name: String,
    pub text: String,
}

/// Built-in job specs and SQL files, compiled into the binary so it runs from any directory.
const BUILT_IN_SPECS: &[(&str, &str)] = &[
    ("lake-sink.toml", include_str!("../specs/lake-sink.toml")),
    ("codegen.toml", include_str!("../specs/codegen.toml")),
    ("patterns.toml", include_str!("../specs/patterns.toml")),
    (
        "model_performance.toml",
        include_str!("../specs/model_performance.toml"),
    ),
    (
        "generation_summary.toml",
        include_str!("../specs/generation_summary.toml"),
    ),
    (
        "stage_durations.toml",
        include_str!("../specs/stage_durations.toml"),
    ),
    (
        "node_activity.toml",
        include_str!("../specs/node_activity.toml"),
    ),
    (
        "pattern_candidates.toml",
        include_str!("../specs/pattern_candidates.toml"),
    ),
];

const BUILT_IN_SQL: &[(&str, &str)] = &[
    (
        "model_performance.sql",
        include_str!("../../sql/model_performance.sql"),
    ),
    (
        "generation_summary.sql",
        include_str!("../../sql/generation_summary.sql"),
    ),
    (
        "stage_durations.sql",
        include_str!("../../sql/stage_durations.sql"),
    ),
    (
        "node_activity.sql",
        include_str!("../../sql/node_activity.sql"),
    ),
    (
        "pattern_candidates.sql",
        include_str!("../../sql/pattern_candidates.sql"),
    ),
];

/// Views over derived tables, registered in every SQL session: (name, SQL).
pub const VIEWS: &[(&str, &str)] = &[
    (
        "node_registry",
        include_str!("../../sql/views/node_registry.sql"),
    ),
    (
        "model_leaderboard",
        include_str!("../../sql/views/model_leaderboard.sql"),
    ),
];

/// Every job: the built-in ones, then those of `dir` (which may replace a built-in by name).
pub fn load_all(dir: Option<&Path>) -> Result<Vec<JobSpec>> {
    let mut specs: Vec<JobSpec> = Vec::new();
    for (file, text) in BUILT_IN_SPECS {
        specs.push(parse(text, &format!("built-in jobs/specs/{file}"), None)?);
    }
    if let Some(dir) = dir {
        let entries = std::fs::read_dir(dir).map_err(|e| JobError::Spec {
            origin: dir.display().to_string(),
            detail: format!("cannot read the jobs directory: {e}"),
        })?;
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "toml"))
            .collect();
        paths.sort();
        for path in paths {
            let text = std::fs::read_to_string(&path).map_err(|e| JobError::Spec {
                origin: path.display().to_string(),
                detail: e.to_string(),
            })?;
            let spec = parse(&text, &path.display().to_string(), path.parent())?;
            specs.retain(|s| s.name != spec.name);
            specs.push(spec);
        }
    }
    Ok(specs)
}

/// Find a job by name.
pub fn find(specs: &[JobSpec], name: &str) -> Result<JobSpec> {
    specs
        .iter()
        .find(|s| s.name == name)
        .cloned()
        .ok_or_else(|| JobError::UnknownJob {
            name: name.to_string(),
            known: specs
                .iter()
                .map(|s| s.name.clone())
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// Parse and check one spec. `dir` resolves a relative `sql` path for specs read from disk.
pub fn parse(text: &str, origin: &str, dir: Option<&Path>) -> Result<JobSpec> {
    let bad = |detail: String| JobError::Spec {
        origin: origin.to_string(),
        detail,
    };
    let raw: RawSpec =
        toml::from_str(text).map_err(|e| bad(e.to_string().trim().replace('\n', " ")))?;
    omnistream_streams::log::validate_name(&raw.name)
        .map_err(|e| bad(format!("field `name`: {e}")))?;
    let mut inputs = Vec::new();
    for input in &raw.inputs {
        if raw.kind == RawKind::Sink && input == "*" {
            inputs.extend(Topic::ALL);
            continue;
        }
        let topic = Topic::lookup(input).map_err(|e| bad(format!("field `inputs`: {e}")))?;
        inputs.push(topic);
    }
    let mut windows = Vec::new();
    for w in &raw.windows {
        let width = humantime::parse_duration(w).map_err(|e| {
            bad(format!(
                "field `windows`: '{w}' is not a duration like 1m, 1h or 1d ({e})"
            ))
        })?;
        if width.as_secs() == 0 || width.subsec_nanos() != 0 || 86_400 % width.as_secs() != 0 {
            return Err(bad(format!(
                "field `windows`: '{w}' must be whole seconds that divide a day"
            )));
        }
        windows.push(Window {
            label: w.clone(),
            width,
        });
    }
    let trigger = humantime::parse_duration(&raw.trigger).map_err(|e| {
        bad(format!(
            "field `trigger`: '{}' is not a duration like 250ms ({e})",
            raw.trigger
        ))
    })?;
    let lookback = match &raw.lookback {
        None => Duration::ZERO,
        Some(l) => humantime::parse_duration(l).map_err(|e| {
            bad(format!(
                "field `lookback`: '{l}' is not a duration like 1d ({e})"
            ))
        })?,
    };
    if raw.parallelism == 0 {
        return Err(bad("field `parallelism`: must be at least 1".into()));
    }
    let kind = match raw.kind {
        RawKind::Reducer => JobKind::Reducer(reducer_spec(&raw, windows, lookback, dir, bad)?),
        RawKind::Sink | RawKind::Codegen | RawKind::Patterns => {
            let kind = match raw.kind {
                RawKind::Sink => JobKind::Sink,
                RawKind::Codegen => JobKind::Codegen,
                _ => JobKind::Patterns,
            };
            let name = kind.name();
            if raw.sql.is_some() {
                return Err(bad(format!("field `sql`: a {name} job has no SQL")));
            }
            if raw.output.is_some() {
                return Err(bad(format!(
                    "field `output`: a {name} job has no output table"
                )));
            }
            kind
        }
    };
    Ok(JobSpec {
        name: raw.name,
        kind,
        description: raw.description,
        inputs,
        trigger,
        origin: origin.to_string(),
    })
}

/// The reducer's part of a job file, checked.
fn reducer_spec(
    raw: &RawSpec,
    windows: Vec<Window>,
    lookback: Duration,
    dir: Option<&Path>,
    bad: impl Fn(String) -> JobError + Copy,
) -> Result<ReducerSpec> {
    let Some(file) = &raw.sql else {
        return Err(bad("field `sql`: a reducer needs a SQL file".into()));
    };
    let sql = load_sql(file, dir, bad)?;
    let Some(output) = raw.output.clone() else {
        return Err(bad("field `output`: a reducer needs an output table".into()));
    };
    if windows.is_empty() {
        return Err(bad(
            "field `windows`: a reducer needs at least one window, e.g. [\"1h\"]".into(),
        ));
    }
    if raw.inputs.is_empty() {
        return Err(bad(
            "field `inputs`: a reducer needs at least one input table".into(),
        ));
    }
    omnistream_streams::log::validate_name(&output)
        .map_err(|e| bad(format!("field `output`: {e}")))?;
    if Topic::from_table(&output).is_some() {
        return Err(bad(format!(
            "field `output`: '{output}' is a raw table; pick another name"
        )));
    }
    let params = raw
        .params
        .iter()
        .map(|(k, v)| {
            let value = match v {
                toml::Value::String(s) => ScalarValue::Utf8(Some(s.clone())),
                toml::Value::Integer(i) => ScalarValue::Int64(Some(*i)),
                toml::Value::Float(f) => ScalarValue::Float64(Some(*f)),
                toml::Value::Boolean(b) => ScalarValue::Boolean(Some(*b)),
                other => {
                    return Err(bad(format!(
                        "field `params.{k}`: {other} is not a string, number or boolean"
                    )));
                }
            };
            Ok((k.clone(), value))
        })
        .collect::<Result<_>>()?;
    Ok(ReducerSpec {
        sql,
        output,
        windows,
        lookback,
        parallelism: raw.parallelism,
        params,
    })
}

fn load_sql(file: &str, dir: Option<&Path>, bad: impl Fn(String) -> JobError) -> Result<SqlSource> {
    if let Some(dir) = dir {
        for candidate in [
            dir.join(file),
            dir.join("../sql").join(file),
            dir.join("sql").join(file),
        ] {
            if let Ok(text) = std::fs::read_to_string(&candidate) {
                return Ok(SqlSource {
                    name: candidate.display().to_string(),
                    text,
                });
            }
        }
    }
    BUILT_IN_SQL
        .iter()
        .find(|(name, _)| *name == file)
        .map(|(name, text)| SqlSource {
            name: format!("sql/{name}"),
            text: text.to_string(),
        })
        .ok_or_else(|| {
            bad(format!(
                "field `sql`: no SQL file '{file}' (built in: {})",
                BUILT_IN_SQL
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_built_in_spec_loads() {
        let specs = load_all(None).unwrap();
        let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
        for expected in [
            "lake-sink",
            "codegen",
            "model_performance",
            "generation_summary",
            "stage_durations",
            "node_activity",
            "pattern_candidates",
        ] {
            assert!(names.contains(&expected), "{names:?}");
        }
        let mp = find(&specs, "model_performance").unwrap();
        assert_eq!(mp.inputs, [Topic::ModelCall]);
        let mp = mp.reducer().expect("a reducer");
        assert_eq!(
            mp.windows
                .iter()
                .map(|w| w.width.as_secs())
                .collect::<Vec<_>>(),
            [60, 3600]
        );
        assert!(
            find(&specs, "nope")
                .unwrap_err()
                .to_string()
                .contains("model_performance")
        );
    }

    #[test]
    fn a_bad_spec_names_the_file_the_field_and_what_was_expected() {
        let cases = [
            (
                "name = \"x\"\nkind = \"reducer\"\nwindws = [\"1h\"]",
                "windws",
            ),
            ("name = \"x\"\nkind = \"reduce\"", "kind"),
            (
                "name = \"x\"\nkind = \"reducer\"\ninputs = [\"model_cal\"]\nsql = \"model_performance.sql\"\noutput = \"o\"\nwindows = [\"1h\"]",
                "field `inputs`",
            ),
            (
                "name = \"x\"\nkind = \"reducer\"\ninputs = [\"model_call\"]\nsql = \"model_performance.sql\"\noutput = \"o\"\nwindows = [\"7m\"]",
                "field `windows`",
            ),
            (
                "name = \"x\"\nkind = \"reducer\"\ninputs = [\"model_call\"]\nsql = \"model_performance.sql\"\noutput = \"o\"\nwindows = [\"soon\"]",
                "field `windows`",
            ),
            (
                "name = \"x\"\nkind = \"reducer\"\ninputs = [\"model_call\"]\nsql = \"missing.sql\"\noutput = \"o\"\nwindows = [\"1h\"]",
                "field `sql`",
            ),
            (
                "name = \"x\"\nkind = \"reducer\"\ninputs = [\"model_call\"]\nsql = \"model_performance.sql\"\noutput = \"model_call\"\nwindows = [\"1h\"]",
                "field `output`",
            ),
            ("name = \"../x\"\nkind = \"sink\"", "field `name`"),
            (
                "name = \"x\"\nkind = \"sink\"\ntrigger = \"often\"",
                "field `trigger`",
            ),
        ];
        for (text, needle) in cases {
            let err = parse(text, "jobs/specs/x.toml", None)
                .unwrap_err()
                .to_string();
            assert!(err.starts_with("jobs/specs/x.toml: "), "{err}");
            assert!(err.contains(needle), "{needle}: {err}");
        }
    }
}
