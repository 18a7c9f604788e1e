//! Stage 1, prompt parsing: node type, service name, domain, operations, features and a
//! confidence, from a request in natural language ("Create PostgreSQL writer Effect node").
//! Deterministic keyword rules: cheap, explainable, and what the template model builds from; a
//! model provider sees the original prompt as well.

use serde::Serialize;

/// The four ONEX node kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeType {
    Effect,
    Compute,
    Reducer,
    Orchestrator,
}

impl NodeType {
    pub const ALL: [NodeType; 4] = [
        NodeType::Effect,
        NodeType::Compute,
        NodeType::Reducer,
        NodeType::Orchestrator,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            NodeType::Effect => "effect",
            NodeType::Compute => "compute",
            NodeType::Reducer => "reducer",
            NodeType::Orchestrator => "orchestrator",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            NodeType::Effect => "Effect",
            NodeType::Compute => "Compute",
            NodeType::Reducer => "Reducer",
            NodeType::Orchestrator => "Orchestrator",
        }
    }

    /// The method every node of this kind implements.
    pub fn execute_method(self) -> &'static str {
        match self {
            NodeType::Effect => "execute_effect",
            NodeType::Compute => "execute_compute",
            NodeType::Reducer => "execute_reduction",
            NodeType::Orchestrator => "execute_orchestration",
        }
    }

    /// Effect and Orchestrator nodes talk to the event bus (stage 4.5).
    pub fn uses_event_bus(self) -> bool {
        matches!(self, NodeType::Effect | NodeType::Orchestrator)
    }

    pub fn parse(text: &str) -> Option<NodeType> {
        NodeType::ALL
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(text.trim()))
    }
}

/// What the prompt asks for.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ParsedPrompt {
    pub node_type: NodeType,
    /// snake_case, e.g. `postgresql_writer`.
    pub service_name: String,
    /// PascalCase of the service name, e.g. `PostgresqlWriter`.
    pub name: String,
    pub domain: String,
    /// snake_case Python identifiers, 1 to 6.
    pub operations: Vec<String>,
    pub features: Vec<String>,
    pub external_services: Vec<String>,
    /// 0..1: how sure the parse is (explicit node type and service name: high).
    pub confidence: f64,
}

impl ParsedPrompt {
    /// `Node<Name><Type>`, the ONEX class name.
    pub fn class_name(&self) -> String {
        format!("Node{}{}", self.name, self.node_type.title())
    }

    /// `node_<domain>_<service>_<type>`: the generated directory.
    pub fn dir_name(&self) -> String {
        format!(
            "node_{}_{}_{}",
            self.domain,
            self.service_name,
            self.node_type.as_str()
        )
    }
}

const PYTHON_KEYWORDS: &[&str] = &[
    "false", "none", "true", "and", "as", "assert", "async", "await", "break", "class", "continue",
    "def", "del", "elif", "else", "except", "finally", "for", "from", "global", "if", "import",
    "in", "is", "lambda", "nonlocal", "not", "or", "pass", "raise", "return", "try", "while",
    "with", "yield", "match", "case", "type",
];

pub fn is_python_keyword(word: &str) -> bool {
    PYTHON_KEYWORDS.contains(&word.to_ascii_lowercase().as_str())
}

/// Words that say what kind of node is wanted, when the prompt does not name it.
const TYPE_HINTS: &[(&str, NodeType)] = &[
    ("writer", NodeType::Effect),
    ("reader", NodeType::Effect),
    ("publisher", NodeType::Effect),
    ("consumer", NodeType::Effect),
    ("client", NodeType::Effect),
    ("uploader", NodeType::Effect),
    ("downloader", NodeType::Effect),
    ("sender", NodeType::Effect),
    ("mailer", NodeType::Effect),
    ("cache", NodeType::Effect),
    ("fetcher", NodeType::Effect),
    ("calculator", NodeType::Compute),
    ("validator", NodeType::Compute),
    ("transformer", NodeType::Compute),
    ("parser", NodeType::Compute),
    ("scorer", NodeType::Compute),
    ("tokenizer", NodeType::Compute),
    ("converter", NodeType::Compute),
    ("aggregator", NodeType::Reducer),
    ("accumulator", NodeType::Reducer),
    ("counter", NodeType::Reducer),
    ("state", NodeType::Reducer),
    ("workflow", NodeType::Orchestrator),
    ("pipeline", NodeType::Orchestrator),
    ("coordinator", NodeType::Orchestrator),
    ("saga", NodeType::Orchestrator),
];

