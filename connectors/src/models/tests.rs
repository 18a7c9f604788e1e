//! The providers against a real HTTP server on loopback that answers what each test scripts:
//! success in both wire formats, 429, 500, garbage, slow answers, refusals.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;

/// What the server does with the next request.
#[derive(Clone)]
enum Reply {
    Json(u16, String),
    WithHeader(u16, &'static str, &'static str, String),
    Garbage,
    Slow(Duration),
}

/// A request as the server saw it.
#[derive(Debug, Clone)]
struct Seen {
    head: String,
    body: serde_json::Value,
}

struct Server {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

/// Serve `script` in order; after it runs out, answer 500.
async fn serve(script: Vec<Reply>) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let script = Arc::new(Mutex::new(VecDeque::from(script)));
    let seen2 = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let seen = seen2.clone();
            let script = script.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let (head, body) = loop {
                    let n = socket.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..end]).to_string();
                        let length: usize = head
                            .lines()
                            .find_map(|l| {
                                let (k, v) = l.split_once(':')?;
                                k.eq_ignore_ascii_case("content-length")
                                    .then(|| v.trim().parse().ok())?
                            })
                            .unwrap_or(0);
                        while buf.len() < end + 4 + length {
                            let n = socket.read(&mut chunk).await.unwrap_or(0);
                            if n == 0 {
                                return;
                            }
                            buf.extend_from_slice(&chunk[..n]);
                        }
                        break (head, buf[end + 4..end + 4 + length].to_vec());
                    }
                };
                seen.lock().unwrap().push(Seen {
                    head,
                    body: serde_json::from_slice(&body).unwrap_or_default(),
                });
                let reply = script
                    .lock()
                    .unwrap()
                    .pop_front()
                    .unwrap_or(Reply::Json(500, "{\"error\":\"script ran out\"}".into()));
                let (status, extra, body) = match reply {
                    Reply::Json(s, b) => (s, String::new(), b),
                    Reply::WithHeader(s, k, v, b) => (s, format!("{k}: {v}\r\n"), b),
                    Reply::Garbage => (200, String::new(), "<html>\u{0}\u{1}not json".into()),
                    Reply::Slow(d) => {
                        tokio::time::sleep(d).await;
                        (200, String::new(), openai_ok("late", 1, 1))
                    }
                };
                let response = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n{extra}\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    Server { url, seen }
}

fn openai_ok(text: &str, prompt: i64, completion: i64) -> String {
    serde_json::json!({
        "id": "x", "object": "chat.completion", "model": "qwen-test",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
    })
    .to_string()
}

fn config(url: &str, format: WireFormat) -> ProviderConfig {
    let mut c = ProviderConfig::new("test", format, url);
    c.timeout = Duration::from_secs(5);
    c.backoff_initial = Duration::from_millis(1);
    c.backoff_max = Duration::from_millis(5);
    c
}

fn request() -> ChatRequest {
    ChatRequest {
        model: "qwen-test".into(),
        system: Some("be brief".into()),
        messages: vec![ChatMessage::user("hello")],
        max_tokens: 64,
        temperature: 0.0,
    }
}

async fn call(provider: &HttpProvider) -> (Result<Completion, CallError>, Vec<Attempt>) {
    let mut attempts = Vec::new();
    let result = provider
        .chat(&request(), |a| attempts.push(a.clone()))
        .await;
    (result, attempts)
}

#[tokio::test]
async fn openai_chat_sends_the_wire_format_and_reads_tokens() {
    let server = serve(vec![Reply::Json(200, openai_ok("hi there", 12, 3))]).await;
    let mut c = config(&server.url, WireFormat::OpenAi);
    c.api_key = Some("sk-test".into());
    let provider = HttpProvider::new(c).unwrap();
    let (result, attempts) = call(&provider).await;
    let completion = result.unwrap();
    assert_eq!(completion.text, "hi there");
    assert_eq!(completion.input_tokens, Some(12));
    assert_eq!(completion.output_tokens, Some(3));
    assert_eq!(completion.finish_reason.as_deref(), Some("stop"));
    assert_eq!(completion.response_model.as_deref(), Some("qwen-test"));
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].http_status, Some(200));
    let seen = server.seen.lock().unwrap()[0].clone();
    assert!(
        seen.head.starts_with("POST /v1/chat/completions "),
        "{}",
        seen.head
    );
    assert!(
        seen.head
            .to_lowercase()
            .contains("authorization: bearer sk-test")
    );
    assert_eq!(seen.body["messages"][0]["role"], "system");
    assert_eq!(seen.body["messages"][1]["content"], "hello");
    assert_eq!(seen.body["max_tokens"], 64);
}

#[tokio::test]
async fn anthropic_messages_send_headers_and_join_text_blocks() {
    let body = serde_json::json!({
        "id": "msg", "type": "message", "role": "assistant", "model": "claude-test",
        "content": [{"type": "text", "text": "part one, "}, {"type": "text", "text": "part two"}],
        "stop_reason": "end_turn", "usage": {"input_tokens": 20, "output_tokens": 7}
    })
    .to_string();
    let server = serve(vec![Reply::Json(200, body)]).await;
    let mut c = config(&server.url, WireFormat::Anthropic);
    c.api_key = Some("ak-test".into());
    let provider = HttpProvider::new(c).unwrap();
    let (result, _) = call(&provider).await;
    let completion = result.unwrap();
    assert_eq!(completion.text, "part one, part two");
    assert_eq!(completion.input_tokens, Some(20));
    assert_eq!(completion.finish_reason.as_deref(), Some("end_turn"));
    let seen = server.seen.lock().unwrap()[0].clone();
    assert!(seen.head.starts_with("POST /v1/messages "), "{}", seen.head);
    let head = seen.head.to_lowercase();
    assert!(head.contains("x-api-key: ak-test"), "{head}");
    assert!(head.contains("anthropic-version: 2023-06-01"), "{head}");
    assert_eq!(seen.body["system"], "be brief");
    assert_eq!(seen.body["messages"][0]["role"], "user");
}

