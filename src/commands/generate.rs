//! `omnistream generate PROMPT`: publish a generation request, then follow its events until the
//! end, running the codegen job in-process when no other process runs it.

use std::collections::{BTreeMap, HashMap, HashSet};

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use arrow::array::{Array, RecordBatch, StringArray};

use omnistream_codegen::{Codegen, CodegenError, GenerationRequest, TEMPLATE_MODEL};
use omnistream_streams::{EventLog, Topic};
use serde_json::{Value, json};

use super::{open_log, spinner};
use crate::cli::{GenerateArgs, GenerateFormat};
use crate::config::Config;
use crate::error::{CliError, Result};
use crate::output::outln;
use omnistream_streams::io::IoContext;

/// The topics a generation's progress shows up on.
const WATCHED: [Topic; 5] = [
    Topic::StageCompleted,
    Topic::ModelCall,
    Topic::ValidationResult,
    Topic::GenerationCompleted,
    Topic::GenerationFailed,
];

/// Reads the events of some correlation ids as they are appended, from where the log ended.
pub(crate) struct Watch {
    correlation_ids: HashSet<String>,
    positions: Vec<(Topic, u32, u64)>,
}

impl Watch {
    pub(crate) fn new<'a>(
        log: &dyn EventLog,
        correlation_ids: impl IntoIterator<Item = &'a str>,
    ) -> Result<Self> {
        let mut positions = Vec::new();
        for topic in WATCHED {
            for p in 0..log.partitions(topic)? {
                positions.push((topic, p, log.offsets(topic, p)?.end));
            }
        }
        Ok(Watch {
            correlation_ids: correlation_ids.into_iter().map(str::to_string).collect(),
            positions,
        })
    }

    /// Every event of the watched generations until the log has no more, by correlation id.
    pub(crate) fn drain(
        &mut self,
        log: &dyn EventLog,
    ) -> Result<HashMap<String, Vec<(Topic, Value)>>> {
        let mut by_id: HashMap<String, Vec<(Topic, Value)>> = HashMap::new();
        loop {
            let events = self.poll(log)?;
            if events.is_empty() {
                return Ok(by_id);
            }
            for (topic, e) in events {
                let id = e["correlation_id"].as_str().unwrap_or_default().to_string();
                by_id.entry(id).or_default().push((topic, e));
            }
        }
    }

    /// New events of the correlation id, as JSON objects, by topic.
    pub(crate) fn poll(&mut self, log: &dyn EventLog) -> Result<Vec<(Topic, Value)>> {
        let mut out = Vec::new();
        for (topic, partition, at) in &mut self.positions {
            for b in log.read(*topic, *partition, *at, 10_000)? {
                *at = b.next_offset();
                let rows = rows_of(&b.batch, &self.correlation_ids)?;
                out.extend(rows.into_iter().map(|r| (*topic, r)));
            }
        }
        Ok(out)
    }
}

fn rows_of(batch: &RecordBatch, correlation_ids: &HashSet<String>) -> Result<Vec<Value>> {
    let Some(ids) = batch
        .column_by_name("correlation_id")
        .and_then(|c| c.as_any().downcast_ref::<StringArray>())
    else {
        return Ok(vec![]);
    };
    let mask: arrow::array::BooleanArray = ids
        .iter()
        .map(|v| Some(v.is_some_and(|v| correlation_ids.contains(v))))
        .collect();
    if mask.true_count() == 0 {
        return Ok(vec![]);
    }
    let mine = arrow::compute::filter_record_batch(batch, &mask)?;
    let mut writer = arrow::json::ArrayWriter::new(Vec::new());
    writer.write_batches(&[&mine])?;
    writer.finish()?;
    let bytes = writer.into_inner();
    Ok(serde_json::from_slice(&bytes).unwrap_or_default())
}

pub(crate) async fn run(config: &Config, args: GenerateArgs) -> Result<()> {
    super::blocking("generate", config, move |config, runtime| {
        generate(config, args, runtime)
    })
    .await
}

