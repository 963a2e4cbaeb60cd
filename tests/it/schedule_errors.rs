//! Schedule construction, serde, bad input and bounds, through the public API.

use std::time::{Duration, Instant};

use orion::schedule::{
    CronSchedule, IntervalSchedule, MAX_DATES, MAX_RRULE_LENGTH, RRuleSchedule, Schedule,
    ScheduleError,
};

fn ts(text: &str) -> jiff::Timestamp {
    text.parse().unwrap()
}

fn texts(dates: &[jiff::Zoned]) -> Vec<String> {
    dates
        .iter()
        .map(|d| d.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string())
        .collect()
}

#[test]
fn the_issue_example_previews_weekdays_in_berlin() {
    let weekdays = CronSchedule::new("0 9 * * MON-FRI")
        .unwrap()
        .timezone("Europe/Berlin")
        .unwrap();
    let dates = Schedule::from(weekdays).next_dates(ts("2026-03-27T00:00:00+01:00"), 3);
    assert_eq!(
        texts(&dates),
        [
            "2026-03-27T09:00:00+01:00",
            "2026-03-30T09:00:00+02:00",
            "2026-03-31T09:00:00+02:00"
        ]
    );
}

#[test]
fn interval_alignment_before_and_after_the_anchor() {
    let every_15 = IntervalSchedule::new(Duration::from_secs(900))
        .unwrap()
        .anchor_date(ts("2026-01-01T00:00:00-06:00"))
        .timezone("America/Chicago")
        .unwrap();
    let s = Schedule::from(every_15);
    assert_eq!(
        texts(&s.next_dates(ts("2026-01-01T06:07:00Z"), 2)),
        ["2026-01-01T00:15:00-06:00", "2026-01-01T00:30:00-06:00"]
    );
    // Before the anchor: still aligned to it.
    assert_eq!(
        texts(&s.next_dates(ts("2025-12-31T04:50:00Z"), 2)),
        ["2025-12-30T23:00:00-06:00", "2025-12-30T23:15:00-06:00"]
    );
    // On a date: inclusive.
    assert_eq!(
        texts(&s.next_dates(ts("2026-01-01T06:15:00Z"), 1)),
        ["2026-01-01T00:15:00-06:00"]
    );
}

#[test]
fn a_daily_time_in_the_gap_fires_after_it_then_returns() {
    let daily = IntervalSchedule::new(Duration::from_secs(86_400))
        .unwrap()
        .anchor_date(ts("2026-03-01T02:30:00-05:00"))
        .timezone("America/New_York")
        .unwrap();
    let dates = Schedule::from(daily).next_dates(ts("2026-03-07T00:00:00-05:00"), 3);
    assert_eq!(
        texts(&dates),
        [
            "2026-03-07T02:30:00-05:00",
            "2026-03-08T03:30:00-04:00",
            "2026-03-09T02:30:00-04:00"
        ]
    );
}

#[test]
fn an_hourly_interval_follows_elapsed_time_through_a_fold() {
    let hourly = IntervalSchedule::new(Duration::from_secs(3600))
        .unwrap()
        .timezone("America/New_York")
        .unwrap();
    let dates = Schedule::from(hourly).next_dates(ts("2026-11-01T04:30:00Z"), 3);
    assert_eq!(
        texts(&dates),
        [
            "2026-11-01T01:00:00-04:00",
            "2026-11-01T01:00:00-05:00",
            "2026-11-01T02:00:00-05:00"
        ]
    );
}

#[test]
fn cron_features_beyond_the_golden_cases() {
    let start = ts("2026-01-01T00:00:00Z");
    let dates = |expr: &str, n| {
        texts(&Schedule::from(CronSchedule::new(expr).unwrap()).next_dates(start, n))
    };
    // W: the weekday nearest the 15th (2026-02-15 is a Sunday → Monday the 16th).
    assert_eq!(dates("0 8 15W 2 *", 1), ["2026-02-16T08:00:00+00:00"]);
    // A year field.
    assert_eq!(dates("0 0 1 1 * 0 2028", 2), ["2028-01-01T00:00:00+00:00"]);
    // Seconds last, as croniter.
    assert_eq!(dates("0 0 * * * 30", 1), ["2026-01-01T00:00:30+00:00"]);
    // day_or = false: the 13th only when it is a Friday.
    let friday13 = CronSchedule::new("0 0 13 * FRI")
        .unwrap()
        .day_or(false)
        .unwrap();
    assert_eq!(
        texts(&Schedule::from(friday13).next_dates(start, 2)),
        ["2026-02-13T00:00:00+00:00", "2026-03-13T00:00:00+00:00"]
    );
}

