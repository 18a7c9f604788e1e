//! A pattern's lifecycle from the outcomes of the generations that applied it: candidate when
//! stored, validated once it has proven itself, deprecated once it has proven the opposite
//! (never served again). The thresholds are upstream's.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lifecycle {
    Candidate,
    Validated,
    Deprecated,
}

impl Lifecycle {
    pub const ALL: [Lifecycle; 3] = [
        Lifecycle::Candidate,
        Lifecycle::Validated,
        Lifecycle::Deprecated,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Lifecycle::Candidate => "candidate",
            Lifecycle::Validated => "validated",
            Lifecycle::Deprecated => "deprecated",
        }
    }

    pub fn parse(s: &str) -> Option<Lifecycle> {
        Lifecycle::ALL.into_iter().find(|l| l.as_str() == s)
    }
}

impl std::fmt::Display for Lifecycle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The outcomes of the generations that applied a pattern.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub uses: i64,
    pub successes: i64,
    /// Failures since the last success.
    pub failure_streak: i64,
}

impl Usage {
    /// The counters after these outcomes, oldest first.
    pub fn from_outcomes(outcomes: impl IntoIterator<Item = bool>) -> Usage {
        outcomes
            .into_iter()
            .fold(Usage::default(), Usage::from_outcomes_after)
    }

    /// The counters after one more outcome.
    pub fn from_outcomes_after(u: Usage, ok: bool) -> Usage {
        Usage {
            uses: u.uses + 1,
            successes: u.successes + i64::from(ok),
            failure_streak: if ok { 0 } else { u.failure_streak + 1 },
        }
    }

    pub fn success_rate(&self) -> f64 {
        if self.uses == 0 {
            0.0
        } else {
            self.successes as f64 / self.uses as f64
        }
    }
}

/// Promote at >= 5 uses with success >= 0.6 and a failure streak < 3.
pub const PROMOTE_USES: i64 = 5;
pub const PROMOTE_SUCCESS: f64 = 0.6;
pub const PROMOTE_MAX_STREAK: i64 = 3;
/// Deprecate at >= 10 uses with success < 0.4, or a failure streak >= 5.
pub const DEPRECATE_USES: i64 = 10;
pub const DEPRECATE_SUCCESS: f64 = 0.4;
pub const DEPRECATE_STREAK: i64 = 5;

/// The lifecycle the counters call for. Deprecation is final; a validated pattern stays
/// validated until the deprecation rule takes it out.
pub fn next(current: Lifecycle, u: &Usage) -> Lifecycle {
    if current == Lifecycle::Deprecated {
        return current;
    }
    let rate = u.success_rate();
    if (u.uses >= DEPRECATE_USES && rate < DEPRECATE_SUCCESS)
        || u.failure_streak >= DEPRECATE_STREAK
    {
        return Lifecycle::Deprecated;
    }
    if u.uses >= PROMOTE_USES && rate >= PROMOTE_SUCCESS && u.failure_streak < PROMOTE_MAX_STREAK {
        return Lifecycle::Validated;
    }
    current
}

/// The counters and lifecycle after these outcomes, oldest first, each moving the lifecycle as it
/// comes (so the result does not depend on how the outcomes were batched).
pub fn replay(outcomes: &[bool]) -> (Usage, Lifecycle) {
    let mut usage = Usage::default();
    let mut lifecycle = Lifecycle::Candidate;
    for &ok in outcomes {
        usage = Usage::from_outcomes_after(usage, ok);
        lifecycle = next(lifecycle, &usage);
    }
    (usage, lifecycle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use Lifecycle::*;

    fn usage(outcomes: &[bool]) -> Usage {
        Usage::from_outcomes(outcomes.iter().copied())
    }

    #[test]
    fn counters_follow_the_outcomes() {
        let u = usage(&[true, false, false, true, false]);
        assert_eq!((u.uses, u.successes, u.failure_streak), (5, 2, 1));
    }

    #[test]
    fn promotion_needs_five_uses_at_three_in_five_and_a_streak_below_three() {
        // 4 uses, all good: not yet.
        assert_eq!(next(Candidate, &usage(&[true; 4])), Candidate);
        // 5 uses, exactly 0.6: promoted.
        assert_eq!(
            next(Candidate, &usage(&[false, false, true, true, true])),
            Validated
        );
        // 5 uses, 0.4: not.
        assert_eq!(
            next(Candidate, &usage(&[false, false, false, true, true])),
            Candidate
        );
        // 0.6 over 10 but a streak of exactly 3: not.
        let streak3 = [true, true, true, true, true, true, false, false, false];
        assert_eq!(usage(&streak3).failure_streak, 3);
        assert_eq!(next(Candidate, &usage(&streak3)), Candidate);
        // A streak of 2 at 0.6: promoted.
        assert_eq!(
            next(Candidate, &usage(&[true, true, true, false, false])),
            Validated
        );
    }

    #[test]
    fn deprecation_at_ten_uses_below_four_in_ten_or_a_streak_of_five() {
        // 10 uses, 3 successes (0.3), streak 1: deprecated.
        let mut ten = vec![
            true, false, true, false, true, false, false, true, true, false,
        ];
        ten[4] = false;
        ten[7] = false;
        let u = usage(&ten);
        assert_eq!((u.uses, u.successes), (10, 3));
        assert_eq!(next(Candidate, &u), Deprecated);
        // 10 uses at exactly 0.4: kept.
        let forty = [
            true, false, true, false, true, false, true, false, false, false,
        ];
        let u = usage(&forty);
        assert_eq!((u.successes, u.failure_streak), (4, 3));
        assert_eq!(next(Candidate, &u), Candidate);
        // 9 uses at 0.33: too few to judge by the rate.
        let nine = [true, false, false, true, false, false, true, false, false];
        assert_eq!(next(Candidate, &usage(&nine)), Candidate);
        // A streak of 5 deprecates even a validated pattern; 4 does not.
        let mut run = vec![true; 6];
        run.extend([false; 4]);
        assert_eq!(next(Validated, &usage(&run)), Validated);
        run.push(false);
        assert_eq!(next(Validated, &usage(&run)), Deprecated);
        // Deprecation is final.
        assert_eq!(next(Deprecated, &usage(&[true; 20])), Deprecated);
    }

    #[test]
    fn replay_moves_the_lifecycle_at_each_outcome() {
        // Validated at the fifth use; still validated at 0.5 over 10 uses, where a pattern judged
        // only at the end would have stayed a candidate.
        let o = [
            true, true, true, true, true, false, false, true, false, false,
        ];
        let (u, l) = replay(&o);
        assert_eq!((u.uses, u.successes, l), (10, 6, Validated));
        let o = [
            true, true, true, true, false, false, false, false, false, true,
        ];
        assert_eq!(
            replay(&o).1,
            Deprecated,
            "a streak of five on the way is final"
        );
        assert_eq!(replay(&[]).1, Candidate);
    }
}
