//! The run record: `audit/runs`, one Delta table, a set of rows per run.
//!
//! A run appends a `run` row with status `running` when it starts (with the
//! warehouse versions before), rows for each step as the step ends (one per
//! item — form, model, test, county, report — and one for the step), and a
//! final `run` row with its status and the versions after. A run that was
//! killed has no final row: it reads as `interrupted`. A resumed run appends
//! to the same run id; the latest row of a step wins.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use chrono::{DateTime, Utc};
use datafusion::prelude::SessionContext;
use stmon_warehouse::{TableId, Warehouse};

use crate::{text_column, Error, Result};

/// Delta version of every table the warehouse holds (`layer/name` → version),
/// the run record itself excepted: the ingest tables, the project's models
/// and the assessment tables.
pub async fn all_versions(
    wh: &Warehouse,
    project: &crate::Project,
) -> Result<BTreeMap<String, u64>> {
    let mut out = BTreeMap::new();
    for id in data_tables(wh, project) {
        if let Some(v) = wh.table(&id).await?.version() {
            out.insert(id.to_string(), v);
        }
    }
    Ok(out)
}

/// Every table of the warehouse but the run record: the ingest tables, the
/// project's model tables and the assessment tables.
pub fn data_tables(wh: &Warehouse, project: &crate::Project) -> Vec<TableId> {
    let mut ids: Vec<TableId> = wh.ingest_tables().into_keys().collect();
    ids.extend(
        project
            .tables()
            .map(|m| TableId::new(&m.id.layer, &m.id.name)),
    );
    ids.extend(
        crate::run::ASSESSMENT_TABLES
            .iter()
            .map(|t| TableId::new("marts", t)),
    );
    ids
}

pub fn table_id() -> TableId {
    TableId::new("audit", "runs")
}

pub fn schema() -> SchemaRef {
    let ts = || DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    Arc::new(Schema::new(vec![
        Field::new("run_id", DataType::Utf8, false),
        Field::new("pipeline", DataType::Utf8, false),
        Field::new("step", DataType::Utf8, false),
        Field::new("item", DataType::Utf8, true),
        Field::new("status", DataType::Utf8, false),
        Field::new("rows_in", DataType::Int64, true),
        Field::new("rows_accepted", DataType::Int64, true),
        Field::new("rows_rejected", DataType::Int64, true),
        Field::new("rows_out", DataType::Int64, true),
        Field::new("fingerprint", DataType::Utf8, true),
        Field::new("detail", DataType::Utf8, true),
        Field::new("started_at", ts(), false),
        Field::new("finished_at", ts(), true),
        Field::new("elapsed_ms", DataType::Int64, true),
    ]))
}

/// The `status` of a row of the run record.
///
/// A `run` row is `running` when the run starts, and `ok`, `dq_failed` or
/// `failed` at its end; a run without an end reads as `interrupted`. A step
/// row is `ok`, `dq_failed`, `failed` or `skipped` (not run because an
/// earlier step failed). An item row says what happened to its item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RowStatus {
    #[default]
    Running,
    Ok,
    DqFailed,
    Failed,
    /// Read back only: a run with no final row.
    Interrupted,
    Skipped,
    /// A file of the ingest step: loaded, rejected whole, unreadable.
    Loaded,
    Rejected,
    Unreadable,
    /// A county late with a form, or without any submission of it.
    Late,
    Missing,
    /// A model table rebuilt, or already built from the same inputs.
    Built,
    UpToDate,
    /// A report or assessment table written.
    Written,
    /// A model's data tests.
    Pass,
    Fail,
}

impl RowStatus {
    pub const ALL: [RowStatus; 16] = [
        RowStatus::Running,
        RowStatus::Ok,
        RowStatus::DqFailed,
        RowStatus::Failed,
        RowStatus::Interrupted,
        RowStatus::Skipped,
        RowStatus::Loaded,
        RowStatus::Rejected,
        RowStatus::Unreadable,
        RowStatus::Late,
        RowStatus::Missing,
        RowStatus::Built,
        RowStatus::UpToDate,
        RowStatus::Written,
        RowStatus::Pass,
        RowStatus::Fail,
    ];

