//! `RRuleSchedule`: RFC 5545 recurrence rules, evaluated on the wall clock.

use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use jiff::{Timestamp, Zoned};
use rrule::RRuleSet;

use super::ScheduleError;
use super::zone::{WallClockDates, in_zone, parse_zone};

/// The longest rule text accepted, as Prefect limits it.
pub const MAX_RRULE_LENGTH: usize = 6_500;

/// Fires at the dates an RFC 5545 recurrence rule (or set of rules) names, in the schedule's
/// time zone.
///
/// The text holds an `RRULE` (the `RRULE:` prefix may be left out), optionally with
/// `DTSTART`, more `RRULE`s, `EXRULE`, `RDATE` and `EXDATE` lines. The digits of `DTSTART`,
/// `UNTIL`, `RDATE` and `EXDATE` are read as wall-clock times in the schedule's time zone
/// (a `Z` or `TZID=` on them is ignored, as Prefect does); without `DTSTART` the rule starts
/// at 2020-01-01 00:00. Wall-clock times resolve as for every schedule: a repeated time means
/// its first occurrence, a skipped one fires just after the gap.
///
/// The rule is checked as Prefect's parser checks it: dateutil's `BYEASTER` is supported
/// (`FREQ=YEARLY;BYEASTER=0;BYHOUR=10`: Easter Sunday at 10:00), an empty part
/// (`FREQ=DAILY;;`) is refused, and so is an `UNTIL` whose form does not match `DTSTART`'s
/// (UTC for a zoned `DTSTART`, local for a floating one, RFC 5545 §3.3.10). A rule that can
/// never fire is refused, where Prefect would accept it and create no runs.
///
/// ```
/// use orion::schedule::{RRuleSchedule, Schedule};
///
/// let mwf = RRuleSchedule::new("FREQ=WEEKLY;BYDAY=MO,WE,FR;BYHOUR=9;BYMINUTE=0;BYSECOND=0")?
///     .timezone("America/New_York")?;
/// let start: jiff::Timestamp = "2026-03-06T00:00:00Z".parse()?;
/// let dates: Vec<String> = Schedule::from(mwf).next_dates(start, 3).iter().map(|d| d.to_string()).collect();
/// assert_eq!(dates, [
///     "2026-03-06T09:00:00-05:00[America/New_York]",
///     "2026-03-09T09:00:00-04:00[America/New_York]",
///     "2026-03-11T09:00:00-04:00[America/New_York]",
/// ]);
/// assert!(RRuleSchedule::new("FREQ=MONTHLY;BYMONTH=13").is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct RRuleSchedule {
    text: String,
    timezone: Option<String>,
    zone: TimeZone,
    set: RRuleSet,
    /// The text as the `rrule` crate reads it, without its DTSTART line.
    body: String,
    /// Whether the set can be restarted near a later date without changing its dates.
    fast_forward: Option<FastForward>,
}

impl PartialEq for RRuleSchedule {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text && self.timezone == other.timezone
    }
}

/// A rule whose periods have a fixed wall-clock length: it can start at any whole number of
/// periods after its DTSTART and name the same dates.
#[derive(Debug, Clone, Copy)]
struct FastForward {
    dtstart: DateTime,
    period_seconds: i64,
    /// The frequency's unit in seconds, for sub-daily rules whose dates must stay on the
    /// grid of DTSTART + k × INTERVAL units (None: no grid check).
    grid_unit: Option<i64>,
    interval: i64,
    /// The rule's UNTIL: restarting after it would leave no rule to walk.
    until: Option<DateTime>,
}

impl RRuleSchedule {
    /// A schedule from rule text, in UTC.
    ///
    /// # Errors
    ///
    /// [`ScheduleError::RRule`] for malformed text, invalid parts (`BYMONTH=13`), or text
    /// longer than [`MAX_RRULE_LENGTH`].
    pub fn new(text: &str) -> Result<Self, ScheduleError> {
        Self::build(text, None, TimeZone::UTC)
    }

    /// Sets the time zone.
    ///
    /// # Errors
    ///
    /// [`ScheduleError::TimeZone`] for a name that is not an IANA time zone.
    pub fn timezone(self, name: &str) -> Result<Self, ScheduleError> {
        let zone = parse_zone(name)?;
        Self::build(&self.text, Some(name.trim().to_owned()), zone)
    }

