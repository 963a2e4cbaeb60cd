//! Run counts and run history: the answers behind a dashboard's totals and its chart.

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::state::StateType;

/// The time buckets of a run-history question: `buckets` equal intervals from `start` to
/// `end`. Runs fall in a bucket by their expected start time (their creation time when they
/// have none), as Prefect's flow-run history does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawWindow")]
#[non_exhaustive]
pub struct HistoryWindow {
    /// The first bucket's start.
    pub start: Timestamp,
    /// The last bucket's end (excluded).
    pub end: Timestamp,
    /// How many buckets (1 to 500).
    pub buckets: u32,
}

/// A window as it arrives, checked by [`HistoryWindow::new`] before use.
#[derive(Deserialize)]
struct RawWindow {
    start: Timestamp,
    end: Timestamp,
    buckets: u32,
}

impl TryFrom<RawWindow> for HistoryWindow {
    type Error = String;

    fn try_from(w: RawWindow) -> Result<Self, String> {
        HistoryWindow::new(w.start, w.end, w.buckets).ok_or_else(|| {
            format!(
                "a history window needs its end after its start and 1 to {MAX_BUCKETS} buckets (got {} buckets)",
                w.buckets
            )
        })
    }
}

/// At most this many buckets in one history answer.
pub const MAX_BUCKETS: u32 = 500;

impl HistoryWindow {
    /// `buckets` intervals from `start` to `end`; None when `end` is not after `start` or
    /// `buckets` is 0 or above [`MAX_BUCKETS`].
    pub fn new(start: Timestamp, end: Timestamp, buckets: u32) -> Option<Self> {
        (end > start && (1..=MAX_BUCKETS).contains(&buckets)).then_some(HistoryWindow {
            start,
            end,
            buckets,
        })
    }

    /// The width of one bucket in nanoseconds (at least 1).
    pub(crate) fn width_nanos(&self) -> i128 {
        let span = self.end.as_nanosecond() - self.start.as_nanosecond();
        (span / i128::from(self.buckets.max(1))).max(1)
    }

    /// The bucket `at` falls in, if any.
    pub(crate) fn bucket_of(&self, at: Timestamp) -> Option<usize> {
        if at < self.start || at >= self.end {
            return None;
        }
        let i = (at.as_nanosecond() - self.start.as_nanosecond()) / self.width_nanos();
        usize::try_from(i)
            .ok()
            .map(|i| i.min(self.buckets as usize - 1))
    }

    /// Empty buckets covering the window.
    pub(crate) fn empty(&self) -> Vec<HistoryBucket> {
        let width = self.width_nanos();
        (0..self.buckets)
            .map(|i| {
                let at = |k: i128| {
                    let nanos = self.start.as_nanosecond() + width * k;
                    Timestamp::from_nanosecond(nanos).unwrap_or(self.end)
                };
                let end = if i + 1 == self.buckets {
                    self.end
                } else {
                    at(i128::from(i) + 1)
                };
                HistoryBucket {
                    interval_start: at(i128::from(i)),
                    interval_end: end,
                    states: Vec::new(),
                }
            })
            .collect()
    }

    /// Buckets filled from `(time, state type, count)` rows.
    pub(crate) fn fill(
        &self,
        rows: impl IntoIterator<Item = (Timestamp, StateType, u64)>,
    ) -> Vec<HistoryBucket> {
        let mut buckets = self.empty();
        for (at, state_type, count) in rows {
            if let Some(bucket) = self.bucket_of(at).and_then(|i| buckets.get_mut(i)) {
                bucket.add(state_type, count);
            }
        }
        for bucket in &mut buckets {
            bucket.states.sort_by_key(|s| s.state_type);
        }
        buckets
    }

    /// Buckets filled from whole runs (their history time and state type).
    pub(crate) fn fill_runs(&self, runs: &[crate::store::FlowRun]) -> Vec<HistoryBucket> {
        self.fill(
            runs.iter()
                .filter_map(|r| Some((r.history_time(), r.state.as_ref()?.state_type(), 1))),
        )
    }