    /// The value of the `status` column.
    pub fn as_str(self) -> &'static str {
        match self {
            RowStatus::Running => "running",
            RowStatus::Ok => "ok",
            RowStatus::DqFailed => "dq_failed",
            RowStatus::Failed => "failed",
            RowStatus::Interrupted => "interrupted",
            RowStatus::Skipped => "skipped",
            RowStatus::Loaded => "loaded",
            RowStatus::Rejected => "rejected",
            RowStatus::Unreadable => "unreadable",
            RowStatus::Late => "late",
            RowStatus::Missing => "missing",
            RowStatus::Built => "built",
            RowStatus::UpToDate => "up_to_date",
            RowStatus::Written => "written",
            RowStatus::Pass => "pass",
            RowStatus::Fail => "fail",
        }
    }

    pub fn parse(s: &str) -> Option<RowStatus> {
        RowStatus::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// A run that ended and published its versions (with or without
    /// data-quality failures).
    pub fn published(self) -> bool {
        matches!(self, RowStatus::Ok | RowStatus::DqFailed)
    }
}

impl std::fmt::Display for RowStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

impl From<stmon_warehouse::FileStatus> for RowStatus {
    fn from(s: stmon_warehouse::FileStatus) -> RowStatus {
        use stmon_warehouse::FileStatus as F;
        match s {
            F::Loaded => RowStatus::Loaded,
            F::Rejected => RowStatus::Rejected,
            F::Unreadable => RowStatus::Unreadable,
            F::Skipped => RowStatus::Skipped,
        }
    }
}

/// One row of the run record.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RunRow {
    pub run_id: String,
    pub pipeline: String,
    pub step: String,
    pub item: Option<String>,
    pub status: RowStatus,
    pub rows_in: Option<i64>,
    pub rows_accepted: Option<i64>,
    pub rows_rejected: Option<i64>,
    pub rows_out: Option<i64>,
    pub fingerprint: Option<String>,
    pub detail: Option<String>,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub elapsed_ms: Option<i64>,
}

/// Appends rows to `audit/runs` in one Delta commit.
pub async fn append(wh: &Warehouse, rows: &[RunRow]) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let s = |f: &dyn Fn(&RunRow) -> Option<String>| -> ArrayRef {
        Arc::new(rows.iter().map(f).collect::<StringArray>())
    };
    let i = |f: &dyn Fn(&RunRow) -> Option<i64>| -> ArrayRef {
        Arc::new(rows.iter().map(f).collect::<Int64Array>())
    };
    let t = |f: &dyn Fn(&RunRow) -> Option<i64>| -> ArrayRef {
        Arc::new(
            rows.iter()
                .map(f)
                .collect::<TimestampMicrosecondArray>()
                .with_timezone("UTC"),
        )
    };
    let batch = RecordBatch::try_new(
        schema(),
        vec![
            s(&|r| Some(r.run_id.clone())),
            s(&|r| Some(r.pipeline.clone())),
            s(&|r| Some(r.step.clone())),
            s(&|r| r.item.clone()),
            s(&|r| Some(r.status.as_str().to_string())),
            i(&|r| r.rows_in),
            i(&|r| r.rows_accepted),
            i(&|r| r.rows_rejected),
            i(&|r| r.rows_out),
            s(&|r| r.fingerprint.clone()),
            s(&|r| r.detail.clone()),
            t(&|r| Some(r.started_at.timestamp_micros())),
            t(&|r| r.finished_at.map(|d| d.timestamp_micros())),
            i(&|r| r.elapsed_ms),
        ],
    )?;
    wh.append(&table_id(), vec![batch]).await?;
    // Every run appends a few rows: upkeep keeps the table a few files. The
    // rows are committed; a failed compaction is retried by the next append.
    if let Err(e) = wh.upkeep(&[table_id()]).await {
        tracing::warn!(error = %e, "upkeep of audit/runs failed");
    }
    Ok(())
}

/// Registers `audit.runs` in a session if the table exists.
pub async fn register(wh: &Warehouse, ctx: &SessionContext) -> Result<bool> {
    let table = wh.table(&table_id()).await?;
    if table.version().is_none() {
        return Ok(false);
    }
    let provider = wh.provider(ctx, &table).await?;
    ctx.deregister_table("audit.runs")?;
    ctx.register_table("audit.runs", provider)?;
    Ok(true)
}

