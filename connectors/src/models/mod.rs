//! Model providers over HTTP (decision 8): OpenAI-compatible chat completions and Anthropic
//! messages, with timeouts, retries with exponential backoff and jitter on 429, 5xx and transport
//! errors, and a circuit breaker per provider. Every HTTP attempt is reported to the caller as an
//! [`Attempt`], so each one can become a model-call event with its tokens, latency, status and cost.

pub mod anthropic;
pub mod breaker;
pub mod openai;
pub mod price;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

pub use breaker::{BreakerConfig, CircuitBreaker};
pub use price::{Price, PriceTable};

/// The wire format a provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WireFormat {
    /// `POST {base_url}/chat/completions` (OpenAI, vLLM, Ollama, llama.cpp, Gemini, GLM ...).
    #[serde(alias = "openai-compatible", alias = "openai_compatible")]
    OpenAi,
    /// `POST {base_url}/messages` (Anthropic).
    Anthropic,
}

impl WireFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            WireFormat::OpenAi => "openai",
            WireFormat::Anthropic => "anthropic",
        }
    }
}

/// One provider endpoint.
#[derive(Debug, Clone)]
pub struct ProviderConfig {
    /// Name used in events (`provider`) and in error messages.
    pub name: String,
    pub format: WireFormat,
    /// e.g. `https://api.openai.com/v1`, `http://127.0.0.1:8088/v1`, `https://api.anthropic.com/v1`.
    pub base_url: String,
    pub api_key: Option<String>,
    /// Whole-request timeout of one attempt.
    pub timeout: Duration,
    /// Attempts after the first one, on retryable failures.
    pub max_retries: u32,
    /// First backoff; doubled per attempt, capped at `backoff_max`, with jitter.
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    pub breaker: BreakerConfig,
}

impl ProviderConfig {
    pub fn new(name: impl Into<String>, format: WireFormat, base_url: impl Into<String>) -> Self {
        ProviderConfig {
            name: name.into(),
            format,
            base_url: base_url.into(),
            api_key: None,
            timeout: Duration::from_secs(120),
            max_retries: 3,
            backoff_initial: Duration::from_millis(500),
            backoff_max: Duration::from_secs(20),
            breaker: BreakerConfig::default(),
        }
    }
}

/// Who says a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Assistant,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: Role,
    pub content: String,
}

impl ChatMessage {
    pub fn user(content: impl Into<String>) -> Self {
        ChatMessage {
            role: Role::User,
            content: content.into(),
        }
    }
    pub fn assistant(content: impl Into<String>) -> Self {
        ChatMessage {
            role: Role::Assistant,
            content: content.into(),
        }
    }
}

/// A chat request, independent of the wire format.
#[derive(Debug, Clone)]
pub struct ChatRequest {
    pub model: String,
    pub system: Option<String>,
    pub messages: Vec<ChatMessage>,
    pub max_tokens: u32,
    pub temperature: f32,
}

/// What a model answered.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Completion {
    /// The text of the answer (may be empty: the caller's gates decide what that means).
    pub text: String,
    /// The model the provider says answered.
    pub response_model: Option<String>,
    pub input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    pub finish_reason: Option<String>,
}

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CallError {
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("rate limited (HTTP {status})")]
    RateLimited {
        status: u16,
        retry_after: Option<Duration>,
    },
    #[error("server error (HTTP {status}): {body}")]
    Server { status: u16, body: String },
    /// A 4xx other than 429: the request itself is wrong (bad key, unknown model); no retry helps.
    #[error("request refused (HTTP {status}): {body}")]
    Client { status: u16, body: String },
    /// The body is not the wire format's JSON.
    #[error("malformed response: {0}")]
    Malformed(String),
    #[error("connection failed: {0}")]
    Transport(String),
    #[error(
        "circuit open for provider '{provider}' after repeated failures; retry in {retry_in:?}"
    )]
    CircuitOpen {
        provider: String,
        retry_in: Duration,
    },
}

impl CallError {
    /// `error_type` of the model-call event.
    pub fn error_type(&self) -> &'static str {
        match self {
            CallError::Timeout(_) => "timeout",
            CallError::RateLimited { .. } => "rate_limited",
            CallError::Server { .. } => "server_error",
            CallError::Client { .. } => "client_error",
            CallError::Malformed(_) => "malformed_response",
            CallError::Transport(_) => "transport_error",
            CallError::CircuitOpen { .. } => "circuit_open",
        }
    }

    /// Whether another attempt may succeed.
    pub fn retryable(&self) -> bool {
        matches!(
            self,
            CallError::Timeout(_)
                | CallError::RateLimited { .. }
                | CallError::Server { .. }
                | CallError::Malformed(_)
                | CallError::Transport(_)
        )
    }

    pub fn http_status(&self) -> Option<u16> {
        match self {
            CallError::RateLimited { status, .. }
            | CallError::Server { status, .. }
            | CallError::Client { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// One HTTP attempt of a call, reported whether it succeeded or not.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// 1 for the first attempt.
    pub attempt: u32,
    pub latency: Duration,
    pub http_status: Option<u16>,
    pub outcome: Result<Completion, CallError>,
}

/// A provider endpoint with its HTTP client and circuit breaker. Cheap to share (`Arc`).
pub struct HttpProvider {
    config: ProviderConfig,
    client: reqwest::Client,
    breaker: Mutex<CircuitBreaker>,
}

impl std::fmt::Debug for HttpProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpProvider")
            .field("name", &self.config.name)
            .field("format", &self.config.format)
            .field("base_url", &self.config.base_url)
            .finish()
    }
}

