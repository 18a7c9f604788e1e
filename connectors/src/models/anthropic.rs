//! The Anthropic messages wire format.

use serde::Deserialize;
use serde_json::{Value, json};

use super::{CallError, ChatRequest, Completion, Role, parse_json};

/// The `anthropic-version` header value.
pub const API_VERSION: &str = "2023-06-01";

pub fn request_body(request: &ChatRequest) -> Value {
    let messages: Vec<Value> = request
        .messages
        .iter()
        .map(|m| {
            let role = match m.role {
                Role::User => "user",
                Role::Assistant => "assistant",
            };
            json!({"role": role, "content": m.content})
        })
        .collect();
    let mut body = json!({
        "model": request.model,
        "max_tokens": request.max_tokens,
        "temperature": request.temperature,
        "messages": messages,
    });
    if let Some(system) = &request.system {
        body["system"] = json!(system);
    }
    body
}

#[derive(Deserialize)]
struct Response {
    model: Option<String>,
    content: Vec<Block>,
    stop_reason: Option<String>,
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct Block {
    #[serde(rename = "type")]
    kind: String,
    text: Option<String>,
}

#[derive(Deserialize)]
struct Usage {
    input_tokens: Option<i64>,
    output_tokens: Option<i64>,
}

pub fn parse_response(bytes: &[u8]) -> Result<Completion, CallError> {
    let r: Response = parse_json(bytes)?;
    let text = r
        .content
        .iter()
        .filter(|b| b.kind == "text")
        .filter_map(|b| b.text.as_deref())
        .collect::<Vec<_>>()
        .join("");
    Ok(Completion {
        text,
        response_model: r.model,
        input_tokens: r.usage.as_ref().and_then(|u| u.input_tokens),
        output_tokens: r.usage.as_ref().and_then(|u| u.output_tokens),
        finish_reason: r.stop_reason,
    })
}
