//! The template model must produce a node that passes every gate, its generated tests included,
//! for any well-formed request: many generated requests (every node type; step names that
//! collide with built-in ones and with Python keywords; unusual words; long and short) through
//! the real job, the real Python and pytest.

use std::collections::{BTreeMap, BTreeSet};

use arrow::array::{Array, BooleanArray, StringArray};
use omnistream_streams::{EmbeddedLog, EmbeddedLogConfig, EventLog, Topic};

use crate::parse::parse_prompt;
use crate::{Codegen, CodegenOptions, GenerationRequest};

/// Words a request may be made of, by kind.
const NAMES: &[&str] = &[
    "postgres", "kafka", "billing", "invoice", "s3", "metrics", "user", "session", "cache", "geo",
    "ledger", "payments", "audit", "search", "email", "queue", "ml", "café", "x",
];
/// Operation words, those named like the built-in workflow steps first.
const OPERATION_WORDS: &[&str] = &[
    "validate",
    "validator",
    "record",
    "reset",
    "workflow",
    "pipeline",
    "saga",
    "compensate",
    "writer",
    "reader",
    "fetch",
    "upload",
    "delete",
    "send",
    "aggregate",
    "count",
    "parse",
    "tokenize",
    "transform",
    "score",
    "calculate",
    "coordinate",
    "publish",
    "consume",
];
/// Words that are Python keywords or builtins, and odd ones.
const ODD_WORDS: &[&str] = &[
    "class",
    "def",
    "import",
    "lambda",
    "none",
    "true",
    "async",
    "await",
    "yield",
    "return",
    "self",
    "print",
    "type",
    "list",
    "2fa",
    "v2",
    "a1b2",
    "node",
    "effect",
    "the",
    "with",
    "and",
    "very-long-hyphenated-name",
    "underscore_name",
    "ÄÖÜ",
    "日本",
];
const TYPES: &[&str] = &["effect", "compute", "reducer", "orchestrator"];

/// A small deterministic generator: the requests are the same on every run.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }

    fn pick<'a>(&mut self, words: &[&'a str]) -> &'a str {
        words[(self.next() % words.len() as u64) as usize]
    }
}

fn prompts(count: usize) -> Vec<(String, Option<&'static str>)> {
    let mut rng = Lcg(0x5eed);
    let mut out = vec![
        // The request that found the bug: its own first step is named like a built-in one.
        ("Create order validate orchestrator".to_string(), None),
        ("validate record workflow orchestrator".to_string(), None),
        ("x".to_string(), Some("effect")),
    ];
    while out.len() < count {
        let node_type = TYPES[out.len() % TYPES.len()];
        let mut words = vec!["Create".to_string()];
        for _ in 0..1 + rng.next() % 4 {
            words.push(rng.pick(NAMES).to_string());
        }
        for _ in 0..rng.next() % 4 {
            words.push(rng.pick(OPERATION_WORDS).to_string());
        }
        for _ in 0..rng.next() % 3 {
            let at = 1 + (rng.next() as usize) % words.len();
            words.insert(at.min(words.len()), rng.pick(ODD_WORDS).to_string());
        }
        // Every other request names its type in the words, the rest in the request's field.
        let hint = if out.len() % 2 == 0 {
            words.push(node_type.to_string());
            words.push("node".into());
            None
        } else {
            Some(node_type)
        };
        if rng.next().is_multiple_of(5) {
            words.push("with retries and metrics and a very long feature list".into());
        }
        out.push((words.join(" "), hint));
    }
    out
}

fn strings(batch: &arrow::array::RecordBatch, name: &str) -> Vec<Option<String>> {
    let a = batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<StringArray>())
        .expect("a string column");
    (0..a.len())
        .map(|i| a.is_valid(i).then(|| a.value(i).to_string()))
        .collect()
}

fn read_all(log: &EmbeddedLog, topic: Topic) -> Vec<arrow::array::RecordBatch> {
    let mut out = Vec::new();
    for p in 0..log.partitions(topic).unwrap() {
        let end = log.offsets(topic, p).unwrap().end;
        let mut at = 0;
        while at < end {
            let batches = log.read(topic, p, at, 100_000).unwrap();
            assert!(!batches.is_empty(), "{topic} {p}: nothing at {at} of {end}");
            for b in batches {
                at = b.next_offset();
                out.push(b.batch);
            }
        }
    }
    out
}

#[test]
fn the_template_model_passes_every_gate_for_every_well_formed_request() {
    let dir = tempfile::tempdir().unwrap();
    let log = EmbeddedLog::open(EmbeddedLogConfig::new(dir.path().join("log"))).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let options = CodegenOptions {
        concurrency: 2,
        output_root: dir.path().join("generated"),
        ..Default::default()
    };
    let mut requests = Vec::new();
    let mut types = BTreeSet::new();
    for (prompt, hint) in prompts(48) {
        // Well-formed: the parser reads it (a refused prompt is a PARSE_FAILED generation).
        let Ok(parsed) = parse_prompt(&prompt, hint) else {
            continue;
        };
        types.insert(parsed.node_type.as_str());
        let mut r = GenerationRequest::new(prompt);
        r.node_type = hint.map(str::to_string);
        requests.push(r);
    }
    assert!(
        requests.len() >= 40,
        "{} well-formed requests",
        requests.len()
    );
    assert_eq!(types.len(), 4, "every node type: {types:?}");
    GenerationRequest::publish(&log, &requests).unwrap();
    let mut job = Codegen::new(&log, options, runtime.handle().clone(), dir.path()).unwrap();
    while job.step().unwrap().requests > 0 {}

    let prompt_of: BTreeMap<&str, &str> = requests
        .iter()
        .map(|r| (r.correlation_id.as_str(), r.prompt.as_str()))
        .collect();
    let mut problems = Vec::new();
    for b in read_all(&log, Topic::GenerationFailed) {
        let (ids, stages, messages) = (
            strings(&b, "correlation_id"),
            strings(&b, "failed_stage"),
            strings(&b, "error_message"),
        );
        for i in 0..b.num_rows() {
            let id = ids[i].clone().unwrap_or_default();
            problems.push(format!(
                "{:?} failed at {:?}: {:?}",
                prompt_of.get(id.as_str()),
                stages[i],
                messages[i]
            ));
        }
    }
    for b in read_all(&log, Topic::ValidationResult) {
        let (ids, gates, statuses, messages) = (
            strings(&b, "correlation_id"),
            strings(&b, "gate_id"),
            strings(&b, "status"),
            strings(&b, "message"),
        );
        for i in 0..b.num_rows() {
            if statuses[i].as_deref() != Some("pass") {
                let id = ids[i].clone().unwrap_or_default();
                problems.push(format!(
                    "{:?}: gate {:?} {:?}: {:?}",
                    prompt_of.get(id.as_str()),
                    gates[i],
                    statuses[i],
                    messages[i]
                ));
            }
        }
    }
    let mut completed = 0;
    for b in read_all(&log, Topic::GenerationCompleted) {
        let passed = b
            .column_by_name("passed")
            .and_then(|c| c.as_any().downcast_ref::<BooleanArray>())
            .unwrap()
            .clone();
        completed += (0..b.num_rows()).filter(|i| passed.value(*i)).count();
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert_eq!(
        completed,
        requests.len(),
        "every request completed and passed"
    );
}
