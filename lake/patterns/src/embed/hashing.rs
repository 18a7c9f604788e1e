//! The built-in embedder: feature hashing, no model, no network.

use futures::future::BoxFuture;

use super::{Embedder, normalise};
use crate::error::Result;

/// The built-in embedder: feature hashing of words, word pairs and the parts of identifiers.
/// Deterministic, no model, no network; near-duplicates and requests sharing their key words
/// land close, paraphrases with no word in common do not (that is what `minilm` is for).
#[derive(Debug, Clone)]
pub struct HashingEmbedder {
    dim: usize,
}

/// The dimension of the built-in embedders (all-MiniLM-L6-v2's, so tables can switch cheaply).
pub const DEFAULT_DIM: usize = 384;

impl HashingEmbedder {
    pub fn new(dim: usize) -> Self {
        HashingEmbedder { dim: dim.max(8) }
    }

    /// One text's vector.
    pub fn vector(&self, text: &str) -> Vec<f32> {
        let mut v = vec![0f32; self.dim];
        let words = words(text);
        let mut add = |feature: &str, weight: f32| {
            let h = fnv1a(feature.as_bytes());
            let i = (h % self.dim as u64) as usize;
            // The sign bit keeps unrelated features from adding up on one coordinate.
            let sign = if h >> 63 == 0 { 1.0 } else { -1.0 };
            v[i] += sign * weight;
        };
        for w in &words {
            add(w, 1.0);
        }
        for pair in words.windows(2) {
            add(&format!("{} {}", pair[0], pair[1]), 0.5);
        }
        normalise(&mut v);
        v
    }
}

impl Default for HashingEmbedder {
    fn default() -> Self {
        HashingEmbedder::new(DEFAULT_DIM)
    }
}

impl Embedder for HashingEmbedder {
    fn name(&self) -> &str {
        "hashing"
    }

    fn dim(&self) -> usize {
        self.dim
    }

    fn embed<'a>(&'a self, texts: &'a [String]) -> BoxFuture<'a, Result<Vec<Vec<f32>>>> {
        Box::pin(async move { Ok(texts.iter().map(|t| self.vector(t)).collect()) })
    }
}

/// Lowercase words, with snake_case and camelCase identifiers also split into their parts.
fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for token in text.split(|c: char| !c.is_alphanumeric() && c != '_') {
        if token.is_empty() {
            continue;
        }
        let lower = token.to_lowercase();
        let parts = split_identifier(token);
        if parts.len() > 1 {
            out.extend(parts);
        }
        out.push(lower);
    }
    out
}

fn split_identifier(token: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut prev_lower = false;
    for c in token.chars() {
        if (c == '_' || (c.is_uppercase() && prev_lower)) && !current.is_empty() {
            parts.push(std::mem::take(&mut current).to_lowercase());
        }
        if c != '_' {
            current.push(c);
        }
        prev_lower = c.is_lowercase() || c.is_ascii_digit();
    }
    if !current.is_empty() {
        parts.push(current.to_lowercase());
    }
    parts
}

/// FNV-1a, 64 bits: stable across platforms and releases, which `std`'s hasher is not.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embed::cosine;

    #[test]
    fn hashing_is_deterministic_unit_length_and_close_for_shared_words() {
        let e = HashingEmbedder::default();
        let a = e.vector("compute sha256 checksums of uploaded files");
        assert_eq!(a, e.vector("compute sha256 checksums of uploaded files"));
        assert!((cosine(&a, &a) - 1.0).abs() < 1e-5);
        let near = e.vector("sha256 checksum of each uploaded file");
        let far = e.vector("send a welcome email to new users");
        assert!(cosine(&a, &near) > cosine(&a, &far) + 0.2);
        assert_eq!(a.len(), DEFAULT_DIM);
    }

    #[test]
    fn identifiers_are_split_into_their_words() {
        assert_eq!(
            split_identifier("fileChecksum_v2"),
            ["file", "checksum", "v2"]
        );
        assert_eq!(split_identifier("sha256"), ["sha256"]);
    }
}
