//! The SQL a client filter becomes. Every condition is exact (times are stored to the
//! nanosecond), so sorting and paging happen in the database; the filter's own `matches`
//! still checks each row, so this store answers exactly as the memory store does.

use tokio_postgres::types::ToSql;

use super::db::{Fail, Q};
use crate::store::bookkeeping::type_code;
use crate::store::history::state_type_of;
use crate::store::{
    FlowRun, FlowRunFilter, HistoryBucket, HistoryWindow, Sort, TaskRun, TaskRunFilter,
};

/// A WHERE clause being built, with its parameters in order.
#[derive(Default)]
struct Where {
    sql: String,
    params: Vec<Box<dyn ToSql + Sync + Send>>,
}

impl Where {
    /// Adds `condition`, whose one parameter is written `$?`.
    fn and<T: ToSql + Sync + Send + 'static>(&mut self, condition: &str, value: T) {
        self.params.push(Box::new(value));
        let condition = condition.replace("$?", &format!("${}", self.params.len()));
        self.sql.push_str(if self.sql.is_empty() {
            " WHERE "
        } else {
            " AND "
        });
        self.sql.push_str(&condition);
    }

    /// One of `types` (one type as an equality: an index then yields rows in order).
    fn and_types(&mut self, types: &[crate::state::StateType]) {
        let mut codes: Vec<String> = types.iter().map(|t| type_code(*t).to_owned()).collect();
        match codes.len() {
            0 => {}
            1 => self.and("state_type = $?", codes.remove(0)),
            _ => self.and("state_type = ANY($?)", codes),
        }
    }

    fn and_time(&mut self, condition: &str, at: Option<jiff::Timestamp>) {
        if let Some(at) = at {
            self.and(condition, super::nanos(at));
        }
    }

    /// The parameters as the driver takes them.
    fn refs(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.params
            .iter()
            .map(|p| &**p as &(dyn ToSql + Sync))
            .collect()
    }

    async fn rows<T: serde::de::DeserializeOwned>(
        &self,
        q: &impl Q,
        table: &str,
        tail: &str,
    ) -> Result<Vec<T>, Fail> {
        let sql = format!("SELECT body FROM {table}{}{tail}", self.sql);
        let params: Vec<&(dyn ToSql + Sync)> = self
            .params
            .iter()
            .map(|p| &**p as &(dyn ToSql + Sync))
            .collect();
        q.bodies(&sql, &params).await
    }
}

/// The flow runs passing `filter`, sorted and paged (by the database).
pub(super) async fn flow_runs(q: &impl Q, filter: &FlowRunFilter) -> Result<Vec<FlowRun>, Fail> {
    let order = match filter.sort {
        Sort::CreatedAsc => "created, id",
        Sort::CreatedDesc => "created DESC, id DESC",
        Sort::ExpectedStartAsc => "expected_start ASC NULLS LAST, created, id",
    };
    let mut tail = format!(" ORDER BY {order}");
    if let Some(limit) = filter.limit {
        tail.push_str(&format!(" LIMIT {limit}"));
    }
    if filter.offset > 0 {
        tail.push_str(&format!(" OFFSET {}", filter.offset));
    }
    let rows: Vec<FlowRun> = flow_run_rows(filter).rows(q, "flow_runs", &tail).await?;
    let all = rows.len();
    let runs: Vec<FlowRun> = rows.into_iter().filter(|r| filter.matches(r)).collect();
    if runs.len() == all {
        return Ok(runs);
    }
    // A row SQL let through that `matches` refuses (never expected: the two agree) would
    // shift the page; answer from every matching row instead.
    let unpaged: Vec<FlowRun> = flow_run_rows(filter).rows(q, "flow_runs", "").await?;
    Ok(filter.finish(unpaged.into_iter().filter(|r| filter.matches(r)).collect()))
}

/// How many flow runs pass `filter`: counted by the database when SQL expresses the filter.
pub(super) async fn count_flow_runs(q: &impl Q, filter: &FlowRunFilter) -> Result<usize, Fail> {
    if !filter.sql_exact(true) {
        return Ok(flow_runs(q, &filter.unpaged()).await?.len());
    }
    let w = flow_run_rows(filter);
    let row = q
        .one(
            &format!("SELECT COUNT(*) FROM flow_runs{}", w.sql),
            &w.refs(),
        )
        .await?;
    Ok(usize::try_from(row.get::<_, i64>(0)).unwrap_or(0))
}

