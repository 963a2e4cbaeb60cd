//! `IntervalSchedule`: every `interval`, aligned to an anchor date.

use std::time::Duration;

use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Span, Timestamp, Zoned};

use super::ScheduleError;
use super::zone::{in_zone, parse_zone, resolve};

const DAY_NANOS: i128 = 86_400 * 1_000_000_000;

/// Fires every `interval`, aligned to `anchor_date`.
///
/// Intervals shorter than a day follow elapsed time (an hourly schedule fires every 60
/// minutes, across DST changes too). Whole-day intervals keep the anchor's wall-clock time in
/// the schedule's time zone every day, DST or not; a wall-clock time that a DST change skips
/// fires just after the gap (02:30 → 03:30) and the schedule returns to 02:30 afterwards.
/// Longer mixed intervals (`36h`) add their days on the calendar and the rest in elapsed time.
///
/// The anchor defaults to 2020-01-01 00:00 in the schedule's time zone, the time zone to UTC.
///
/// ```
/// use std::time::Duration;
/// use orion::schedule::{IntervalSchedule, Schedule};
///
/// let daily = IntervalSchedule::new(Duration::from_secs(86_400))?
///     .anchor_date("2026-03-01T09:00:00-05:00".parse()?)
///     .timezone("America/New_York")?;
/// let start: jiff::Timestamp = "2026-03-07T00:00:00Z".parse()?;
/// let dates: Vec<String> = Schedule::from(daily).next_dates(start, 3).iter().map(|d| d.to_string()).collect();
/// assert_eq!(dates, [
///     "2026-03-07T09:00:00-05:00[America/New_York]",
///     "2026-03-08T09:00:00-04:00[America/New_York]", // DST began that night: still 9am
///     "2026-03-09T09:00:00-04:00[America/New_York]",
/// ]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct IntervalSchedule {
    interval: SignedDuration,
    anchor: Option<Timestamp>,
    timezone: Option<String>,
    zone: TimeZone,
}

impl IntervalSchedule {
    /// Every `interval`.
    ///
    /// # Errors
    ///
    /// [`ScheduleError::Interval`] for a zero interval or one too large to add to a date.
    pub fn new(interval: Duration) -> Result<Self, ScheduleError> {
        let signed = SignedDuration::try_from(interval).map_err(|_| ScheduleError::Interval {
            value: format!("{interval:?}"),
            reason: "too large".into(),
        })?;
        Self::from_signed(signed, format!("{}s", interval.as_secs_f64()))
    }

    fn from_signed(interval: SignedDuration, shown: String) -> Result<Self, ScheduleError> {
        if interval <= SignedDuration::ZERO {
            return Err(ScheduleError::Interval {
                value: shown,
                reason: "must be greater than zero".into(),
            });
        }
        // The whole supported range of dates is about 20,000 years; an interval longer than
        // that can never produce a second date.
        if interval.as_secs() > 20_000 * 366 * 86_400 {
            return Err(ScheduleError::Interval {
                value: shown,
                reason: "so large that the next date would overflow the supported date range"
                    .into(),
            });
        }
        Ok(IntervalSchedule {
            interval,
            anchor: None,
            timezone: None,
            zone: TimeZone::UTC,
        })
    }

    /// Every `seconds` seconds (fractions allowed).
    ///
    /// # Errors
    ///
    /// [`ScheduleError::Interval`] for a zero, negative or non-finite value.
    pub fn from_seconds(seconds: f64) -> Result<Self, ScheduleError> {
        let shown = format!("{seconds}");
        let interval =
            SignedDuration::try_from_secs_f64(seconds).map_err(|_| ScheduleError::Interval {
                value: shown.clone(),
                reason: "must be a finite number of seconds".into(),
            })?;
        Self::from_signed(interval, shown)
    }

    /// Every interval written as an ISO 8601 duration (`PT15M`, `P1D`) or seconds (`"900"`).
    ///
    /// # Errors
    ///
    /// [`ScheduleError::Interval`] when the text is neither, or the duration is not positive.
    pub fn parse(text: &str) -> Result<Self, ScheduleError> {
        if let Ok(seconds) = text.trim().parse::<f64>() {
            return Self::from_seconds(seconds);
        }
        let span: Span = text.trim().parse().map_err(|e| ScheduleError::Interval {
            value: format!("{text:?}"),
            reason: format!("expected seconds or an ISO 8601 duration such as \"PT15M\": {e}"),
        })?;
        if span.get_years() != 0 || span.get_months() != 0 {
            return Err(ScheduleError::Interval {
                value: format!("{text:?}"),
                reason:
                    "years and months have no fixed length; use days, hours, minutes or seconds"
                        .into(),
            });
        }
        // Days and weeks count as 24 hours here; whole-day intervals then follow the
        // calendar in the schedule's time zone.
        let days = i64::from(span.get_weeks()) * 7 + i64::from(span.get_days());
        let rest = span
            .weeks(0)
            .days(0)
            .to_duration(jiff::SpanRelativeTo::days_are_24_hours())
            .map_err(|e| ScheduleError::Interval {
                value: format!("{text:?}"),
                reason: e.to_string(),
            })?;
        let total = SignedDuration::from_secs(days.saturating_mul(86_400))
            .checked_add(rest)
            .ok_or_else(|| ScheduleError::Interval {
                value: format!("{text:?}"),
                reason: "too large".into(),
            })?;
        Self::from_signed(total, format!("{text:?}"))
    }