#[test]
fn bad_schedules_are_typed_errors_naming_the_value() {
    let cron_err = CronSchedule::new("*/0 * * * *").unwrap_err();
    assert!(matches!(cron_err, ScheduleError::Cron { .. }));
    assert_eq!(
        cron_err.to_string(),
        "invalid cron expression \"*/0 * * * *\": field minute \"*/0\": step must be at least 1"
    );
    let never = CronSchedule::new("0 0 30 2 *").unwrap_err();
    assert!(never.to_string().contains("never fires"), "{never}");
    let zone = CronSchedule::new("* * * * *")
        .unwrap()
        .timezone("America/NewYork")
        .unwrap_err();
    assert_eq!(
        zone.to_string(),
        "Invalid timezone: \"America/NewYork\" (specify in IANA tzdata format, for example, America/New_York)"
    );
    assert!(matches!(
        IntervalSchedule::new(Duration::ZERO),
        Err(ScheduleError::Interval { .. })
    ));
    assert!(
        IntervalSchedule::from_seconds(-5.0)
            .unwrap_err()
            .to_string()
            .contains("greater than zero")
    );
    assert!(IntervalSchedule::from_seconds(f64::NAN).is_err());
    let huge = IntervalSchedule::new(Duration::from_secs(u64::MAX / 4)).unwrap_err();
    assert!(
        huge.to_string().contains("overflow") || huge.to_string().contains("too large"),
        "{huge}"
    );
    assert!(
        IntervalSchedule::parse("P1M")
            .unwrap_err()
            .to_string()
            .contains("months")
    );
    assert!(
        IntervalSchedule::parse("soon")
            .unwrap_err()
            .to_string()
            .contains("ISO 8601")
    );
    assert_eq!(
        IntervalSchedule::parse("PT15M").unwrap().interval(),
        Duration::from_secs(900)
    );
    assert_eq!(
        IntervalSchedule::parse("P1DT1H").unwrap().interval(),
        Duration::from_secs(90_000)
    );

    let long = format!("FREQ=DAILY;{}", "BYMINUTE=1;".repeat(MAX_RRULE_LENGTH / 10));
    assert!(
        RRuleSchedule::new(&long)
            .unwrap_err()
            .to_string()
            .contains("longer than 6500")
    );
    let never = RRuleSchedule::new("FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30,31").unwrap_err();
    assert!(never.to_string().contains("never fires"), "{never}");
    assert!(
        RRuleSchedule::new("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29").is_ok(),
        "leap days exist"
    );
    for bad in [
        "FREQ=MONTHLY;BYMONTH=13",
        "FREQ=FORTNIGHTLY",
        "BYDAY=MO",
        "FREQ=DAILY;INTERVAL=0",
        "DTSTART:tomorrow\nRRULE:FREQ=DAILY",
        "X-FOO:1",
    ] {
        assert!(
            matches!(RRuleSchedule::new(bad), Err(ScheduleError::RRule { .. })),
            "{bad}"
        );
    }
}

#[test]
fn schedule_mappings_round_trip_and_refuse_mixtures() {
    for text in [
        r#"{"interval":900,"anchor_date":"2026-01-01T06:00:00Z","timezone":"America/Chicago"}"#,
        r#"{"interval":0.5}"#,
        r#"{"cron":"*/15 * * * *","timezone":"Europe/Berlin","day_or":false}"#,
        r#"{"rrule":"FREQ=WEEKLY;BYDAY=MO,WE,FR","timezone":"UTC"}"#,
    ] {
        let schedule: Schedule = serde_json::from_str(text).unwrap();
        let written = serde_json::to_string(&schedule).unwrap();
        let again: Schedule = serde_json::from_str(&written).unwrap();
        assert_eq!(schedule, again, "{text} -> {written}");
    }
    let iso: Schedule = Schedule::parse("{interval: PT15M, timezone: Asia/Kolkata}").unwrap();
    assert_eq!(
        serde_json::to_value(&iso).unwrap(),
        serde_json::json!({"interval": 900, "timezone": "Asia/Kolkata"})
    );
    for (bad, needle) in [
        ("{cron: '* * * * *', interval: 60}", "exactly one"),
        ("{interval: 60, day_or: true}", "day_or"),
        (
            "{cron: '* * * * *', anchor_date: '2026-01-01T00:00:00Z'}",
            "anchor_date",
        ),
        ("{cron: '* * * * *', colour: blue}", "colour"),
        ("{interval: 60, anchor_date: yesterday}", "anchor_date"),
        ("[1, 2", "invalid schedule"),
    ] {
        let err = Schedule::parse(bad).unwrap_err().to_string();
        assert!(err.contains(needle), "{bad}: {err}");
    }
}

