//! The model quorum (decision 9, upstream rules): judge models score the generated node; weighted
//! votes decide PASS, RETRY or FAIL; at least 60 % of the judges must answer for a verdict.

use std::time::Instant;

use omnistream_connectors::models::{ChatMessage, ChatRequest};
use omnistream_streams::Topic;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::parse::ParsedPrompt;
use crate::prompts::{JUDGE_SYSTEM, judge_prompt};
use crate::recorder::Recorder;
use crate::render::{GeneratedFile, NODE_MODULE};
use crate::stage::Stage;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Judge {
    /// A configured model name.
    pub model: String,
    #[serde(default = "one")]
    pub weight: f64,
}

fn one() -> f64 {
    1.0
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Recommendation {
    Pass,
    Retry,
    Fail,
}

impl Recommendation {
    pub fn as_str(self) -> &'static str {
        match self {
            Recommendation::Pass => "PASS",
            Recommendation::Retry => "RETRY",
            Recommendation::Fail => "FAIL",
        }
    }
}

/// What one judge said.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Judgement {
    /// 0..100.
    pub alignment_score: f64,
    #[serde(default = "yes")]
    pub correct_node_type: bool,
    #[serde(default)]
    pub missing_requirements: Vec<String>,
    pub recommendation: Recommendation,
}

fn yes() -> bool {
    true
}

/// Thresholds (upstream: pass .6 weighted, retry .4, 60 % must respond).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QuorumRules {
    pub pass_weight: f64,
    pub retry_weight: f64,
    pub min_response: f64,
}

impl Default for QuorumRules {
    fn default() -> Self {
        QuorumRules {
            pass_weight: 0.6,
            retry_weight: 0.4,
            min_response: 0.6,
        }
    }
}

/// A judge's vote: its judgement, or why there is none.
#[derive(Debug, Clone)]
pub struct Vote {
    pub judge: Judge,
    pub judgement: Result<Judgement, NoJudgement>,
}

/// Why a judge gave no judgement.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum NoJudgement {
    #[error("judge model '{0}' is not configured")]
    NotConfigured(String),
    #[error(transparent)]
    Call(#[from] omnistream_connectors::models::CallError),
    #[error("no JSON object in the answer")]
    NoJson,
    /// The answer's JSON does not parse, or lacks a field (serde's message).
    #[error("the judgement is not valid: {0}")]
    Invalid(String),
    #[error("alignment_score {0} is outside 0..100")]
    ScoreOutOfRange(f64),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// `None`: too few judges answered for a verdict.
    pub recommendation: Option<Recommendation>,
    pub responded: usize,
    pub judges: usize,
    /// Weighted share of PASS among the judges that answered.
    pub pass_share: f64,
    pub retry_share: f64,
    /// Weighted mean alignment (0..1) of the answers.
    pub confidence: f64,
    pub missing_requirements: Vec<String>,
}

pub fn decide(votes: &[Vote], rules: &QuorumRules) -> Decision {
    let answered: Vec<(&Judge, &Judgement)> = votes
        .iter()
        .filter_map(|v| v.judgement.as_ref().ok().map(|j| (&v.judge, j)))
        .collect();
    let total_weight: f64 = answered.iter().map(|(j, _)| j.weight.max(0.0)).sum();
    let share = |r: Recommendation| {
        if total_weight <= 0.0 {
            return 0.0;
        }
        answered
            .iter()
            .filter(|(_, j)| j.recommendation == r)
            .map(|(v, _)| v.weight.max(0.0))
            .sum::<f64>()
            / total_weight
    };
    let (pass, retry) = (share(Recommendation::Pass), share(Recommendation::Retry));
    let confidence = if total_weight > 0.0 {
        answered
            .iter()
            .map(|(v, j)| v.weight.max(0.0) * (j.alignment_score / 100.0).clamp(0.0, 1.0))
            .sum::<f64>()
            / total_weight
    } else {
        0.0
    };
    let enough = !votes.is_empty()
        && answered.len() as f64 / votes.len() as f64 >= rules.min_response - 1e-9
        && total_weight > 0.0;
    let verdict = if pass >= rules.pass_weight - 1e-9 {
        Recommendation::Pass
    } else if retry >= rules.retry_weight - 1e-9 || pass + retry >= rules.pass_weight - 1e-9 {
        Recommendation::Retry
    } else {
        Recommendation::Fail
    };
    let recommendation = enough.then_some(verdict);
    let mut missing: Vec<String> = answered
        .iter()
        .flat_map(|(_, j)| j.missing_requirements.iter().cloned())
        .collect();
    missing.sort();
    missing.dedup();
    Decision {
        recommendation,
        responded: answered.len(),
        judges: votes.len(),
        pass_share: pass,
        retry_share: retry,
        confidence,
        missing_requirements: missing,
    }
}

