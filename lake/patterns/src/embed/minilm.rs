//! `minilm`: all-MiniLM-L6-v2 in-process, as sentence-transformers runs it: BERT over the
//! WordPiece tokens (at most 256), the mean of every token's last hidden state, L2-normalised.
//! candle's BERT and Hugging Face's tokenizers keep it pure Rust: no Python, no ONNX runtime,
//! nothing fetched at run time.

use std::path::Path;
use std::sync::Arc;

use candle_core::{Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config, DTYPE};
use futures::future::BoxFuture;
use tokenizers::{Tokenizer, TruncationParams};

use super::{Embedder, normalise};
use crate::error::{PatternsError, Result};

/// sentence-transformers' `max_seq_length` for this model: longer texts are cut, as there.
const MAX_TOKENS: usize = 256;

const FILES: [&str; 3] = ["model.safetensors", "config.json", "tokenizer.json"];

/// The model, loaded once and shared by the blocking tasks that run it.
pub struct MiniLmEmbedder {
    model: Arc<Model>,
}

struct Model {
    bert: BertModel,
    tokenizer: Tokenizer,
    dim: usize,
}

fn fail(detail: impl std::fmt::Display) -> PatternsError {
    PatternsError::Embed {
        embedder: "minilm".into(),
        detail: detail.to_string(),
    }
}

impl MiniLmEmbedder {
    /// Loads the model from `dir` (model.safetensors, config.json, tokenizer.json).
    pub fn load(dir: &Path) -> Result<Self> {
        for name in FILES {
            let path = dir.join(name);
            if !path.is_file() {
                return Err(fail(format!(
                    "{} is missing: the folder needs {} (scripts/setup.sh fetches them; set \
                     patterns.embedder_model_dir to another folder)",
                    path.display(),
                    FILES.join(", ")
                )));
            }
        }
        let read = |name: &str| {
            std::fs::read(dir.join(name))
                .map_err(|e| fail(format!("reading {}: {e}", dir.join(name).display())))
        };
        let config: Config = serde_json::from_slice(&read("config.json")?)
            .map_err(|e| fail(format!("{}: {e}", dir.join("config.json").display())))?;
        let weights =
            VarBuilder::from_buffered_safetensors(read("model.safetensors")?, DTYPE, &Device::Cpu)
                .map_err(fail)?;
        let bert = BertModel::load(weights, &config).map_err(fail)?;
        let mut tokenizer = Tokenizer::from_file(dir.join("tokenizer.json")).map_err(fail)?;
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: MAX_TOKENS,
                ..Default::default()
            }))
            .map_err(fail)?;
        Ok(MiniLmEmbedder {
            model: Arc::new(Model {
                bert,
                tokenizer,
                dim: config.hidden_size,
            }),
        })
    }

    /// The token ids the model sees for `text` (with `[CLS]` and `[SEP]`).
    pub fn tokens(&self, text: &str) -> Result<Vec<u32>> {
        self.model.tokens(text)
    }

    /// One text's vector, computed on the calling thread.
    pub fn vector(&self, text: &str) -> Result<Vec<f32>> {
        self.model.vector(text)
    }
}

impl Model {
    fn tokens(&self, text: &str) -> Result<Vec<u32>> {
        let encoding = self.tokenizer.encode(text, true).map_err(fail)?;
        Ok(encoding.get_ids().to_vec())
    }

    /// One text at a time, so no padding enters the mean (the reference pools every token).
    fn vector(&self, text: &str) -> Result<Vec<f32>> {
        let ids = self.tokens(text)?;
        let ids = Tensor::new(ids.as_slice(), &Device::Cpu)
            .and_then(|t| t.unsqueeze(0))
            .map_err(fail)?;
        let types = ids.zeros_like().map_err(fail)?;
        let hidden = self.bert.forward(&ids, &types, None).map_err(fail)?;
        let mut v = hidden
            .mean(1)
            .and_then(|m| m.squeeze(0))
            .and_then(|m| m.to_vec1::<f32>())
            .map_err(fail)?;
        normalise(&mut v);
        Ok(v)
    }
}

impl Embedder for MiniLmEmbedder {
    fn name(&self) -> &str {
        "minilm"
    }

    fn dim(&self) -> usize {
        self.model.dim
    }

    /// On a blocking thread: a forward pass is milliseconds of CPU, too long for the runtime.
    fn embed<'a>(&'a self, texts: &'a [String]) -> BoxFuture<'a, Result<Vec<Vec<f32>>>> {
        let model = Arc::clone(&self.model);
        let texts = texts.to_vec();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || texts.iter().map(|t| model.vector(t)).collect())
                .await
                .map_err(|e| PatternsError::Internal(format!("the minilm task failed: {e}")))?
        })
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;
    use crate::embed::{cosine, default_models_dir};

    #[derive(Deserialize)]
    struct Reference {
        items: Vec<RefItem>,
    }

    #[derive(Deserialize)]
    struct RefItem {
        text: String,
        tokens: Vec<u32>,
        embedding: Vec<f32>,
    }

    /// scripts/models/minilm_ref.json: an independent numpy forward pass over the same files.
    #[test]
    fn vectors_match_the_reference_forward_pass() {
        let dir = default_models_dir().join("all-MiniLM-L6-v2");
        assert!(
            dir.join("model.safetensors").is_file(),
            "{} is missing: scripts/setup.sh fetches it",
            dir.display()
        );
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../scripts/models/minilm_ref.json"
        );
        let reference: Reference = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        assert!(reference.items.len() >= 4);
        let e = MiniLmEmbedder::load(&dir).unwrap();
        assert_eq!(e.dim(), 384);
        let mut vectors = Vec::new();
        for item in &reference.items {
            assert_eq!(e.tokens(&item.text).unwrap(), item.tokens, "{}", item.text);
            let v = e.vector(&item.text).unwrap();
            let c = cosine(&v, &item.embedding);
            assert!(c >= 0.999, "cosine {c} for {:?}", item.text);
            vectors.push(v);
        }
        // Not all one vector: the texts differ, so must their embeddings.
        assert!(cosine(&vectors[0], &vectors[3]) < 0.9);
    }

    #[test]
    fn long_texts_are_cut_at_256_tokens() {
        let dir = default_models_dir().join("all-MiniLM-L6-v2");
        let e = MiniLmEmbedder::load(&dir).unwrap();
        let text = "checksum ".repeat(1000);
        assert_eq!(e.tokens(&text).unwrap().len(), MAX_TOKENS);
        assert_eq!(e.vector(&text).unwrap().len(), 384);
    }
}
