//! A circuit breaker per provider: after `failures` failures within `window`, calls are refused
//! for `cooldown` without touching the network; then one trial call decides (half-open). Upstream's
//! bridge used 5 failures in 60 s.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct BreakerConfig {
    pub failures: u32,
    pub window: Duration,
    pub cooldown: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            failures: 5,
            window: Duration::from_secs(60),
            cooldown: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open {
        until: Instant,
    },
    /// One trial call is in flight.
    HalfOpen,
}

#[derive(Debug)]
pub struct CircuitBreaker {
    config: BreakerConfig,
    state: BreakerState,
    recent_failures: VecDeque<Instant>,
}

impl CircuitBreaker {
    pub fn new(config: BreakerConfig) -> Self {
        CircuitBreaker {
            config,
            state: BreakerState::Closed,
            recent_failures: VecDeque::new(),
        }
    }

    pub fn state(&self) -> BreakerState {
        self.state
    }

    /// May a call go out now? `Err` says how long until the next trial.
    pub fn admit(&mut self, now: Instant) -> Result<(), Duration> {
        match self.state {
            BreakerState::Closed => Ok(()),
            BreakerState::Open { until } if now >= until => {
                self.state = BreakerState::HalfOpen;
                Ok(())
            }
            BreakerState::Open { until } => Err(until - now),
            // The trial is still out: wait for its verdict.
            BreakerState::HalfOpen => Err(Duration::from_millis(100)),
        }
    }

    pub fn record_success(&mut self) {
        self.state = BreakerState::Closed;
        self.recent_failures.clear();
    }

    pub fn record_failure(&mut self, now: Instant) {
        if self.state == BreakerState::HalfOpen {
            self.state = BreakerState::Open {
                until: now + self.config.cooldown,
            };
            return;
        }
        self.recent_failures.push_back(now);
        while self
            .recent_failures
            .front()
            .is_some_and(|t| now.duration_since(*t) > self.config.window)
        {
            self.recent_failures.pop_front();
        }
        if self.recent_failures.len() as u32 >= self.config.failures.max(1) {
            self.state = BreakerState::Open {
                until: now + self.config.cooldown,
            };
            self.recent_failures.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_failures_in_the_window_then_half_opens_and_closes_on_success() {
        let config = BreakerConfig {
            failures: 3,
            window: Duration::from_secs(60),
            cooldown: Duration::from_secs(30),
        };
        let mut b = CircuitBreaker::new(config);
        let t0 = Instant::now();
        for i in 0..2 {
            assert!(b.admit(t0).is_ok());
            b.record_failure(t0 + Duration::from_secs(i));
        }
        assert_eq!(b.state(), BreakerState::Closed);
        b.record_failure(t0 + Duration::from_secs(2));
        assert!(matches!(b.state(), BreakerState::Open { .. }));
        let wait = b.admit(t0 + Duration::from_secs(12)).unwrap_err();
        assert_eq!(wait, Duration::from_secs(20));
        // Cooldown over: one trial; a second caller waits for its verdict.
        assert!(b.admit(t0 + Duration::from_secs(33)).is_ok());
        assert!(b.admit(t0 + Duration::from_secs(33)).is_err());
        b.record_failure(t0 + Duration::from_secs(34));
        assert!(matches!(b.state(), BreakerState::Open { .. }));
        assert!(b.admit(t0 + Duration::from_secs(65)).is_ok());
        b.record_success();
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[test]
    fn failures_outside_the_window_do_not_count() {
        let mut b = CircuitBreaker::new(BreakerConfig {
            failures: 2,
            window: Duration::from_secs(10),
            cooldown: Duration::from_secs(5),
        });
        let t0 = Instant::now();
        b.record_failure(t0);
        b.record_failure(t0 + Duration::from_secs(11));
        assert_eq!(b.state(), BreakerState::Closed);
    }
}
