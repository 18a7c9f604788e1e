//! The model quorum (decision 9, upstream rules): judge models score the generated node; weighted
//! votes decide PASS, RETRY or FAIL; at least 60 % of the judges must answer for a verdict.

use serde::{Deserialize, Serialize};

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
    pub judgement: Result<Judgement, String>,
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

pub const JUDGE_SYSTEM: &str = "You review generated Python code for ONEX nodes. Answer with one JSON object and nothing else: {\"alignment_score\": 0-100, \"correct_node_type\": true|false, \"missing_requirements\": [\"...\"], \"recommendation\": \"PASS\"|\"RETRY\"|\"FAIL\"}.";

pub fn judge_prompt(request: &str, node_type: &str, class_name: &str, code: &str) -> String {
    format!(
        "Request: {request}\nExpected: an ONEX {node_type} node, class {class_name}.\n\
         Does this code do what the request asks, with the right node type? \
         PASS if it does, RETRY if it needs changes, FAIL if it is wrong.\n\n```python\n{code}\n```"
    )
}

/// Read a judgement out of a model's answer (tolerates prose and code fences around the JSON).
pub fn parse_judgement(text: &str) -> Result<Judgement, String> {
    let start = text.find('{').ok_or("no JSON object in the answer")?;
    let end = text.rfind('}').ok_or("no JSON object in the answer")?;
    if end < start {
        return Err("no JSON object in the answer".into());
    }
    let mut value: serde_json::Value = serde_json::from_str(&text[start..=end])
        .map_err(|e| format!("the judgement is not JSON: {e}"))?;
    if let Some(r) = value.get_mut("recommendation")
        && let Some(s) = r.as_str()
    {
        *r = serde_json::Value::String(s.trim().to_ascii_uppercase());
    }
    let j: Judgement =
        serde_json::from_value(value).map_err(|e| format!("the judgement lacks a field: {e}"))?;
    if !(0.0..=100.0).contains(&j.alignment_score) {
        return Err(format!(
            "alignment_score {} is outside 0..100",
            j.alignment_score
        ));
    }
    Ok(j)
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
                .ok_or_else(|| "timeout".to_string()),
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
        assert!(parse_judgement("looks good to me").is_err());
        assert!(
            parse_judgement("{\"alignment_score\": 500, \"recommendation\": \"PASS\"}").is_err()
        );
        assert!(
            parse_judgement("{\"recommendation\": \"MAYBE\", \"alignment_score\": 5}").is_err()
        );
    }
}
