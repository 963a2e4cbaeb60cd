//! Time zones and the one wall-clock rule all schedules share.

use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use jiff::{Timestamp, Zoned};

use super::ScheduleError;

/// A time zone by its IANA name, spelled exactly as the tz database spells it (`"UTC"`,
/// `"Europe/Berlin"`): the names Prefect accepts, so a spec orion takes is one Prefect takes.
pub(crate) fn parse_zone(name: &str) -> Result<TimeZone, ScheduleError> {
    let unknown = || ScheduleError::TimeZone(name.to_owned());
    let zone = TimeZone::get(name).map_err(|_| unknown())?;
    // The lookup ignores case; IANA names (and Prefect) do not.
    if zone.iana_name() != Some(name) {
        return Err(unknown());
    }
    Ok(zone)
}

/// The instant a wall-clock time means in `zone`, by RFC 5545 §3.3.5: a time that occurs
/// twice means its first occurrence; a time that does not exist is read with the offset in
/// force before the gap (02:30 on a spring-forward night is 03:30 after it).
pub(crate) fn resolve(zone: &TimeZone, wall: DateTime) -> Option<Zoned> {
    zone.to_ambiguous_zoned(wall).compatible().ok()
}

/// `at` seen in `zone`.
pub(crate) fn in_zone(zone: &TimeZone, at: Timestamp) -> Zoned {
    at.to_zoned(zone.clone())
}

/// Turns wall-clock candidates (in order) into the instants they mean in a zone, in order,
/// on or after `start`, without duplicates.
///
/// Resolving can reorder candidates only inside a DST gap (a skipped 02:30 becomes 03:30,
/// after a real 03:00), so each instant waits in a small heap until a candidate at least
/// three hours of wall-clock time later has been seen.
pub(crate) struct WallClockDates<I> {
    walls: I,
    zone: TimeZone,
    start: Timestamp,
    pending: std::collections::BinaryHeap<std::cmp::Reverse<Timestamp>>,
    last: Option<Timestamp>,
    done: bool,
}

impl<I: Iterator<Item = DateTime>> WallClockDates<I> {
    pub(crate) fn new(walls: I, zone: TimeZone, start: Timestamp) -> Self {
        WallClockDates {
            walls,
            zone,
            start,
            pending: Default::default(),
            last: None,
            done: false,
        }
    }
}

impl<I: Iterator<Item = DateTime>> Iterator for WallClockDates<I> {
    type Item = Zoned;
    fn next(&mut self) -> Option<Zoned> {
        loop {
            let horizon = if self.done {
                None
            } else {
                match self.walls.next() {
                    Some(wall) => match resolve(&self.zone, wall) {
                        Some(z) => {
                            let at = z.timestamp();
                            if at >= self.start {
                                self.pending.push(std::cmp::Reverse(at));
                            }
                            Some(
                                at.checked_sub(jiff::SignedDuration::from_hours(3))
                                    .unwrap_or(at),
                            )
                        }
                        // Beyond the supported date range: nothing later can be resolved.
                        None => {
                            self.done = true;
                            None
                        }
                    },
                    None => {
                        self.done = true;
                        None
                    }
                }
            };
            let Some(&std::cmp::Reverse(earliest)) = self.pending.peek() else {
                if self.done {
                    return None;
                }
                continue;
            };
            if self.done || horizon.is_some_and(|h| earliest <= h) {
                self.pending.pop();
                if self.last.is_some_and(|l| earliest <= l) {
                    continue;
                }
                self.last = Some(earliest);
                return Some(in_zone(&self.zone, earliest));
            }
        }
    }
}
