//! The SQL a client filter becomes. Indexed columns narrow the rows; then the filter's own
//! `matches` decides, so the file store answers exactly as the memory store does.

use rusqlite::Connection;
use rusqlite::types::Value;

use super::many;
use crate::state::StateType;
use crate::store::bookkeeping::type_code;
use crate::store::history::state_type_of;
use crate::store::{
    FlowRun, FlowRunFilter, HistoryBucket, HistoryWindow, Sort, StoreError, TaskRun, TaskRunFilter,
};

/// How far a stored time may be from the record's own (times migrated from schema version 1
/// kept milliseconds): time conditions in SQL are widened by this, `matches` is exact.
const SLACK_NANOS: i64 = 1_000_000;

/// A WHERE clause being built, with its parameters in order.
#[derive(Default)]
struct Where {
    sql: String,
    params: Vec<Value>,
}

impl Where {
    fn and(&mut self, condition: &str, values: impl IntoIterator<Item = Value>) {
        self.sql.push_str(if self.sql.is_empty() {
            " WHERE "
        } else {
            " AND "
        });
        self.sql.push_str(condition);
        self.params.extend(values);
    }

    fn and_in(&mut self, column: &str, values: impl IntoIterator<Item = String>) {
        let values: Vec<Value> = values.into_iter().map(Value::Text).collect();
        if values.is_empty() {
            return;
        }
        let marks = vec!["?"; values.len()].join(", ");
        self.and(&format!("{column} IN ({marks})"), values);
    }

    fn and_time(&mut self, condition: &str, at: Option<jiff::Timestamp>, widen: i64) {
        if let Some(at) = at {
            let nanos = i64::try_from(at.as_nanosecond()).unwrap_or(i64::MAX);
            self.and(condition, [Value::Integer(nanos.saturating_add(widen))]);
        }
    }

    fn rows<T: serde::de::DeserializeOwned>(
        self,
        conn: &Connection,
        table: &str,
    ) -> Result<Vec<T>, StoreError> {
        let sql = format!("SELECT body FROM {table}{}", self.sql);
        many(conn, &sql, rusqlite::params_from_iter(self.params))
    }
}

fn text(value: impl ToString) -> Value {
    Value::Text(value.to_string())
}

/// The flow runs passing `filter`, not yet sorted or paged.
pub(super) fn flow_runs(
    conn: &Connection,
    filter: &FlowRunFilter,
) -> Result<Vec<FlowRun>, StoreError> {
    let runs: Vec<FlowRun> = flow_run_rows(filter).rows(conn, "flow_runs")?;
    Ok(runs.into_iter().filter(|r| filter.matches(r)).collect())
}

/// The flow runs passing `filter`, sorted and paged. A filter with a limit reads only as
/// many rows as the page needs, in the order SQL and the filter share (widened time
/// conditions may let a few rows through that `matches` then drops: the read grows until the
/// page is full or the rows run out).
pub(super) fn flow_runs_page(
    conn: &Connection,
    filter: &FlowRunFilter,
) -> Result<Vec<FlowRun>, StoreError> {
    let Some(limit) = filter.limit else {
        return Ok(filter.finish(flow_runs(conn, filter)?));
    };
    let order = match filter.sort {
        Sort::CreatedAsc => "created, id",
        Sort::CreatedDesc => "created DESC, id DESC",
        Sort::ExpectedStartAsc => "expected_start IS NULL, expected_start, created, id",
    };
    let wanted = filter.offset.saturating_add(limit);
    let mut batch = wanted.saturating_add(16);
    loop {
        let mut w = flow_run_rows(filter);
        w.sql.push_str(&format!(" ORDER BY {order} LIMIT {batch}"));
        let rows: Vec<FlowRun> = w.rows(conn, "flow_runs")?;
        let exhausted = rows.len() < batch;
        let runs: Vec<FlowRun> = rows.into_iter().filter(|r| filter.matches(r)).collect();
        if exhausted || runs.len() >= wanted {
            return Ok(filter.finish(runs));
        }
        batch = batch.saturating_mul(4);
    }
}

/// How many flow runs pass `filter`: counted by SQL when it expresses the whole filter.
pub(super) fn count_flow_runs(
    conn: &Connection,
    filter: &FlowRunFilter,
) -> Result<usize, StoreError> {
    if !filter.sql_exact(false) {
        return Ok(flow_runs(conn, filter)?.len());
    }
    let w = flow_run_rows(filter);
    let sql = format!("SELECT COUNT(*) FROM flow_runs{}", w.sql);
    let n: i64 = conn
        .prepare_cached(&sql)
        .and_then(|mut s| s.query_row(rusqlite::params_from_iter(w.params), |r| r.get(0)))
        .map_err(super::backend)?;
    Ok(usize::try_from(n).unwrap_or(0))
}