#[tokio::test]
async fn rate_limits_server_errors_and_garbage_are_retried_and_every_attempt_reported() {
    let server = serve(vec![
        Reply::WithHeader(429, "retry-after", "0", "{}".into()),
        Reply::Json(503, "{\"error\":\"overloaded\"}".into()),
        Reply::Garbage,
        Reply::Json(200, openai_ok("finally", 5, 2)),
    ])
    .await;
    let provider = HttpProvider::new(config(&server.url, WireFormat::OpenAi)).unwrap();
    let (result, attempts) = call(&provider).await;
    assert_eq!(result.unwrap().text, "finally");
    let kinds: Vec<_> = attempts
        .iter()
        .map(|a| a.outcome.as_ref().err().map(|e| e.error_type()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            Some("rate_limited"),
            Some("server_error"),
            Some("malformed_response"),
            None
        ]
    );
    assert_eq!(
        attempts.iter().map(|a| a.attempt).collect::<Vec<_>>(),
        vec![1, 2, 3, 4]
    );
    assert_eq!(attempts[0].http_status, Some(429));
    assert_eq!(attempts[1].http_status, Some(503));
}

#[tokio::test]
async fn a_slow_server_times_out_and_retries_stop_at_the_limit() {
    let server = serve(vec![Reply::Slow(Duration::from_secs(2)); 3]).await;
    let mut c = config(&server.url, WireFormat::OpenAi);
    c.timeout = Duration::from_millis(150);
    c.max_retries = 2;
    let provider = HttpProvider::new(c).unwrap();
    let (result, attempts) = call(&provider).await;
    assert!(matches!(result, Err(CallError::Timeout(_))), "{result:?}");
    assert_eq!(attempts.len(), 3);
    assert!(attempts.iter().all(|a| a.latency < Duration::from_secs(1)));
}

#[tokio::test]
async fn a_refused_request_is_not_retried() {
    let server = serve(vec![Reply::Json(401, "{\"error\":\"bad key\"}".into())]).await;
    let provider = HttpProvider::new(config(&server.url, WireFormat::OpenAi)).unwrap();
    let (result, attempts) = call(&provider).await;
    let err = result.unwrap_err();
    assert_eq!(err.error_type(), "client_error");
    assert!(err.to_string().contains("bad key"), "{err}");
    assert_eq!(attempts.len(), 1);
    assert_eq!(server.seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn an_open_circuit_refuses_calls_without_touching_the_network() {
    let server = serve(vec![]).await; // 500 for everything
    let mut c = config(&server.url, WireFormat::OpenAi);
    c.max_retries = 0;
    c.breaker = BreakerConfig {
        failures: 2,
        window: Duration::from_secs(60),
        cooldown: Duration::from_secs(60),
    };
    let provider = HttpProvider::new(c).unwrap();
    for _ in 0..2 {
        let (result, _) = call(&provider).await;
        assert_eq!(result.unwrap_err().error_type(), "server_error");
    }
    let (result, attempts) = call(&provider).await;
    assert_eq!(result.unwrap_err().error_type(), "circuit_open");
    assert_eq!(attempts[0].http_status, None);
    assert_eq!(server.seen.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn a_dead_endpoint_is_a_transport_error() {
    // Bind then drop: nothing listens on this port.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut c = config(&format!("http://127.0.0.1:{port}/v1"), WireFormat::OpenAi);
    c.max_retries = 1;
    let provider = HttpProvider::new(c).unwrap();
    let (result, attempts) = call(&provider).await;
    assert_eq!(result.unwrap_err().error_type(), "transport_error");
    assert_eq!(attempts.len(), 2);
}

/// A 429 with `Retry-After: retry_after`, then an answer: how long the call took, and how many
/// attempts it made.
async fn after_a_rate_limit(retry_after: &'static str, backoff_max: Duration) -> (Duration, usize) {
    let server = serve(vec![
        Reply::WithHeader(429, "retry-after", retry_after, "{}".into()),
        Reply::Json(200, openai_ok("after the wait", 5, 2)),
    ])
    .await;
    let mut c = config(&server.url, WireFormat::OpenAi);
    c.backoff_max = backoff_max;
    let provider = HttpProvider::new(c).unwrap();
    let started = Instant::now();
    let (result, attempts) = call(&provider).await;
    let waited = started.elapsed();
    assert_eq!(result.unwrap().text, "after the wait");
    (waited, attempts.len())
}

#[tokio::test]
async fn retry_after_is_waited_for_and_capped_by_the_backoff_limit() {
    // Retry-After: 1 (second), the backoff would be 1-5 ms: the second attempt waits the second.
    let (waited, attempts) = after_a_rate_limit("1", Duration::from_secs(2)).await;
    assert_eq!(attempts, 2);
    assert!(waited >= Duration::from_secs(1), "waited only {waited:?}");
    assert!(waited < Duration::from_secs(2), "waited {waited:?}");
    // A Retry-After longer than backoff_max is cut to it (a server cannot stall the job).
    let (waited, attempts) = after_a_rate_limit("3600", Duration::from_millis(200)).await;
    assert_eq!(attempts, 2);
    assert!(
        waited >= Duration::from_millis(200) && waited < Duration::from_secs(2),
        "waited {waited:?}"
    );
}