    /// Aligns the dates to `anchor` (it may lie before or after the dates asked for).
    #[must_use]
    pub fn anchor_date(mut self, anchor: Timestamp) -> Self {
        self.anchor = Some(anchor);
        self
    }

    /// The time zone whose calendar whole-day intervals follow, and dates are shown in.
    ///
    /// # Errors
    ///
    /// [`ScheduleError::TimeZone`] for a name that is not an IANA time zone.
    pub fn timezone(mut self, name: &str) -> Result<Self, ScheduleError> {
        self.zone = parse_zone(name)?;
        self.timezone = Some(name.trim().to_owned());
        Ok(self)
    }

    /// The interval.
    pub fn interval(&self) -> Duration {
        self.interval.unsigned_abs()
    }
    /// The anchor date, if one was set.
    pub fn anchor(&self) -> Option<Timestamp> {
        self.anchor
    }
    /// The time zone's name, if one was set (UTC otherwise).
    pub fn timezone_name(&self) -> Option<&str> {
        self.timezone.as_deref()
    }

    pub(crate) fn zone(&self) -> &TimeZone {
        &self.zone
    }

    fn anchor_wall(&self) -> DateTime {
        match self.anchor {
            Some(at) => in_zone(&self.zone, at).datetime(),
            None => jiff::civil::date(2020, 1, 1).at(0, 0, 0, 0),
        }
    }

    fn anchor_instant(&self) -> Option<Timestamp> {
        match self.anchor {
            Some(at) => Some(at),
            None => resolve(&self.zone, self.anchor_wall()).map(|z| z.timestamp()),
        }
    }

    /// The `k`-th date counted from the anchor (negative: before it).
    fn date(&self, k: i64) -> Option<Zoned> {
        let nanos = self.interval.as_nanos();
        let days = nanos / DAY_NANOS;
        let rest = nanos % DAY_NANOS;
        if days == 0 {
            let offset = i64::try_from(rest.checked_mul(i128::from(k))?).ok()?;
            let at = self
                .anchor_instant()?
                .checked_add(SignedDuration::from_nanos(offset))
                .ok()?;
            return Some(in_zone(&self.zone, at));
        }
        let day_count = i64::try_from(days).ok()?.checked_mul(k)?;
        let wall = self
            .anchor_wall()
            .checked_add(Span::new().try_days(day_count).ok()?)
            .ok()?;
        let on_day = resolve(&self.zone, wall)?;
        let extra = i64::try_from(rest.checked_mul(i128::from(k))?).ok()?;
        let at = on_day
            .timestamp()
            .checked_add(SignedDuration::from_nanos(extra))
            .ok()?;
        Some(in_zone(&self.zone, at))
    }

    /// The index of the first date on or after `start`.
    fn first_index(&self, start: Timestamp) -> Option<i64> {
        let anchor = self.anchor_instant()?;
        let elapsed = start.as_nanosecond() - anchor.as_nanosecond();
        let mut k = i64::try_from(elapsed.div_euclid(self.interval.as_nanos())).ok()?;
        // DST and calendar days move dates by at most hours: a few steps correct the estimate.
        for _ in 0..64 {
            match self.date(k) {
                Some(d) if d.timestamp() >= start => k -= 1,
                _ => break,
            }
        }
        for _ in 0..64 {
            match self.date(k) {
                Some(d) if d.timestamp() < start => k += 1,
                _ => return Some(k),
            }
        }
        Some(k)
    }

    pub(crate) fn iter_from(&self, start: Timestamp) -> IntervalIter<'_> {
        IntervalIter {
            schedule: self,
            next: self.first_index(start),
            last: None,
        }
    }
}

/// The dates of an [`IntervalSchedule`], in order, without duplicates.
pub(crate) struct IntervalIter<'a> {
    schedule: &'a IntervalSchedule,
    next: Option<i64>,
    last: Option<Timestamp>,
}

impl Iterator for IntervalIter<'_> {
    type Item = Zoned;
    fn next(&mut self) -> Option<Zoned> {
        loop {
            let k = self.next?;
            self.next = k.checked_add(1);
            let date = self.schedule.date(k)?;
            // Two calendar days can resolve to one instant only across a gap; keep it once.
            if self.last.is_some_and(|last| date.timestamp() <= last) {
                continue;
            }
            self.last = Some(date.timestamp());
            return Some(date);
        }
    }
}
