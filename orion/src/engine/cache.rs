//! Cache keys.

use serde_json::{Map, Value};

use super::context::TaskRunContext;

/// The standard cache key function: the task's identity ([`TaskRunContext::task_key`]: its
/// name and where it is defined) and its inputs, hashed. Calls of the same task with equal
/// inputs share a cached result (Prefect's `task_input_hash`); two different tasks never do,
/// even when they have the same name.
///
/// Returns `None` (no caching) when the inputs cannot be serialized.
///
/// ```
/// use orion::prelude::*;
///
/// #[task(cache_key_fn = orion::task_input_hash, cache_expiration = 3600)]
/// async fn fetch(url: String) -> String {
///     format!("contents of {url}")
/// }
/// ```
pub fn task_input_hash(ctx: &TaskRunContext, inputs: &Map<String, Value>) -> Option<String> {
    // serde_json's Map is sorted by key, so equal inputs serialize to equal text.
    let text = serde_json::to_string(inputs).ok()?;
    let a = fnv1a64(
        0xcbf2_9ce4_8422_2325,
        ctx.task_key().as_bytes(),
        text.as_bytes(),
    );
    let b = fnv1a64(
        0x6c62_272e_07bb_0142,
        ctx.task_key().as_bytes(),
        text.as_bytes(),
    );
    Some(format!("{}-{a:016x}{b:016x}", ctx.task_key()))
}

fn fnv1a64(offset: u64, name: &[u8], text: &[u8]) -> u64 {
    let mut hash = offset;
    for &byte in name.iter().chain(&[0u8]).chain(text) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}
