//! The price table: cost per million input and output tokens, per model. Re-costing history after
//! a price change is a matter of re-running the reducers with a new table.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// USD per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    pub input_per_mtok: f64,
    pub output_per_mtok: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PriceTable(pub BTreeMap<String, Price>);

impl PriceTable {
    /// (input cost, output cost) in USD, or `None` when the model has no price (unknown cost,
    /// not zero cost).
    pub fn cost(&self, model: &str, input_tokens: i64, output_tokens: i64) -> Option<(f64, f64)> {
        let p = self.0.get(model)?;
        Some((
            input_tokens.max(0) as f64 * p.input_per_mtok / 1e6,
            output_tokens.max(0) as f64 * p.output_per_mtok / 1e6,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_is_per_million_tokens_and_unknown_models_have_no_cost() {
        let mut t = PriceTable::default();
        t.0.insert(
            "gpt-4o".into(),
            Price {
                input_per_mtok: 2.5,
                output_per_mtok: 10.0,
            },
        );
        let (i, o) = t.cost("gpt-4o", 1_000_000, 500_000).unwrap();
        assert!((i - 2.5).abs() < 1e-12 && (o - 5.0).abs() < 1e-12);
        assert_eq!(t.cost("other", 1, 1), None);
    }
}