    /// The rule text as given.
    pub fn rrule(&self) -> &str {
        &self.text
    }
    /// The time zone's name, if one was set (UTC otherwise).
    pub fn timezone_name(&self) -> Option<&str> {
        self.timezone.as_deref()
    }

    pub(crate) fn zone(&self) -> &TimeZone {
        &self.zone
    }

    fn build(text: &str, timezone: Option<String>, zone: TimeZone) -> Result<Self, ScheduleError> {
        let error = |reason: String| ScheduleError::RRule {
            rrule: text.chars().take(200).collect(),
            reason,
        };
        if text.len() > MAX_RRULE_LENGTH {
            return Err(error(format!(
                "longer than {MAX_RRULE_LENGTH} characters ({})",
                text.len()
            )));
        }
        let (body, dtstart) = normalize(text).map_err(error)?;
        let set = parse_set(dtstart, &body).map_err(error)?;
        if set
            .get_rrule()
            .iter()
            .chain(set.get_exrule())
            .any(|r| r.get_interval() == 0)
        {
            return Err(error("INTERVAL must be at least 1".into()));
        }
        if !set.get_rrule().is_empty()
            && set.get_rdate().is_empty()
            && set
                .get_rrule()
                .iter()
                .all(|r| !month_days_possible(r.get_by_month(), r.get_by_month_day()))
        {
            return Err(error(
                "it never fires: no month listed has the days listed".into(),
            ));
        }
        if set.get_rrule().is_empty() && set.get_rdate().is_empty() {
            return Err(error("no RRULE or RDATE in it".into()));
        }
        let fast_forward = fast_forward(&set, dtstart);
        Ok(RRuleSchedule {
            text: text.to_owned(),
            timezone,
            zone,
            set,
            body,
            fast_forward,
        })
    }

    /// The dates on or after `start`.
    pub(crate) fn iter_from(&self, start: Timestamp) -> impl Iterator<Item = Zoned> + '_ {
        let wall = in_zone(&self.zone, start).datetime();
        // Three hours of margin: a time a DST gap pushes forward may land after `start`.
        let from = wall
            .checked_sub(jiff::SignedDuration::from_hours(3))
            .unwrap_or(wall);
        let mut set = self.set.clone();
        if let Some(ff) = self.fast_forward {
            let target = ff.until.filter(|u| *u < from).unwrap_or(from);
            if let Some(restart) = ff.restart_before(target) {
                set = parse_set(restart, &self.body).unwrap_or(set);
            }
        }
        let walls = RuleWalk {
            schedule: self,
            dates: (&set).into_iter(),
            restarted_at: None,
        };
        WallClockDates::new(walls, self.zone.clone(), start)
    }
}

/// Whether some month of `months` (all when empty) has some day of `days` (any when empty).
fn month_days_possible(months: &[u8], days: &[i8]) -> bool {
    const LENGTH: [i8; 12] = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    let all: Vec<u8> = (1..=12).collect();
    let months = if months.is_empty() { &all[..] } else { months };
    days.is_empty()
        || months.iter().any(|m| {
            let len = LENGTH[usize::from(m.clamp(&1, &12) - 1)];
            days.iter()
                .any(|d| (1..=len).contains(d) || (-len..=-1).contains(d))
        })
}

/// The wall-clock dates of the rule set, kept on the rule's grid.
///
/// The `rrule` crate can leave the grid of a sub-daily rule when it skips periods that its
/// BYxxx parts exclude (`FREQ=MINUTELY;INTERVAL=7;BYHOUR=9,10` resumes at 09:00 the next day,
/// not at the next multiple of 7 minutes). A date off the grid restarts the walk at the next
/// grid point, where the crate's dates are right again.
struct RuleWalk<'a> {
    schedule: &'a RRuleSchedule,
    dates: rrule::RRuleSetIter,
    restarted_at: Option<DateTime>,
}

impl Iterator for RuleWalk<'_> {
    type Item = DateTime;
    fn next(&mut self) -> Option<DateTime> {
        // Each restart moves forward by at least one grid step; the bound only guards
        // against a crate that keeps leaving the grid.
        for _ in 0..10_000 {
            let date = from_utc(&self.dates.next()?);
            let Some(ff) = self.schedule.fast_forward else {
                return Some(date);
            };
            match ff.next_grid_point(date) {
                Some(restart) if self.restarted_at.is_none_or(|r| restart > r) => {
                    match parse_set(restart, &self.schedule.body) {
                        Ok(set) => {
                            self.dates = (&set).into_iter();
                            self.restarted_at = Some(restart);
                        }
                        Err(_) => return Some(date),
                    }
                }
                _ => return Some(date),
            }
        }
        None
    }
}

