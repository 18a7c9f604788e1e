//! Stage 1.5, intelligence gathering: patterns for the request. The pattern store is consulted
//! through [`PatternSource`] (implemented by the patterns crate, so this crate never links
//! LanceDB); for an empty store, a store that is not configured, and requests it has nothing
//! for, the built-in catalog below: the practices every generated node of a kind should follow.

use serde::Serialize;

use super::parse::{NodeType, ParsedPrompt};

/// Where patterns come from besides the catalog: the pattern store.
pub trait PatternSource: Send + Sync + std::fmt::Debug {
    /// The patterns fitting the query, best first.
    fn retrieve(&self, query: &PatternQuery<'_>) -> Result<Vec<PatternRef>, RetrievalError>;
}

/// Why a retrieval failed (the generation goes on with the catalog).
pub type RetrievalError = Box<dyn std::error::Error + Send + Sync>;

/// What the intelligence stage asks the store for.
#[derive(Debug, Clone)]
pub struct PatternQuery<'a> {
    /// The request's words (searched by text and by meaning).
    pub text: &'a str,
    pub node_type: NodeType,
    pub domain: &'a str,
    pub min_quality: f64,
    pub top_k: usize,
}

/// A pattern handed to generation (template context and model prompt).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PatternRef {
    pub name: String,
    pub description: String,
    /// Where it came from: `catalog` or `pattern_store`.
    pub source: String,
    /// The store's pattern id (none for the catalog's).
    pub id: Option<String>,
    /// A stored pattern's code: what a model gets as its worked example and the template model
    /// can reuse.
    #[serde(skip)]
    pub code: Option<StoredCode>,
    /// The search's fused relevance.
    pub relevance: Option<f32>,
    pub quality: Option<f64>,
}

/// The code of a stored pattern and what it was written for.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredCode {
    /// The node's file it is (`v1_0_0/logic.py`, or `v1_0_0/node.py`).
    pub module: String,
    pub code: String,
    pub operations: Vec<String>,
    /// The request it was generated for.
    pub prompt: String,
}

impl PatternRef {
    /// What `patterns_applied` records: the store's id, or the catalog entry's name.
    pub fn applied_name(&self) -> &str {
        self.id.as_deref().unwrap_or(&self.name)
    }
}

struct Entry {
    /// Applies to these node types (empty: all).
    types: &'static [NodeType],
    /// Applies when the prompt mentions one of these words (empty: always).
    keywords: &'static [&'static str],
    name: &'static str,
    description: &'static str,
}

const CATALOG: &[Entry] = &[
    Entry {
        types: &[NodeType::Effect],
        keywords: &[],
        name: "side effects behind a client",
        description: "Every external call goes through one injected client object, so the node can be tested with an in-memory client and retried safely.",
    },
    Entry {
        types: &[NodeType::Effect],
        keywords: &[
            "postgres",
            "postgresql",
            "mysql",
            "database",
            "sql",
            "writer",
            "upsert",
        ],
        name: "idempotent upsert",
        description: "Write with a natural key and ON CONFLICT DO UPDATE so a retried request never duplicates a row.",
    },
    Entry {
        types: &[NodeType::Effect],
        keywords: &["kafka", "publish", "publisher", "queue", "event", "events"],
        name: "publish with a stable key",
        description: "Key every message by its correlation id so ordering holds per request and consumers can deduplicate.",
    },
    Entry {
        types: &[NodeType::Effect],
        keywords: &["http", "webhook", "api", "fetch", "client"],
        name: "bounded retries with backoff",
        description: "Retry 429 and 5xx answers with exponential backoff and jitter, a bounded number of times, and surface the last error.",
    },
    Entry {
        types: &[NodeType::Compute],
        keywords: &[],
        name: "pure and deterministic",
        description: "The output depends only on the input: no clock, no randomness, no I/O, so results can be cached and compared.",
    },
    Entry {
        types: &[NodeType::Compute],
        keywords: &["price", "calculator", "billing", "money", "tax"],
        name: "decimal money",
        description: "Compute money with decimal.Decimal and round once at the end (ROUND_HALF_EVEN), never with floats.",
    },
    Entry {
        types: &[NodeType::Reducer],
        keywords: &[],
        name: "explicit state transitions",
        description: "State changes only through the reduction operations, each one recorded, so a replay of the same inputs rebuilds the same state.",
    },
    Entry {
        types: &[NodeType::Orchestrator],
        keywords: &[],
        name: "recorded steps with compensation",
        description: "Run steps in order, record each one, and undo completed steps in reverse when a later one fails.",
    },
    Entry {
        types: &[],
        keywords: &[],
        name: "typed boundaries",
        description: "Pydantic v2 models for input, output and config; validate at the boundary and pass typed objects inside.",
    },
];

/// The catalog's patterns for a request, most specific first.
pub fn catalog_patterns(parsed: &ParsedPrompt, prompt: &str) -> Vec<PatternRef> {
    let words: Vec<String> = prompt
        .split(|c: char| !c.is_ascii_alphanumeric())
        .map(|w| w.to_ascii_lowercase())
        .collect();
    let mut specific = Vec::new();
    let mut general = Vec::new();
    for e in CATALOG {
        if !e.types.is_empty() && !e.types.contains(&parsed.node_type) {
            continue;
        }
        let pattern = PatternRef {
            name: e.name.into(),
            description: e.description.into(),
            source: "catalog".into(),
            id: None,
            code: None,
            relevance: None,
            quality: None,
        };
        if e.keywords.is_empty() {
            general.push(pattern);
        } else if words.iter().any(|w| e.keywords.contains(&w.as_str())) {
            specific.push(pattern);
        }
    }
    specific.extend(general);
    specific
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::parse_prompt;

    #[test]
    fn specific_patterns_come_first_and_other_types_are_left_out() {
        let prompt = "Create PostgreSQL writer Effect node";
        let p = parse_prompt(prompt, None).unwrap();
        let names: Vec<_> = catalog_patterns(&p, prompt)
            .into_iter()
            .map(|p| p.name)
            .collect();
        assert_eq!(
            names,
            vec![
                "idempotent upsert",
                "side effects behind a client",
                "typed boundaries"
            ]
        );
    }
}
