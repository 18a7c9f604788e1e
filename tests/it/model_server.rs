//! A model endpoint on loopback whose answers each test scripts (OpenAI wire format): the error
//! paths of the providers (429, 500, garbage, slow answers) and judges with known votes. The real
//! model server (scripts/models/xlc_server.py) is in `models.rs`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

/// What the server answers to one request.
pub(crate) enum Reply {
    /// 200 with this assistant text.
    Text(String),
    Status(u16),
    Garbage,
    Slow(Duration),
}

pub(crate) type Script = dyn Fn(usize, &Value) -> Reply + Send + Sync;

pub(crate) struct ScriptedServer {
    pub(crate) url: String,
    pub(crate) requests: Arc<Mutex<Vec<Value>>>,
}

impl ScriptedServer {
    /// Serve: `script(n, body)` decides the answer to the n-th request (from 0) with this body.
    pub(crate) fn start(script: impl Fn(usize, &Value) -> Reply + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/v1", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let script: Arc<Script> = Arc::new(script);
        let seen = requests.clone();
        let counter = Arc::new(AtomicUsize::new(0));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let (script, seen, counter) = (script.clone(), seen.clone(), counter.clone());
                std::thread::spawn(move || serve(stream, &*script, &seen, &counter));
            }
        });
        ScriptedServer { url, requests }
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

fn serve(stream: TcpStream, script: &Script, seen: &Mutex<Vec<Value>>, counter: &AtomicUsize) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        if line == "\r\n" {
            break;
        }
        if let Some((k, v)) = line.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            length = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let body: Value = serde_json::from_slice(&body).unwrap_or_default();
    seen.lock().unwrap().push(body.clone());
    let n = counter.fetch_add(1, Ordering::SeqCst);
    let (status, text) = match script(n, &body) {
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
