//! A generation request: what the codegen job reads from the log, and what `generate` and the
//! benches publish to it.

use arrow::array::{
    Array, BooleanArray, ListArray, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use omnistream_connectors::{EnvelopeDefaults, EventDecoder};
use omnistream_streams::{Event, EventLog, Topic};
use serde_json::{Value, json};

use crate::error::{CodegenError, Result};
use crate::spec::RequestSpec;

/// The `source` of requests published by omnistream (`generate`, the benches).
const REQUEST_SOURCE: &str = "omnistream-cli";

/// A generation-requested event, as the job reads it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GenerationRequest {
    pub event_id: String,
    pub correlation_id: String,
    pub prompt: String,
    pub output_directory: Option<String>,
    pub node_type: Option<String>,
    pub model: Option<String>,
    pub enable_intelligence: Option<bool>,
    pub enable_quorum: Option<bool>,
    pub user_id: Option<String>,
    pub session_id: Option<String>,
    /// When the requester emitted it (µs since the epoch), as read from the log.
    pub emitted_at_us: Option<i64>,
    /// Declared operations, fields and examples.
    pub spec: RequestSpec,
    /// Why the declarations read from the log are unusable (someone else's producer wrote them):
    /// the generation fails at prompt parsing with this.
    pub spec_problem: Option<String>,
}

impl GenerationRequest {
    /// A new request with fresh ids.
    pub fn new(prompt: impl Into<String>) -> Self {
        let id = uuid::Uuid::now_v7().to_string();
        GenerationRequest {
            event_id: id.clone(),
            correlation_id: id,
            prompt: prompt.into(),
            ..Default::default()
        }
    }

    /// The request as an event (JSON with the upstream field names).
    pub fn to_event(&self) -> Result<Value> {
        let spec = &self.spec;
        let event = Event::with_id(
            Topic::GenerationRequested,
            self.event_id.clone(),
            &self.correlation_id,
            None,
            REQUEST_SOURCE,
        )
        .payload(json!({
            "prompt": self.prompt, "output_directory": self.output_directory,
            "node_type": self.node_type, "model": self.model,
            "enable_intelligence": self.enable_intelligence, "enable_quorum": self.enable_quorum,
            "user_id": self.user_id, "session_id": self.session_id,
            "operations": (!spec.operations.is_empty()).then_some(&spec.operations),
            "input_fields": json_text(!spec.input.is_empty(), &spec.input)?,
            "output_fields": json_text(!spec.output.is_empty(), &spec.output)?,
            "examples": json_text(!spec.examples.is_empty(), &spec.examples)?,
        }))?;
        Ok(event.into_json())
    }

    /// Append requests to the log (durably).
    pub fn publish(log: &dyn EventLog, requests: &[GenerationRequest]) -> Result<()> {
        let mut decoder = EventDecoder::new(
            Topic::GenerationRequested,
            EnvelopeDefaults {
                source: REQUEST_SOURCE.into(),
            },
        );
        for r in requests {
            decoder
                .push_value(r.to_event()?)
                .map_err(|e| CodegenError::InvalidRequest(e.reason))?;
        }
        log.append(Topic::GenerationRequested, &decoder.finish())?;
        Ok(())
    }

    pub(crate) fn from_batch(batch: &RecordBatch) -> Vec<GenerationRequest> {
        let text = |name: &str| {
            batch
                .column_by_name(name)
                .and_then(|c| c.as_any().downcast_ref::<StringArray>().cloned())
        };
        let flag = |name: &str| {
            batch
                .column_by_name(name)
                .and_then(|c| c.as_any().downcast_ref::<BooleanArray>().cloned())
        };
        let (ids, corr, prompt, out, ty, model, user, session) = (
            text("event_id"),
            text("correlation_id"),
            text("prompt"),
            text("output_directory"),
            text("node_type"),
            text("model"),
            text("user_id"),
            text("session_id"),
        );
        let (intel, quorum) = (flag("enable_intelligence"), flag("enable_quorum"));
        let (inputs, outputs, examples) = (
            text("input_fields"),
            text("output_fields"),
            text("examples"),
        );
        let operations = batch
            .column_by_name("operations")
            .and_then(|c| c.as_any().downcast_ref::<ListArray>().cloned());
        let emitted = batch.column_by_name("emitted_at").and_then(|c| {
            c.as_any()
                .downcast_ref::<TimestampMicrosecondArray>()
                .cloned()
        });
        let get = |a: &Option<StringArray>, i: usize| {
            a.as_ref()
                .filter(|a| a.is_valid(i))
                .map(|a| a.value(i).to_string())
        };
        let getb = |a: &Option<BooleanArray>, i: usize| {
            a.as_ref().filter(|a| a.is_valid(i)).map(|a| a.value(i))
        };
        (0..batch.num_rows())
            .map(|i| {
                let ops = operations
                    .as_ref()
                    .filter(|a| a.is_valid(i))
                    .map(|a| a.value(i))
                    .map(|v| {
                        let v = v.as_any().downcast_ref::<StringArray>().cloned();
                        v.map(|v| v.iter().flatten().map(str::to_string).collect())
                            .unwrap_or_default()
                    })
                    .unwrap_or_default();
                let (spec, spec_problem) =
                    match read_spec(ops, get(&inputs, i), get(&outputs, i), get(&examples, i)) {
                        Ok(spec) => (spec, None),
                        Err(e) => (RequestSpec::default(), Some(e)),
                    };
                GenerationRequest {
                    event_id: get(&ids, i).unwrap_or_default(),
                    correlation_id: get(&corr, i).unwrap_or_default(),
                    prompt: get(&prompt, i).unwrap_or_default(),
                    output_directory: get(&out, i),
                    node_type: get(&ty, i),
                    model: get(&model, i),
                    enable_intelligence: getb(&intel, i),
                    enable_quorum: getb(&quorum, i),
                    user_id: get(&user, i),
                    session_id: get(&session, i),
                    emitted_at_us: emitted
                        .as_ref()
                        .filter(|a| a.is_valid(i))
                        .map(|a| a.value(i)),
                    spec,
                    spec_problem,
                }
            })
            .collect()
    }
}

