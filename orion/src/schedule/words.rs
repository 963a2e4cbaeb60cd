//! Schedules in words, for people: `every 1 hour`, `every day at 09:00 (Europe/Paris)`.

use super::Schedule;

impl Schedule {
    /// The schedule in words: `every 10 minutes`, `every day at 09:00 (Europe/Paris)`,
    /// `every Monday at 08:30`; uncommon cron and RRULE patterns are shown as written.
    ///
    /// ```
    /// use orion::schedule::Schedule;
    /// assert_eq!(Schedule::parse("interval: 3600").unwrap().describe(), "every 1 hour");
    /// assert_eq!(Schedule::parse("cron: '0 9 * * *'").unwrap().describe(), "every day at 09:00");
    /// ```
    pub fn describe(&self) -> String {
        let (text, zone) = match self {
            Schedule::Interval(s) => (every(s.interval().as_secs()), s.timezone_name()),
            Schedule::Cron(s) => (cron_words(s.expression()), s.timezone_name()),
            Schedule::RRule(s) => (rrule_words(s.rrule()), s.timezone_name()),
        };
        match zone {
            Some(zone) if zone != "UTC" => format!("{text} ({zone})"),
            _ => text,
        }
    }
}

fn plural(n: u64, unit: &str) -> String {
    if n == 1 {
        format!("1 {unit}")
    } else {
        format!("{n} {unit}s")
    }
}

fn every(seconds: u64) -> String {
    let text = match seconds {
        0 => plural(0, "second"),
        s if s % 604_800 == 0 => plural(s / 604_800, "week"),
        s if s % 86_400 == 0 => plural(s / 86_400, "day"),
        s if s % 3_600 == 0 => plural(s / 3_600, "hour"),
        s if s % 60 == 0 => plural(s / 60, "minute"),
        s => plural(s, "second"),
    };
    format!("every {text}")
}

const DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

fn cron_words(expression: &str) -> String {
    let fields: Vec<&str> = expression.split_whitespace().collect();
    let number = |f: &str, max: u32| f.parse::<u32>().ok().filter(|n| *n <= max);
    let words = match fields.as_slice() {
        ["*", "*", "*", "*", "*"] => Some("every minute".to_owned()),
        [m, "*", "*", "*", "*"] if m.starts_with("*/") => {
            number(&m[2..], 59).map(|n| every(u64::from(n) * 60))
        }
        [m, "*", "*", "*", "*"] => number(m, 59).map(|m| format!("every hour at :{m:02}")),
        [m, h, "*", "*", dow] => match (number(m, 59), number(h, 23)) {
            (Some(m), Some(h)) if *dow == "*" => Some(format!("every day at {h:02}:{m:02}")),
            (Some(m), Some(h)) => {
                number(dow, 7).map(|d| format!("every {} at {h:02}:{m:02}", DAYS[d as usize % 7]))
            }
            _ => None,
        },
        _ => None,
    };
    words.unwrap_or_else(|| format!("cron {expression}"))
}

fn rrule_words(rule: &str) -> String {
    let only_freq = rule
        .strip_prefix("RRULE:")
        .unwrap_or(rule)
        .strip_prefix("FREQ=")
        .filter(|f| !f.contains(';') && !f.contains('\n'));
    match only_freq {
        Some("HOURLY") => "every hour".to_owned(),
        Some("DAILY") => "every day".to_owned(),
        Some("WEEKLY") => "every week".to_owned(),
        Some("MONTHLY") => "every month".to_owned(),
        Some("YEARLY") => "every year".to_owned(),
        _ => format!("RRULE {rule}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_schedules_read_as_words() {
        let d = |s: &str| Schedule::parse(s).unwrap().describe();
        assert_eq!(d("interval: 60"), "every 1 minute");
        assert_eq!(d("interval: 90"), "every 90 seconds");
        assert_eq!(d("interval: 172800"), "every 2 days");
        assert_eq!(d("cron: '*/15 * * * *'"), "every 15 minutes");
        assert_eq!(d("cron: '5 * * * *'"), "every hour at :05");
        assert_eq!(d("cron: '30 8 * * 1'"), "every Monday at 08:30");
        assert_eq!(d("cron: '0 0 1 * *'"), "cron 0 0 1 * *");
        assert_eq!(
            d("{cron: '0 9 * * *', timezone: Europe/Paris}"),
            "every day at 09:00 (Europe/Paris)"
        );
        assert_eq!(d("rrule: 'FREQ=DAILY'"), "every day");
        assert!(d("rrule: 'FREQ=WEEKLY;BYDAY=MO'").starts_with("RRULE "));
    }
}
