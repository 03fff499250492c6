//! `stmon runs`: the run record, for the person who reads it in the morning.

use std::process::ExitCode;

use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};
use stmon_models::runs::{self, RowStatus, RunSummary};

/// Show the recorded runs (audit/runs): status, timings, and per step what
/// was done; with --run, every row of one run.
///
/// Status: ok; dq_failed (a data test failed, a county is late under a
/// `fail` rule, an unreadable file); failed (an error); interrupted (the run
/// never finished: killed, or still running — see the lock line).
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Show the last N runs.
    #[arg(long, default_value_t = 10)]
    pub last: usize,
    /// Show every row of this run.
    #[arg(long, value_name = "RUN_ID")]
    pub run: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(cli: &super::Cli, args: &Args) -> anyhow::Result<ExitCode> {
    let catalog = super::load_catalog(cli)?;
    let wh = super::open_warehouse(cli, catalog)?;
    let all = runs::summarise(&runs::read(&wh).await?);
    let holder = wh.lock_holder().await?;
    if let Some(id) = &args.run {
        let Some(r) = all.iter().find(|r| &r.run_id == id) else {
            anyhow::bail!("no run {id} in audit/runs");
        };
        if args.json {
            println!("{}", serde_json::to_string_pretty(&r.rows)?);
            return Ok(ExitCode::SUCCESS);
        }
        println!("{}", headline(r, holder.as_ref()));
        let mut t = Table::new();
        t.load_preset(UTF8_FULL_CONDENSED);
        t.set_header([
            "step", "item", "status", "rows in", "accepted", "rejected", "rows out", "s", "detail",
        ]);
        for row in r.rows.iter().filter(|x| x.step != "run") {
            let n = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_default();
            t.add_row([
                row.step.clone(),
                row.item.clone().unwrap_or_else(|| "(step)".into()),
                row.status.to_string(),
                n(row.rows_in),
                n(row.rows_accepted),
                n(row.rows_rejected),
                n(row.rows_out),
                row.elapsed_ms
                    .map(|m| format!("{:.1}", m as f64 / 1000.0))
                    .unwrap_or_default(),
                row.detail
                    .clone()
                    .unwrap_or_default()
                    .chars()
                    .take(100)
                    .collect(),
            ]);
        }
        println!("{t}");
        return Ok(ExitCode::SUCCESS);
    }
    let shown: Vec<&RunSummary> = all.iter().rev().take(args.last).collect();
    if args.json {
        let v: Vec<serde_json::Value> = shown
            .iter()
            .map(|r| {
                serde_json::json!({
                    "run_id": r.run_id,
                    "pipeline": r.pipeline,
                    "status": r.status,
                    "started_at": r.started_at,
                    "finished_at": r.finished_at,
                    "steps": r.steps.iter().map(|s| serde_json::json!({
                        "step": s.step, "status": s.status, "message": s.detail,
                        "elapsed_s": s.elapsed_ms.map(|m| m as f64 / 1000.0),
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(h) = &holder {
        println!("lock: held by {h}");
    }
    if shown.is_empty() {
        println!("no runs recorded in {} (audit/runs)", wh.root);
        return Ok(ExitCode::SUCCESS);
    }
    for r in shown {
        println!("{}", headline(r, holder.as_ref()));
        for s in &r.steps {
            println!(
                "    {:<11} {:<10} {:>7}  {}",
                s.step,
                s.status,
                s.elapsed_ms
                    .map(|m| format!("{:.1}s", m as f64 / 1000.0))
                    .unwrap_or_default(),
                s.detail
                    .clone()
                    .unwrap_or_default()
                    .lines()
                    .next()
                    .unwrap_or("")
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn headline(r: &RunSummary, holder: Option<&stmon_warehouse::lock::Holder>) -> String {
    let status =
        if r.status == RowStatus::Interrupted && holder.is_some_and(|h| h.run_id == r.run_id) {
            RowStatus::Running
        } else {
            r.status
        };
    format!(
        "{}  {}  {}  {}{}",
        r.run_id,
        r.pipeline,
        r.started_at.format("%Y-%m-%d %H:%M:%S UTC"),
        status,
        r.finished_at
            .map(|f| format!(
                " in {:.1}s",
                (f - r.started_at).num_milliseconds() as f64 / 1000.0
            ))
            .unwrap_or_default()
    )
}