/// Flow runs passing `filter` by bucket of `window` and state type, grouped by the database
/// when SQL expresses the filter.
pub(super) async fn flow_run_history(
    q: &impl Q,
    filter: &FlowRunFilter,
    window: HistoryWindow,
) -> Result<Vec<HistoryBucket>, Fail> {
    if !filter.sql_exact(true) {
        let runs = flow_runs(q, &filter.unpaged()).await?;
        return Ok(window.fill_runs(&runs));
    }
    let at = "COALESCE(expected_start, created)";
    let start = super::nanos(window.start);
    let width = i64::try_from(window.width_nanos()).unwrap_or(i64::MAX);
    let end = super::nanos(window.end);
    let mut w = flow_run_rows(filter);
    // Both branches can be read from the history index (expected start, state, created).
    w.and("((expected_start >= $?", start);
    w.sql
        .push_str(&format!(" AND expected_start < ${}", w.params.len() + 1));
    w.params.push(Box::new(end));
    w.sql.push_str(&format!(
        ") OR (expected_start IS NULL AND created >= ${} AND created < ${}))",
        w.params.len() - 1,
        w.params.len()
    ));
    w.and("$? > 0", width);
    let n = w.params.len();
    let sql = format!(
        "SELECT ({at} - ${}) / ${n} AS bucket, state_type, COUNT(*) FROM flow_runs{} \
         GROUP BY bucket, state_type",
        n - 2,
        w.sql
    );
    let mut counts = Vec::new();
    for row in q.rows(&sql, &w.refs()).await? {
        let (bucket, code, count): (i64, String, i64) = (row.get(0), row.get(1), row.get(2));
        let at = jiff::Timestamp::from_nanosecond(
            i128::from(start) + i128::from(bucket) * i128::from(width),
        );
        if let (Some(kind), Ok(at)) = (state_type_of(&code), at) {
            counts.push((at, kind, u64::try_from(count).unwrap_or(0)));
        }
    }
    Ok(window.fill(counts))
}

/// The task runs passing `filter`, sorted and paged.
pub(super) async fn task_runs(q: &impl Q, filter: &TaskRunFilter) -> Result<Vec<TaskRun>, Fail> {
    let mut w = Where::default();
    if let Some(id) = filter.flow_run_id {
        w.and("flow_run_id = $?", id);
    }
    w.and_types(&filter.state_types);
    if let Some(prefix) = filter.name_prefix.as_deref().filter(|p| !p.is_empty()) {
        let escaped = prefix
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        w.and("name LIKE $?", format!("{escaped}%"));
    }
    let runs: Vec<TaskRun> = w.rows(q, "task_runs", "").await?;
    Ok(filter.finish(runs.into_iter().filter(|r| filter.matches(r)).collect()))
}

/// Flow runs matching `filter`, deleted with their states and task runs (cascading) and logs;
/// how many.
pub(super) async fn delete_flow_runs(q: &impl Q, filter: &FlowRunFilter) -> Result<usize, Fail> {
    let mut unpaged = filter.clone();
    unpaged.limit = None;
    unpaged.offset = 0;
    let doomed: Vec<FlowRun> = flow_run_rows(&unpaged)
        .rows(q, "flow_runs", "")
        .await?
        .into_iter()
        .filter(|r: &FlowRun| filter.matches(r))
        .collect();
    let ids: Vec<uuid::Uuid> = doomed.iter().map(|r| r.id).collect();
    q.exec("DELETE FROM logs WHERE flow_run_id = ANY($1)", &[&ids])
        .await?;
    // State histories have no foreign keys (see `schema`): their rows go first.
    q.exec(
        "DELETE FROM task_run_states WHERE run_id IN (SELECT id FROM task_runs WHERE flow_run_id = ANY($1))",
        &[&ids],
    )
    .await?;
    q.exec(
        "DELETE FROM flow_run_states WHERE run_id = ANY($1)",
        &[&ids],
    )
    .await?;
    let deleted = q
        .exec("DELETE FROM flow_runs WHERE id = ANY($1)", &[&ids])
        .await?;
    Ok(usize::try_from(deleted).unwrap_or(usize::MAX))
}

fn flow_run_rows(filter: &FlowRunFilter) -> Where {
    let mut w = Where::default();
    if !filter.ids.is_empty() {
        w.and("id = ANY($?)", filter.ids.clone());
    }
    if let Some(id) = filter.flow_id {
        w.and("flow_id = $?", id);
    }
    if let Some(name) = &filter.flow_name {
        w.and(
            "flow_id IN (SELECT id FROM flows WHERE name = $?)",
            name.clone(),
        );
    }
    w.and_types(&filter.state_types);
    if !filter.state_names.is_empty() {
        w.and("state_name = ANY($?)", filter.state_names.clone());
    }
    if !filter.tags.is_empty() {
        // `tags <> '{}'` lets the planner use the partial index (implied by `@>` a non-empty set).
        w.and("tags <> '{}' AND tags @> $?", filter.tags.clone());
    }
    if let Some(id) = filter.parent_task_run_id {
        w.and(
            "parent_task_run_id IS NOT NULL AND parent_task_run_id = $?",
            id,
        );
    }
    if let Some(id) = filter.deployment_id {
        w.and("deployment_id = $?", id);
    }
    if !filter.exclude_deployments.is_empty() {
        w.and(
            "(deployment_id IS NULL OR deployment_id <> ALL($?))",
            filter.exclude_deployments.clone(),
        );
    }
    if let Some(queue) = &filter.work_queue_name {
        w.and("work_queue = $?", queue.clone());
    }
    w.and_time("lease_until < $?", filter.lease_expires_before);
    w.and_time("created >= $?", filter.created_after);
    w.and_time("created < $?", filter.created_before);
    w.and_time("expected_start >= $?", filter.expected_start_after);
    w.and_time("expected_start <= $?", filter.expected_start_before);
    w
}
