//! `CronSchedule`: cron expressions in croniter's dialect, evaluated on the wall clock.

use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, Zoned};

use super::ScheduleError;
use super::zone::{WallClockDates, in_zone, parse_zone};

/// Fires at the wall-clock times a cron expression names, in the schedule's time zone.
///
/// The dialect is croniter's, as Prefect uses it: 5 fields (`minute hour day month weekday`),
/// 6 with seconds last, 7 with a year after that; names (`MON`, `jan`), ranges (also wrapping:
/// `FRI-MON`, `22-2`), steps, lists, `?`, `L` (last day of the month), `W`, `#` (`FRI#2`) and
/// `L` before a weekday (`L5`: the last Friday), weekday 7 = Sunday, and the aliases `@hourly`,
/// `@daily`, `@midnight`, `@weekly`, `@monthly`, `@yearly`, `@annually`. With `day_or`
/// (the default) a day matches when either day field does, as in POSIX cron; without it,
/// when both do.
///
/// A wall-clock time that occurs twice fires once, at its first occurrence; one that a DST
/// change skips fires just after the gap, with the offset from before it.
///
/// Two deliberate differences from Prefect: `W` and `LW` (nearest weekday, last weekday of
/// the month) are accepted, with correct dates, where croniter refuses them; and an
/// expression that can never fire (`0 0 30 2 *`) is refused with an error, where Prefect
/// accepts it and its deployment silently never runs.
///
/// ```
/// use orion::schedule::{CronSchedule, Schedule};
///
/// let weekdays = CronSchedule::new("0 9 * * MON-FRI")?.timezone("Europe/Berlin")?;
/// let start: jiff::Timestamp = "2026-03-27T00:00:00+01:00".parse()?;
/// let dates: Vec<String> = Schedule::from(weekdays)
///     .next_dates(start, 3)
///     .iter()
///     .map(|d| d.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string())
///     .collect();
/// assert_eq!(dates, ["2026-03-27T09:00:00+01:00", "2026-03-30T09:00:00+02:00", "2026-03-31T09:00:00+02:00"]);
/// assert!(CronSchedule::new("*/0 * * * *").is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct CronSchedule {
    expression: String,
    timezone: Option<String>,
    day_or: bool,
    zone: TimeZone,
    cron: Cron,
    /// The times of day the second, minute and hour fields name, in order: on a matching day
    /// the dates are these, so croner is asked once per day, not once per date.
    times: Vec<jiff::civil::Time>,
}

impl PartialEq for CronSchedule {
    fn eq(&self, other: &Self) -> bool {
        self.expression == other.expression
            && self.timezone == other.timezone
            && self.day_or == other.day_or
    }
}

const FIELDS: [(&str, u32, u32); 7] = [
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
    ("day of week", 0, 7),
    ("second", 0, 59),
    ("year", 1970, 2099),
];

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const DAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

impl CronSchedule {
    /// A schedule from a cron expression, in UTC with `day_or` on.
    ///
    /// # Errors
    ///
    /// [`ScheduleError::Cron`], naming the field, for a malformed expression or one that can
    /// never fire (`0 0 30 2 *`).
    pub fn new(expression: &str) -> Result<Self, ScheduleError> {
        Self::build(expression, None, TimeZone::UTC, true)
    }

    /// Sets the time zone.
    ///
    /// # Errors
    ///
    /// [`ScheduleError::TimeZone`] for a name that is not an IANA time zone.
    pub fn timezone(mut self, name: &str) -> Result<Self, ScheduleError> {
        self.zone = parse_zone(name)?;
        self.timezone = Some(name.trim().to_owned());
        Ok(self)
    }

    /// Sets how the two day fields combine: `true` (default) OR, `false` AND.
    ///
    /// # Errors
    ///
    /// [`ScheduleError::Cron`] when the expression can never fire with this setting.
    pub fn day_or(self, day_or: bool) -> Result<Self, ScheduleError> {
        Self::build(&self.expression, self.timezone, self.zone, day_or)
    }

    /// The expression as given.
    pub fn expression(&self) -> &str {
        &self.expression
    }
    /// The time zone's name, if one was set (UTC otherwise).
    pub fn timezone_name(&self) -> Option<&str> {
        self.timezone.as_deref()
    }
    /// Whether the day fields combine with OR.
    pub fn is_day_or(&self) -> bool {
        self.day_or
    }

