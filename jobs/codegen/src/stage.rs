//! The stages of a generation and how one fails: the names and codes its events carry.

/// A stage of the pipeline, in order (upstream's numbering).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Stage {
    PromptParsing,
    IntelligenceGathering,
    ContractBuilding,
    PreValidation,
    CodeGeneration,
    EventBusIntegration,
    PostValidation,
    Refinement,
    FileWriting,
    CompilationTest,
}

impl Stage {
    pub const ALL: [Stage; 10] = [
        Stage::PromptParsing,
        Stage::IntelligenceGathering,
        Stage::ContractBuilding,
        Stage::PreValidation,
        Stage::CodeGeneration,
        Stage::EventBusIntegration,
        Stage::PostValidation,
        Stage::Refinement,
        Stage::FileWriting,
        Stage::CompilationTest,
    ];

    /// The name in stage-completed events (`stage_name`).
    pub fn name(self) -> &'static str {
        match self {
            Stage::PromptParsing => "prompt_parsing",
            Stage::IntelligenceGathering => "intelligence_gathering",
            Stage::ContractBuilding => "contract_building",
            Stage::PreValidation => "pre_validation",
            Stage::CodeGeneration => "code_generation",
            Stage::EventBusIntegration => "event_bus_integration",
            Stage::PostValidation => "post_validation",
            Stage::Refinement => "refinement",
            Stage::FileWriting => "file_writing",
            Stage::CompilationTest => "compilation_test",
        }
    }

    /// Upstream's stage number (`stage_number`).
    pub fn number(self) -> f64 {
        match self {
            Stage::PromptParsing => 1.0,
            Stage::IntelligenceGathering => 1.5,
            Stage::ContractBuilding => 2.0,
            Stage::PreValidation => 3.0,
            Stage::CodeGeneration => 4.0,
            Stage::EventBusIntegration => 4.5,
            Stage::PostValidation => 5.0,
            Stage::Refinement => 5.5,
            Stage::FileWriting => 6.0,
            Stage::CompilationTest => 7.0,
        }
    }
}

/// Why a generation failed: the `error_code` of its generation-failed event (docs/codegen.md).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr, strum::EnumString, strum::EnumIter,
)]
#[strum(serialize_all = "SCREAMING_SNAKE_CASE")]
pub enum FailureCode {
    ParseFailed,
    UnknownModel,
    ContractInvalid,
    PreValidationFailed,
    ModelUnavailable,
    ValidationFailed,
    QuorumRetryExhausted,
    QuorumFailed,
    QuorumUnavailable,
    WriteFailed,
    CompileError,
    TestsFailed,
    /// The node does not do what the request's examples say (G15).
    ExamplesFailed,
    /// The log refused a stage's events.
    EventLogError,
}

impl FailureCode {
    /// The wire name (`EXAMPLES_FAILED`).
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// The code of an event's `error_code`.
    pub fn parse(s: &str) -> Option<FailureCode> {
        s.parse().ok()
    }

    /// Whether the failure is a verdict on the generated code (gates, examples, judges, compile,
    /// tests). Only those count against the patterns the generation applied: a bad request, an
    /// unknown or unreachable model, a failed write says nothing about them.
    pub fn judges_the_code(self) -> bool {
        matches!(
            self,
            FailureCode::ValidationFailed
                | FailureCode::QuorumRetryExhausted
                | FailureCode::QuorumFailed
                | FailureCode::CompileError
                | FailureCode::TestsFailed
                | FailureCode::ExamplesFailed
        )
    }

    /// Whether running the request again may succeed (a model or judges that were unavailable).
    pub fn retryable(self) -> bool {
        matches!(
            self,
            FailureCode::ModelUnavailable | FailureCode::QuorumUnavailable
        )
    }
}

/// A stage failure: where, why, and the files written before it (kept for inspection).
#[derive(Debug, Clone)]
pub struct Failure {
    pub stage: Stage,
    pub code: FailureCode,
    pub message: String,
    pub partial_files: Vec<String>,
}

impl Failure {
    pub fn new(stage: Stage, code: FailureCode, message: impl Into<String>) -> Self {
        Failure {
            stage,
            code,
            message: message.into(),
            partial_files: Vec::new(),
        }
    }

    pub fn with_files(mut self, files: Vec<String>) -> Self {
        self.partial_files = files;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_are_in_upstream_order_with_unique_names() {
        let numbers: Vec<f64> = Stage::ALL.iter().map(|s| s.number()).collect();
        assert!(numbers.windows(2).all(|w| w[0] < w[1]), "{numbers:?}");
        let names: std::collections::BTreeSet<&str> = Stage::ALL.iter().map(|s| s.name()).collect();
        assert_eq!(names.len(), Stage::ALL.len());
    }

    #[test]
    fn failure_codes_keep_their_wire_names_and_parse_back() {
        use strum::IntoEnumIterator;
        let names: Vec<&str> = FailureCode::iter().map(FailureCode::as_str).collect();
        assert_eq!(
            names,
            [
                "PARSE_FAILED",
                "UNKNOWN_MODEL",
                "CONTRACT_INVALID",
                "PRE_VALIDATION_FAILED",
                "MODEL_UNAVAILABLE",
                "VALIDATION_FAILED",
                "QUORUM_RETRY_EXHAUSTED",
                "QUORUM_FAILED",
                "QUORUM_UNAVAILABLE",
                "WRITE_FAILED",
                "COMPILE_ERROR",
                "TESTS_FAILED",
                "EXAMPLES_FAILED",
                "EVENT_LOG_ERROR",
            ]
        );
        for c in FailureCode::iter() {
            assert_eq!(FailureCode::parse(c.as_str()), Some(c));
        }
        assert_eq!(FailureCode::parse("NOT_A_CODE"), None);
    }
}