/// Flow runs passing `filter` by bucket of `window` and state type, grouped by SQL when it
/// expresses the whole filter.
pub(super) fn flow_run_history(
    conn: &Connection,
    filter: &FlowRunFilter,
    window: HistoryWindow,
) -> Result<Vec<HistoryBucket>, StoreError> {
    if !filter.sql_exact(false) {
        let runs = flow_runs(conn, filter)?;
        return Ok(window.fill_runs(&runs));
    }
    let start = i64::try_from(window.start.as_nanosecond()).unwrap_or(i64::MAX);
    let end = i64::try_from(window.end.as_nanosecond()).unwrap_or(i64::MAX);
    let mut w = flow_run_rows(filter);
    // Both branches read the history index only (expected start, state, created).
    w.and(
        "((expected_start >= ? AND expected_start < ?) \
          OR (expected_start IS NULL AND created >= ? AND created < ?))",
        [start, end, start, end].map(Value::Integer),
    );
    let sql = format!(
        "SELECT COALESCE(expected_start, created), state_type FROM flow_runs{}",
        w.sql
    );
    let mut stmt = conn.prepare_cached(&sql).map_err(super::backend)?;
    let mut rows = stmt
        .query(rusqlite::params_from_iter(w.params))
        .map_err(super::backend)?;
    // Counted here, in a dense table: cheaper than SQLite grouping tens of thousands of rows.
    let width = window.width_nanos();
    let buckets = window.buckets as usize;
    let mut counts = vec![[0u64; StateType::ALL.len()]; buckets];
    while let Some(row) = rows.next().map_err(super::backend)? {
        let at: i64 = row.get(0).map_err(super::backend)?;
        let code = row.get_ref(1).map_err(super::backend)?;
        let Some(kind) = code.as_str().ok().and_then(state_type_of) else {
            continue;
        };
        let i = (i128::from(at) - i128::from(start)) / width;
        if let Ok(i) = usize::try_from(i) {
            counts[i.min(buckets - 1)][kind as usize] += 1;
        }
    }
    let mut out = window.empty();
    for (bucket, counts) in out.iter_mut().zip(counts) {
        for kind in StateType::ALL {
            if counts[kind as usize] > 0 {
                bucket.add(kind, counts[kind as usize]);
            }
        }
    }
    Ok(out)
}

/// The task runs passing `filter`, not yet sorted or paged.
pub(super) fn task_runs(
    conn: &Connection,
    filter: &TaskRunFilter,
) -> Result<Vec<TaskRun>, StoreError> {
    let runs: Vec<TaskRun> = task_run_rows(filter).rows(conn, "task_runs")?;
    Ok(runs.into_iter().filter(|r| filter.matches(r)).collect())
}

fn flow_run_rows(filter: &FlowRunFilter) -> Where {
    let mut w = Where::default();
    w.and_in("id", filter.ids.iter().map(ToString::to_string));
    if let Some(id) = filter.flow_id {
        w.and("flow_id = ?", [text(id)]);
    }
    if let Some(name) = &filter.flow_name {
        w.and(
            "flow_id IN (SELECT id FROM flows WHERE name = ?)",
            [text(name)],
        );
    }
    w.and_in(
        "state_type",
        filter.state_types.iter().map(|t| type_code(*t).to_owned()),
    );
    w.and_in("state_name", filter.state_names.iter().cloned());
    for tag in &filter.tags {
        w.and(
            "id IN (SELECT run_id FROM flow_run_tags WHERE tag = ?)",
            [text(tag)],
        );
    }
    if let Some(id) = filter.parent_task_run_id {
        w.and("parent_task_run_id = ?", [text(id)]);
    }
    if let Some(id) = filter.deployment_id {
        w.and("deployment_id = ?", [text(id)]);
    }
    for id in &filter.exclude_deployments {
        w.and("deployment_id IS NOT ?", [text(id)]);
    }
    if let Some(queue) = &filter.work_queue_name {
        w.and("work_queue = ?", [text(queue)]);
    }
    w.and_time("lease_until < ?", filter.lease_expires_before, SLACK_NANOS);
    w.and_time("created >= ?", filter.created_after, -SLACK_NANOS);
    w.and_time("created < ?", filter.created_before, SLACK_NANOS);
    w.and_time(
        "expected_start >= ?",
        filter.expected_start_after,
        -SLACK_NANOS,
    );
    w.and_time(
        "expected_start <= ?",
        filter.expected_start_before,
        SLACK_NANOS,
    );
    w
}