    pub(crate) fn zone(&self) -> &TimeZone {
        &self.zone
    }

    fn build(
        expression: &str,
        timezone: Option<String>,
        zone: TimeZone,
        day_or: bool,
    ) -> Result<Self, ScheduleError> {
        let error = |reason: String| ScheduleError::Cron {
            expression: expression.to_owned(),
            reason,
        };
        let pattern = to_croner(expression).map_err(error)?;
        let cron = CronParser::builder()
            .seconds(Seconds::Optional)
            .year(Year::Optional)
            .dom_and_dow(!day_or)
            .build()
            .parse(&pattern)
            .map_err(|e| error(e.to_string()))?;
        let times = times_of_day(&pattern).unwrap_or_default();
        let schedule = CronSchedule {
            expression: expression.to_owned(),
            timezone,
            day_or,
            zone,
            cron,
            times,
        };
        // One that can never fire (`0 0 30 2 *`) is refused now, not found out by a scheduler.
        let probe = jiff::civil::date(1970, 1, 1).at(0, 0, 0, 0);
        if schedule.cron.find_next_occurrence(&probe, true).is_err() {
            return Err(error("it never fires".into()));
        }
        Ok(schedule)
    }

    /// The dates on or after `start`.
    pub(crate) fn iter_from(&self, start: Timestamp) -> impl Iterator<Item = Zoned> + '_ {
        // Candidates are walked from a little before `start`: a wall-clock time that a DST
        // gap pushes forward may land on or after it.
        let wall = in_zone(&self.zone, start).datetime();
        let from = wall
            .checked_sub(SignedDuration::from_hours(3))
            .unwrap_or(wall);
        let mut state = DayWalk {
            cursor: Some(from),
            inclusive: true,
            day: None,
        };
        let walls = std::iter::from_fn(move || state.next(self));
        WallClockDates::new(walls, self.zone.clone(), start)
    }
}

/// Walks the wall clock: croner finds each matching day, the precomputed times of day fill it.
struct DayWalk {
    cursor: Option<jiff::civil::DateTime>,
    inclusive: bool,
    /// The matching day being walked, and the index of the last time given on it.
    day: Option<(jiff::civil::Date, usize)>,
}

impl DayWalk {
    fn next(&mut self, schedule: &CronSchedule) -> Option<jiff::civil::DateTime> {
        if let Some((day, index)) = self.day {
            if let Some(time) = schedule.times.get(index + 1) {
                self.day = Some((day, index + 1));
                return Some(day.to_datetime(*time));
            }
            self.day = None;
            self.cursor = day
                .tomorrow()
                .ok()
                .map(|d| d.to_datetime(jiff::civil::Time::midnight()));
            self.inclusive = true;
        }
        let found = schedule
            .cron
            .find_next_occurrence(&self.cursor?, self.inclusive)
            .ok();
        self.inclusive = false;
        self.cursor = found;
        let found = found?;
        // The day's remaining times come from the table when croner's match is one of them;
        // otherwise (a table that does not apply) croner is asked for every date.
        if let Ok(index) = schedule.times.binary_search(&found.time()) {
            self.day = Some((found.date(), index));
        }
        Some(found)
    }
}

/// The times of day of a croner pattern's second, minute and hour fields, sorted.
fn times_of_day(pattern: &str) -> Option<Vec<jiff::civil::Time>> {
    let parts: Vec<&str> = pattern.split_whitespace().collect();
    let (seconds, minutes, hours) = match parts.len() {
        5 => ("0", parts[0], parts[1]),
        _ => (parts[0], parts[1], parts[2]),
    };
    let (seconds, minutes, hours) = (
        expand(seconds, 59)?,
        expand(minutes, 59)?,
        expand(hours, 23)?,
    );
    let mut times = Vec::with_capacity(hours.len() * minutes.len() * seconds.len());
    for h in &hours {
        for m in &minutes {
            for s in &seconds {
                times.push(jiff::civil::Time::new(*h as i8, *m as i8, *s as i8, 0).ok()?);
            }
        }
    }
    Some(times)
}

