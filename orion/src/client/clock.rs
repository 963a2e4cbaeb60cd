use jiff::{SignedDuration, Timestamp};

/// Where orchestration reads "now" from: scheduled starts, retry delays, cache expiration.
///
/// [`Clock::System`] is the wall clock. [`Clock::tokio`] follows tokio's clock from the moment
/// it is made, so tests under `#[tokio::test(start_paused = true)]` see retry delays and cache
/// expirations pass as virtual time advances, without sleeping for real.
#[derive(Debug, Clone, Copy, Default)]
pub enum Clock {
    /// The system's wall clock.
    #[default]
    System,
    /// Wall-clock time at `base`, advanced by tokio's clock since then.
    Tokio {
        /// Tokio's instant when the clock was made.
        base: tokio::time::Instant,
        /// The wall-clock time then.
        at: Timestamp,
    },
}

impl Clock {
    /// A clock that follows tokio's (possibly paused) time from now on.
    pub fn tokio() -> Self {
        Clock::Tokio {
            base: tokio::time::Instant::now(),
            at: Timestamp::now(),
        }
    }

    /// The current time by this clock.
    pub fn now(&self) -> Timestamp {
        match self {
            Clock::System => Timestamp::now(),
            Clock::Tokio { base, at } => {
                let elapsed =
                    SignedDuration::try_from(base.elapsed()).unwrap_or(SignedDuration::MAX);
                at.checked_add(elapsed).unwrap_or(Timestamp::MAX)
            }
        }
    }
}