/// Keyword -> domain; the first match wins.
const DOMAINS: &[(&[&str], &str)] = &[
    (
        &[
            "payment", "billing", "invoice", "price", "pricing", "checkout",
        ],
        "billing",
    ),
    (
        &[
            "postgres",
            "postgresql",
            "mysql",
            "sqlite",
            "database",
            "db",
            "sql",
            "mongo",
            "mongodb",
        ],
        "database",
    ),
    (&["redis", "cache", "memcached"], "caching"),
    (
        &[
            "kafka", "queue", "rabbitmq", "message", "messages", "event", "events", "nats",
        ],
        "messaging",
    ),
    (
        &["s3", "storage", "blob", "file", "files", "bucket"],
        "storage",
    ),
    (
        &[
            "email",
            "smtp",
            "mail",
            "mailer",
            "sms",
            "notification",
            "notifications",
        ],
        "notifications",
    ),
    (
        &[
            "user",
            "users",
            "auth",
            "login",
            "identity",
            "session",
            "onboarding",
        ],
        "identity",
    ),
    (
        &[
            "metric",
            "metrics",
            "log",
            "logs",
            "trace",
            "traces",
            "observability",
        ],
        "observability",
    ),
    (
        &["http", "webhook", "api", "rest", "graphql", "grpc"],
        "integration",
    ),
    (&["text", "nlp", "token", "tokenizer", "language"], "nlp"),
    (&["fraud", "risk"], "risk"),
    (&["etl", "data", "dataset"], "data"),
    (&["order", "orders", "trading", "trade"], "trading"),
];

/// Keyword -> external service an effect node talks to.
const SERVICES: &[(&str, &str)] = &[
    ("postgres", "postgresql"),
    ("postgresql", "postgresql"),
    ("mysql", "mysql"),
    ("mongo", "mongodb"),
    ("mongodb", "mongodb"),
    ("redis", "redis"),
    ("kafka", "kafka"),
    ("rabbitmq", "rabbitmq"),
    ("s3", "s3"),
    ("smtp", "smtp"),
    ("http", "http"),
    ("webhook", "http"),
];

/// Word (verb or agent noun) -> operation.
const OPERATIONS: &[(&str, &str)] = &[
    ("write", "write"),
    ("writer", "write"),
    ("writes", "write"),
    ("store", "write"),
    ("insert", "write"),
    ("read", "read"),
    ("reader", "read"),
    ("reads", "read"),
    ("query", "read"),
    ("get", "read"),
    ("update", "update"),
    ("upsert", "upsert"),
    ("delete", "delete"),
    ("remove", "delete"),
    ("publish", "publish"),
    ("publisher", "publish"),
    ("consume", "consume"),
    ("consumer", "consume"),
    ("send", "send"),
    ("sender", "send"),
    ("mailer", "send"),
    ("notify", "send"),
    ("fetch", "fetch"),
    ("fetcher", "fetch"),
    ("upload", "upload"),
    ("uploader", "upload"),
    ("download", "download"),
    ("downloader", "download"),
    ("cache", "get_or_set"),
    ("validate", "validate"),
    ("validator", "validate"),
    ("transform", "transform"),
    ("transformer", "transform"),
    ("convert", "transform"),
    ("converter", "transform"),
    ("calculate", "calculate"),
    ("calculator", "calculate"),
    ("compute", "calculate"),
    ("score", "score"),
    ("scorer", "score"),
    ("parse", "parse"),
    ("parser", "parse"),
    ("tokenize", "tokenize"),
    ("tokenizer", "tokenize"),
    ("aggregate", "aggregate"),
    ("aggregator", "aggregate"),
    ("count", "count"),
    ("counter", "count"),
    ("accumulate", "aggregate"),
    ("accumulator", "aggregate"),
    ("reset", "reset"),
    ("coordinate", "coordinate"),
    ("coordinator", "coordinate"),
    ("orchestrate", "coordinate"),
    ("workflow", "run_workflow"),
    ("pipeline", "run_pipeline"),
    ("saga", "run_workflow"),
    ("compensate", "compensate"),
];

/// Leading words that ask rather than describe.
const FILLER: &[&str] = &[
    "create",
    "build",
    "generate",
    "make",
    "write",
    "implement",
    "add",
    "new",
    "please",
    "a",
    "an",
    "the",
    "me",
    "us",
    "i",
    "need",
    "want",
    "node",
    "onex",
    "service",
    "that",
    "which",
    "for",
    "to",
    "of",
    "and",
    "with",
    "type",
];

/// Why a prompt cannot be read: each says what is missing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PromptError {
    #[error("the prompt is empty")]
    Empty,
    #[error("the prompt has no words to parse")]
    NoWords,
    #[error("node_type '{0}' is not one of effect, compute, reducer, orchestrator")]
    UnknownNodeType(String),
    #[error(
        "no service name in '{0}': say what the node is, e.g. \"Create PostgreSQL writer Effect node\""
    )]
    NoServiceName(String),
}