/// The values of a normalized numeric field (`*`, `*/s`, `a`, `a-b`, `a-b/s`, lists).
fn expand(field: &str, max: u32) -> Option<Vec<u32>> {
    let mut values = std::collections::BTreeSet::new();
    for item in field.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => (r, s.parse::<u32>().ok()?.max(1)),
            None => (item, 1),
        };
        let (a, b) = match range {
            "*" => (0, max),
            r => match r.split_once('-') {
                Some((a, b)) => (a.parse().ok()?, b.parse().ok()?),
                None => {
                    let a: u32 = r.parse().ok()?;
                    (a, if item.contains('/') { max } else { a })
                }
            },
        };
        values.extend((a..=b.min(max)).step_by(step as usize));
    }
    Some(values.into_iter().collect())
}

/// Rewrites croniter's dialect as croner reads it: aliases expanded, seconds moved first,
/// names upper-cased, wrapping ranges expanded, `L5` as `5#L`; refuses what croniter refuses.
fn to_croner(expression: &str) -> Result<String, String> {
    let text = expression.trim();
    if text.is_empty() {
        return Err("the expression is empty".into());
    }
    let expanded = match text.to_ascii_lowercase().as_str() {
        "@yearly" | "@annually" => "0 0 1 1 *".to_owned(),
        "@monthly" => "0 0 1 * *".to_owned(),
        "@weekly" => "0 0 * * 0".to_owned(),
        "@daily" | "@midnight" => "0 0 * * *".to_owned(),
        "@hourly" => "0 * * * *".to_owned(),
        alias if alias.starts_with('@') => {
            return Err(format!(
                "unknown alias {alias:?}: expected @hourly, @daily, @midnight, @weekly, @monthly, @yearly or @annually"
            ));
        }
        _ => text.to_ascii_uppercase(),
    };
    let fields: Vec<&str> = expanded.split_whitespace().collect();
    if !(5..=7).contains(&fields.len()) {
        return Err(format!(
            "expected 5 fields (minute hour day month weekday), 6 with seconds last, or 7 with a year last; found {}",
            fields.len()
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(7);
    for (index, field) in fields.iter().enumerate() {
        out.push(normalize_field(index, field)?);
    }
    // croner: seconds first, then the five, then the year.
    if out.len() >= 6 {
        let seconds = out.remove(5);
        out.insert(0, seconds);
    }
    Ok(out.join(" "))
}

fn normalize_field(index: usize, field: &str) -> Result<String, String> {
    let (name, lo, hi) = FIELDS[index];
    let bad = |why: &str| format!("field {name} {field:?}: {why}");
    if field == "?" {
        return if index == 2 || index == 4 {
            Ok("*".into())
        } else {
            Err(bad("`?` is only allowed in the day fields"))
        };
    }
    let mut parts = Vec::new();
    for item in field.split(',') {
        if item.is_empty() {
            return Err(bad("empty list element"));
        }
        parts.push(normalize_item(index, item, lo, hi).map_err(|why| bad(&why))?);
    }
    Ok(parts.join(","))
}

fn value(index: usize, text: &str) -> Option<u32> {
    if let Ok(n) = text.parse::<u32>() {
        return Some(n);
    }
    match index {
        3 => MONTHS.iter().position(|m| *m == text).map(|i| i as u32 + 1),
        4 => DAYS.iter().position(|d| *d == text).map(|i| i as u32),
        _ => None,
    }
}

fn normalize_item(index: usize, item: &str, lo: u32, hi: u32) -> Result<String, String> {
    // Weekday specials: `FRI#2`, `L5` (croniter's last Friday).
    if index == 4 {
        if let Some((day, nth)) = item.split_once('#') {
            let day = value(4, day)
                .filter(|d| *d <= 7)
                .ok_or_else(|| format!("unknown weekday {day:?}"))?;
            let nth: u32 = nth
                .parse()
                .map_err(|_| format!("bad occurrence {nth:?} after #"))?;
            if !(1..=5).contains(&nth) {
                return Err(format!("occurrence {nth} after # must be 1 to 5"));
            }
            return Ok(format!("{}#{nth}", day % 7));
        }
        if let Some(day) = item.strip_prefix('L') {
            let day = value(4, day)
                .filter(|d| *d <= 7)
                .ok_or_else(|| format!("`L` takes a weekday after it, not {day:?}"))?;
            return Ok(format!("{}#L", day % 7));
        }
        if item.contains('L') || item.contains('W') {
            return Err("`L` and `W` are not allowed here (write the last Friday as L5)".into());
        }
    }
    if index == 2 && (item == "L" || item.ends_with('W') || item == "LW") {
        return Ok(item.to_owned());
    }
    if item == "*" {
        return Ok("*".into());
    }
    let (range, step) = match item.split_once('/') {
        Some((r, s)) => {
            let step: u32 = s
                .parse()
                .map_err(|_| format!("step {s:?} is not a number"))?;
            if step == 0 {
                return Err("step must be at least 1".into());
            }
            (r, Some(step))
        }
        None => (item, None),
    };
    let (start, end) = if range == "*" {
        (lo, if index == 4 { 6 } else { hi })
    } else if let Some((a, b)) = range.split_once('-') {
        let a = value(index, a).ok_or_else(|| format!("{a:?} is not a value"))?;
        let b = value(index, b).ok_or_else(|| format!("{b:?} is not a value"))?;
        (a, b)
    } else {
        let a = value(index, range).ok_or_else(|| format!("{range:?} is not a value"))?;
        // `10/5` means from 10 to the end, in steps of 5.
        (
            a,
            if step.is_some() {
                if index == 4 { 6 } else { hi }
            } else {
                a
            },
        )
    };
    for v in [start, end] {
        if v < lo || v > hi {
            return Err(format!("{v} is out of range {lo}-{hi}"));
        }
    }
    let step = step.unwrap_or(1);
    if start <= end {
        return Ok(if step == 1 && start == end {
            start.to_string()
        } else if range == "*" && index != 4 {
            format!("*/{step}")
        } else if step == 1 {
            format!("{start}-{end}")
        } else {
            format!("{start}-{end}/{step}")
        });
    }
    // A wrapping range (`FRI-MON`, `22-2`): count on from `start` through the top of the
    // field and around to `end`.
    let top = if index == 4 { 6 } else { hi };
    let size = top - lo + 1;
    let (start, end) = if index == 4 {
        (start % 7, end % 7)
    } else {
        (start, end)
    };
    let span = (end + size - start) % size;
    let values: Vec<String> = (0..=span)
        .step_by(step as usize)
        .map(|i| (lo + (start - lo + i) % size).to_string())
        .collect();
    Ok(values.join(","))
}

#[cfg(test)]
mod tests {
    use super::to_croner;

    #[test]
    fn croniter_syntax_becomes_croner_syntax() {
        assert_eq!(to_croner("*/15 * * * *").unwrap(), "*/15 * * * *");
        assert_eq!(to_croner("0 9 * * mon-fri").unwrap(), "0 9 * * 1-5");
        assert_eq!(to_croner("0 0 * * FRI-MON").unwrap(), "0 0 * * 5,6,0,1");
        assert_eq!(to_croner("0 22-2 * * *").unwrap(), "0 22,23,0,1,2 * * *");
        assert_eq!(to_croner("0 0 * * SAT-SUN").unwrap(), "0 0 * * 6,0");
        assert_eq!(to_croner("0 0 * * 5-7").unwrap(), "0 0 * * 5-7");
        assert_eq!(to_croner("5 4 * * * 30").unwrap(), "30 5 4 * * *");
        assert_eq!(to_croner("5 4 * * * 30 2027").unwrap(), "30 5 4 * * * 2027");
        assert_eq!(to_croner("@midnight").unwrap(), "0 0 * * *");
        assert_eq!(to_croner("0 0 * * L5").unwrap(), "0 0 * * 5#L");
        assert_eq!(to_croner("0 0 ? * FRI#2").unwrap(), "0 0 * * 5#2");
        assert_eq!(to_croner("0 0 L * *").unwrap(), "0 0 L * *");
    }

    #[test]
    fn what_croniter_refuses_is_refused_with_the_field_named() {
        for (expression, needle) in [
            ("1,,2 * * * *", "field minute"),
            ("* * * * 5L", "field day of week"),
            ("*/0 * * * *", "step must be at least 1"),
            ("60 * * * *", "out of range 0-59"),
            ("* 24 * * *", "field hour"),
            ("* * 32 * *", "field day of month"),
            ("* * * 13 *", "field month"),
            ("* * * * 8", "field day of week"),
            ("* * * *", "expected 5 fields"),
            ("@fortnightly", "unknown alias"),
            ("* ? * * *", "only allowed in the day fields"),
            ("* * * * MON#6", "must be 1 to 5"),
        ] {
            let err = to_croner(expression).unwrap_err();
            assert!(err.contains(needle), "{expression}: {err}");
        }
    }
}