impl HttpProvider {
    pub fn new(config: ProviderConfig) -> Result<Self, CallError> {
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("omnistream/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| CallError::Transport(e.to_string()))?;
        let breaker = Mutex::new(CircuitBreaker::new(config.breaker.clone()));
        Ok(HttpProvider {
            config,
            client,
            breaker,
        })
    }

    pub fn config(&self) -> &ProviderConfig {
        &self.config
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// Call the model, retrying what may succeed on another attempt. `on_attempt` sees every
    /// attempt, including those refused by an open circuit.
    pub async fn chat(
        &self,
        request: &ChatRequest,
        mut on_attempt: impl FnMut(&Attempt),
    ) -> Result<Completion, CallError> {
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let started = Instant::now();
            let admitted = self.breaker.lock().unwrap().admit(Instant::now());
            let (http_status, outcome) = match admitted {
                Err(retry_in) => (
                    None,
                    Err(CallError::CircuitOpen {
                        provider: self.config.name.clone(),
                        retry_in,
                    }),
                ),
                Ok(()) => self.once(request).await,
            };
            {
                let mut breaker = self.breaker.lock().unwrap();
                match &outcome {
                    Ok(_) => breaker.record_success(),
                    // The caller's fault (or an open circuit) says nothing about the provider's health.
                    Err(CallError::Client { .. } | CallError::CircuitOpen { .. }) => {}
                    Err(_) => breaker.record_failure(Instant::now()),
                }
            }
            let report = Attempt {
                attempt,
                latency: started.elapsed(),
                http_status,
                outcome: outcome.clone(),
            };
            on_attempt(&report);
            match outcome {
                Ok(c) => return Ok(c),
                Err(e) if e.retryable() && attempt <= self.config.max_retries => {
                    let delay = self.backoff(attempt, &e);
                    tracing::debug!(provider = %self.config.name, attempt, error = %e, ?delay, "model call failed; retrying");
                    tokio::time::sleep(delay).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Exponential backoff with jitter (half to full of the step), or what `Retry-After` asks,
    /// both capped at `backoff_max`.
    fn backoff(&self, attempt: u32, error: &CallError) -> Duration {
        if let CallError::RateLimited {
            retry_after: Some(after),
            ..
        } = error
        {
            return (*after).min(self.config.backoff_max);
        }
        let step = self
            .config
            .backoff_initial
            .saturating_mul(1 << (attempt - 1).min(16))
            .min(self.config.backoff_max);
        step.mul_f64(rand::random_range(0.5..=1.0))
    }

    async fn once(&self, request: &ChatRequest) -> (Option<u16>, Result<Completion, CallError>) {
        let (url, body) = match self.config.format {
            WireFormat::OpenAi => (
                format!(
                    "{}/chat/completions",
                    self.config.base_url.trim_end_matches('/')
                ),
                openai::request_body(request),
            ),
            WireFormat::Anthropic => (
                format!("{}/messages", self.config.base_url.trim_end_matches('/')),
                anthropic::request_body(request),
            ),
        };
        let mut builder = self.client.post(&url).json(&body);
        builder = match (self.config.format, &self.config.api_key) {
            (WireFormat::OpenAi, Some(key)) => builder.bearer_auth(key),
            (WireFormat::Anthropic, key) => {
                let b = builder.header("anthropic-version", anthropic::API_VERSION);
                match key {
                    Some(key) => b.header("x-api-key", key),
                    None => b,
                }
            }
            (WireFormat::OpenAi, None) => builder,
        };
        let response = match builder.send().await {
            Ok(r) => r,
            Err(e) => return (None, Err(transport_error(e, self.config.timeout))),
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(Duration::from_secs_f64);
        let bytes = match response.bytes().await {
            Ok(b) => b,
            Err(e) => return (Some(status), Err(transport_error(e, self.config.timeout))),
        };
        let snippet = || {
            let text = String::from_utf8_lossy(&bytes);
            text.chars().take(300).collect::<String>()
        };
        let outcome = match status {
            200..=299 => match self.config.format {
                WireFormat::OpenAi => openai::parse_response(&bytes),
                WireFormat::Anthropic => anthropic::parse_response(&bytes),
            },
            429 => Err(CallError::RateLimited {
                status,
                retry_after,
            }),
            500..=599 => Err(CallError::Server {
                status,
                body: snippet(),
            }),
            408 => Err(CallError::Timeout(self.config.timeout)),
            _ => Err(CallError::Client {
                status,
                body: snippet(),
            }),
        };
        (Some(status), outcome)
    }
}

fn transport_error(e: reqwest::Error, timeout: Duration) -> CallError {
    if e.is_timeout() {
        CallError::Timeout(timeout)
    } else if e.is_decode() || e.is_body() {
        CallError::Malformed(e.to_string())
    } else {
        // The source chain says why (connection refused, reset, DNS ...).
        let mut text = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            text.push_str(": ");
            text.push_str(&s.to_string());
            source = s.source();
        }
        CallError::Transport(text)
    }
}

/// Parse a JSON body, naming what is wrong without echoing all of it.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, CallError> {
    serde_json::from_slice(bytes).map_err(|e| {
        let head: String = String::from_utf8_lossy(bytes).chars().take(120).collect();
        CallError::Malformed(format!("{e} (body starts with {head:?})"))
    })
}

#[cfg(test)]
mod tests;
