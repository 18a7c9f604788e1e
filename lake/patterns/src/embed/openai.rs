//! `openai:<model>`: an OpenAI-compatible `/v1/embeddings` endpoint (OpenAI, llama.cpp's server,
//! vLLM, Ollama). Texts go in batches; every answer is checked for count and dimension.

use std::time::Duration;

use futures::future::BoxFuture;
use serde::Deserialize;

use super::{Embedder, EmbedderSettings, normalise};
use crate::error::{PatternsError, Result};

/// Texts per request: well under the input limits of the common servers.
const BATCH: usize = 64;

pub struct OpenAiEmbedder {
    name: String,
    model: String,
    endpoint: String,
    api_key: Option<String>,
    dim: usize,
    client: reqwest::Client,
}

#[derive(Deserialize)]
struct Answer {
    data: Vec<Item>,
}

#[derive(Deserialize)]
struct Item {
    index: usize,
    embedding: Vec<f32>,
}

impl OpenAiEmbedder {
    pub fn new(model: &str, settings: &EmbedderSettings) -> Result<Self> {
        let name = format!("openai:{model}");
        let url = settings.url.trim_end_matches('/');
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(PatternsError::Invalid(format!(
                "patterns.embedder_url '{url}' is not an http(s) URL"
            )));
        }
        let client = reqwest::Client::builder()
            .timeout(settings.timeout.max(Duration::from_secs(1)))
            .build()
            .map_err(|e| fail(&name, format!("building the HTTP client: {e}")))?;
        Ok(OpenAiEmbedder {
            endpoint: format!("{url}/embeddings"),
            name,
            model: model.into(),
            api_key: settings.api_key.clone(),
            dim: settings.dim,
            client,
        })
    }

    async fn batch(&self, texts: &[String]) -> Result<Vec<Vec<f32>>> {
        let mut request = self
            .client
            .post(&self.endpoint)
            .json(&serde_json::json!({ "model": self.model, "input": texts }));
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key);
        }
        let response = request
            .send()
            .await
            .map_err(|e| self.fail(format!("POST {}: {e}", self.endpoint)))?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            let body: String = body.chars().take(300).collect();
            return Err(self.fail(format!("POST {} answered {status}: {body}", self.endpoint)));
        }
        let answer: Answer = response
            .json()
            .await
            .map_err(|e| self.fail(format!("the answer is not an embeddings list: {e}")))?;
        self.vectors(answer, texts.len())
    }

    /// The answer's vectors in input order, each checked and normalised.
    fn vectors(&self, answer: Answer, expected: usize) -> Result<Vec<Vec<f32>>> {
        let mut items = answer.data;
        items.sort_by_key(|i| i.index);
        if items.len() != expected || items.iter().enumerate().any(|(i, it)| it.index != i) {
            return Err(self.fail(format!(
                "asked for {expected} vectors, got {} (indexes must be 0..{expected})",
                items.len()
            )));
        }
        items
            .into_iter()
            .map(|mut item| {
                if item.embedding.len() != self.dim {
                    return Err(self.fail(format!(
                        "the endpoint answers with {} dimensions, not the configured {}: set \
                         patterns.embedder_dim = {}",
                        item.embedding.len(),
                        self.dim,
                        item.embedding.len()
                    )));
                }
                normalise(&mut item.embedding);
                Ok(item.embedding)
            })
            .collect()
    }

    fn fail(&self, detail: String) -> PatternsError {
        fail(&self.name, detail)
    }
}

fn fail(name: &str, detail: String) -> PatternsError {
    PatternsError::Embed {
        embedder: name.into(),
        detail,
    }
}

impl Embedder for OpenAiEmbedder {
    fn name(&self) -> &str {
        &self.name
    }

    fn dim(&self) -> usize {
        self.dim
    }

    fn embed<'a>(&'a self, texts: &'a [String]) -> BoxFuture<'a, Result<Vec<Vec<f32>>>> {
        Box::pin(async move {
            let mut out = Vec::with_capacity(texts.len());
            for chunk in texts.chunks(BATCH) {
                out.extend(self.batch(chunk).await?);
            }
            Ok(out)
        })
    }
}