/// Every row of the record, oldest first (in commit order).
pub async fn read(wh: &Warehouse) -> Result<Vec<RunRow>> {
    let ctx = SessionContext::new();
    let catalog = ctx.catalog("datafusion").expect("default catalog");
    catalog.register_schema(
        "audit",
        Arc::new(datafusion::catalog::MemorySchemaProvider::new()),
    )?;
    if !register(wh, &ctx).await? {
        return Ok(Vec::new());
    }
    let batches = ctx
        .sql(
            "select run_id, pipeline, step, item, status, rows_in, rows_accepted, rows_rejected, \
             rows_out, fingerprint, detail, \
             cast(started_at as bigint) as s, cast(finished_at as bigint) as f, elapsed_ms \
             from audit.runs order by coalesce(finished_at, started_at), started_at",
        )
        .await?
        .collect()
        .await?;
    let mut out = Vec::new();
    for b in &batches {
        let txt: Vec<StringArray> = [0, 1, 2, 3, 4, 9, 10]
            .iter()
            .map(|&c| text_column(b, c))
            .collect::<Result<_>>()?;
        let num = |c: usize| -> Int64Array {
            arrow::compute::cast(b.column(c), &DataType::Int64)
                .expect("cast to Int64")
                .as_any()
                .downcast_ref::<Int64Array>()
                .expect("Int64")
                .clone()
        };
        let nums: Vec<Int64Array> = [5, 6, 7, 8, 11, 12, 13].iter().map(|&c| num(c)).collect();
        let so = |a: &StringArray, i: usize| (!a.is_null(i)).then(|| a.value(i).to_string());
        let no = |a: &Int64Array, i: usize| (!a.is_null(i)).then(|| a.value(i));
        let ts =
            |a: &Int64Array, i: usize| no(a, i).and_then(DateTime::<Utc>::from_timestamp_micros);
        for r in 0..b.num_rows() {
            let status = RowStatus::parse(txt[4].value(r)).ok_or_else(|| Error::RunRecord {
                run_id: txt[0].value(r).into(),
                message: format!("unknown status `{}`", txt[4].value(r)),
            })?;
            out.push(RunRow {
                run_id: txt[0].value(r).into(),
                pipeline: txt[1].value(r).into(),
                step: txt[2].value(r).into(),
                item: so(&txt[3], r),
                status,
                rows_in: no(&nums[0], r),
                rows_accepted: no(&nums[1], r),
                rows_rejected: no(&nums[2], r),
                rows_out: no(&nums[3], r),
                fingerprint: so(&txt[5], r),
                detail: so(&txt[6], r),
                started_at: ts(&nums[4], r).unwrap_or_default(),
                finished_at: ts(&nums[5], r),
                elapsed_ms: no(&nums[6], r),
            });
        }
    }
    Ok(out)
}

/// A run as read back from the record.
#[derive(Debug, Clone)]
pub struct RunSummary {
    pub run_id: String,
    pub pipeline: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// `ok`, `dq_failed`, `failed`, `running` (its final row not yet
    /// written), or `interrupted` (no final row).
    pub status: RowStatus,
    /// The last row of each step (item = None), in run order.
    pub steps: Vec<RunRow>,
    /// Every row, in order.
    pub rows: Vec<RunRow>,
    /// Table → Delta version after the run (from its final row).
    pub versions_after: BTreeMap<String, u64>,
}

/// Runs grouped from the rows, oldest first.
pub fn summarise(rows: &[RunRow]) -> Vec<RunSummary> {
    let mut order: Vec<String> = Vec::new();
    let mut by: BTreeMap<String, Vec<RunRow>> = BTreeMap::new();
    for r in rows {
        if !by.contains_key(&r.run_id) {
            order.push(r.run_id.clone());
        }
        by.entry(r.run_id.clone()).or_default().push(r.clone());
    }
    order
        .into_iter()
        .map(|id| {
            let rows = by.remove(&id).unwrap_or_default();
            let run_rows: Vec<&RunRow> = rows.iter().filter(|r| r.step == "run").collect();
            let last = run_rows.last();
            let finished = last.filter(|r| r.status != RowStatus::Running);
            let mut steps: Vec<RunRow> = Vec::new();
            for r in rows.iter().filter(|r| r.step != "run" && r.item.is_none()) {
                steps.retain(|s| s.step != r.step);
                steps.push(r.clone());
            }
            let versions_after = finished
                .and_then(|r| r.detail.as_deref())
                .and_then(|d| serde_json::from_str::<serde_json::Value>(d).ok())
                .and_then(|v| v.get("versions_after").cloned())
                .and_then(|v| serde_json::from_value(v).ok())
                .unwrap_or_default();
            RunSummary {
                run_id: id,
                pipeline: rows.first().map(|r| r.pipeline.clone()).unwrap_or_default(),
                started_at: rows.first().map(|r| r.started_at).unwrap_or_default(),
                finished_at: finished.and_then(|r| r.finished_at),
                status: finished.map(|r| r.status).unwrap_or(RowStatus::Interrupted),
                steps,
                rows,
                versions_after,
            }
        })
        .collect()
}

