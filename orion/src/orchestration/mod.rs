//! Orchestration rules: whether a proposed state transition is accepted.
//!
//! Every state write goes through [`decide`]; it is pure (time and randomness come in as
//! arguments), so all transition policy is tested here, away from any store.

#[cfg(test)]
mod tests;

use std::time::Duration;

use jiff::Timestamp;

pub use crate::state::{RetryDelay, RetryPolicy};

use crate::state::{State, StateType, names};

/// Which kind of run a transition is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunKind {
    /// A flow run.
    Flow,
    /// A task run.
    Task,
}

/// Everything besides the two states that a decision depends on.
#[derive(Debug, Clone)]
pub struct Proposal<'a> {
    /// Flow or task run.
    pub kind: RunKind,
    /// How many times the run has entered Running so far.
    pub run_count: u32,
    /// The retry policy.
    pub retry: &'a RetryPolicy,
    /// A valid cached state for the proposed state's cache key, already looked up.
    pub cached: Option<&'a State>,
    /// Now.
    pub now: Timestamp,
    /// A uniform random number in `[0, 1)` for jitter.
    pub random: f64,
}

/// The outcome of a proposed transition.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Write the proposed state.
    Accept,
    /// Write this state instead (a retry, a cached result, the current final state).
    Reject(State),
    /// Propose again after this delay (a run scheduled for later).
    Wait(Duration),
    /// Refuse: the transition makes no sense, e.g. a second claim of a running run.
    Abort(String),
}

/// Decides a proposed transition from `current` (None for a new run) to `proposed`.
pub fn decide(current: Option<&State>, proposed: &State, ctx: &Proposal<'_>) -> Decision {
    let from = current.map(State::state_type);
    let to = proposed.state_type();

    // Final states are final, except that a Failed run with retries left goes around again:
    // the engine proposes Retrying/AwaitingRetry only after the retry rule below sent it there.
    if let Some(cur) = current.filter(|c| c.is_final()) {
        let retry_from_failed = cur.is_failed()
            && [names::AWAITING_RETRY, names::RETRYING].contains(&proposed.name())
            && ctx.run_count <= ctx.retry.retries;
        if !retry_from_failed {
            return Decision::Reject(cur.clone());
        }
        return Decision::Accept;
    }

    match to {
        // A second claim of a run that is already claimed or running is refused, so two
        // workers can never both run it.
        StateType::Pending if matches!(from, Some(StateType::Pending | StateType::Running)) => {
            Decision::Abort(format!(
                "run is already {}",
                from.map_or("", StateType::name)
            ))
        }
        StateType::Running => running(current, proposed, ctx),
        StateType::Failed => failed(proposed, ctx),
        StateType::Crashed => crashed(proposed, ctx),
        StateType::Cancelled | StateType::Completed => Decision::Accept,
        StateType::Cancelling if from.is_none() => {
            Decision::Abort("a run cannot start in Cancelling".into())
        }
        _ => Decision::Accept,
    }
}

fn running(current: Option<&State>, proposed: &State, ctx: &Proposal<'_>) -> Decision {
    if let Some(cur) = current {
        if cur.state_type() == StateType::Cancelling {
            return Decision::Abort("run is being cancelled".into());
        }
        if cur.state_type() == StateType::Scheduled {
            if let Some(at) = cur.details().scheduled_time {
                if at > ctx.now {
                    let wait = ctx.now.duration_until(at);
                    return Decision::Wait(Duration::try_from(wait).unwrap_or_default());
                }
            }
        }
    }
    if let Some(cached) = ctx.cached {
        let d = proposed.details();
        if d.cache_key.is_some() && !d.refresh_cache && cached.is_completed() {
            let valid = cached
                .details()
                .cache_expiration
                .is_none_or(|exp| exp > ctx.now);
            if valid {
                let mut state = State::cached().with_details(cached.details().clone());
                if let Some(data) = cached.data() {
                    state = state.with_data(data.clone());
                }
                return Decision::Reject(state);
            }
        }
    }
    Decision::Accept
}

/// A flow run that crashed (its process died, found by the reaper) is retried like a failed
/// one while its stored policy has retries left: another agent runs it again.
fn crashed(proposed: &State, ctx: &Proposal<'_>) -> Decision {
    if ctx.kind != RunKind::Flow {
        return Decision::Accept;
    }
    match failed(proposed, ctx) {
        Decision::Reject(retry) => {
            let message = format!(
                "Crashed: {}",
                proposed.message().unwrap_or("no reason given")
            );
            Decision::Reject(retry.with_message(message))
        }
        other => other,
    }
}

fn failed(proposed: &State, ctx: &Proposal<'_>) -> Decision {
    // A run that has entered Running `run_count` times has used `run_count - 1` retries.
    if ctx.run_count >= 1 && ctx.run_count <= ctx.retry.retries {
        let delay = ctx.retry.delay.for_attempt(ctx.run_count - 1);
        let jitter = ctx.retry.jitter_factor.unwrap_or(0.0).max(0.0) * ctx.random;
        let delay = Duration::try_from_secs_f64(delay.as_secs_f64() * (1.0 + jitter))
            .unwrap_or(Duration::MAX);
        let at = ctx
            .now
            .checked_add(jiff::SignedDuration::try_from(delay).unwrap_or(jiff::SignedDuration::MAX))
            .unwrap_or(Timestamp::MAX);
        let mut retry = State::awaiting_retry(at);
        if let Some(m) = proposed.message() {
            retry = retry.with_message(m.to_owned());
        }
        return Decision::Reject(retry);
    }
    Decision::Accept
}