fn generate(config: &Config, args: GenerateArgs, runtime: tokio::runtime::Handle) -> Result<()> {
    let mut options = config.codegen_options()?;
    super::patterns::attach(&mut options, config, &runtime)?;
    if let Some(m) = &args.model
        && m != TEMPLATE_MODEL
        && !options.models.contains_key(m)
    {
        let known: Vec<&str> = std::iter::once(TEMPLATE_MODEL)
            .chain(options.models.keys().map(String::as_str))
            .collect();
        return Err(CliError::Usage(format!(
            "unknown model '{m}' (models: {}; configure more under [models] in omnistream.toml)",
            known.join(", ")
        )));
    }
    if let Some(file) = &args.requests {
        return super::requests::generate_all(config, options, file, &args, runtime);
    }
    let prompt = args.prompt.clone().unwrap_or_default();
    if prompt.trim().is_empty() {
        return Err(CliError::Usage(
            "the prompt is empty: say what to generate".into(),
        ));
    }
    let log = open_log(config)?;
    let mut request = GenerationRequest::new(prompt);
    apply_flags(&mut request, &args)?;
    let mut watch = Watch::new(&log, [request.correlation_id.as_str()])?;
    GenerationRequest::publish(&log, std::slice::from_ref(&request))?;
    if args.no_wait {
        outln!("{}", request.correlation_id);
        return Ok(());
    }

    let bar = spinner("generating");
    let table = args.format == GenerateFormat::Table;
    let mut seen: BTreeMap<&'static str, Vec<Value>> = BTreeMap::new();
    let mut end = None;
    let followed = follow(
        config,
        options,
        &log,
        &mut watch,
        args.timeout,
        runtime,
        |topic, event| {
            match topic {
                Topic::StageCompleted => {
                    let name = event["stage_name"].as_str().unwrap_or("?").to_string();
                    bar.set_message(format!("{name} done"));
                    if table {
                        bar.suspend(|| print_stage(&event));
                    }
                    seen.entry("stages").or_default().push(event);
                }
                Topic::ModelCall => seen.entry("model_calls").or_default().push(event),
                Topic::ValidationResult => {
                    seen.entry("validation_results").or_default().push(event)
                }
                Topic::GenerationCompleted | Topic::GenerationFailed => end = Some((topic, event)),
                _ => {}
            }
            end.is_some()
        },
    );
    bar.finish_and_clear();
    if !followed? {
        return Err(CliError::Usage(format!(
            "no end event for {} after {} s; the generation goes on: follow it with \
             `omnistream sql \"SELECT * FROM generation_completed WHERE correlation_id = '{}'\"`",
            request.correlation_id, args.timeout, request.correlation_id
        )));
    }
    let (topic, end) = end.expect("followed until the end event");
    // Events emitted together with the end event may still be on their way in other topics.
    for (t, e) in watch.poll(&log)? {
        let key = match t {
            Topic::ModelCall => "model_calls",
            Topic::ValidationResult => "validation_results",
            Topic::StageCompleted => "stages",
            _ => continue,
        };
        seen.entry(key).or_default().push(e);
    }
    let failed = topic == Topic::GenerationFailed;
    match args.format {
        GenerateFormat::Json => {
            let mut out = json!({
                "correlation_id": request.correlation_id,
                "status": if failed { "failed" } else { "completed" },
                "end": end,
            });
            for (k, v) in &seen {
                out[*k] = Value::Array(v.clone());
            }
            outln!("{}", serde_json::to_string_pretty(&out).unwrap());
        }
        GenerateFormat::Table => print_summary(&request.correlation_id, failed, &end, &seen),
    }
    if failed {
        return Err(CliError::Generation(format!(
            "generation failed at {} ({}): {}",
            end["failed_stage"].as_str().unwrap_or("?"),
            end["error_code"].as_str().unwrap_or("?"),
            end["error_message"].as_str().unwrap_or("?")
        )));
    }
    Ok(())
}

/// The command line's choices, for what a request does not say itself.
pub(crate) fn apply_flags(request: &mut GenerationRequest, args: &GenerateArgs) -> Result<()> {
    if request.output_directory.is_none() {
        request.output_directory = args
            .out
            .as_ref()
            .map(std::path::absolute)
            .transpose()
            .io_context(|| "resolving --out".to_string())?
            .map(|p| p.display().to_string());
    }
    request.model = request.model.take().or_else(|| args.model.clone());
    request.node_type = request.node_type.take().or_else(|| args.node_type.clone());
    if args.no_quorum {
        request.enable_quorum = Some(false);
    }
    if args.no_intelligence {
        request.enable_intelligence = Some(false);
    }
    request.user_id = std::env::var("USER").ok();
    Ok(())
}

/// Feed every watched event to `on_event` until it returns true (everything awaited has ended),
/// running the codegen job here unless another process does. `Ok(false)`: no end after
/// `timeout_secs` (the generations go on).
pub(crate) fn follow(
    config: &Config,
    options: omnistream_codegen::CodegenOptions,
    log: &super::EmbeddedLog,
    watch: &mut Watch,
    timeout_secs: u64,
    runtime: tokio::runtime::Handle,
    mut on_event: impl FnMut(Topic, Value) -> bool,
) -> Result<bool> {
    let local = match Codegen::new(log, options, runtime.clone(), &config.status_dir()) {
        Ok(c) => Some(c),
        Err(busy @ CodegenError::Busy(_)) => {
            tracing::info!("{busy}: waiting for it to take the requests");
            None
        }
        Err(e) => return Err(e.into()),
    };
    let deadline = Instant::now() + Duration::from_secs(timeout_secs.max(1));
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| -> Result<bool> {
        let mut runner = local.map(|mut codegen| {
            let stop = &stop;
            scope.spawn(move || -> Result<()> {
                while !stop.load(Ordering::SeqCst) {
                    if codegen.step()?.requests == 0 {
                        break;
                    }
                }
                Ok(())
            })
        });
        let ended = loop {
            let mut ended = false;
            for (topic, event) in watch.poll(log)? {
                ended = on_event(topic, event);
            }
            if ended {
                break true;
            }
            if let Some(r) = runner.take_if(|r| r.is_finished()) {
                r.join()
                    .map_err(|_| CliError::Usage("the codegen job panicked".into()))??;
                // The job finished its work; the end events must be in the log now.
                continue;
            }
            if Instant::now() > deadline {
                break false;
            }
            std::thread::sleep(Duration::from_millis(25));
        };
        stop.store(true, Ordering::SeqCst);
        let ran_here = runner.is_some() || ended;
        if let Some(r) = runner {
            r.join()
                .map_err(|_| CliError::Usage("the codegen job panicked".into()))??;
        }
        // What passed is learnt now, unless a running indexer job does it.
        if ran_here {
            super::patterns::index_pending(config, log, &runtime)?;
        }
        Ok(ended)
    })
}

