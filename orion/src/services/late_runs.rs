//! The late-runs marker: Scheduled runs past their time become `Late`.

use std::time::Duration;

use jiff::SignedDuration;

use super::{Shutdown, log};
use crate::state::{RetryPolicy, State, StateType, names};
use crate::store::{FlowRunFilter, LogLevel};
use crate::{Orion, Result, RunRef};

const SOURCE: &str = "orion.late_runs";

/// Renames a Scheduled run `Late` once it is more than [`LateRuns::after`] (default 15 s,
/// Prefect's) past its scheduled time without an agent taking it. A Late run is still
/// Scheduled: agents take it as any other due run.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> orion::Result<()> {
/// use orion::services::LateRuns;
///
/// let orion = orion::Orion::memory();
/// assert_eq!(LateRuns::new().run_once(&orion).await?, 0); // nothing is late
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct LateRuns {
    after: Duration,
    loop_interval: Duration,
}

impl Default for LateRuns {
    fn default() -> Self {
        LateRuns {
            after: Duration::from_secs(15),
            loop_interval: Duration::from_secs(5),
        }
    }
}

impl LateRuns {
    /// Marks runs 15 s past their time, checking every 5 s.
    pub fn new() -> Self {
        Self::default()
    }
    /// How far past its time a run is Late.
    #[must_use]
    pub fn after(mut self, d: Duration) -> Self {
        self.after = d;
        self
    }
    /// Time between passes.
    #[must_use]
    pub fn loop_interval(mut self, d: Duration) -> Self {
        self.loop_interval = d;
        self
    }

    /// Runs passes until shutdown.
    ///
    /// # Errors
    ///
    /// None in practice: a failed pass is logged and tried again.
    pub async fn run(self, orion: Orion, shutdown: Shutdown) -> Result<()> {
        super::every(SOURCE, self.loop_interval, shutdown, || async {
            let marked = self.run_once(&orion).await?;
            if marked > 0 {
                log(
                    LogLevel::Info,
                    SOURCE,
                    &format!("Marked {marked} run(s) Late"),
                );
            }
            Ok(())
        })
        .await
    }

    /// One pass; returns how many runs it marked.
    ///
    /// # Errors
    ///
    /// Store failures.
    pub async fn run_once(&self, orion: &Orion) -> Result<usize> {
        let client = orion.client();
        let before = client
            .now()
            .checked_sub(SignedDuration::try_from(self.after).unwrap_or(SignedDuration::MAX))
            .unwrap_or(jiff::Timestamp::MIN);
        let filter = FlowRunFilter::new()
            .state_types([StateType::Scheduled])
            .state_names([StateType::Scheduled.name()])
            .expected_start_between(None, Some(before));
        let mut marked = 0;
        for run in client.read_flow_runs(&filter).await? {
            let Some(current) = run.state.as_ref() else {
                continue;
            };
            let at = current.details().scheduled_time.or(run.expected_start_time);
            let late = State::new(StateType::Scheduled, names::LATE);
            let late = match at {
                Some(at) => late.with_scheduled_time(at),
                None => late,
            };
            let run_ref =
                RunRef::flow(run.id, Some(current), run.run_count, &RetryPolicy::NONE).fence();
            // Taken by an agent meanwhile: not late after all.
            if client.propose_state(run_ref, late).await.is_ok() {
                marked += 1;
            }
        }
        Ok(marked)
    }
}
