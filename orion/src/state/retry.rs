//! Retry policies: how often and after how long a failed run goes around again. Plain data,
//! kept with each flow run so that whoever finds it crashed can retry it.

use std::borrow::Cow;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How long to wait before each retry: Prefect's `retry_delay_seconds`.
///
/// ```
/// use std::time::Duration;
/// use orion::RetryDelay;
///
/// let backoff = RetryDelay::Exponential { base_seconds: 10.0 };
/// assert_eq!(backoff.for_attempt(0), Duration::from_secs(10));
/// assert_eq!(backoff.for_attempt(2), Duration::from_secs(40));
/// let list = RetryDelay::List(vec![1.0, 5.0].into());
/// assert_eq!(list.for_attempt(7), Duration::from_secs(5)); // the last one repeats
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RetryDelay {
    /// The same delay before every retry, in seconds.
    Fixed(f64),
    /// One delay per retry, in seconds; the last one repeats.
    List(Cow<'static, [f64]>),
    /// `base_seconds * 2^i` before retry `i` (Prefect's `exponential_backoff`).
    Exponential {
        /// The first delay.
        base_seconds: f64,
    },
}

impl Default for RetryDelay {
    fn default() -> Self {
        RetryDelay::Fixed(0.0)
    }
}

impl RetryDelay {
    /// The delay before retry number `attempt` (0 for the first retry).
    pub fn for_attempt(&self, attempt: u32) -> Duration {
        let secs = match self {
            RetryDelay::Fixed(s) => *s,
            RetryDelay::List(list) => list
                .get(attempt as usize)
                .or(list.last())
                .copied()
                .unwrap_or(0.0),
            RetryDelay::Exponential { base_seconds } => {
                base_seconds * 2f64.powi(attempt.min(60) as i32)
            }
        };
        Duration::try_from_secs_f64(secs).unwrap_or(if secs > 0.0 {
            Duration::MAX
        } else {
            Duration::ZERO
        })
    }
}

/// A run's retry policy (Prefect's `empirical_policy`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// How many times a failed (or crashed) run may be retried.
    #[serde(default)]
    pub retries: u32,
    /// The delay before each retry.
    #[serde(default)]
    pub delay: RetryDelay,
    /// Random extra delay, as a fraction of the delay (`0.5`: up to 50% more).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter_factor: Option<f64>,
}

impl RetryPolicy {
    /// No retries.
    pub const NONE: RetryPolicy = RetryPolicy {
        retries: 0,
        delay: RetryDelay::Fixed(0.0),
        jitter_factor: None,
    };
}