/// A declaration as the event carries it: JSON text, or nothing.
fn json_text<T: serde::Serialize>(present: bool, value: &T) -> Result<Option<String>> {
    present
        .then(|| serde_json::to_string(value))
        .transpose()
        .map_err(|e| CodegenError::InvalidRequest(e.to_string()))
}

/// The declarations from an event's columns, checked as `generate --requests` checks them.
fn read_spec(
    operations: Vec<String>,
    inputs: Option<String>,
    outputs: Option<String>,
    examples: Option<String>,
) -> std::result::Result<RequestSpec, String> {
    fn parse<T: serde::de::DeserializeOwned + Default>(
        what: &str,
        text: Option<String>,
    ) -> std::result::Result<T, String> {
        text.map(|t| serde_json::from_str(&t).map_err(|e| format!("{what}: {e}")))
            .transpose()
            .map(Option::unwrap_or_default)
    }
    let spec = RequestSpec {
        operations,
        input: parse("input_fields", inputs)?,
        output: parse("output_fields", outputs)?,
        examples: parse("examples", examples)?,
    };
    spec.check().map_err(|e| e.to_string())?;
    Ok(spec)
}

/// One line of a request file (`generate --requests FILE`, the benches): the request's fields
/// and its declarations, in the same names the HTTP API takes.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestLine {
    prompt: String,
    #[serde(default)]
    node_type: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    output_directory: Option<String>,
    #[serde(default)]
    enable_intelligence: Option<bool>,
    #[serde(default)]
    enable_quorum: Option<bool>,
    #[serde(default)]
    operations: Vec<String>,
    #[serde(default)]
    input: crate::spec::Fields,
    #[serde(default)]
    output: crate::spec::Fields,
    #[serde(default)]
    examples: Vec<crate::spec::Example>,
}

/// Largest request file read at once.
pub const MAX_REQUEST_FILE: u64 = 64 << 20;

/// Read a JSONL request file: every line is checked before any request is returned, and every
/// bad line is reported (up to 20) with its number, so a file is published whole or not at all.
pub fn read_request_file(path: &std::path::Path) -> Result<Vec<GenerationRequest>> {
    use omnistream_streams::io::IoContext;
    let bad = |problems: Vec<String>| CodegenError::RequestFile {
        path: path.to_path_buf(),
        problems,
    };
    let size = std::fs::metadata(path)
        .io_context(|| format!("reading {}", path.display()))?
        .len();
    if size > MAX_REQUEST_FILE {
        return Err(bad(vec![format!(
            "the file has {} (at most {} at once)",
            bytesize::ByteSize(size),
            bytesize::ByteSize(MAX_REQUEST_FILE)
        )]));
    }
    let bytes = std::fs::read(path).io_context(|| format!("reading {}", path.display()))?;
    let text = std::str::from_utf8(&bytes).map_err(|e| {
        let line = bytes[..e.valid_up_to()]
            .iter()
            .filter(|b| **b == b'\n')
            .count()
            + 1;
        bad(vec![format!("line {line}: not UTF-8")])
    })?;
    let mut requests = Vec::new();
    let mut problems = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with("//") {
            continue;
        }
        match parse_request_line(line) {
            Ok(r) => requests.push(r),
            Err(e) => problems.push(format!("line {}: {e}", i + 1)),
        }
    }
    if requests.is_empty() && problems.is_empty() {
        problems.push("no requests in the file".into());
    }
    if !problems.is_empty() {
        let more = problems.len().saturating_sub(20);
        problems.truncate(20);
        if more > 0 {
            problems.push(format!("... and {more} more bad lines"));
        }
        return Err(bad(problems));
    }
    Ok(requests)
}

fn parse_request_line(line: &str) -> std::result::Result<GenerationRequest, String> {
    let l: RequestLine = serde_json::from_str(line).map_err(|e| e.to_string())?;
    if l.prompt.trim().is_empty() {
        return Err("the prompt is empty".into());
    }
    if let Some(t) = l.node_type.as_deref().filter(|t| !t.trim().is_empty())
        && crate::parse::NodeType::parse(t).is_none()
    {
        return Err(format!(
            "node_type '{t}' is not one of effect, compute, reducer, orchestrator"
        ));
    }
    let spec = RequestSpec {
        operations: l.operations,
        input: l.input,
        output: l.output,
        examples: l.examples,
    };
    spec.check().map_err(|e| e.to_string())?;
    Ok(GenerationRequest {
        node_type: l.node_type,
        model: l.model,
        output_directory: l.output_directory,
        enable_intelligence: l.enable_intelligence,
        enable_quorum: l.enable_quorum,
        spec,
        ..GenerationRequest::new(l.prompt)
    })
}