/// Read a judgement out of a model's answer (tolerates prose and code fences around the JSON).
pub fn parse_judgement(text: &str) -> Result<Judgement, NoJudgement> {
    let start = text.find('{').ok_or(NoJudgement::NoJson)?;
    let end = text.rfind('}').ok_or(NoJudgement::NoJson)?;
    if end < start {
        return Err(NoJudgement::NoJson);
    }
    let invalid = |e: serde_json::Error| NoJudgement::Invalid(e.to_string());
    let mut value: serde_json::Value = serde_json::from_str(&text[start..=end]).map_err(invalid)?;
    if let Some(r) = value.get_mut("recommendation")
        && let Some(s) = r.as_str()
    {
        *r = serde_json::Value::String(s.trim().to_ascii_uppercase());
    }
    let j: Judgement = serde_json::from_value(value).map_err(invalid)?;
    if !(0.0..=100.0).contains(&j.alignment_score) {
        return Err(NoJudgement::ScoreOutOfRange(j.alignment_score));
    }
    Ok(j)
}

/// Ask every judge at once; record each vote and the decision as validation-results.
pub(crate) fn run_quorum(
    rec: &mut Recorder<'_, '_>,
    prompt: &str,
    parsed: &ParsedPrompt,
    files: &[GeneratedFile],
    stage: Stage,
) -> Decision {
    let options = rec.shared.options;
    let code = files
        .iter()
        .find(|f| f.path == NODE_MODULE)
        .map(|f| f.content.as_str())
        .unwrap_or("");
    let question = judge_prompt(
        prompt,
        parsed.node_type.as_str(),
        &parsed.class_name(),
        code,
    );
    if let Err(e) = rec.flush() {
        tracing::warn!("could not record progress: {e}");
    }
    let started = Instant::now();
    let calls = options.judges.iter().map(|judge| {
        let route = options.models.get(&judge.model).cloned();
        let request = ChatRequest {
            model: route.as_ref().map(|r| r.model.clone()).unwrap_or_default(),
            system: Some(JUDGE_SYSTEM.into()),
            messages: vec![ChatMessage::user(question.clone())],
            max_tokens: 300,
            temperature: 0.0,
        };
        async move {
            let Some(route) = route else {
                return (
                    judge.clone(),
                    None,
                    Vec::new(),
                    Err(NoJudgement::NotConfigured(judge.model.clone())),
                );
            };
            let mut attempts = Vec::new();
            let result = route
                .provider
                .chat(&request, |a| attempts.push(a.clone()))
                .await;
            let judgement = result
                .map_err(NoJudgement::from)
                .and_then(|c| parse_judgement(&c.text));
            (judge.clone(), Some(route), attempts, judgement)
        }
    });
    let answers = rec
        .shared
        .runtime
        .block_on(futures::future::join_all(calls));
    let mut votes = Vec::new();
    for (judge, route, attempts, judgement) in answers {
        if let Some(route) = &route {
            for a in &attempts {
                rec.model_attempt(&judge.model, route, "judge", stage, a);
            }
        }
        let payload = match &judgement {
            Ok(j) => json!({
                "gate_id": "QUORUM", "gate_name": "model_quorum", "stage_name": stage.name(),
                "status": match j.recommendation { Recommendation::Pass => "pass", Recommendation::Retry => "warn", Recommendation::Fail => "fail" },
                "score": j.alignment_score / 100.0, "voter_model": judge.model, "weight": judge.weight,
                "recommendation": j.recommendation.as_str(),
                "message": format!("alignment {:.0}, node type {}; missing: {}", j.alignment_score,
                    if j.correct_node_type { "right" } else { "wrong" }, j.missing_requirements.join(", ")),
            }),
            Err(e) => json!({
                "gate_id": "QUORUM", "gate_name": "model_quorum", "stage_name": stage.name(),
                "status": "error", "voter_model": judge.model, "weight": judge.weight,
                "message": format!("no vote: {e}"),
            }),
        };
        rec.push(Topic::ValidationResult, payload, false);
        votes.push(Vote { judge, judgement });
    }
    let d = decide(&votes, &options.quorum);
    rec.push(
        Topic::ValidationResult,
        json!({
            "gate_id": "QUORUM_DECISION", "gate_name": "model_quorum", "stage_name": stage.name(),
            "status": match d.recommendation { Some(Recommendation::Pass) => "pass", Some(Recommendation::Retry) => "warn", Some(Recommendation::Fail) => "fail", None => "error" },
            "score": d.confidence, "recommendation": d.recommendation.map(|r| r.as_str()),
            "duration_ms": started.elapsed().as_secs_f64() * 1000.0,
            "message": format!("{} of {} judges answered; pass share {:.2}, retry share {:.2}", d.responded, d.judges, d.pass_share, d.retry_share),
        }),
        false,
    );
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vote(weight: f64, r: Option<Recommendation>) -> Vote {
        Vote {
            judge: Judge {
                model: "m".into(),
                weight,
            },
            judgement: r
                .map(|recommendation| Judgement {
                    alignment_score: 80.0,
                    correct_node_type: true,
                    missing_requirements: vec![],
                    recommendation,
                })
                .ok_or(NoJudgement::NoJson),
        }
    }

    use Recommendation::*;

    #[test]
    fn upstream_weights_decide() {
        let rules = QuorumRules::default();
        // Weights 1.0/1.0/2.0/1.5: the heavy judge's PASS plus one more carries it.
        let d = decide(
            &[
                vote(1.0, Some(Fail)),
                vote(1.0, Some(Pass)),
                vote(2.0, Some(Pass)),
                vote(1.5, Some(Retry)),
            ],
            &rules,
        );
        assert_eq!(d.recommendation, Some(Retry), "{d:?}"); // pass 3/5.5 = 0.545
        let d = decide(
            &[
                vote(1.0, Some(Pass)),
                vote(1.0, Some(Pass)),
                vote(2.0, Some(Pass)),
                vote(1.5, Some(Fail)),
            ],
            &rules,
        );
        assert_eq!(d.recommendation, Some(Pass)); // 4/5.5 = 0.727
        let d = decide(
            &[
                vote(1.0, Some(Fail)),
                vote(1.0, Some(Fail)),
                vote(2.0, Some(Fail)),
                vote(1.5, Some(Pass)),
            ],
            &rules,
        );
        assert_eq!(d.recommendation, Some(Fail));
    }

    #[test]
    fn fewer_than_sixty_percent_answering_gives_no_verdict() {
        let rules = QuorumRules::default();
        let d = decide(
            &[
                vote(1.0, Some(Pass)),
                vote(1.0, None),
                vote(2.0, None),
                vote(1.5, Some(Pass)),
            ],
            &rules,
        );
        assert_eq!(d.recommendation, None);
        assert_eq!((d.responded, d.judges), (2, 4));
        let d = decide(
            &[
                vote(1.0, Some(Pass)),
                vote(1.0, Some(Pass)),
                vote(1.0, None),
            ],
            &rules,
        );
        assert_eq!(d.recommendation, Some(Pass), "2 of 3 is 67 %");
    }

    #[test]
    fn judgements_are_read_out_of_chatty_answers_and_garbage_is_refused() {
        let j = parse_judgement(
            "Sure!\n```json\n{\"alignment_score\": 85, \"correct_node_type\": true, \"missing_requirements\": [\"retries\"], \"recommendation\": \"pass\"}\n```",
        )
        .unwrap();
        assert_eq!(j.recommendation, Pass);
        assert_eq!(j.missing_requirements, vec!["retries"]);
        assert_eq!(
            parse_judgement("looks good to me").unwrap_err(),
            NoJudgement::NoJson
        );
        assert!(
            parse_judgement("{\"alignment_score\": 500, \"recommendation\": \"PASS\"}")
                .unwrap_err()
                == NoJudgement::ScoreOutOfRange(500.0)
        );
        assert!(matches!(
            parse_judgement("{\"recommendation\": \"MAYBE\", \"alignment_score\": 5}"),
            Err(NoJudgement::Invalid(_))
        ));
    }
}