/// The snapshot of the last run that finished (ok or with data-quality
/// failures): table (`layer/name`) → version. None when no run finished.
pub async fn last_snapshot(wh: &Warehouse) -> Result<Option<(String, BTreeMap<TableId, u64>)>> {
    let runs = summarise(&read(wh).await?);
    let Some(run) = runs
        .iter()
        .rev()
        .find(|r| r.status.published() && !r.versions_after.is_empty())
    else {
        return Ok(None);
    };
    Ok(Some((run.run_id.clone(), pins_of(&run.versions_after))))
}

pub fn pins_of(v: &BTreeMap<String, u64>) -> BTreeMap<TableId, u64> {
    v.iter()
        .filter_map(|(k, v)| k.split_once('/').map(|(l, n)| (TableId::new(l, n), *v)))
        .collect()
}

/// The warehouse as a reader should see it. While a run holds the lock (or a
/// killed run left it), the tables may be part-way through the run, so the
/// reader is pinned to the versions the last finished run published; else it
/// reads every table's latest version. Returns the run id pinned to.
pub async fn reader(wh: &Warehouse) -> Result<(Warehouse, Option<String>)> {
    if wh.pins.is_some() || wh.lock_holder().await?.is_none() {
        return Ok((wh.clone(), None));
    }
    match last_snapshot(wh).await? {
        Some((run, pins)) => Ok((wh.pinned(pins), Some(run))),
        None => Ok((wh.clone(), None)),
    }
}

/// The warehouse pinned to the versions a given run published.
pub async fn at_run(wh: &Warehouse, run_id: &str) -> Result<Warehouse> {
    let runs = summarise(&read(wh).await?);
    let Some(run) = runs.iter().find(|r| r.run_id == run_id) else {
        return Err(Error::NoRun {
            run_id: run_id.to_string(),
        });
    };
    if run.versions_after.is_empty() {
        return Err(Error::RunUnpublished {
            run_id: run_id.to_string(),
            status: run.status,
        });
    }
    Ok(wh.pinned(pins_of(&run.versions_after)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_reads_back_as_it_was_written() {
        for s in RowStatus::ALL {
            // The Delta column, the JSON of `stmon runs --json` and
            // run_results.json spell a status the same way.
            assert_eq!(RowStatus::parse(s.as_str()), Some(s));
            assert_eq!(
                serde_json::to_value(s).unwrap(),
                serde_json::Value::String(s.as_str().into())
            );
        }
        assert_eq!(RowStatus::parse("done"), None);
        assert_eq!(format!("{:<10}|", RowStatus::Ok), "ok        |");
    }

    #[test]
    fn a_run_without_its_final_row_is_interrupted() {
        let row = |step: &str, status: RowStatus| RunRow {
            run_id: "r1".into(),
            pipeline: "p".into(),
            step: step.into(),
            status,
            ..Default::default()
        };
        let runs = summarise(&[row("run", RowStatus::Running), row("ingest", RowStatus::Ok)]);
        assert_eq!(runs[0].status, RowStatus::Interrupted);
        assert!(!runs[0].status.published());
        let runs = summarise(&[
            row("run", RowStatus::Running),
            row("ingest", RowStatus::Ok),
            row("run", RowStatus::DqFailed),
        ]);
        assert_eq!(runs[0].status, RowStatus::DqFailed);
        assert!(runs[0].status.published());
        assert_eq!(runs[0].steps.len(), 1);
    }
}
