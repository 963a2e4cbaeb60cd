//! Schedules: when a deployment's runs should happen.
//!
//! Three kinds, as in Prefect: [`IntervalSchedule`], [`CronSchedule`] and [`RRuleSchedule`],
//! and the [`Schedule`] enum over them, which reads and writes Prefect's spec-file mappings:
//!
//! ```yaml
//! {interval: 900, anchor_date: "2026-01-01T00:00:00Z", timezone: America/Chicago}
//! {cron: "*/15 * * * *", timezone: Europe/Berlin, day_or: true}
//! {rrule: "FREQ=WEEKLY;BYDAY=MO,WE,FR", timezone: UTC}
//! ```
//!
//! Every schedule answers "which dates on or after `start`", in its time zone, with one rule
//! for wall-clock times (RFC 5545 §3.3.5): a time that occurs twice means its first
//! occurrence; a time that does not exist is read with the offset before the gap, so a 02:30
//! job fires at 03:30 on spring-forward day. Time comes in as an argument: nothing here reads
//! the clock.

mod cron;
mod error;
mod interval;
mod rrule;
mod serde_impl;
mod words;
mod zone;

use jiff::tz::TimeZone;
use jiff::{Timestamp, Zoned};

pub use cron::CronSchedule;
pub use error::ScheduleError;
pub use interval::IntervalSchedule;
pub use rrule::{MAX_RRULE_LENGTH, RRuleSchedule};

/// The most dates [`Schedule::dates_between`] returns.
pub const MAX_DATES: usize = 100_000;

/// Any of the three kinds of schedule.
///
/// ```
/// use orion::schedule::Schedule;
///
/// let schedule: Schedule = serde_json::from_str(r#"{"cron": "0 9 * * MON-FRI", "timezone": "Europe/Berlin"}"#)?;
/// let start: jiff::Timestamp = "2026-03-27T00:00:00Z".parse()?;
/// let next = schedule.next_dates(start, 2);
/// assert_eq!(next[0].to_string(), "2026-03-27T09:00:00+01:00[Europe/Berlin]");
/// assert_eq!(serde_json::to_string(&schedule)?, r#"{"cron":"0 9 * * MON-FRI","timezone":"Europe/Berlin","day_or":true}"#);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum Schedule {
    /// Every interval from an anchor.
    Interval(IntervalSchedule),
    /// A cron expression.
    Cron(CronSchedule),
    /// An RFC 5545 recurrence rule set.
    RRule(RRuleSchedule),
}

impl From<IntervalSchedule> for Schedule {
    fn from(s: IntervalSchedule) -> Self {
        Schedule::Interval(s)
    }
}
impl From<CronSchedule> for Schedule {
    fn from(s: CronSchedule) -> Self {
        Schedule::Cron(s)
    }
}
impl From<RRuleSchedule> for Schedule {
    fn from(s: RRuleSchedule) -> Self {
        Schedule::RRule(s)
    }
}

impl Schedule {
    /// The dates on or after `start`, in order, lazily.
    pub fn iter_from(
        &self,
        start: impl Into<Timestamp>,
    ) -> Box<dyn Iterator<Item = Zoned> + Send + '_> {
        let start = start.into();
        match self {
            Schedule::Interval(s) => Box::new(s.iter_from(start)),
            Schedule::Cron(s) => Box::new(s.iter_from(start)),
            Schedule::RRule(s) => Box::new(s.iter_from(start)),
        }
    }

    /// The first `n` dates on or after `start` (fewer when the schedule ends).
    pub fn next_dates(&self, start: impl Into<Timestamp>, n: usize) -> Vec<Zoned> {
        self.iter_from(start).take(n).collect()
    }

    /// The dates from `start` to `end`, both inclusive, at most [`MAX_DATES`] of them.
    pub fn dates_between(
        &self,
        start: impl Into<Timestamp>,
        end: impl Into<Timestamp>,
    ) -> Vec<Zoned> {
        let end = end.into();
        self.iter_from(start)
            .take_while(|d| d.timestamp() <= end)
            .take(MAX_DATES)
            .collect()
    }

    /// The time zone the dates are in.
    pub fn time_zone(&self) -> &TimeZone {
        match self {
            Schedule::Interval(s) => s.zone(),
            Schedule::Cron(s) => s.zone(),
            Schedule::RRule(s) => s.zone(),
        }
    }

    /// Reads a schedule mapping from YAML or JSON text, as in a deployment spec.
    ///
    /// # Errors
    ///
    /// [`ScheduleError::Shape`] for text that is not such a mapping, and the kind's own error
    /// for a bad value.
    pub fn parse(text: &str) -> Result<Schedule, ScheduleError> {
        serde_impl::parse(text)
    }
}
