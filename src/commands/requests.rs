//! `omnistream generate --requests FILE`: every request of a JSONL file, checked whole before any
//! is published, generated, and reported one line each with the functional and gate pass rates.

use std::collections::HashMap;
use std::path::Path;

use indicatif::{ProgressBar, ProgressStyle};
use omnistream_codegen::{CodegenOptions, GenerationRequest};
use omnistream_streams::Topic;
use serde_json::{Value, json};

use super::generate::{Watch, apply_flags, follow};
use super::open_log;
use crate::cli::{GenerateArgs, GenerateFormat};
use crate::config::Config;
use crate::error::{CliError, Result};
use crate::output::outln;

pub(crate) fn generate_all(
    config: &Config,
    options: CodegenOptions,
    file: &Path,
    args: &GenerateArgs,
    runtime: tokio::runtime::Handle,
) -> Result<()> {
    let mut requests = omnistream_codegen::request::read_request_file(file)?;
    for r in &mut requests {
        apply_flags(r, args)?;
    }
    let log = open_log(config)?;
    let ids: Vec<&str> = requests.iter().map(|r| r.correlation_id.as_str()).collect();
    let mut watch = Watch::new(&log, ids.iter().copied())?;
    GenerationRequest::publish(&log, &requests)?;
    if args.no_wait {
        for id in ids {
            outln!("{id}");
        }
        return Ok(());
    }
    let bar = progress(requests.len() as u64);
    let mut ends: HashMap<String, (Topic, Value)> = HashMap::new();
    let followed = follow(
        config,
        options,
        &log,
        &mut watch,
        args.timeout,
        runtime,
        |topic, event| {
            if matches!(topic, Topic::GenerationCompleted | Topic::GenerationFailed) {
                let id = event["correlation_id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                ends.insert(id, (topic, event));
                bar.set_position(ends.len() as u64);
            }
            ends.len() == requests.len()
        },
    )?;
    bar.finish_and_clear();
    let rows: Vec<Outcome> = requests
        .iter()
        .map(|r| Outcome::of(r, ends.get(&r.correlation_id)))
        .collect();
    match args.format {
        GenerateFormat::Json => {
            for row in &rows {
                outln!("{}", row.json());
            }
        }
        GenerateFormat::Table => print_table(&rows),
    }
    let tally = Tally::of(&rows);
    if !followed {
        return Err(CliError::Usage(format!(
            "{} of {} requests had not ended after {} s; they go on (`omnistream jobs status`)",
            requests.len() - ends.len(),
            requests.len(),
            args.timeout
        )));
    }
    if tally.failed > 0 {
        return Err(CliError::Generation(format!(
            "{} of {} generations failed",
            tally.failed, tally.generations
        )));
    }
    Ok(())
}

fn progress(len: u64) -> ProgressBar {
    let bar = if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        ProgressBar::new(len)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} generations [{elapsed}, ETA {eta}]")
            .unwrap(),
    );
    bar
}

/// How one request ended, from its end event.
#[derive(Debug, Clone)]
pub(crate) struct Outcome {
    pub(crate) correlation_id: String,
    pub(crate) prompt: String,
    /// `completed`, `failed` or `pending` (no end event yet).
    pub(crate) status: &'static str,
    pub(crate) error_code: Option<String>,
    pub(crate) message: Option<String>,
    pub(crate) passed: bool,
    pub(crate) quality: Option<f64>,
    pub(crate) examples_total: i64,
    pub(crate) examples_passed: Option<i64>,
    pub(crate) seconds: f64,
    pub(crate) tokens: i64,
}

impl Outcome {
    pub(crate) fn of(r: &GenerationRequest, end: Option<&(Topic, Value)>) -> Outcome {
        let mut o = Outcome {
            correlation_id: r.correlation_id.clone(),
            prompt: r.prompt.clone(),
            status: "pending",
            error_code: None,
            message: None,
            passed: false,
            quality: None,
            examples_total: r.spec.examples.len() as i64,
            examples_passed: None,
            seconds: 0.0,
            tokens: 0,
        };
        let Some((topic, e)) = end else { return o };
        let completed = *topic == Topic::GenerationCompleted;
        o.status = if completed { "completed" } else { "failed" };
        o.passed = completed && e["passed"].as_bool() == Some(true);
        o.quality = e["quality_score"].as_f64();
        o.examples_passed = e["examples_passed"].as_i64();
        o.tokens = e["total_tokens"].as_i64().unwrap_or(0);
        o.seconds = e["total_duration_seconds"]
            .as_f64()
            .or(e["partial_duration_seconds"].as_f64())
            .unwrap_or(0.0);
        o.error_code = e["error_code"].as_str().map(str::to_string);
        o.message = e["error_message"].as_str().map(str::to_string);
        o
    }