    /// The window's length.
    pub fn span(&self) -> SignedDuration {
        self.end.duration_since(self.start)
    }
}

/// Runs of one time bucket, by state type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct HistoryBucket {
    /// The bucket's start.
    pub interval_start: Timestamp,
    /// Its end (excluded).
    pub interval_end: Timestamp,
    /// How many runs in each state type (types without runs are left out), by type.
    pub states: Vec<HistoryCount>,
}

impl HistoryBucket {
    pub(crate) fn add(&mut self, state_type: StateType, count: u64) {
        match self.states.iter_mut().find(|s| s.state_type == state_type) {
            Some(s) => s.count_runs += count,
            None => self.states.push(HistoryCount {
                state_type,
                count_runs: count,
            }),
        }
    }

    /// Runs in the bucket, all states.
    pub fn total(&self) -> u64 {
        self.states.iter().map(|s| s.count_runs).sum()
    }
}

/// How many runs of a bucket are in one state type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct HistoryCount {
    /// The state type.
    pub state_type: StateType,
    /// How many runs.
    pub count_runs: u64,
}

/// A state type from its stored code (`"COMPLETED"`).
pub(crate) fn state_type_of(code: &str) -> Option<StateType> {
    StateType::ALL
        .into_iter()
        .find(|t| super::bookkeeping::type_code(*t) == code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_fall_in_their_bucket_and_outside_runs_nowhere() {
        let start: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let end: Timestamp = "2026-01-01T01:00:00Z".parse().unwrap();
        let w = HistoryWindow::new(start, end, 4).unwrap();
        let at = |m: i64| start + SignedDuration::from_mins(m);
        let b = w.fill([
            (at(0), StateType::Completed, 1),
            (at(14), StateType::Failed, 2),
            (at(15), StateType::Completed, 1),
            (at(59), StateType::Completed, 1),
            (at(60), StateType::Completed, 9),
            (at(-1), StateType::Completed, 9),
        ]);
        assert_eq!(b.len(), 4);
        assert_eq!(b[0].total(), 3);
        assert_eq!(b[0].states[0].state_type, StateType::Completed);
        assert_eq!(b[1].total(), 1);
        assert_eq!(b[2].total(), 0);
        assert_eq!(b[3].total(), 1);
        assert_eq!(b[3].interval_end, end);
        assert_eq!(b[1].interval_start, at(15));
        assert!(HistoryWindow::new(end, start, 4).is_none());
        assert!(HistoryWindow::new(start, end, 0).is_none());
        assert!(HistoryWindow::new(start, end, MAX_BUCKETS + 1).is_none());
    }

    #[test]
    fn a_window_that_cannot_be_is_refused_when_read() {
        let bad = serde_json::json!({"start": "2026-01-01T00:00:00Z", "end": "2026-01-01T01:00:00Z", "buckets": 0});
        let err = serde_json::from_value::<HistoryWindow>(bad).unwrap_err();
        assert!(err.to_string().contains("1 to 500 buckets"), "{err}");
        let backwards = serde_json::json!({"start": "2026-01-02T00:00:00Z", "end": "2026-01-01T00:00:00Z", "buckets": 4});
        assert!(serde_json::from_value::<HistoryWindow>(backwards).is_err());
        let good = HistoryWindow::new(
            "2026-01-01T00:00:00Z".parse().unwrap(),
            "2026-01-01T01:00:00Z".parse().unwrap(),
            4,
        )
        .unwrap();
        let back: HistoryWindow =
            serde_json::from_value(serde_json::to_value(good).unwrap()).unwrap();
        assert_eq!(back, good);
    }

    #[test]
    fn every_state_type_code_reads_back() {
        for t in StateType::ALL {
            assert_eq!(
                state_type_of(crate::store::bookkeeping::type_code(t)),
                Some(t)
            );
        }
        assert_eq!(state_type_of("NOPE"), None);
    }
}