impl FastForward {
    /// For a date off the grid, where the walk should restart: the first grid point in the
    /// hour (minute, day) the crate landed in, where the rule's dates resume. None for a date
    /// on the grid.
    fn next_grid_point(&self, date: DateTime) -> Option<DateTime> {
        let unit = self.grid_unit?;
        let units = self.dtstart.duration_until(date).as_secs().div_euclid(unit);
        if units.rem_euclid(self.interval) == 0 {
            return None;
        }
        let landed = match unit {
            1 => date.with().second(0).build().ok()?,
            60 => date.with().minute(0).second(0).build().ok()?,
            _ => date.date().to_datetime(jiff::civil::Time::midnight()),
        };
        let from = self
            .dtstart
            .duration_until(landed)
            .as_secs()
            .div_euclid(unit);
        let grid = from + (self.interval - from.rem_euclid(self.interval)) % self.interval;
        let at = self
            .dtstart
            .checked_add(jiff::SignedDuration::from_secs(grid.checked_mul(unit)?))
            .ok()?;
        (at != date).then_some(at)
    }

    /// The last whole period start at or before `from`, if it is after DTSTART.
    fn restart_before(&self, from: DateTime) -> Option<DateTime> {
        let elapsed = self.dtstart.duration_until(from).as_secs();
        let periods = elapsed.div_euclid(self.period_seconds) - 1;
        if periods <= 0 {
            return None;
        }
        let shift = jiff::SignedDuration::from_secs(periods.checked_mul(self.period_seconds)?);
        self.dtstart.checked_add(shift).ok()
    }
}

fn fast_forward(set: &RRuleSet, dtstart: DateTime) -> Option<FastForward> {
    use rrule::Frequency;
    let [rule] = set.get_rrule().as_slice() else {
        return None;
    };
    if rule.get_count().is_some() || !set.get_exrule().is_empty() {
        return None;
    }
    let unit = match rule.get_freq() {
        Frequency::Secondly => 1,
        Frequency::Minutely => 60,
        Frequency::Hourly => 3_600,
        Frequency::Daily => 86_400,
        Frequency::Weekly => 7 * 86_400,
        Frequency::Monthly | Frequency::Yearly => return None,
    };
    let sub_daily = unit < 86_400 && set.get_rdate().is_empty();
    Some(FastForward {
        dtstart,
        period_seconds: unit * i64::from(rule.get_interval().max(1)),
        grid_unit: sub_daily.then_some(unit),
        interval: i64::from(rule.get_interval().max(1)),
        until: rule.get_until().map(from_utc),
    })
}

fn parse_set(dtstart: DateTime, body: &str) -> Result<RRuleSet, String> {
    let text = format!("DTSTART:{}Z\n{body}", dtstart.strftime("%Y%m%dT%H%M%S"));
    text.parse().map_err(|e: rrule::RRuleError| e.to_string())
}

fn from_utc(d: &chrono::DateTime<rrule::Tz>) -> DateTime {
    use chrono::{Datelike as _, Timelike as _};
    jiff::civil::DateTime::new(
        d.year() as i16,
        d.month() as i8,
        d.day() as i8,
        d.hour() as i8,
        d.minute() as i8,
        d.second() as i8,
        0,
    )
    .unwrap_or(DateTime::MAX)
}

