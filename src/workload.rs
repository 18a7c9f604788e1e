//! A realistic, seeded workload of the platform: generations with their stages, model calls,
//! gates and quorum votes; patterns; and a fleet of nodes sending introspection and heartbeats.
//!
//! Demos, benchmarks and tests feed on it. Every random choice comes from one ChaCha8 stream
//! seeded by the user, and ids are drawn from it too, so a seed always gives the same events.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use omnistream_streams::{Event, Topic};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp, LogNormal, Normal};
use serde_json::{Value, json};

/// What to simulate.
#[derive(Debug, Clone)]
pub(crate) struct WorkloadConfig {
    pub(crate) generations: u64,
    pub(crate) seed: u64,
    pub(crate) start: DateTime<Utc>,
    pub(crate) nodes: u32,
    /// Generations per simulated minute.
    pub(crate) rate_per_minute: f64,
    pub(crate) late_fraction: f64,
    pub(crate) duplicate_fraction: f64,
}

/// A model's behaviour: latency, tokens, price, quality and failure profile.
struct ModelProfile {
    name: &'static str,
    provider: &'static str,
    tier: &'static str,
    /// Share of generations that use this model.
    weight: f64,
    latency_median_ms: f64,
    latency_sigma: f64,
    output_tokens_mean: f64,
    /// USD per million input and output tokens.
    price_in: f64,
    price_out: f64,
    quality_mean: f64,
    quality_sd: f64,
    /// Chance that one attempt fails (rate limit, server error, timeout).
    attempt_error_rate: f64,
}

const MODELS: &[ModelProfile] = &[
    ModelProfile {
        name: "claude-sonnet-4-5",
        provider: "anthropic",
        tier: "premium",
        weight: 0.22,
        latency_median_ms: 4200.0,
        latency_sigma: 0.35,
        output_tokens_mean: 1900.0,
        price_in: 3.0,
        price_out: 15.0,
        quality_mean: 0.935,
        quality_sd: 0.035,
        attempt_error_rate: 0.02,
    },
    ModelProfile {
        name: "gpt-4o-mini",
        provider: "openai",
        tier: "economy",
        weight: 0.26,
        latency_median_ms: 1800.0,
        latency_sigma: 0.40,
        output_tokens_mean: 1500.0,
        price_in: 0.15,
        price_out: 0.60,
        quality_mean: 0.845,
        quality_sd: 0.06,
        attempt_error_rate: 0.03,
    },
    ModelProfile {
        name: "gemini-2.5-flash",
        provider: "gemini",
        tier: "economy",
        weight: 0.18,
        latency_median_ms: 1500.0,
        latency_sigma: 0.45,
        output_tokens_mean: 1700.0,
        price_in: 0.30,
        price_out: 2.50,
        quality_mean: 0.87,
        quality_sd: 0.05,
        attempt_error_rate: 0.04,
    },
    ModelProfile {
        name: "glm-4.6",
        provider: "glm",
        tier: "standard",
        weight: 0.12,
        latency_median_ms: 3100.0,
        latency_sigma: 0.5,
        output_tokens_mean: 1800.0,
        price_in: 0.60,
        price_out: 2.20,
        quality_mean: 0.86,
        quality_sd: 0.06,
        attempt_error_rate: 0.05,
    },
    ModelProfile {
        name: "qwen2.5-coder-32b",
        provider: "vllm",
        tier: "local",
        weight: 0.12,
        latency_median_ms: 6500.0,
        latency_sigma: 0.30,
        output_tokens_mean: 1600.0,
        price_in: 0.0,
        price_out: 0.0,
        quality_mean: 0.80,
        quality_sd: 0.08,
        attempt_error_rate: 0.06,
    },
    ModelProfile {
        name: "template",
        provider: "template",
        tier: "local",
        weight: 0.10,
        latency_median_ms: 4.0,
        latency_sigma: 0.3,
        output_tokens_mean: 1200.0,
        price_in: 0.0,
        price_out: 0.0,
        quality_mean: 0.90,
        quality_sd: 0.02,
        attempt_error_rate: 0.0,
    },
];

/// Judge models of the quorum, with upstream weights 1.0/1.0/2.0/1.5.
const JUDGES: &[(usize, f64)] = &[(1, 1.0), (2, 1.0), (0, 2.0), (3, 1.5)];