/// Read a prompt's words into what to generate. `hint` is the request's node_type field, when
/// given.
pub fn parse_prompt(prompt: &str, hint: Option<&str>) -> Result<ParsedPrompt, PromptError> {
    let prompt = prompt.trim();
    if prompt.is_empty() {
        return Err(PromptError::Empty);
    }
    let words: Vec<String> = prompt
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| w.to_ascii_lowercase())
        .collect();
    if words.is_empty() {
        return Err(PromptError::NoWords);
    }
    // Everything after "with" lists features, not the name.
    let with_at = words.iter().position(|w| w == "with");
    let (head, tail) = words.split_at(with_at.unwrap_or(words.len()));

    let mut confidence: f64 = 1.0;
    let explicit = head.iter().find_map(|w| NodeType::parse(w));
    let node_type = match (hint.filter(|h| !h.trim().is_empty()), explicit) {
        (Some(h), _) => {
            NodeType::parse(h).ok_or_else(|| PromptError::UnknownNodeType(h.to_string()))?
        }
        (None, Some(t)) => t,
        (None, None) => {
            confidence -= 0.3;
            head.iter()
                .find_map(|w| TYPE_HINTS.iter().find(|(k, _)| k == w).map(|(_, t)| *t))
                .unwrap_or_else(|| {
                    confidence -= 0.3;
                    NodeType::Effect
                })
        }
    };

    // The service name: the head without filler and node-type words, at most four words.
    let name_words: Vec<&str> = head
        .iter()
        .map(String::as_str)
        .filter(|w| !FILLER.contains(w) && NodeType::parse(w).is_none())
        .filter(|w| !w.chars().next().is_some_and(|c| c.is_ascii_digit()))
        .take(4)
        .collect();
    if name_words.is_empty() {
        return Err(PromptError::NoServiceName(prompt.to_string()));
    }
    let service_name = name_words.join("_");
    let name: String = name_words
        .iter()
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect();

    let domain = DOMAINS
        .iter()
        .find(|(keys, _)| words.iter().any(|w| keys.contains(&w.as_str())))
        .map(|(_, d)| d.to_string())
        .unwrap_or_else(|| {
            confidence -= 0.1;
            "general".to_string()
        });

    let mut operations: Vec<String> = Vec::new();
    for w in &words {
        if let Some((_, op)) = OPERATIONS.iter().find(|(k, _)| k == w)
            && !operations.iter().any(|o| o == op)
            && operations.len() < 6
        {
            operations.push(op.to_string());
        }
    }
    if operations.is_empty() {
        operations.push(
            match node_type {
                NodeType::Effect => "execute",
                NodeType::Compute => "calculate",
                NodeType::Reducer => "aggregate",
                NodeType::Orchestrator => "run_workflow",
            }
            .to_string(),
        );
    }
    // A reducer can always start over; an orchestrator can always undo.
    if node_type == NodeType::Reducer && !operations.iter().any(|o| o == "reset") {
        operations.push("reset".into());
    }

    let features: Vec<String> = if with_at.is_some() {
        tail[1..]
            .split(|w| w == "and")
            .map(|ws| ws.join(" "))
            .filter(|f| !f.is_empty())
            .take(8)
            .collect()
    } else {
        Vec::new()
    };

    let mut external_services: Vec<String> = Vec::new();
    for w in &words {
        if let Some((_, s)) = SERVICES.iter().find(|(k, _)| k == w)
            && !external_services.iter().any(|e| e == s)
        {
            external_services.push(s.to_string());
        }
    }

    Ok(ParsedPrompt {
        node_type,
        service_name,
        name,
        domain,
        operations,
        features,
        external_services,
        confidence: confidence.clamp(0.0, 1.0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_upstream_example_parses_completely() {
        let p = parse_prompt("Create PostgreSQL writer Effect node", None).unwrap();
        assert_eq!(p.node_type, NodeType::Effect);
        assert_eq!(p.service_name, "postgresql_writer");
        assert_eq!(p.class_name(), "NodePostgresqlWriterEffect");
        assert_eq!(p.domain, "database");
        assert_eq!(p.operations, vec!["write"]);
        assert_eq!(p.external_services, vec!["postgresql"]);
        assert_eq!(p.dir_name(), "node_database_postgresql_writer_effect");
        assert_eq!(p.confidence, 1.0);
    }

    #[test]
    fn types_are_inferred_features_split_and_hints_win() {
        let p = parse_prompt(
            "Build a price calculator with currency rounding and tax rules",
            None,
        )
        .unwrap();
        assert_eq!(p.node_type, NodeType::Compute);
        assert_eq!(p.service_name, "price_calculator");
        assert_eq!(p.domain, "billing");
        assert_eq!(p.features, vec!["currency rounding", "tax rules"]);
        assert!(p.confidence < 1.0);

        let p = parse_prompt("metrics aggregator", Some("reducer")).unwrap();
        assert_eq!(p.node_type, NodeType::Reducer);
        assert_eq!(p.operations, vec!["aggregate", "reset"]);

        let err = parse_prompt("metrics aggregator", Some("gizmo")).unwrap_err();
        assert_eq!(err, PromptError::UnknownNodeType("gizmo".into()));
    }

    #[test]
    fn prompts_without_a_name_are_refused_with_a_reason() {
        assert_eq!(parse_prompt("   ", None).unwrap_err(), PromptError::Empty);
        let err = parse_prompt("Create a new Effect node", None).unwrap_err();
        assert_eq!(
            err,
            PromptError::NoServiceName("Create a new Effect node".into())
        );
        assert_eq!(
            parse_prompt("!!! ???", None).unwrap_err(),
            PromptError::NoWords
        );
    }
}
