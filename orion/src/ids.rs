//! Run ids.

use uuid::Uuid;

/// A random (version 4) UUID from a fast thread-local generator; ids need to be unique, not
/// secret.
pub(crate) fn new_id() -> Uuid {
    uuid::Builder::from_random_bytes(fastrand::u128(..).to_le_bytes()).into_uuid()
}