const SERVICES: &[(&str, &str, &str)] = &[
    ("effect", "PostgreSQL writer", "data"),
    ("effect", "Kafka publisher", "messaging"),
    ("effect", "S3 uploader", "storage"),
    ("effect", "Redis cache", "caching"),
    ("effect", "SMTP mailer", "notifications"),
    ("effect", "HTTP webhook client", "integration"),
    ("compute", "price calculator", "billing"),
    ("compute", "JSON schema validator", "validation"),
    ("compute", "fraud risk scorer", "risk"),
    ("compute", "text tokenizer", "nlp"),
    ("reducer", "metrics aggregator", "observability"),
    ("reducer", "session state", "identity"),
    ("reducer", "order book", "trading"),
    ("orchestrator", "payment workflow", "billing"),
    ("orchestrator", "ETL pipeline", "data"),
    ("orchestrator", "user onboarding", "identity"),
];

// The codegen job's own stage and gate names, so simulated history reads like real history.
use omnistream_codegen::gates::POST_GATES as GATES;
use omnistream_codegen::stage::Stage;

struct SimNode {
    node_id: String,
    node_name: String,
    node_type: &'static str,
    domain: &'static str,
    service: String,
    version: String,
    contract_hash: String,
    started_us: i64,
    /// When the node stops sending heartbeats (never, for most).
    stops_us: Option<i64>,
    /// When the node's contract changes (drift), for a few.
    drifts_us: Option<i64>,
    next_heartbeat_us: i64,
    sequence: i64,
    introspected: bool,
}

/// One simulated generation while it runs.
struct SimRun {
    correlation_id: String,
    node_type: &'static str,
    service: &'static str,
    domain: &'static str,
    model: usize,
    quorum: bool,
    intelligence: bool,
    t0: i64,
    /// Simulated now (µs).
    t: i64,
    planned: Vec<&'static str>,
    quality: SimQuality,
    tokens: i64,
    cost: f64,
    warnings_seen: bool,
    patterns_applied: Vec<String>,
    /// (stage, error code, message) of the stage that failed.
    failure: Option<(&'static str, &'static str, String)>,
    /// The last stage event: what the next one was caused by.
    stage_cause: String,
}

impl SimRun {
    fn seconds(&self) -> f64 {
        round3((self.t - self.t0) as f64 / 1e6)
    }
}

/// What a model writes for one request: the quality dimensions, and whether it breaks.
#[derive(Clone, Copy)]
struct SimQuality {
    onex: f64,
    contract: f64,
    code: f64,
    syntax_ok: bool,
    syntax: f64,
    score: f64,
    passed: bool,
    compile_fails: bool,
}

/// Events of one chunk, as JSON lines per topic.
pub(crate) type Chunk = BTreeMap<Topic, Vec<String>>;

pub(crate) struct Workload {
    config: WorkloadConfig,
    rng: ChaCha8Rng,
    now_us: i64,
    emitted: u64,
    nodes: Vec<SimNode>,
    patterns: Vec<String>,
    late: Vec<(Topic, String)>,
}

const SECOND: i64 = 1_000_000;

