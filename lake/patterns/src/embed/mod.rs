//! Embedders: text to a fixed-size, L2-normalised vector. The table records which embedder and
//! dimension wrote it, so vectors of different embedders are never compared.
//!
//! - `hashing` (default): feature hashing, built in, deterministic;
//! - `minilm`: all-MiniLM-L6-v2 run in-process from a folder of safetensors;
//! - `openai:<model>`: any OpenAI-compatible `/v1/embeddings` endpoint.

mod hashing;
mod minilm;
mod openai;

use std::path::PathBuf;
use std::time::Duration;

use futures::future::BoxFuture;

pub use hashing::{DEFAULT_DIM, HashingEmbedder};
pub use minilm::MiniLmEmbedder;
pub use openai::OpenAiEmbedder;

use crate::error::{PatternsError, Result};

/// Turns texts into vectors of `dim()` floats, L2-normalised (cosine = dot product).
pub trait Embedder: Send + Sync {
    /// The name the table records (`hashing`, `minilm`, `openai:<model>`).
    fn name(&self) -> &str;
    fn dim(&self) -> usize;
    fn embed<'a>(&'a self, texts: &'a [String]) -> BoxFuture<'a, Result<Vec<Vec<f32>>>>;
}

/// What the embedders beyond `hashing` need: where the model is, or which endpoint serves it.
#[derive(Debug, Clone)]
pub struct EmbedderSettings {
    /// `minilm`: the folder with model.safetensors, config.json and tokenizer.json.
    pub model_dir: PathBuf,
    /// `openai:<model>`: the API's base URL, up to and including `/v1`.
    pub url: String,
    /// `openai:<model>`: sent as a bearer token when set.
    pub api_key: Option<String>,
    /// `openai:<model>`: the dimension the endpoint answers with (checked on every answer).
    pub dim: usize,
    /// `openai:<model>`: the limit of one request.
    pub timeout: Duration,
}

impl Default for EmbedderSettings {
    fn default() -> Self {
        EmbedderSettings {
            model_dir: default_models_dir().join("all-MiniLM-L6-v2"),
            url: "http://127.0.0.1:8080/v1".into(),
            api_key: None,
            dim: DEFAULT_DIM,
            timeout: Duration::from_secs(60),
        }
    }
}

/// Where `scripts/setup.sh` puts its models: `$OMNISTREAM_MODELS_DIR`, else
/// `/var/tmp/omnistream-models`.
pub fn default_models_dir() -> PathBuf {
    std::env::var_os("OMNISTREAM_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp/omnistream-models"))
}

/// The embedder of a configured name.
pub fn by_name(name: &str, settings: &EmbedderSettings) -> Result<Box<dyn Embedder>> {
    match name {
        "hashing" => Ok(Box::new(HashingEmbedder::default())),
        "minilm" => Ok(Box::new(MiniLmEmbedder::load(&settings.model_dir)?)),
        _ => match name.strip_prefix("openai:") {
            Some(model) if !model.is_empty() => Ok(Box::new(OpenAiEmbedder::new(model, settings)?)),
            _ => Err(PatternsError::Invalid(format!(
                "unknown embedder '{name}' (embedders: hashing, minilm, openai:<model>)"
            ))),
        },
    }
}

/// `embedder`'s vectors of `texts`, checked: one per text, each of the embedder's dimension.
pub async fn embed_checked(embedder: &dyn Embedder, texts: &[String]) -> Result<Vec<Vec<f32>>> {
    let vectors = embedder.embed(texts).await?;
    if vectors.len() != texts.len() || vectors.iter().any(|v| v.len() != embedder.dim()) {
        return Err(PatternsError::Embed {
            embedder: embedder.name().to_string(),
            detail: format!(
                "expected {} vectors of {} floats",
                texts.len(),
                embedder.dim()
            ),
        });
    }
    Ok(vectors)
}

/// Scale to unit length (a zero vector, from a text with no words, stays zero).
pub fn normalise(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

/// The dot product of two unit vectors: their cosine similarity.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_embedder_is_refused_with_the_known_ones() {
        let settings = EmbedderSettings::default();
        for name in ["bert", "openai:"] {
            let e = by_name(name, &settings).err().unwrap().to_string();
            assert!(
                e.contains(&format!("unknown embedder '{name}'")) && e.contains("minilm"),
                "{e}"
            );
        }
    }

    #[test]
    fn minilm_without_its_folder_says_what_is_missing() {
        let settings = EmbedderSettings {
            model_dir: PathBuf::from("/nonexistent/minilm"),
            ..Default::default()
        };
        let e = by_name("minilm", &settings).err().unwrap().to_string();
        assert!(
            e.contains("/nonexistent/minilm/model.safetensors") && e.contains("setup.sh"),
            "{e}"
        );
    }
}
