//! Schedules against Prefect 3.9.1's own outputs (`tests/schedules/golden.json`, made by
//! `tests/schedules/generate_golden.py`).
//!
//! Each case holds the dates the wall-clock rule gives (RFC 5545 §3.3.5, computed in the
//! script independently of Prefect, with zoneinfo). Where Prefect's dates differ, the case
//! also holds Prefect's dates and the known reason; orion is expected to follow the rule:
//!
//! - whole-day intervals: Prefect keeps the hour's shift it took at a DST gap for every later
//!   date; the rule returns to the anchor's wall-clock time the day after;
//! - RRULE: dateutil moves a wall-clock time inside a DST gap an hour back; the rule reads it
//!   with the offset before the gap, i.e. an hour forward.
//!
//! Cron matches Prefect in every case.

use orion::schedule::Schedule;
use serde_json::Value;

fn golden() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/schedules/golden.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Runs every case of one kind; returns (cases, divergences from Prefect, failures).
fn check(kind: &str) -> (usize, usize, Vec<String>) {
    let golden = golden();
    let cases = golden[kind].as_array().unwrap();
    let mut failures = Vec::new();
    let mut divergent = 0;
    for case in cases {
        let schedule: Schedule = serde_json::from_value(case["schedule"].clone())
            .unwrap_or_else(|e| panic!("{}: {e}", case["schedule"]));
        let start: jiff::Timestamp = case["start"].as_str().unwrap().parse().unwrap();
        let n = case["n"].as_u64().unwrap() as usize;
        let ours: Vec<String> = schedule
            .next_dates(start, n)
            .iter()
            .map(|d| d.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string())
            .collect();
        let expected: Vec<String> = case["expected"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| {
                let z: jiff::Timestamp = v.as_str().unwrap().parse().unwrap();
                let text = v.as_str().unwrap();
                // Prefect writes offsets as +HH:MM; compare the same text, via the instant.
                let offset = &text[text.len() - 6..];
                format!(
                    "{}{offset}",
                    z.to_zoned(jiff::tz::TimeZone::fixed(parse_offset(offset)))
                        .strftime("%Y-%m-%dT%H:%M:%S")
                )
            })
            .collect();
        if case.get("divergence").is_some() {
            divergent += 1;
        }
        if ours != expected {
            failures.push(format!(
                "{} from {}:\n  ours     {ours:?}\n  expected {expected:?}",
                case["schedule"], case["start"]
            ));
        }
    }
    (cases.len(), divergent, failures)
}

fn parse_offset(text: &str) -> jiff::tz::Offset {
    let sign = if text.starts_with('-') { -1 } else { 1 };
    let hours: i32 = text[1..3].parse().unwrap();
    let minutes: i32 = text[4..6].parse().unwrap();
    jiff::tz::Offset::from_seconds(sign * (hours * 3600 + minutes * 60)).unwrap()
}

fn assert_kind(kind: &str, min_cases: usize) {
    let (cases, divergent, failures) = check(kind);
    assert!(cases >= min_cases, "only {cases} {kind} cases");
    assert!(
        failures.is_empty(),
        "{} of {cases} {kind} cases differ ({divergent} of them where Prefect departs from the rule); first ones:\n{}",
        failures.len(),
        failures
            .iter()
            .take(8)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn interval_schedules_match_prefect_and_the_wall_clock_rule() {
    assert_kind("interval", 1000);
}

#[test]
fn cron_schedules_match_prefect() {
    assert_kind("cron", 1000);
}

#[test]
fn rrule_schedules_match_prefect_and_the_wall_clock_rule() {
    assert_kind("rrule", 1000);
}

#[test]
fn every_schedule_prefect_rejects_is_rejected_with_a_typed_error() {
    let golden = golden();
    for case in golden["invalid"].as_array().unwrap() {
        let spec = &case["schedule"];
        let result: Result<Schedule, _> = serde_json::from_value(spec.clone());
        // orion also refuses two rules Prefect accepts but then loops on or misreads
        // (BYMONTH=13, INTERVAL=0): every case here is refused.
        let err = result.expect_err(&format!("{spec} must be refused"));
        let text = err.to_string();
        let named = ["interval", "cron", "rrule", "timezone"]
            .iter()
            .any(|w| text.contains(w));
        assert!(
            named,
            "{spec}: the error should name what was wrong: {text}"
        );
    }
}