impl Workload {
    pub(crate) fn new(config: WorkloadConfig) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        let start = config.start.timestamp_micros();
        let span_us = (config.generations as f64 / config.rate_per_minute.max(1e-6)
            * 60.0
            * SECOND as f64) as i64;
        let mut nodes = Vec::new();
        for i in 0..config.nodes {
            let (node_type, service, domain) = SERVICES[i as usize % SERVICES.len()];
            let name = camel(service);
            let started_us = start + rng.random_range(0..(span_us / 10).max(1));
            let stops_us = rng
                .random_bool(0.1)
                .then(|| started_us + rng.random_range(0..span_us.max(1)));
            let drifts_us = rng
                .random_bool(0.08)
                .then(|| started_us + rng.random_range(0..span_us.max(1)));
            nodes.push(SimNode {
                node_id: random_uuid(&mut rng),
                node_name: format!("Node{name}{}", camel(node_type)),
                node_type,
                domain,
                service: snake(service),
                version: format!("1.{}.{}", rng.random_range(0..4), rng.random_range(0..10)),
                contract_hash: hex(&mut rng, 16),
                started_us,
                stops_us,
                drifts_us,
                next_heartbeat_us: started_us,
                sequence: 0,
                introspected: false,
            });
        }
        Workload {
            config,
            rng,
            now_us: start,
            emitted: 0,
            nodes,
            patterns: vec![],
            late: vec![],
        }
    }

    /// Generations still to emit.
    pub(crate) fn remaining(&self) -> u64 {
        self.config.generations - self.emitted
    }

    /// The next `generations` generations, with the node events up to the time they reach.
    /// Late events of the previous chunk are delivered in this one. Empty when done.
    pub(crate) fn next_chunk(&mut self, generations: u64) -> Chunk {
        let mut chunk = Chunk::new();
        for (topic, line) in std::mem::take(&mut self.late) {
            chunk.entry(topic).or_default().push(line);
        }
        let n = generations.min(self.remaining());
        let gap = Exp::new(self.config.rate_per_minute.max(1e-6) / (60.0 * SECOND as f64)).unwrap();
        for _ in 0..n {
            self.now_us += gap.sample(&mut self.rng) as i64;
            self.generation(&mut chunk);
            self.emitted += 1;
        }
        self.node_events(&mut chunk);
        if self.remaining() == 0 {
            for (topic, line) in std::mem::take(&mut self.late) {
                chunk.entry(topic).or_default().push(line);
            }
        }
        chunk
    }

    fn emit(&mut self, chunk: &mut Chunk, topic: Topic, event: Value) {
        let line = event.to_string();
        if self
            .rng
            .random_bool(self.config.duplicate_fraction.clamp(0.0, 1.0))
        {
            chunk.entry(topic).or_default().push(line.clone());
        }
        if self
            .rng
            .random_bool(self.config.late_fraction.clamp(0.0, 1.0))
        {
            self.late.push((topic, line));
        } else {
            chunk.entry(topic).or_default().push(line);
        }
    }

    /// An event of `topic` emitted at `at_us`, with a seeded id; returns its id too.
    fn event(
        &mut self,
        topic: Topic,
        at_us: i64,
        correlation_id: &str,
        causation: Option<&str>,
        source: &str,
        payload: Value,
    ) -> (Value, String) {
        let id = event_uuid(&mut self.rng, at_us);
        let event = Event::with_id(topic, id.clone(), correlation_id, causation, source)
            .emitted_at(&rfc3339(at_us))
            .payload(payload)
            .expect("the simulator's payloads use the registry's fields");
        (event.into_json(), id)
    }

    fn pick_model(&mut self) -> usize {
        let total: f64 = MODELS.iter().map(|m| m.weight).sum();
        let mut x = self.rng.random_range(0.0..total);
        for (i, m) in MODELS.iter().enumerate() {
            if x < m.weight {
                return i;
            }
            x -= m.weight;
        }
        MODELS.len() - 1
    }

    /// One model call (with retries); returns (end time, tokens, cost, succeeded).
    #[allow(clippy::too_many_arguments)]
    fn model_call(
        &mut self,
        chunk: &mut Chunk,
        model: usize,
        at_us: i64,
        correlation_id: &str,
        stage: &str,
        node_type: &str,
        operation: &str,
        output_scale: f64,
        quality: Option<f64>,
    ) -> (i64, i64, f64, bool) {
        let m = &MODELS[model];
        let mut t = at_us;
        let (mut tokens, mut cost) = (0i64, 0.0);
        for attempt in 1..=3 {
            let latency = LogNormal::new(m.latency_median_ms.ln(), m.latency_sigma)
                .unwrap()
                .sample(&mut self.rng)
                * output_scale.sqrt();
            let failed = self.rng.random_bool(m.attempt_error_rate);
            let input_tokens = (Normal::new(900.0 * output_scale.max(0.2), 200.0)
                .unwrap()
                .sample(&mut self.rng) as i64)
                .max(50);
            let (latency, output_tokens, error_type, status, finish): (
                f64,
                i64,
                Option<&str>,
                i64,
                &str,
            ) = if failed {
                match self.rng.random_range(0..3) {
                    0 => (latency * 0.05, 0, Some("rate_limited"), 429, "error"),
                    1 => (latency * 0.3, 0, Some("server_error"), 503, "error"),
                    _ => (30_000.0, 0, Some("timeout"), 0, "error"),
                }
            } else {
                let out = (Normal::new(
                    m.output_tokens_mean * output_scale,
                    m.output_tokens_mean * output_scale * 0.25,
                )
                .unwrap()
                .sample(&mut self.rng) as i64)
                    .max(10);
                (latency, out, None, 200, "stop")
            };
            let input_cost = input_tokens as f64 * m.price_in / 1e6;
            let output_cost = output_tokens as f64 * m.price_out / 1e6;
            let payload = json!({
                "model": m.name, "provider": m.provider, "response_model": m.name, "model_tier": m.tier,
                "operation": operation, "node_type": node_type, "stage_name": stage,
                "input_tokens": input_tokens, "output_tokens": output_tokens, "total_tokens": input_tokens + output_tokens,
                "latency_ms": round3(latency), "time_to_first_token_ms": round3(latency * 0.12),
                "input_cost_usd": input_cost, "output_cost_usd": output_cost, "cost_usd": input_cost + output_cost,
                "success": !failed, "finish_reason": finish, "error_type": error_type,
                "http_status": if status == 0 { Value::Null } else { json!(status) },
                "attempt": attempt,
                "quality_score": if failed { Value::Null } else { quality.map(round3).map_or(Value::Null, |q| json!(q)) },
            });
            t += (latency * 1000.0) as i64;
            let (event, _) = self.event(
                Topic::ModelCall,
                t,
                correlation_id,
                None,
                "codegen",
                payload,
            );
            self.emit(chunk, Topic::ModelCall, event);
            tokens += input_tokens + output_tokens;
            cost += input_cost + output_cost;
            if !failed {
                return (t, tokens, cost, true);
            }
            // Backoff before the retry.
            t += (200_000.0 * 2f64.powi(attempt) * self.rng.random_range(0.5..1.5)) as i64;
        }
        (t, tokens, cost, false)
    }

    /// One generation end to end: request, start, every planned stage, then its end event.
    fn generation(&mut self, chunk: &mut Chunk) {
        let mut run = self.start_generation(chunk);
        for stage in Stage::ALL {
            let name = stage.name();
            if !run.planned.contains(&name) || (stage == Stage::Refinement && !run.warnings_seen) {
                continue;
            }
            let stage_start = run.t;
            let (ok, warnings) = self.stage(chunk, &mut run, stage);
            self.stage_completed(chunk, &mut run, stage, stage_start, ok, warnings);
            if !ok {
                break;
            }
        }
        match run.failure.take() {
            Some(failure) => self.generation_failed(chunk, &run, failure),
            None => self.generation_completed(chunk, &run),
        }
    }

    /// generation-requested and generation-started, and what this model will write.
    fn start_generation(&mut self, chunk: &mut Chunk) -> SimRun {
        let correlation_id = random_uuid(&mut self.rng);
        let (node_type, service, domain) = SERVICES[self.rng.random_range(0..SERVICES.len())];
        let model = self.pick_model();
        let m = &MODELS[model];
        let quorum = self.rng.random_bool(0.15);
        let intelligence = self.rng.random_bool(0.9);
        let t0 = self.now_us;
        let prompt = format!("Create {service} {} node", camel(node_type));
        let payload = json!({
            "prompt": prompt, "output_directory": format!("./generated/{}", snake(service)),
            "node_type": if self.rng.random_bool(0.6) { json!(node_type) } else { Value::Null },
            "model": m.name, "interactive_mode": false, "enable_intelligence": intelligence,
            "enable_quorum": quorum, "user_id": format!("user-{}", self.rng.random_range(1..25)),
            "session_id": format!("session-{}", self.rng.random_range(1..400)),
        });
        let (requested, requested_id) = self.event(
            Topic::GenerationRequested,
            t0,
            &correlation_id,
            None,
            "omnistream-cli",
            payload,
        );
        self.emit(chunk, Topic::GenerationRequested, requested);
        let t = t0 + self.rng.random_range(20_000..200_000);
        let worker = format!("codegen-worker-{}", self.rng.random_range(1..4));
        let planned: Vec<&'static str> = Stage::ALL
            .iter()
            .map(|s| s.name())
            .filter(|s| {
                *s != "event_bus_integration" || matches!(node_type, "effect" | "orchestrator")
            })
            .collect();
        let payload = json!({
            "workflow_id": random_uuid(&mut self.rng), "orchestrator_node_id": worker,
            "pipeline_stages": planned, "estimated_duration_seconds": 25.0,
        });
        let (started, started_id) = self.event(
            Topic::GenerationStarted,
            t,
            &correlation_id,
            Some(&requested_id),
            "codegen",
            payload,
        );
        self.emit(chunk, Topic::GenerationStarted, started);
        let quality = self.sample_quality(model);
        SimRun {
            correlation_id,
            node_type,
            service,
            domain,
            model,
            quorum,
            intelligence,
            t0,
            t,
            planned,
            quality,
            tokens: 0,
            cost: 0.0,
            warnings_seen: false,
            patterns_applied: vec![],
            failure: None,
            stage_cause: started_id,
        }
    }

    /// The quality of what `model` writes for one request, with its dimensions, and where the
    /// generation breaks, if it does.
    fn sample_quality(&mut self, model: usize) -> SimQuality {
        let m = &MODELS[model];
        let q = Normal::new(m.quality_mean, m.quality_sd).unwrap();
        let onex = q.sample(&mut self.rng).clamp(0.3, 1.0);
        let contract = (q.sample(&mut self.rng) + 0.03).clamp(0.3, 1.0);
        let code = (q.sample(&mut self.rng) - 0.05).clamp(0.3, 1.0);
        let syntax_ok = self.rng.random_bool(0.97);
        let syntax = if syntax_ok { 1.0 } else { 0.4 };
        let score = 0.30 * syntax + 0.40 * onex + 0.20 * contract + 0.10 * code;
        SimQuality {
            onex,
            contract,
            code,
            syntax_ok,
            syntax,
            score,
            passed: score >= 0.8 && onex >= 0.7,
            compile_fails: self.rng.random_bool(0.02),
        }
    }

    /// One stage's work: its time, its model calls and gates. Returns whether it succeeded and
    /// its warnings.
    fn stage(&mut self, chunk: &mut Chunk, run: &mut SimRun, stage: Stage) -> (bool, Vec<String>) {
        let mut warnings: Vec<String> = vec![];
        let ok = match stage {
            Stage::PromptParsing => self.model_stage(chunk, run, stage, 0.1, None, 5_000),
            Stage::IntelligenceGathering => {
                run.t += self.rng.random_range(40_000..500_000);
                self.apply_patterns(run);
                true
            }
            Stage::ContractBuilding => {
                run.t += self.rng.random_range(10_000..120_000);
                true
            }
            Stage::PreValidation => {
                run.t += self.rng.random_range(5_000..30_000);
                true
            }
            Stage::CodeGeneration => {
                let quality = Some(run.quality.score);
                self.model_stage(chunk, run, stage, 1.0, quality, 10_000)
            }
            Stage::EventBusIntegration => {
                run.t += self.rng.random_range(20_000..100_000);
                true
            }
            Stage::PostValidation => {
                self.post_gates(chunk, run, &mut warnings);
                if run.quorum {
                    self.quorum(chunk, run);
                }
                run.warnings_seen = !warnings.is_empty();
                if !run.quality.syntax_ok {
                    run.failure = Some((
                        stage.name(),
                        "VALIDATION_FAILED",
                        "G9 python_syntax failed: SyntaxError: invalid syntax".into(),
                    ));
                }
                run.quality.syntax_ok
            }
            Stage::Refinement => {
                let (end, tk, c, _) = self.model_call(
                    chunk,
                    run.model,
                    run.t,
                    &run.correlation_id,
                    stage.name(),
                    run.node_type,
                    "chat",
                    0.4,
                    Some(run.quality.score),
                );
                run.t = end;
                run.tokens += tk;
                run.cost += c;
                true
            }
            Stage::FileWriting => {
                run.t += self.rng.random_range(5_000..50_000);
                true
            }
            Stage::CompilationTest => {
                run.t += self.rng.random_range(300_000..1_500_000);
                if run.quality.compile_fails {
                    run.failure = Some((
                        stage.name(),
                        "COMPILE_ERROR",
                        "py_compile: ImportError in models/input.py".into(),
                    ));
                }
                !run.quality.compile_fails
            }
        };
        (ok, warnings)
    }

    /// A stage that is one call of the generation's model; fails when the call does.
    fn model_stage(
        &mut self,
        chunk: &mut Chunk,
        run: &mut SimRun,
        stage: Stage,
        output_scale: f64,
        quality: Option<f64>,
        after_us: i64,
    ) -> bool {
        let (end, tk, c, success) = self.model_call(
            chunk,
            run.model,
            run.t,
            &run.correlation_id,
            stage.name(),
            run.node_type,
            "chat",
            output_scale,
            quality,
        );
        run.t = end + after_us;
        run.tokens += tk;
        run.cost += c;
        if !success {
            let message = format!("{} failed 3 attempts", MODELS[run.model].name);
            run.failure = Some((stage.name(), "MODEL_UNAVAILABLE", message));
        }
        success
    }

    /// Up to three stored patterns applied to the generation, when intelligence is on.
    fn apply_patterns(&mut self, run: &mut SimRun) {
        if !run.intelligence || self.patterns.is_empty() {
            return;
        }
        let k = self.rng.random_range(0..=3.min(self.patterns.len()));
        for _ in 0..k {
            let p = self.patterns[self.rng.random_range(0..self.patterns.len())].clone();
            if !run.patterns_applied.contains(&p) {
                run.patterns_applied.push(p);
            }
        }
    }

    /// G9-G12, each a validation-result; warnings for the ones this quality falls short of.
    fn post_gates(&mut self, chunk: &mut Chunk, run: &mut SimRun, warnings: &mut Vec<String>) {
        let stage = Stage::PostValidation.name();
        let (q, node_type) = (run.quality, run.node_type);
        for (gate_id, gate_name) in GATES.iter() {
            let duration = self.rng.random_range(2.0..40.0);
            let (status, score, message) = match *gate_id {
                "G9" if !q.syntax_ok => (
                    "fail",
                    0.0,
                    "SyntaxError: invalid syntax (node.py, line 42)".to_string(),
                ),
                "G10" if q.onex < 0.75 => (
                    "warn",
                    q.onex,
                    format!(
                        "class name does not follow Node<Name><{}>",
                        camel(node_type)
                    ),
                ),
                "G12" if q.code < 0.8 => (
                    "warn",
                    q.code,
                    "uses pydantic v1 style `class Config`".to_string(),
                ),
                _ => ("pass", 1.0, "ok".to_string()),
            };
            if status == "warn" {
                warnings.push(message.clone());
            }
            let payload = json!({
                "gate_id": gate_id, "gate_name": gate_name, "stage_name": stage, "status": status,
                "score": score, "message": message, "duration_ms": round3(duration),
            });
            let (v, _) = self.event(
                Topic::ValidationResult,
                run.t,
                &run.correlation_id,
                None,
                "codegen",
                payload,
            );
            self.emit(chunk, Topic::ValidationResult, v);
            run.t += (duration * 1000.0) as i64;
        }
    }

    /// The judges' votes (some do not answer in time), each a validation-result.
    fn quorum(&mut self, chunk: &mut Chunk, run: &mut SimRun) {
        let stage = Stage::PostValidation.name();
        for (judge, weight) in JUDGES {
            let judge = *judge;
            if self.rng.random_bool(0.08) {
                continue; // this judge did not answer in time
            }
            let (end, tk, c, success) = self.model_call(
                chunk,
                judge,
                run.t,
                &run.correlation_id,
                stage,
                run.node_type,
                "judge",
                0.15,
                None,
            );
            run.tokens += tk;
            run.cost += c;
            if !success {
                continue;
            }
            let alignment =
                (run.quality.score * 100.0 + self.rng.random_range(-8.0..8.0)).clamp(0.0, 100.0);
            let rec = if alignment >= 80.0 {
                "PASS"
            } else if alignment >= 60.0 {
                "RETRY"
            } else {
                "FAIL"
            };
            let payload = json!({
                "gate_id": "QUORUM", "gate_name": "model_quorum", "stage_name": stage,
                "status": if rec == "PASS" { "pass" } else if rec == "RETRY" { "warn" } else { "fail" },
                "score": round3(alignment / 100.0), "voter_model": MODELS[judge].name, "weight": weight,
                "recommendation": rec, "message": format!("alignment {alignment:.0}"),
            });
            let (v, _) = self.event(
                Topic::ValidationResult,
                end,
                &run.correlation_id,
                None,
                "codegen",
                payload,
            );
            self.emit(chunk, Topic::ValidationResult, v);
        }
        run.t += 50_000;
    }

    /// stage-completed, caused by the previous stage's event.
    fn stage_completed(
        &mut self,
        chunk: &mut Chunk,
        run: &mut SimRun,
        stage: Stage,
        stage_start: i64,
        ok: bool,
        warnings: Vec<String>,
    ) {
        let t = run.t;
        let payload = json!({
            "stage_name": stage.name(), "stage_number": stage.number(), "duration_seconds": round3((t - stage_start) as f64 / 1e6),
            "cpu_time_seconds": round3((t - stage_start) as f64 / 1e6 * self.rng.random_range(0.05..0.4)),
            "memory_mb": round3(self.rng.random_range(40.0..220.0)), "success": ok, "warnings": warnings,
            "error_message": run.failure.as_ref().filter(|_| !ok).map(|f| f.2.clone()),
        });
        let (v, id) = self.event(
            Topic::StageCompleted,
            t,
            &run.correlation_id,
            Some(&run.stage_cause),
            "codegen",
            payload,
        );
        run.stage_cause = id;
        self.emit(chunk, Topic::StageCompleted, v);
    }

    fn generation_failed(
        &mut self,
        chunk: &mut Chunk,
        run: &SimRun,
        (stage, code, message): (&str, &str, String),
    ) {
        let m = &MODELS[run.model];
        let (svc, node_type) = (snake(run.service), run.node_type);
        let payload = json!({
            "failed_stage": stage, "partial_duration_seconds": run.seconds(), "error_code": code,
            "error_message": message, "error_context": {"model": m.name, "service": svc},
            "partial_files": if stage == "compilation_test" { json!([format!("node_{svc}_{node_type}/v1_0_0/node.py")]) } else { json!([]) },
            "retry_count": if code == "MODEL_UNAVAILABLE" { 3 } else { 0 },
            "is_retryable": code != "VALIDATION_FAILED", "retry_after_seconds": if code == "MODEL_UNAVAILABLE" { json!(30.0) } else { Value::Null },
            "primary_model": m.name, "node_type": node_type, "total_tokens": run.tokens, "total_cost_usd": run.cost,
        });
        self.emit_end(chunk, Topic::GenerationFailed, run, payload);
    }

    /// A generation's end event (completed or failed), caused by its last stage.
    fn emit_end(&mut self, chunk: &mut Chunk, topic: Topic, run: &SimRun, payload: Value) {
        let (v, _) = self.event(
            topic,
            run.t,
            &run.correlation_id,
            Some(&run.stage_cause),
            "codegen",
            payload,
        );
        self.emit(chunk, topic, v);
    }

    /// generation-completed, and a stored pattern when it is worth learning from.
    fn generation_completed(&mut self, chunk: &mut Chunk, run: &SimRun) {
        let m = &MODELS[run.model];
        let (svc, node_type, domain, q) =
            (snake(run.service), run.node_type, run.domain, run.quality);
        let base = format!("node_{}_{svc}_{node_type}/v1_0_0", domain);
        let files = vec![
            format!("{base}/node.py"),
            format!("{base}/contract.yaml"),
            format!("{base}/models/input.py"),
            format!("{base}/models/output.py"),
            format!("{base}/start_node.py"),
            format!("{base}/tests/test_node.py"),
        ];
        let payload = json!({
            "total_duration_seconds": run.seconds(), "generated_files": files, "node_type": node_type,
            "service_name": svc, "domain": domain, "quality_score": round3(q.score),
            "syntax_score": q.syntax, "onex_compliance_score": round3(q.onex), "contract_score": round3(q.contract),
            "code_quality_score": round3(q.code), "passed": q.passed,
            "test_coverage": round3(self.rng.random_range(0.55..0.95)), "complexity_score": round3(self.rng.random_range(0.1..0.6)),
            "patterns_applied": run.patterns_applied, "intelligence_sources": if run.intelligence { json!(["pattern_store"]) } else { json!([]) },
            "primary_model": m.name, "total_tokens": run.tokens, "total_cost_usd": run.cost,
            "output_directory": format!("./generated/{svc}"), "node_module": format!("{base}/node.py"),
            "models": ["models/input.py", "models/output.py"], "enums": [], "tests": ["tests/test_node.py"],
        });
        self.emit_end(chunk, Topic::GenerationCompleted, run, payload);
        if q.score >= 0.95 {
            let pattern_id = hex(&mut self.rng, 16);
            let payload = json!({
                "pattern_id": pattern_id, "node_type": node_type, "domain": domain, "quality_score": round3(q.score),
                "scorer_version": "quality-v1", "lifecycle": "candidate", "pattern_version": "1.0.0", "parent_ids": [],
            });
            let (v, _) = self.event(
                Topic::PatternStored,
                run.t + 1_000,
                &run.correlation_id,
                None,
                "intelligence",
                payload,
            );
            self.emit(chunk, Topic::PatternStored, v);
            self.patterns.push(pattern_id);
        }
    }

    /// Introspection and heartbeats of every node up to the current simulated time.
    fn node_events(&mut self, chunk: &mut Chunk) {
        let now = self.now_us;
        for i in 0..self.nodes.len() {
            loop {
                let node = &self.nodes[i];
                if node.next_heartbeat_us > now
                    || node.stops_us.is_some_and(|s| node.next_heartbeat_us > s)
                {
                    break;
                }
                let at = node.next_heartbeat_us;
                if let Some(d) = node.drifts_us
                    && at >= d
                {
                    let hash = hex(&mut self.rng, 16);
                    let node = &mut self.nodes[i];
                    node.contract_hash = hash;
                    node.drifts_us = None;
                    node.introspected = false;
                }
                if !self.nodes[i].introspected {
                    let n = &self.nodes[i];
                    let (node_id, source) = (n.node_id.clone(), n.node_name.clone());
                    let payload = json!({
                        "event_type": "NODE_INTROSPECTION", "node_id": n.node_id, "node_name": n.node_name,
                        "node_version": n.version, "node_type": n.node_type, "domain": n.domain,
                        "service_name": n.service, "actions": ["process", "health_check"], "protocols": ["http", "event_bus"],
                        "tags": [n.node_type, n.domain], "health_endpoint": format!("http://127.0.0.1:{}/health", 8000 + i),
                        "contract_hash": n.contract_hash,
                    });
                    let (v, _) = self.event(
                        Topic::NodeIntrospection,
                        at,
                        &node_id,
                        None,
                        &source,
                        payload,
                    );
                    self.emit(chunk, Topic::NodeIntrospection, v);
                    self.nodes[i].introspected = true;
                }
                let cpu = self.rng.random_range(0.5..35.0);
                let mem = self.rng.random_range(60.0..400.0);
                let ops = self.rng.random_range(0..12);
                let jitter = self.rng.random_range(-2 * SECOND..2 * SECOND);
                let n = &mut self.nodes[i];
                n.sequence += 1;
                let payload = json!({
                    "node_id": n.node_id, "node_type": n.node_type, "node_version": n.version,
                    "uptime_seconds": round3((at - n.started_us) as f64 / 1e6), "active_operations_count": ops,
                    "memory_usage_mb": round3(mem), "cpu_usage_percent": round3(cpu), "sequence_number": n.sequence,
                    "contract_hash": n.contract_hash,
                });
                n.next_heartbeat_us += 60 * SECOND + jitter;
                let (node_id, source) = (n.node_id.clone(), n.node_name.clone());
                let (v, _) = self.event(Topic::NodeHeartbeat, at, &node_id, None, &source, payload);
                self.emit(chunk, Topic::NodeHeartbeat, v);
            }
        }
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn rfc3339(us: i64) -> String {
    DateTime::from_timestamp_micros(us)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn random_uuid(rng: &mut ChaCha8Rng) -> String {
    uuid::Builder::from_random_bytes(rng.random())
        .into_uuid()
        .hyphenated()
        .to_string()
}

/// A UUIDv7 at a simulated time, its random bits from the seeded stream.
fn event_uuid(rng: &mut ChaCha8Rng, at_us: i64) -> String {
    let random: [u8; 10] = rng.random();
    uuid::Builder::from_unix_timestamp_millis((at_us / 1000).max(0) as u64, &random)
        .into_uuid()
        .hyphenated()
        .to_string()
}

fn hex(rng: &mut ChaCha8Rng, digits: usize) -> String {
    (0..digits)
        .map(|_| char::from_digit(rng.random_range(0..16), 16).unwrap())
        .collect()
}

fn camel(s: &str) -> String {
    s.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut c = w.chars();
            let first = c.next().unwrap().to_ascii_uppercase();
            let rest: String = if w.chars().all(|c| c.is_ascii_uppercase()) {
                c.as_str().to_ascii_lowercase()
            } else {
                c.as_str().to_string()
            };
            format!("{first}{rest}")
        })
        .collect()
}

