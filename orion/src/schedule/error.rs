/// A schedule that cannot be built: names the field and the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ScheduleError {
    /// The time zone is not an IANA name known here, spelled as IANA spells it (`UTC`,
    /// `Europe/Berlin`; not `utc`, `Z` or `europe/berlin`), which is what Prefect accepts.
    #[error(
        "Invalid timezone: {0:?} (specify in IANA tzdata format, for example, America/New_York)"
    )]
    TimeZone(String),
    /// The interval is zero, negative, or not a duration.
    #[error("invalid interval {value}: {reason}")]
    Interval {
        /// The value given.
        value: String,
        /// Why it was refused.
        reason: String,
    },
    /// The anchor date is not an RFC 3339 timestamp.
    #[error("invalid anchor_date {value:?}: {reason}")]
    AnchorDate {
        /// The value given.
        value: String,
        /// Why it was refused.
        reason: String,
    },
    /// The cron expression is malformed, or can never fire.
    #[error("invalid cron expression {expression:?}: {reason}")]
    Cron {
        /// The expression.
        expression: String,
        /// What is wrong, naming the field where known.
        reason: String,
    },
    /// The RRULE is malformed, too long, or can never fire.
    #[error("invalid rrule {rrule:?}: {reason}")]
    RRule {
        /// The rule text (cut to 200 characters).
        rrule: String,
        /// What is wrong.
        reason: String,
    },
    /// A schedule mapping that is not one of the three kinds.
    #[error("invalid schedule: {0}")]
    Shape(String),
}
