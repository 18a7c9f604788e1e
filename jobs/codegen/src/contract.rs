//! Stage 2, contract building: the ONEX contract of the node (`v1_0_0/contract.yaml`), checked
//! against the JSON Schema the project ships (`jobs/codegen/schemas/onex_contract.schema.json`, gate G7).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::parse::{NodeType, ParsedPrompt};

/// The shipped schema of contract.yaml.
pub const CONTRACT_SCHEMA: &str = include_str!("../schemas/onex_contract.schema.json");

#[derive(Debug, Clone, Serialize)]
pub struct Contract {
    pub name: String,
    pub contract_version: String,
    pub node_version: String,
    pub description: String,
    pub node_type: NodeType,
    pub input_model: String,
    pub output_model: String,
    pub performance: Performance,
    pub lifecycle: Lifecycle,
    pub dependencies: Vec<Dependency>,
    pub validation_rules: ValidationRules,
    pub tags: Vec<String>,
    pub yaml_consumed_events: Vec<String>,
    pub yaml_published_events: Vec<String>,
    #[serde(flatten)]
    pub kind: KindBlock,
    pub metadata: ContractMetadata,
}

#[derive(Debug, Clone, Serialize)]
pub struct Performance {
    pub single_operation_max_ms: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct Lifecycle {
    pub initialize: bool,
    pub shutdown: bool,
    pub health_check: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Dependency {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ValidationRules {
    pub strict_typing: bool,
    pub input_validation: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct ContractMetadata {
    pub generated_by: String,
    pub model: String,
    pub correlation_id: String,
    pub generated_at: String,
}

/// The per-kind part of a contract.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum KindBlock {
    Effect {
        io_operations: Vec<IoOperation>,
        retry_policies: RetryPolicies,
        external_services: Vec<Named>,
    },
    Compute {
        algorithm: Algorithm,
        deterministic_execution: bool,
    },
    Reducer {
        reduction_operations: Vec<Described>,
        streaming: Streaming,
        state_machine: StateMachine,
        aggregation: Aggregation,
    },
    Orchestrator {
        workflow_coordination: WorkflowCoordination,
        published_events: Vec<String>,
        consumed_events: Vec<String>,
    },
}

#[derive(Debug, Clone, Serialize)]
pub struct IoOperation {
    pub operation: String,
    pub description: String,
    pub atomic: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct RetryPolicies {
    pub max_attempts: u32,
    pub backoff_seconds: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Named {
    pub name: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Described {
    pub operation: String,
    pub description: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Algorithm {
    pub name: String,
    pub description: String,
    pub steps: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Streaming {
    pub enabled: bool,
    pub window_seconds: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct StateMachine {
    pub states: Vec<String>,
    pub initial_state: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Aggregation {
    pub strategy: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct WorkflowCoordination {
    pub steps: Vec<Step>,
    pub max_parallel: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub name: String,
    pub operation: String,
}

/// The topics the generated node consumes and publishes (its own, not omnistream's).
pub fn node_topics(parsed: &ParsedPrompt) -> (String, String) {
    let svc = parsed.service_name.replace('_', "-");
    (
        format!("onex.cmd.{}.{svc}-requested.v1", parsed.domain),
        format!("onex.evt.{}.{svc}-completed.v1", parsed.domain),
    )
}

pub fn build_contract(
    parsed: &ParsedPrompt,
    prompt: &str,
    model: &str,
    correlation_id: &str,
    generated_at: &str,
) -> Contract {
    let (consumed, published) = node_topics(parsed);
    let ops = &parsed.operations;
    let kind = match parsed.node_type {
        NodeType::Effect => KindBlock::Effect {
            io_operations: ops
                .iter()
                .map(|o| IoOperation {
                    operation: o.clone(),
                    description: format!("{} for {}", o.replace('_', " "), parsed.service_name),
                    atomic: true,
                })
                .collect(),
            retry_policies: RetryPolicies {
                max_attempts: 3,
                backoff_seconds: 1.0,
            },
            external_services: parsed
                .external_services
                .iter()
                .map(|s| Named { name: s.clone() })
                .collect(),
        },
        NodeType::Compute => KindBlock::Compute {
            algorithm: Algorithm {
                name: parsed.service_name.clone(),
                description: prompt.to_string(),
                steps: ops.clone(),
            },
            deterministic_execution: true,
        },
        NodeType::Reducer => KindBlock::Reducer {
            reduction_operations: ops
                .iter()
                .map(|o| Described {
                    operation: o.clone(),
                    description: format!("{} the state", o.replace('_', " ")),
                })
                .collect(),
            streaming: Streaming {
                enabled: true,
                window_seconds: 60,
            },
            state_machine: StateMachine {
                states: vec!["empty".into(), "accumulating".into()],
                initial_state: "empty".into(),
            },
            aggregation: Aggregation {
                strategy: "incremental".into(),
            },
        },
        NodeType::Orchestrator => KindBlock::Orchestrator {
            workflow_coordination: WorkflowCoordination {
                steps: ops
                    .iter()
                    .map(|o| Step {
                        name: o.clone(),
                        operation: o.clone(),
                    })
                    .collect(),
                max_parallel: 1,
            },
            published_events: vec![published.clone()],
            consumed_events: vec![consumed.clone()],
        },
    };
    Contract {
        name: parsed.class_name(),
        contract_version: "1.0.0".into(),
        node_version: "1.0.0".into(),
        description: prompt.to_string(),
        node_type: parsed.node_type,
        input_model: format!("Model{}Input", parsed.name),
        output_model: format!("Model{}Output", parsed.name),
        performance: Performance {
            single_operation_max_ms: 1000,
        },
        lifecycle: Lifecycle {
            initialize: true,
            shutdown: true,
            health_check: true,
        },
        dependencies: parsed
            .external_services
            .iter()
            .map(|s| Dependency {
                name: s.clone(),
                kind: "external_service".into(),
            })
            .collect(),
        validation_rules: ValidationRules {
            strict_typing: true,
            input_validation: true,
        },
        tags: vec![
            parsed.domain.clone(),
            parsed.node_type.as_str().into(),
            parsed.service_name.clone(),
        ],
        yaml_consumed_events: vec![consumed],
        yaml_published_events: vec![published],
        kind,
        metadata: ContractMetadata {
            generated_by: "omnistream".into(),
            model: model.into(),
            correlation_id: correlation_id.into(),
            generated_at: generated_at.into(),
        },
    }
}

pub fn to_yaml(contract: &Contract) -> String {
    serde_yaml_ng::to_string(contract).expect("a contract always serialises")
}

/// First 16 hex digits of the SHA-256 of the contract file: what nodes announce for drift checks.
pub fn contract_hash(yaml: &str) -> String {
    let digest = Sha256::digest(yaml.as_bytes());
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

fn validator() -> &'static jsonschema::Validator {
    static VALIDATOR: OnceLock<jsonschema::Validator> = OnceLock::new();
    VALIDATOR.get_or_init(|| {
        let schema: serde_json::Value =
            serde_json::from_str(CONTRACT_SCHEMA).expect("the shipped contract schema is JSON");
        jsonschema::validator_for(&schema).expect("the shipped contract schema is valid")
    })
}

/// Why a file of contract rules cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ContractRulesError {
    #[error("reading {}", .0.display())]
    Read(PathBuf, #[source] std::io::Error),
    #[error("{} is not JSON", .0.display())]
    NotJson(PathBuf, #[source] serde_json::Error),
    #[error("{} is not a JSON Schema", .0.display())]
    NotASchema(PathBuf, #[source] Box<jsonschema::ValidationError<'static>>),
}

/// An organisation's own rules for contracts (`codegen.contract_rules`): a JSON Schema every
/// contract must satisfy besides the shipped one, checked at G7 (for example a required tag, or
/// a shorter description).
#[derive(Debug)]
pub struct ContractRules {
    path: PathBuf,
    validator: jsonschema::Validator,
}

impl ContractRules {
    pub fn load(path: &Path) -> Result<ContractRules, ContractRulesError> {
        let text =
            std::fs::read_to_string(path).map_err(|e| ContractRulesError::Read(path.into(), e))?;
        let schema: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| ContractRulesError::NotJson(path.into(), e))?;
        let validator = jsonschema::validator_for(&schema)
            .map_err(|e| ContractRulesError::NotASchema(path.into(), Box::new(e)))?;
        Ok(ContractRules {
            path: path.into(),
            validator,
        })
    }
}

/// Check a contract.yaml text against the shipped schema and `rules`: every violation, with where
/// it is (and, for a rule of `rules`, which file it comes from).
pub fn validate_yaml(yaml: &str, rules: Option<&ContractRules>) -> Vec<String> {
    let value: serde_json::Value = match serde_yaml_ng::from_str(yaml) {
        Ok(v) => v,
        Err(e) => return vec![format!("not YAML: {e}")],
    };
    let describe = |e: jsonschema::ValidationError<'_>| {
        let at = e.instance_path().to_string();
        if at.is_empty() {
            e.to_string()
        } else {
            format!("{at}: {e}")
        }
    };
    let mut errors: Vec<String> = validator().iter_errors(&value).map(describe).collect();
    if let Some(rules) = rules {
        errors.extend(
            rules
                .validator
                .iter_errors(&value)
                .map(|e| format!("{} (rules of {})", describe(e), rules.path.display())),
        );
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::parse_prompt;

    #[test]
    fn every_kind_of_contract_is_valid_against_the_shipped_schema() {
        for prompt in [
            "Create PostgreSQL writer Effect node",
            "price calculator compute node",
            "metrics aggregator reducer",
            "payment workflow orchestrator",
        ] {
            let p = parse_prompt(prompt, None).unwrap();
            let yaml = to_yaml(&build_contract(&p, prompt, "template", "c", "t"));
            assert_eq!(validate_yaml(&yaml, None), Vec::<String>::new(), "{yaml}");
        }
    }

    #[test]
    fn a_broken_contract_names_what_is_wrong() {
        let p = parse_prompt("Create PostgreSQL writer Effect node", None).unwrap();
        let yaml = to_yaml(&build_contract(&p, "x", "template", "c", "t"));
        let broken = yaml
            .replace("name: NodePostgresqlWriterEffect", "name: postgres_writer")
            .replace("io_operations:", "io_operationz:");
        let errors = validate_yaml(&broken, None);
        assert!(errors.iter().any(|e| e.contains("/name")), "{errors:?}");
        assert!(errors.len() >= 2, "{errors:?}");
        assert!(
            validate_yaml(": : :\n- [", None)
                .iter()
                .any(|e| e.contains("not YAML"))
        );
    }

    #[test]
    fn the_shipped_example_contracts_are_valid() {
        // At run time: a test binary reused from another checkout must read this one's files.
        let dir = std::env::var_os("CARGO_MANIFEST_DIR")
            .map_or_else(|| env!("CARGO_MANIFEST_DIR").into(), PathBuf::from)
            .join("templates/node/examples");
        for kind in ["effect", "compute", "reducer", "orchestrator"] {
            let yaml = std::fs::read_to_string(dir.join(format!("{kind}.contract.yaml"))).unwrap();
            assert_eq!(validate_yaml(&yaml, None), Vec::<String>::new(), "{kind}");
        }
    }

    #[test]
    fn the_hash_is_stable_and_short() {
        assert_eq!(contract_hash("a"), contract_hash("a"));
        assert_ne!(contract_hash("a"), contract_hash("b"));
        assert_eq!(contract_hash("a").len(), 16);
    }
}