fn snake(s: &str) -> String {
    s.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| w.to_ascii_lowercase())
        .collect::<Vec<_>>()
        .join("_")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(seed: u64) -> WorkloadConfig {
        WorkloadConfig {
            generations: 60,
            seed,
            start: "2026-11-01T00:00:00Z".parse().unwrap(),
            nodes: 12,
            rate_per_minute: 30.0,
            late_fraction: 0.02,
            duplicate_fraction: 0.01,
        }
    }

    fn all(seed: u64) -> Vec<(Topic, String)> {
        let mut w = Workload::new(config(seed));
        let mut out = vec![];
        while w.remaining() > 0 {
            for (t, lines) in w.next_chunk(25) {
                out.extend(lines.into_iter().map(|l| (t, l)));
            }
        }
        out
    }

    #[test]
    fn a_seed_gives_the_same_events_and_another_seed_does_not() {
        assert_eq!(all(7), all(7));
        assert_ne!(all(7), all(8));
    }

    #[test]
    fn every_topic_but_dead_letter_is_exercised_and_every_line_decodes() {
        let events = all(3);
        for topic in Topic::ALL {
            let n = events.iter().filter(|(t, _)| *t == topic).count();
            if topic == Topic::DeadLetter {
                assert_eq!(n, 0);
            } else if !matches!(topic, Topic::PatternStored | Topic::PatternStorageRequested) {
                assert!(n > 0, "{topic} has no events");
            }
        }
        for (topic, line) in &events {
            let mut d = omnistream_connectors::EventDecoder::new(*topic, Default::default());
            d.push_line(line.as_bytes())
                .unwrap_or_else(|r| panic!("{topic}: {r:?}\n{line}"));
        }
    }

    #[test]
    fn names_are_onex_style() {
        assert_eq!(camel("PostgreSQL writer"), "PostgreSQLWriter");
        assert_eq!(camel("effect"), "Effect");
        assert_eq!(snake("ETL pipeline"), "etl_pipeline");
    }
}