#[test]
fn dates_between_is_inclusive_and_bounded_and_iteration_is_lazy() {
    let minutely = Schedule::from(CronSchedule::new("* * * * *").unwrap());
    let between = minutely.dates_between(ts("2026-01-01T00:00:00Z"), ts("2026-01-01T00:03:00Z"));
    assert_eq!(between.len(), 4);
    let secondly = Schedule::from(RRuleSchedule::new("FREQ=SECONDLY").unwrap());
    let many = secondly.dates_between(ts("2026-01-01T00:00:00Z"), ts("2027-01-01T00:00:00Z"));
    assert_eq!(many.len(), MAX_DATES);
    let mut lazy = minutely.iter_from(ts("2026-01-01T00:00:30Z"));
    assert_eq!(lazy.next().unwrap().timestamp(), ts("2026-01-01T00:01:00Z"));
    // A finite rule ends.
    let counted = Schedule::from(
        RRuleSchedule::new("DTSTART:20260101T000000\nRRULE:FREQ=DAILY;COUNT=3").unwrap(),
    );
    assert_eq!(counted.next_dates(ts("2025-01-01T00:00:00Z"), 10).len(), 3);
}

#[test]
fn rules_prefect_is_slow_on_answer_at_once() {
    let started = Instant::now();
    let secondly = Schedule::from(RRuleSchedule::new("FREQ=SECONDLY").unwrap());
    let dates = secondly.next_dates(ts("2026-06-01T12:00:00Z"), 5);
    assert_eq!(texts(&dates)[0], "2026-06-01T12:00:00+00:00");
    assert_eq!(dates.len(), 5);
    let minutely = Schedule::from(RRuleSchedule::new("FREQ=MINUTELY;INTERVAL=7").unwrap());
    let seven = minutely.next_dates(ts("2026-06-01T12:00:00Z"), 2);
    assert_eq!(
        seven[1]
            .timestamp()
            .duration_since(seven[0].timestamp())
            .as_secs(),
        420
    );
    // Generous: a debug build on a loaded machine. The point is seconds, not minutes.
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn random_inputs_never_panic_or_hang() {
    let mut rng = fastrand::Rng::with_seed(7);
    let atoms = [
        "*", "?", "L", "W", "#", "-", "/", ",", "0", "1", "5", "7", "13", "31", "59", "60", "MON",
        "jan", "L5", "15W", "5#3", "@daily", "",
    ];
    for _ in 0..3_000 {
        let fields: Vec<String> = (0..rng.usize(1..8))
            .map(|_| {
                (0..rng.usize(1..4))
                    .map(|_| atoms[rng.usize(..atoms.len())])
                    .collect::<String>()
            })
            .collect();
        let expr = fields.join(" ");
        if let Ok(s) = CronSchedule::new(&expr) {
            let _ = Schedule::from(s).next_dates(ts("2026-01-01T00:00:00Z"), 3);
        }
    }
    let parts = [
        "FREQ=DAILY",
        "FREQ=YEARLY",
        "FREQ=SECONDLY",
        "BYMONTH=2",
        "BYMONTHDAY=31",
        "BYDAY=5FR",
        "BYSETPOS=-1",
        "COUNT=2",
        "INTERVAL=3",
        "BYWEEKNO=53",
        "BYYEARDAY=366",
        "BYHOUR=23",
        "UNTIL=20250101T000000",
        "WKST=SU",
        "BYDAY=-1SU",
        "BYSETPOS=400",
    ];
    for _ in 0..300 {
        let rule: Vec<&str> = (0..rng.usize(1..5))
            .map(|_| parts[rng.usize(..parts.len())])
            .collect();
        if let Ok(s) = RRuleSchedule::new(&rule.join(";")) {
            let _ = Schedule::from(s).next_dates(ts("2026-01-01T00:00:00Z"), 3);
        }
    }
}

#[test]
fn time_zones_are_taken_as_iana_spells_them_only() {
    for good in ["UTC", "Europe/Berlin", "America/New_York", "Etc/UTC"] {
        assert!(
            CronSchedule::new("0 9 * * *")
                .unwrap()
                .timezone(good)
                .is_ok(),
            "{good}"
        );
    }
    for bad in [
        "utc",
        "Z",
        "europe/berlin",
        "EUROPE/BERLIN",
        "America/NewYork",
        "",
    ] {
        let err = IntervalSchedule::new(Duration::from_secs(60))
            .unwrap()
            .timezone(bad)
            .unwrap_err();
        assert_eq!(err, ScheduleError::TimeZone(bad.to_owned()), "{bad}");
        assert!(err.to_string().starts_with("Invalid timezone: "), "{err}");
    }
    // Through a spec mapping as well.
    let mapped: Result<orion::schedule::Schedule, _> =
        serde_json::from_value(serde_json::json!({"rrule": "FREQ=DAILY", "timezone": "utc"}));
    assert!(
        mapped
            .unwrap_err()
            .to_string()
            .contains("Invalid timezone: \"utc\"")
    );
}

#[test]
fn byeaster_names_easter_sunday_and_its_neighbours() {
    use orion::schedule::{RRuleSchedule, Schedule};
    let dates = |rule: &str| -> Vec<String> {
        let start: jiff::Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        Schedule::from(RRuleSchedule::new(rule).unwrap())
            .next_dates(start, 3)
            .iter()
            .map(|d| d.timestamp().to_string())
            .collect()
    };
    // Easter Sunday: 2026-04-05, 2027-03-28, 2028-04-16.
    assert_eq!(
        dates("FREQ=YEARLY;BYEASTER=0;BYHOUR=10"),
        [
            "2026-04-05T10:00:00Z",
            "2027-03-28T10:00:00Z",
            "2028-04-16T10:00:00Z"
        ]
    );
    // Good Friday, with the time taken from DTSTART as dateutil does.
    assert_eq!(
        dates("DTSTART:20250101T083000\nRRULE:FREQ=YEARLY;BYEASTER=-2"),
        [
            "2026-04-03T08:30:00Z",
            "2027-03-26T08:30:00Z",
            "2028-04-14T08:30:00Z"
        ]
    );
    assert!(RRuleSchedule::new("FREQ=YEARLY;BYEASTER=x").is_err());
}

#[test]
fn malformed_rules_that_prefect_rejects_are_rejected() {
    use orion::schedule::RRuleSchedule;
    for (rule, says) in [
        ("FREQ=DAILY;;BYHOUR=9", "empty part"),
        ("FREQ=DAILY;", "empty part"),
        ("FREQ=DAILY;BYHOUR", "not NAME=VALUE"),
        (
            "DTSTART:20260101T090000\nRRULE:FREQ=DAILY;UNTIL=20260301T000000Z",
            "must be a local time",
        ),
        (
            "DTSTART:20260101T090000Z\nRRULE:FREQ=DAILY;UNTIL=20260301T000000",
            "must be in UTC",
        ),
        (
            "DTSTART;TZID=Europe/Berlin:20260101T090000\nRRULE:FREQ=DAILY;UNTIL=20260301T000000",
            "must be in UTC",
        ),
    ] {
        let err = RRuleSchedule::new(rule).unwrap_err();
        assert!(matches!(err, ScheduleError::RRule { .. }), "{rule}");
        assert!(err.to_string().contains(says), "{rule}: {err}");
    }
    // The matching forms are fine, and so is UNTIL in either form without DTSTART.
    for rule in [
        "DTSTART:20260101T090000\nRRULE:FREQ=DAILY;UNTIL=20260301T000000",
        "DTSTART:20260101T090000Z\nRRULE:FREQ=DAILY;UNTIL=20260301T000000Z",
        "FREQ=DAILY;UNTIL=20260301T000000Z",
        "FREQ=DAILY;UNTIL=20260301T000000",
    ] {
        assert!(RRuleSchedule::new(rule).is_ok(), "{rule}");
    }
}
