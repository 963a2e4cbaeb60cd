//! Prefect's field names for schedules, in both directions.

use jiff::Timestamp;
use serde::de::Error as _;
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{CronSchedule, IntervalSchedule, RRuleSchedule, Schedule, ScheduleError};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    interval: Option<IntervalValue>,
    anchor_date: Option<String>,
    timezone: Option<String>,
    cron: Option<String>,
    day_or: Option<bool>,
    rrule: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum IntervalValue {
    Seconds(f64),
    Text(String),
}

impl TryFrom<Raw> for Schedule {
    type Error = ScheduleError;
    fn try_from(raw: Raw) -> Result<Self, ScheduleError> {
        let shape = |m: &str| ScheduleError::Shape(m.to_owned());
        let kinds = [
            raw.interval.is_some(),
            raw.cron.is_some(),
            raw.rrule.is_some(),
        ];
        if kinds.iter().filter(|k| **k).count() != 1 {
            return Err(shape("give exactly one of `interval`, `cron` or `rrule`"));
        }
        if let Some(interval) = raw.interval {
            if raw.day_or.is_some() {
                return Err(shape("`day_or` belongs to cron schedules"));
            }
            let mut schedule = match interval {
                IntervalValue::Seconds(s) => IntervalSchedule::from_seconds(s)?,
                IntervalValue::Text(t) => IntervalSchedule::parse(&t)?,
            };
            if let Some(tz) = &raw.timezone {
                schedule = schedule.timezone(tz)?;
            }
            if let Some(anchor) = raw.anchor_date {
                let anchor = parse_anchor(&anchor, &schedule)?;
                schedule = schedule.anchor_date(anchor);
            }
            return Ok(schedule.into());
        }
        if raw.anchor_date.is_some() {
            return Err(shape("`anchor_date` belongs to interval schedules"));
        }
        if let Some(cron) = raw.cron {
            let mut schedule = CronSchedule::new(&cron)?;
            if let Some(tz) = &raw.timezone {
                schedule = schedule.timezone(tz)?;
            }
            if let Some(day_or) = raw.day_or {
                schedule = schedule.day_or(day_or)?;
            }
            return Ok(schedule.into());
        }
        if raw.day_or.is_some() {
            return Err(shape("`day_or` belongs to cron schedules"));
        }
        let mut schedule = RRuleSchedule::new(raw.rrule.as_deref().unwrap_or_default())?;
        if let Some(tz) = &raw.timezone {
            schedule = schedule.timezone(tz)?;
        }
        Ok(schedule.into())
    }
}

/// An RFC 3339 instant, or a wall-clock time read in the schedule's time zone.
fn parse_anchor(text: &str, schedule: &IntervalSchedule) -> Result<Timestamp, ScheduleError> {
    if let Ok(at) = text.parse::<Timestamp>() {
        return Ok(at);
    }
    match text.parse::<jiff::civil::DateTime>() {
        Ok(wall) => super::zone::resolve(schedule.zone(), wall)
            .map(|z| z.timestamp())
            .ok_or_else(|| ScheduleError::AnchorDate {
                value: text.to_owned(),
                reason: "out of range".into(),
            }),
        Err(e) => Err(ScheduleError::AnchorDate {
            value: text.to_owned(),
            reason: format!("expected an RFC 3339 timestamp such as 2026-01-01T00:00:00Z: {e}"),
        }),
    }
}

impl<'de> Deserialize<'de> for Schedule {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = Raw::deserialize(deserializer)?;
        Schedule::try_from(raw).map_err(D::Error::custom)
    }
}

impl Serialize for Schedule {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        match self {
            Schedule::Interval(s) => {
                let nanos = s.interval().as_nanos();
                if nanos % 1_000_000_000 == 0 {
                    map.serialize_entry("interval", &(nanos / 1_000_000_000))?;
                } else {
                    map.serialize_entry("interval", &s.interval().as_secs_f64())?;
                }
                if let Some(anchor) = s.anchor() {
                    map.serialize_entry("anchor_date", &anchor.to_string())?;
                }
                if let Some(tz) = s.timezone_name() {
                    map.serialize_entry("timezone", tz)?;
                }
            }
            Schedule::Cron(s) => {
                map.serialize_entry("cron", s.expression())?;
                if let Some(tz) = s.timezone_name() {
                    map.serialize_entry("timezone", tz)?;
                }
                map.serialize_entry("day_or", &s.is_day_or())?;
            }
            Schedule::RRule(s) => {
                map.serialize_entry("rrule", s.rrule())?;
                if let Some(tz) = s.timezone_name() {
                    map.serialize_entry("timezone", tz)?;
                }
            }
        }
        map.end()
    }
}

/// Reads a schedule mapping from YAML (JSON is YAML too).
pub(super) fn parse(text: &str) -> Result<Schedule, ScheduleError> {
    let raw: Raw = crate::yaml::from_str(text).map_err(|e| ScheduleError::Shape(e.to_string()))?;
    Schedule::try_from(raw)
}