fn print_stage(e: &Value) {
    let ok = e["success"].as_bool().unwrap_or(false);
    let warnings = e["warnings"].as_array().map(|w| w.len()).unwrap_or(0);
    let mut line = format!(
        "  {} {:<24} {:>9}",
        if ok { "ok  " } else { "FAIL" },
        e["stage_name"].as_str().unwrap_or("?"),
        format!(
            "{:.1} ms",
            e["duration_seconds"].as_f64().unwrap_or(0.0) * 1000.0
        )
    );
    if warnings > 0 {
        line.push_str(&format!("  {warnings} warning(s)"));
    }
    if let Some(err) = e["error_message"].as_str() {
        line.push_str(&format!("  {err}"));
    }
    outln!("{line}");
}

fn print_summary(
    correlation_id: &str,
    failed: bool,
    end: &Value,
    seen: &BTreeMap<&str, Vec<Value>>,
) {
    let empty = Vec::new();
    let calls = seen.get("model_calls").unwrap_or(&empty);
    let mut by_model: BTreeMap<String, (usize, i64, f64)> = BTreeMap::new();
    for c in calls {
        let m = by_model
            .entry(c["model"].as_str().unwrap_or("?").to_string())
            .or_default();
        m.0 += 1;
        m.1 += c["total_tokens"].as_i64().unwrap_or(0);
        m.2 += c["cost_usd"].as_f64().unwrap_or(0.0);
    }
    let models: Vec<String> = by_model
        .iter()
        .map(|(m, (n, tokens, cost))| {
            format!(
                "{m} ({n} call{}, {tokens} tokens, ${cost:.6})",
                if *n == 1 { "" } else { "s" }
            )
        })
        .collect();
    let gates = seen.get("validation_results").unwrap_or(&empty);
    let count = |s: &str| gates.iter().filter(|g| g["status"] == s).count();
    if failed {
        outln!(
            "generation failed at {} after {:.2} s ({})",
            end["failed_stage"].as_str().unwrap_or("?"),
            end["partial_duration_seconds"].as_f64().unwrap_or(0.0),
            end["error_code"].as_str().unwrap_or("?")
        );
        outln!(
            "  reason     {}",
            end["error_message"].as_str().unwrap_or("?")
        );
        if let Some(files) = end["partial_files"].as_array().filter(|f| !f.is_empty()) {
            outln!("  partial    {} files (rolled back)", files.len());
        }
    } else {
        let q = |k: &str| end[k].as_f64().unwrap_or(0.0);
        outln!(
            "generated {} node in {:.2} s",
            end["node_type"].as_str().unwrap_or("?"),
            q("total_duration_seconds")
        );
        let dir = end["output_directory"].as_str().unwrap_or("?");
        outln!("  directory  {dir}");
        let files: Vec<&str> = end["generated_files"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        outln!("  files      {}: {}", files.len(), files.join(", "));
        outln!(
            "  quality    {:.3} {} ({}): syntax {:.3}, onex {:.3}, contract {:.3}, code quality {:.3}",
            q("quality_score"),
            omnistream_codegen::gates::grade(q("quality_score")),
            if end["passed"].as_bool() == Some(true) {
                "passed"
            } else {
                "below the bar"
            },
            q("syntax_score"),
            q("onex_compliance_score"),
            q("contract_score"),
            q("code_quality_score")
        );
        outln!(
            "  cost       {} tokens, ${:.6}",
            end["total_tokens"].as_i64().unwrap_or(0),
            q("total_cost_usd")
        );
    }
    outln!(
        "  models     {}",
        if models.is_empty() {
            "none".into()
        } else {
            models.join("; ")
        }
    );
    outln!(
        "  gates      {} pass, {} warn, {} fail",
        count("pass"),
        count("warn"),
        count("fail") + count("error")
    );
    for g in gates.iter().filter(|g| g["status"] != "pass") {
        outln!(
            "    {} {} {}: {}",
            g["gate_id"].as_str().unwrap_or("?"),
            g["gate_name"].as_str().unwrap_or(""),
            g["status"].as_str().unwrap_or("?"),
            g["message"]
                .as_str()
                .unwrap_or("")
                .lines()
                .next()
                .unwrap_or("")
        );
    }
    outln!("  correlation_id {correlation_id}");
}
