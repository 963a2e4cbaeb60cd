use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use super::*;
use crate::state::State;

fn now() -> Timestamp {
    "2026-01-01T12:00:00Z".parse().unwrap()
}

fn ctx<'a>(run_count: u32, retry: &'a RetryPolicy, cached: Option<&'a State>) -> Proposal<'a> {
    Proposal {
        kind: RunKind::Task,
        run_count,
        retry,
        cached,
        now: now(),
        random: 0.5,
    }
}

#[test]
fn a_new_run_may_start_pending_or_scheduled() {
    let p = RetryPolicy::default();
    assert_eq!(
        decide(None, &State::pending(), &ctx(0, &p, None)),
        Decision::Accept
    );
    assert_eq!(
        decide(None, &State::scheduled(now()), &ctx(0, &p, None)),
        Decision::Accept
    );
    assert!(matches!(
        decide(
            None,
            &State::of_type(StateType::Cancelling),
            &ctx(0, &p, None)
        ),
        Decision::Abort(_)
    ));
}

#[test]
fn final_states_are_final() {
    let p = RetryPolicy::default();
    for done in [
        State::completed(),
        State::failed("x"),
        State::crashed("y"),
        State::cancelled("z"),
    ] {
        for next in [
            State::running(),
            State::pending(),
            State::completed(),
            State::failed("again"),
        ] {
            assert_eq!(
                decide(Some(&done), &next, &ctx(1, &p, None)),
                Decision::Reject(done.clone()),
                "{done} -> {next} must be refused"
            );
        }
    }
}

#[test]
fn a_failed_run_with_retries_left_may_go_around_again() {
    let p = RetryPolicy {
        retries: 2,
        ..RetryPolicy::default()
    };
    let failed = State::failed("boom");
    assert_eq!(
        decide(Some(&failed), &State::retrying(), &ctx(1, &p, None)),
        Decision::Accept
    );
    assert_eq!(
        decide(Some(&failed), &State::retrying(), &ctx(3, &p, None)),
        Decision::Reject(failed.clone())
    );
    // Only the retry names leave Failed.
    assert_eq!(
        decide(Some(&failed), &State::running(), &ctx(1, &p, None)),
        Decision::Reject(failed)
    );
}

#[test]
fn a_second_claim_is_aborted() {
    let p = RetryPolicy::default();
    for current in [State::pending(), State::running()] {
        assert!(
            matches!(decide(Some(&current), &State::pending(), &ctx(0, &p, None)), Decision::Abort(m) if m.contains("already"))
        );
    }
    assert_eq!(
        decide(
            Some(&State::scheduled(now())),
            &State::pending(),
            &ctx(0, &p, None)
        ),
        Decision::Accept
    );
}

#[test]
fn running_waits_for_the_scheduled_time() {
    let p = RetryPolicy::default();
    let later = State::scheduled(now() + SignedDuration::from_secs(30));
    assert_eq!(
        decide(Some(&later), &State::running(), &ctx(0, &p, None)),
        Decision::Wait(Duration::from_secs(30))
    );
    let due = State::scheduled(now() - SignedDuration::from_secs(1));
    assert_eq!(
        decide(Some(&due), &State::running(), &ctx(0, &p, None)),
        Decision::Accept
    );
}

#[test]
fn a_cancelling_run_does_not_start() {
    let p = RetryPolicy::default();
    let cancelling = State::of_type(StateType::Cancelling);
    assert!(matches!(
        decide(Some(&cancelling), &State::running(), &ctx(0, &p, None)),
        Decision::Abort(_)
    ));
    assert_eq!(
        decide(
            Some(&cancelling),
            &State::cancelled("stopped"),
            &ctx(0, &p, None)
        ),
        Decision::Accept
    );
}

#[test]
fn failure_with_retries_left_becomes_awaiting_retry() {
    let p = RetryPolicy {
        retries: 2,
        delay: RetryDelay::Fixed(10.0),
        jitter_factor: None,
    };
    let running = State::running();
    let Decision::Reject(retry) = decide(Some(&running), &State::failed("boom"), &ctx(1, &p, None))
    else {
        panic!("expected a retry");
    };
    assert_eq!(retry.name(), "AwaitingRetry");
    assert_eq!(retry.state_type(), StateType::Scheduled);
    assert_eq!(retry.message(), Some("boom"));
    assert_eq!(
        retry.details().scheduled_time,
        Some(now() + SignedDuration::from_secs(10))
    );
    assert!(matches!(
        decide(Some(&running), &State::failed("boom"), &ctx(2, &p, None)),
        Decision::Reject(_)
    ));
    // The third attempt used the last retry.
    assert_eq!(
        decide(Some(&running), &State::failed("boom"), &ctx(3, &p, None)),
        Decision::Accept
    );
}