/// Rewrites the text so every date is a UTC-marked wall-clock time (the wall clock is then
/// evaluated naively and resolved in the schedule's zone); returns the lines without DTSTART
/// and the DTSTART (2020-01-01 00:00 when absent) as a civil time.
fn normalize(text: &str) -> Result<(String, DateTime), String> {
    let raw_lines: Vec<&str> = text
        .split(['\n', '\r'])
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let start = dtstart_of(&raw_lines)?;
    let mut dtstart: Option<DateTime> = None;
    let mut lines = Vec::new();
    for raw in raw_lines {
        let upper = raw.to_ascii_uppercase();
        let (name, value) = match upper.split_once(':') {
            Some((name, value)) => (
                name.split(';').next().unwrap_or(name).to_owned(),
                value.to_owned(),
            ),
            None if upper.starts_with("FREQ=") || upper.contains("FREQ=") => {
                ("RRULE".to_owned(), upper.clone())
            }
            None => return Err(format!("line {raw:?} is neither `NAME:VALUE` nor a rule")),
        };
        match name.as_str() {
            "DTSTART" => {
                let wall = parse_wall(&value)?;
                dtstart = Some(wall);
            }
            "RRULE" | "EXRULE" => lines.push(format!("{name}:{}", rewrite_rule(&value, start)?)),
            "RDATE" | "EXDATE" => {
                let values: Result<Vec<String>, String> = value
                    .split(',')
                    .map(|v| parse_wall(v).map(|w| format!("{}Z", w.strftime("%Y%m%dT%H%M%S"))))
                    .collect();
                lines.push(format!("{name}:{}", values?.join(",")));
            }
            other => {
                return Err(format!(
                    "unsupported property {other:?}: expected DTSTART, RRULE, EXRULE, RDATE or EXDATE"
                ));
            }
        }
    }
    let dtstart = dtstart.unwrap_or_else(|| jiff::civil::date(2020, 1, 1).at(0, 0, 0, 0));
    Ok((lines.join("\n"), dtstart))
}

/// The rule's DTSTART as written: its wall-clock time and whether it is fixed to a zone (`Z`
/// or `TZID=`) rather than floating.
#[derive(Debug, Clone, Copy)]
struct Start {
    wall: DateTime,
    zoned: bool,
}

fn dtstart_of(lines: &[&str]) -> Result<Option<Start>, String> {
    for line in lines {
        let upper = line.to_ascii_uppercase();
        let Some((name, value)) = upper.split_once(':') else {
            continue;
        };
        if name.split(';').next() == Some("DTSTART") {
            return Ok(Some(Start {
                wall: parse_wall(value)?,
                zoned: value.trim().ends_with('Z') || name.contains("TZID="),
            }));
        }
    }
    Ok(None)
}

/// `20260101T090000`, `20260101T090000Z` or `20260101` as a wall-clock time.
fn parse_wall(value: &str) -> Result<DateTime, String> {
    let digits = value.trim().trim_end_matches('Z');
    let parsed = if digits.len() == 8 {
        jiff::civil::Date::strptime("%Y%m%d", digits).map(|d| d.at(0, 0, 0, 0))
    } else {
        DateTime::strptime("%Y%m%dT%H%M%S", digits)
    };
    parsed.map_err(|_| format!("{value:?} is not a date-time such as 20260101T090000"))
}

/// Checks a rule's parts as Prefect's parser (dateutil) does, and rewrites them for the
/// `rrule` crate: UNTIL as a UTC-marked wall-clock time, and BYEASTER completed with the
/// hour, minute and second of DTSTART where the rule gives none (dateutil's default, which
/// the crate does not apply).
fn rewrite_rule(rule: &str, start: Option<Start>) -> Result<String, String> {
    let mut parts = Vec::new();
    for part in rule.split(';') {
        if part.is_empty() {
            return Err("empty part in the rule: two `;` in a row, or one at the end".into());
        }
        match part.split_once('=') {
            Some(("UNTIL", value)) => {
                let wall = parse_wall(value)?;
                let utc = value.trim().ends_with('Z');
                // RFC 5545 §3.3.10: UNTIL has the form of DTSTART (UTC for a zoned DTSTART,
                // local for a floating one); dateutil refuses a mix.
                if let Some(start) = start.filter(|s| s.zoned != utc) {
                    return Err(if start.zoned {
                        format!("UNTIL={value} must be in UTC (ending in Z), as DTSTART is zoned")
                    } else {
                        format!("UNTIL={value} must be a local time (no Z), as DTSTART is floating")
                    });
                }
                parts.push(format!("UNTIL={}Z", wall.strftime("%Y%m%dT%H%M%S")));
            }
            Some(_) => parts.push(part.to_owned()),
            None => return Err(format!("part {part:?} is not NAME=VALUE")),
        }
    }
    if parts.iter().any(|p| p.starts_with("BYEASTER=")) {
        let wall = start.map_or(jiff::civil::date(2020, 1, 1).at(0, 0, 0, 0), |s| s.wall);
        for (name, value) in [
            ("BYHOUR", wall.hour()),
            ("BYMINUTE", wall.minute()),
            ("BYSECOND", wall.second()),
        ] {
            if !parts.iter().any(|p| p.starts_with(&format!("{name}="))) {
                parts.push(format!("{name}={value}"));
            }
        }
    }
    Ok(parts.join(";"))
}