    /// Every example passed (the request had some).
    pub(crate) fn functional(&self) -> bool {
        self.examples_total > 0 && self.examples_passed == Some(self.examples_total)
    }

    /// The gates passed, whatever the examples said: a passing node, or one that failed only
    /// its examples.
    pub(crate) fn gates_passed(&self) -> bool {
        self.passed || self.error_code.as_deref() == Some("EXAMPLES_FAILED")
    }

    fn json(&self) -> Value {
        json!({
            "correlation_id": self.correlation_id, "prompt": self.prompt, "status": self.status,
            "passed": self.passed, "gates_passed": self.gates_passed(),
            "quality_score": self.quality, "examples_total": self.examples_total,
            "examples_passed": self.examples_passed, "seconds": self.seconds,
            "total_tokens": self.tokens, "error_code": self.error_code,
            "error_message": self.message,
        })
    }
}

/// Rates over a set of outcomes.
#[derive(Debug, Clone, Default)]
pub(crate) struct Tally {
    pub(crate) generations: usize,
    pub(crate) completed: usize,
    pub(crate) failed: usize,
    pub(crate) gate_passing: usize,
    pub(crate) with_examples: usize,
    pub(crate) functional_passing: usize,
    pub(crate) seconds: f64,
    pub(crate) tokens: i64,
}

impl Tally {
    pub(crate) fn of(rows: &[Outcome]) -> Tally {
        let count = |f: &dyn Fn(&Outcome) -> bool| rows.iter().filter(|o| f(o)).count();
        Tally {
            generations: rows.len(),
            completed: count(&|o| o.status == "completed"),
            failed: count(&|o| o.status == "failed"),
            gate_passing: count(&|o| o.gates_passed()),
            with_examples: count(&|o| o.examples_total > 0),
            functional_passing: count(&|o| o.functional()),
            seconds: rows.iter().map(|o| o.seconds).sum(),
            tokens: rows.iter().map(|o| o.tokens).sum(),
        }
    }

    /// `functional pass rate 40.0 % (12 of 30 with examples), gate pass rate 80.0 % (24 of 30)`.
    pub(crate) fn rates(&self) -> String {
        let pct = |a: usize, b: usize| {
            if b == 0 {
                "n/a".to_string()
            } else {
                format!("{:.1} %", 100.0 * a as f64 / b as f64)
            }
        };
        format!(
            "functional pass rate {} ({} of {} with examples), gate pass rate {} ({} of {})",
            pct(self.functional_passing, self.with_examples),
            self.functional_passing,
            self.with_examples,
            pct(self.gate_passing, self.generations),
            self.gate_passing,
            self.generations
        )
    }
}

fn print_table(rows: &[Outcome]) {
    outln!(
        "{:<3} {:<44} {:<9} {:>8} {:>7} {:>8} {:>7}  note",
        "#",
        "request",
        "status",
        "examples",
        "quality",
        "seconds",
        "tokens"
    );
    for (i, o) in rows.iter().enumerate() {
        let examples = match (o.examples_total, o.examples_passed) {
            (0, _) => "-".to_string(),
            (n, Some(p)) => format!("{p}/{n}"),
            (n, None) => format!("?/{n}"),
        };
        let note = match (&o.error_code, &o.message) {
            (Some(code), Some(m)) => format!("{code}: {}", first_chars(m, 100)),
            _ => String::new(),
        };
        outln!(
            "{:<3} {:<44} {:<9} {:>8} {:>7} {:>8.2} {:>7}  {note}",
            i + 1,
            first_chars(&o.prompt, 44),
            o.status,
            examples,
            o.quality.map(|q| format!("{q:.3}")).unwrap_or("-".into()),
            o.seconds,
            o.tokens
        );
    }
    let t = Tally::of(rows);
    outln!(
        "{} requests: {} completed, {} failed; {}; {:.2} s and {} tokens per generation",
        t.generations,
        t.completed,
        t.failed,
        t.rates(),
        t.seconds / t.generations.max(1) as f64,
        t.tokens / t.generations.max(1) as i64
    );
}

fn first_chars(s: &str, n: usize) -> String {
    let line = s.lines().next().unwrap_or("");
    match line.char_indices().nth(n) {
        Some((i, _)) => format!("{}…", &line[..i]),
        None => line.to_string(),
    }
}
