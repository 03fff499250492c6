//! `run_results.json`, like dbt's: the run, its steps and their items.

use crate::spec::Pipeline;
use chrono::{DateTime, Utc};
use stmon_models::runs::{RunRow, RunSummary};

use crate::Versions;

pub(crate) fn run_results(
    p: &Pipeline,
    run: Option<&RunSummary>,
    before: &Versions,
    after: &Versions,
    generated: DateTime<Utc>,
) -> serde_json::Value {
    let Some(run) = run else {
        return serde_json::json!({});
    };
    let steps: Vec<serde_json::Value> = run
        .steps
        .iter()
        .map(|s| {
            let items: Vec<&RunRow> = run
                .rows
                .iter()
                .filter(|r| r.step == s.step && r.item.is_some())
                .collect();
            serde_json::json!({
                "step": s.step,
                "status": s.status,
                "started_at": s.started_at,
                "finished_at": s.finished_at,
                "elapsed_s": s.elapsed_ms.map(|m| m as f64 / 1000.0),
                "message": s.detail,
                "results": items.iter().map(|r| serde_json::json!({
                    "item": r.item,
                    "status": r.status,
                    "rows_in": r.rows_in,
                    "rows_accepted": r.rows_accepted,
                    "rows_rejected": r.rows_rejected,
                    "rows_out": r.rows_out,
                    "fingerprint": r.fingerprint,
                    "elapsed_s": r.elapsed_ms.map(|m| m as f64 / 1000.0),
                    "message": r.detail,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    // The review step's counts (its `queries_*` rows): opened, opened_high,
    // closed by how, open and open_high after it.
    let review: serde_json::Map<String, serde_json::Value> = run
        .rows
        .iter()
        .filter(|r| r.step == "review")
        .filter_map(|r| {
            let item = r
                .item
                .as_deref()?
                .strip_prefix(crate::steps::REVIEW_COUNT)?;
            Some((item.to_string(), serde_json::json!(r.rows_out.unwrap_or(0))))
        })
        .collect();
    serde_json::json!({
        "metadata": {
            "run_id": run.run_id,
            "pipeline": p.name,
            "pipeline_file": p.file.display().to_string(),
            "pipeline_sha256": p.hash,
            "stmon_version": env!("CARGO_PKG_VERSION"),
            "generated_at": generated,
        },
        "status": run.status,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "elapsed_s": run.finished_at.map(|f| (f - run.started_at).num_milliseconds() as f64 / 1000.0),
        "warehouse_versions": {"before": before, "after": after},
        "steps": steps,
        "review": (!review.is_empty()).then_some(review),
    })
}