#[test]
fn retry_delays_follow_the_list_backoff_and_jitter() {
    let running = State::running();
    let at = |p: &RetryPolicy, run_count| match decide(
        Some(&running),
        &State::failed("x"),
        &ctx(run_count, p, None),
    ) {
        Decision::Reject(s) => s.details().scheduled_time.unwrap().duration_since(now()),
        other => panic!("expected a retry, got {other:?}"),
    };
    let list = RetryPolicy {
        retries: 3,
        delay: RetryDelay::List(vec![1.0, 5.0].into()),
        jitter_factor: None,
    };
    assert_eq!(at(&list, 1), SignedDuration::from_secs(1));
    assert_eq!(at(&list, 2), SignedDuration::from_secs(5));
    assert_eq!(at(&list, 3), SignedDuration::from_secs(5));
    let backoff = RetryPolicy {
        retries: 3,
        delay: RetryDelay::Exponential { base_seconds: 2.0 },
        jitter_factor: None,
    };
    assert_eq!(at(&backoff, 1), SignedDuration::from_secs(2));
    assert_eq!(at(&backoff, 3), SignedDuration::from_secs(8));
    // random = 0.5 and factor 1.0: half the delay again.
    let jitter = RetryPolicy {
        retries: 1,
        delay: RetryDelay::Fixed(10.0),
        jitter_factor: Some(1.0),
    };
    assert_eq!(at(&jitter, 1), SignedDuration::from_secs(15));
}

#[test]
fn huge_delays_saturate_instead_of_panicking() {
    assert_eq!(RetryDelay::Fixed(f64::MAX).for_attempt(0), Duration::MAX);
    assert_eq!(RetryDelay::Fixed(-3.0).for_attempt(0), Duration::ZERO);
    assert_eq!(RetryDelay::Fixed(f64::NAN).for_attempt(0), Duration::ZERO);
    assert_eq!(
        RetryDelay::Exponential { base_seconds: 1.0 }.for_attempt(u32::MAX),
        Duration::from_secs(1 << 60)
    );
    let p = RetryPolicy {
        retries: 1,
        delay: RetryDelay::Fixed(f64::MAX),
        jitter_factor: None,
    };
    assert!(matches!(
        decide(
            Some(&State::running()),
            &State::failed("x"),
            &ctx(1, &p, None)
        ),
        Decision::Reject(_)
    ));
}

#[test]
fn a_valid_cached_result_replaces_running() {
    let p = RetryPolicy::default();
    let mut proposed = State::<serde_json::Value>::running();
    proposed.details_mut().cache_key = Some("k".into());
    let mut cached = State::completed().with_data(serde_json::json!(42));
    cached.details_mut().cache_key = Some("k".into());
    cached.details_mut().cache_expiration = Some(now() + SignedDuration::from_secs(60));
    let Decision::Reject(hit) = decide(
        Some(&State::pending()),
        &proposed,
        &ctx(0, &p, Some(&cached)),
    ) else {
        panic!("expected the cached state");
    };
    assert_eq!(hit.name(), "Cached");
    assert_eq!(hit.data(), Some(&serde_json::json!(42)));

    let mut expired = cached.clone();
    expired.details_mut().cache_expiration = Some(now() - SignedDuration::from_secs(1));
    assert_eq!(
        decide(
            Some(&State::pending()),
            &proposed,
            &ctx(0, &p, Some(&expired))
        ),
        Decision::Accept
    );

    let mut refresh = proposed.clone();
    refresh.details_mut().refresh_cache = true;
    assert_eq!(
        decide(
            Some(&State::pending()),
            &refresh,
            &ctx(0, &p, Some(&cached))
        ),
        Decision::Accept
    );
}

#[test]
fn a_crashed_flow_run_with_retries_left_awaits_a_retry_and_a_task_run_does_not() {
    let policy = RetryPolicy {
        retries: 1,
        delay: RetryDelay::Fixed(30.0),
        jitter_factor: None,
    };
    let now: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
    let running = State::running();
    let crashed = State::crashed("agent 'a' was last heard from at 00:00");
    let ctx = |kind, run_count| Proposal {
        kind,
        run_count,
        retry: &policy,
        cached: None,
        now,
        random: 0.0,
    };
    match decide(Some(&running), &crashed, &ctx(RunKind::Flow, 1)) {
        Decision::Reject(retry) => {
            assert_eq!(retry.name(), "AwaitingRetry");
            assert_eq!(
                retry.message(),
                Some("Crashed: agent 'a' was last heard from at 00:00")
            );
            assert_eq!(
                retry.details().scheduled_time,
                Some("2026-01-01T00:00:30Z".parse().unwrap())
            );
        }
        other => panic!("{other:?}"),
    }
    // Retries used up, or a task run: it stays Crashed.
    assert_eq!(
        decide(Some(&running), &crashed, &ctx(RunKind::Flow, 2)),
        Decision::Accept
    );
    assert_eq!(
        decide(Some(&running), &crashed, &ctx(RunKind::Task, 1)),
        Decision::Accept
    );
}
