//! Run ids.

use uuid::Uuid;

/// A time-ordered (version 7) UUID: milliseconds since the epoch, then 74 random bits from a
/// fast thread-local generator. Ids need to be unique, not secret; being ordered by creation
/// time, new rows land at the end of a store's indexes instead of on a random page of each.
pub(crate) fn new_id() -> Uuid {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    id_at(millis, fastrand::u128(..))
}

fn id_at(millis: u64, random: u128) -> Uuid {
    let mut tail = [0u8; 10];
    tail.copy_from_slice(&random.to_le_bytes()[..10]);
    uuid::Builder::from_unix_timestamp_millis(millis, &tail).into_uuid()
}

#[cfg(test)]
mod tests {
    use super::{id_at, new_id};

    #[test]
    fn ids_are_version_7_and_unique() {
        let (a, b) = (new_id(), new_id());
        assert_eq!(a.get_version_num(), 7);
        assert_ne!(a, b);
    }

    #[test]
    fn a_later_millisecond_sorts_after_whatever_the_random_bits() {
        let early = id_at(1_700_000_000_000, u128::MAX);
        let late = id_at(1_700_000_000_001, 0);
        assert!(early < late, "{early} then {late}");
        assert!(early.to_string() < late.to_string(), "text order too");
    }
}