fn task_run_rows(filter: &TaskRunFilter) -> Where {
    let mut w = Where::default();
    if let Some(id) = filter.flow_run_id {
        w.and("flow_run_id = ?", [text(id)]);
    }
    w.and_in(
        "state_type",
        filter.state_types.iter().map(|t| type_code(*t).to_owned()),
    );
    if let Some(prefix) = filter.name_prefix.as_deref().filter(|p| !p.is_empty()) {
        w.and("name >= ?", [text(prefix)]);
        if let Some(end) = prefix_end(prefix) {
            w.and("name < ?", [Value::Text(end)]);
        }
    }
    w
}

/// The least text above every text starting with `prefix` (bytewise, as SQLite compares),
/// when it is valid UTF-8; without it, only the lower bound narrows the rows.
fn prefix_end(prefix: &str) -> Option<String> {
    let mut bytes = prefix.as_bytes().to_vec();
    while let Some(last) = bytes.pop() {
        if last < 0xFF {
            bytes.push(last + 1);
            return String::from_utf8(bytes).ok();
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    use super::{Where, flow_run_rows, prefix_end, task_run_rows};
    use crate::StateType;
    use crate::store::{FlowRunFilter, TaskRunFilter};

    /// SQLite's plan for the rows of `w` in `table`, one line per step.
    fn plan(w: Where, table: &str) -> String {
        let mut conn = Connection::open_in_memory().unwrap();
        super::super::schema::migrate(&mut conn).unwrap();
        let sql = format!("EXPLAIN QUERY PLAN SELECT body FROM {table}{}", w.sql);
        let mut stmt = conn.prepare(&sql).unwrap();
        let steps = stmt
            .query_map(rusqlite::params_from_iter(w.params), |r| {
                r.get::<_, String>(3)
            })
            .unwrap();
        steps.map(Result::unwrap).collect::<Vec<_>>().join("; ")
    }

    #[test]
    fn every_flow_run_filter_is_answered_through_an_index() {
        let id = crate::ids::new_id();
        let at = jiff::Timestamp::UNIX_EPOCH;
        let filters = [
            FlowRunFilter::new().flow_id(id),
            FlowRunFilter::new().flow_name("etl"),
            FlowRunFilter::new().state_types([StateType::Scheduled, StateType::Pending]),
            FlowRunFilter::new().state_names(["Late"]),
            FlowRunFilter::new().tags(["nightly"]),
            FlowRunFilter::new().parent_task_run_id(id),
            FlowRunFilter::new().deployment_id(id),
            FlowRunFilter::new().work_queue_name("default"),
            FlowRunFilter::new().created_between(Some(at), None),
            FlowRunFilter::new().expected_start_between(None, Some(at)),
        ];
        for filter in filters {
            let plan = plan(flow_run_rows(&filter), "flow_runs");
            assert!(!plan.contains("SCAN flow_runs"), "{filter:?}: {plan}");
            assert!(plan.contains("INDEX"), "{filter:?}: {plan}");
        }
    }

    #[test]
    fn every_task_run_filter_is_answered_through_an_index() {
        let filters = [
            TaskRunFilter::new().flow_run_id(crate::ids::new_id()),
            TaskRunFilter::new().state_types([StateType::Running]),
            TaskRunFilter::new().name_prefix("add-"),
        ];
        for filter in filters {
            let plan = plan(task_run_rows(&filter), "task_runs");
            assert!(!plan.contains("SCAN task_runs"), "{filter:?}: {plan}");
            assert!(plan.contains("INDEX"), "{filter:?}: {plan}");
        }
    }

    #[test]
    fn a_prefix_range_ends_just_above_the_prefix() {
        assert_eq!(prefix_end("add-").as_deref(), Some("add."));
        assert_eq!(prefix_end("a").as_deref(), Some("b"));
        assert!("add-0000" < "add." && "add." > "add-\u{10FFFF}");
        assert_eq!(prefix_end("é").as_deref(), Some("ê"));
        // "¿" ends in byte 0xBF; 0xC0 there is not UTF-8: no upper bound.
        assert_eq!(prefix_end("¿"), None);
    }
}
