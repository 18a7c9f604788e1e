//! A model endpoint on loopback whose answers each test scripts (OpenAI wire format): the error
//! paths of the providers (429, 500, garbage, slow answers) and judges with known votes. The real
//! model server (scripts/models/xlc_server.py) is in `models.rs`; this one can also stand in front
//! of it and record each exchange, as the oracle of what omnistream says the model did.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// What the server answers to one request.
pub(crate) enum Reply {
    /// 200 with this assistant text.
    Text(String),
    Status(u16),
    Garbage,
    Slow(Duration),
    /// What the server at this address (`host:port`) answers to the same request, recorded.
    Forward(String),
}

/// One request forwarded to a real server, its answer, and how long the server took.
#[derive(Debug, Clone)]
pub(crate) struct Exchange {
    pub(crate) request: Value,
    pub(crate) response: Value,
    pub(crate) elapsed: Duration,
}

pub(crate) type Script = dyn Fn(usize, &Value) -> Reply + Send + Sync;

pub(crate) struct ScriptedServer {
    pub(crate) url: String,
    pub(crate) requests: Arc<Mutex<Vec<Value>>>,
    pub(crate) exchanges: Arc<Mutex<Vec<Exchange>>>,
}

impl ScriptedServer {
    /// Serve: `script(n, body)` decides the answer to the n-th request (from 0) with this body.
    pub(crate) fn start(script: impl Fn(usize, &Value) -> Reply + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/v1", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let script: Arc<Script> = Arc::new(script);
        let exchanges = Arc::new(Mutex::new(Vec::new()));
        let state = Arc::new(State {
            script,
            seen: requests.clone(),
            exchanges: exchanges.clone(),
            counter: AtomicUsize::new(0),
        });
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let state = state.clone();
                std::thread::spawn(move || serve(stream, &state));
            }
        });
        ScriptedServer {
            url,
            requests,
            exchanges,
        }
    }

    /// Requests seen for this model.
    pub(crate) fn calls_for(&self, model: &str) -> usize {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|b| b["model"] == model)
            .count()
    }
}

struct State {
    script: Arc<Script>,
    seen: Arc<Mutex<Vec<Value>>>,
    exchanges: Arc<Mutex<Vec<Exchange>>>,
    counter: AtomicUsize,
}

/// The request line's path and the body of one HTTP/1.1 request.
fn read_request(reader: &mut impl BufRead) -> Option<(String, Vec<u8>)> {
    let mut path = String::new();
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return None;
        }
        if line == "\r\n" {
            break;
        }
        if path.is_empty() {
            path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
        } else if let Some((k, v)) = line.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            length = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some((path, body))
}

/// POST `body` to `path` on `upstream` (`host:port`); its status and body.
fn forward(upstream: &str, path: &str, body: &[u8]) -> (u16, String) {
    let mut stream = TcpStream::connect(upstream).unwrap();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nhost: {upstream}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    stream.write_all(body).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (head, text) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(502);
    (status, text.to_string())
}

fn serve(stream: TcpStream, state: &State) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let Some((path, raw)) = read_request(&mut reader) else {
        return;
    };
    let body: Value = serde_json::from_slice(&raw).unwrap_or_default();
    state.seen.lock().unwrap().push(body.clone());
    let n = state.counter.fetch_add(1, Ordering::SeqCst);
    let (status, text) = match (state.script)(n, &body) {
        Reply::Text(t) => (200, completion(&body, &t)),
        Reply::Status(s) => (
            s,
            json!({"error": {"message": "scripted failure"}}).to_string(),
        ),
        Reply::Garbage => (200, "<html>\u{1}definitely not json".to_string()),
        Reply::Slow(d) => {
            std::thread::sleep(d);
            (200, completion(&body, "late"))
        }
        Reply::Forward(upstream) => {
            let started = Instant::now();
            let (status, text) = forward(&upstream, &path, &raw);
            state.exchanges.lock().unwrap().push(Exchange {
                request: body,
                response: serde_json::from_str(&text).unwrap_or_default(),
                elapsed: started.elapsed(),
            });
            (status, text)
        }
    };
    let mut stream = stream;
    let _ = write!(
        stream,
        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
        text.len()
    );
    let _ = stream.flush();
}

fn completion(request: &Value, text: &str) -> String {
    json!({
        "id": "scripted", "object": "chat.completion", "model": request["model"],
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 100, "completion_tokens": text.len() / 4, "total_tokens": 100 + text.len() / 4}
    })
    .to_string()
}

/// A judgement as a judge model writes it.
pub(crate) fn judgement(score: u32, recommendation: &str) -> String {
    format!(
        "Here is my review:\n{}",
        json!({"alignment_score": score, "correct_node_type": true,
               "missing_requirements": if recommendation == "PASS" { json!([]) } else { json!(["connection pooling"]) },
               "recommendation": recommendation})
    )
}
