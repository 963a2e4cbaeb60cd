//! The next 10,000 dates of three schedules.
//!
//! `cargo bench -p benches --bench schedules`

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use orion::schedule::{CronSchedule, IntervalSchedule, RRuleSchedule, Schedule};

fn schedules(c: &mut Criterion) {
    let start: jiff::Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
    let cases = [
        (
            "interval_every_minute",
            Schedule::from(IntervalSchedule::new(Duration::from_secs(60)).unwrap()),
        ),
        (
            "cron_every_5_minutes_new_york",
            Schedule::from(
                CronSchedule::new("*/5 * * * *")
                    .unwrap()
                    .timezone("America/New_York")
                    .unwrap(),
            ),
        ),
        (
            "rrule_hourly_mon_wed_fri",
            Schedule::from(RRuleSchedule::new("FREQ=HOURLY;BYDAY=MO,WE,FR").unwrap()),
        ),
    ];
    let mut group = c.benchmark_group("next_10000_dates");
    for (name, schedule) in &cases {
        group.bench_function(*name, |b| {
            b.iter(|| {
                let dates = schedule.next_dates(start, 10_000);
                assert_eq!(dates.len(), 10_000);
                dates
            });
        });
    }
    group.finish();
}

criterion_group!(benches, schedules);
criterion_main!(benches);
