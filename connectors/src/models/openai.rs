//! The OpenAI-compatible chat completions wire format.

use serde::Deserialize;
use serde_json::{Value, json};

use super::{CallError, ChatRequest, Completion, Role, parse_json};

pub fn request_body(request: &ChatRequest) -> Value {
    let mut messages = Vec::with_capacity(request.messages.len() + 1);
    if let Some(system) = &request.system {
        messages.push(json!({"role": "system", "content": system}));
    }
    for m in &request.messages {
        let role = match m.role {
            Role::User => "user",
            Role::Assistant => "assistant",
        };
        messages.push(json!({"role": role, "content": m.content}));
    }
    json!({
        "model": request.model,
        "messages": messages,
        "max_tokens": request.max_tokens,
        "temperature": request.temperature,
        "stream": false,
    })
}

#[derive(Deserialize)]
struct Response {
    model: Option<String>,
    choices: Vec<Choice>,
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct Choice {
    message: Option<Message>,
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct Message {
    content: Option<String>,
}

#[derive(Deserialize)]
struct Usage {
    prompt_tokens: Option<i64>,
    completion_tokens: Option<i64>,
}

pub fn parse_response(bytes: &[u8]) -> Result<Completion, CallError> {
    let r: Response = parse_json(bytes)?;
    let choice = r
        .choices
        .into_iter()
        .next()
        .ok_or_else(|| CallError::Malformed("no choices in the response".into()))?;
    Ok(Completion {
        text: choice.message.and_then(|m| m.content).unwrap_or_default(),
        response_model: r.model,
        input_tokens: r.usage.as_ref().and_then(|u| u.prompt_tokens),
        output_tokens: r.usage.as_ref().and_then(|u| u.completion_tokens),
        finish_reason: choice.finish_reason,
    })
}
