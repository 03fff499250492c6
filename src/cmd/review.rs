//! `stmon review`: the review of submissions (审核) — raise queries on
//! doubtful values, list them by score.

use std::process::ExitCode;

use stmon_review::{Query, Status};

/// Review of submissions: plausibility rules from each form's YAML
/// (`review:`) raise queries on doubtful values in `review.queries`.
///
/// `stmon review run` reviews the units that batches committed since the
/// last review touched (the nightly run does this as its review step);
/// `stmon review list` shows the queries, highest score first. The score
/// is the value's distance from its expected value as a share of its
/// county's total (selective editing: call the firms that matter first).
#[derive(clap::Subcommand, Debug)]
pub enum ReviewCommand {
    /// Review what was ingested since the last review.
    Run(RunArgs),
    /// List queries, highest score first.
    List(ListArgs),
    /// Write one query list per county office (XLSX and an offline page in
    /// Chinese: firm, period, field, reported, expected, why, what next).
    Lists(ListsArgs),
}

#[derive(clap::Args, Debug)]
pub struct ListsArgs {
    /// Folder to write review-<county>.xlsx and .html into.
    #[arg(long, default_value = "reports/review")]
    pub out: std::path::PathBuf,
}

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// Review every committed batch again (after a rule changed).
    #[arg(long)]
    pub all: bool,
    /// If a run or ingest holds the warehouse lock, wait for it (up to SECS).
    #[arg(long, value_name = "SECS")]
    pub wait: Option<u64>,
}

#[derive(clap::Args, Debug)]
pub struct ListArgs {
    /// Only queries on units of this county (its code).
    #[arg(long)]
    pub county: Option<String>,
    /// Only queries on this form.
    #[arg(long)]
    pub form: Option<String>,
    /// Queries of this status (open, confirmed, corrected, superseded; all).
    #[arg(long, default_value = "open")]
    pub status: String,
    /// At most this many rows.
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
}

pub async fn run(cli: &super::Cli, c: &ReviewCommand) -> anyhow::Result<ExitCode> {
    let catalog = super::load_catalog(cli)?;
    let wh = super::open_warehouse(cli, catalog.clone())?;
    match c {
        ReviewCommand::Run(args) => {
            let lock = super::lock_for(&wh, "review run", args.wait).await?;
            let opts = stmon_review::Options {
                all: args.all,
                ..Default::default()
            };
            let s = stmon_review::review(&wh, &opts).await;
            lock.release().await?;
            let s = s?;
            println!("{}", crate::render::review_summary(&s));
            Ok(if s.opened_high > 0 {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        ReviewCommand::Lists(args) => {
            let all = stmon_review::queries::read(&wh).await?;
            let files = stmon_reports::queries::write_lists(&args.out, &all, &catalog)?;
            println!(
                "{} list(s) written to {}",
                files.len() / 2,
                args.out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        ReviewCommand::List(args) => {
            let status = match args.status.as_str() {
                "all" => None,
                s => Some(Status::parse(s).ok_or_else(|| {
                    anyhow::anyhow!(
                        "--status {s}: expected open, confirmed, corrected, superseded or all"
                    )
                })?),
            };
            let mut rows: Vec<Query> = stmon_review::queries::read(&wh)
                .await?
                .into_iter()
                .filter(|q| status.is_none_or(|s| q.status == s))
                .filter(|q| args.form.as_ref().is_none_or(|f| &q.form == f))
                .filter(|q| {
                    args.county
                        .as_ref()
                        .is_none_or(|c| q.division.as_ref() == Some(c) || &q.unit == c)
                })
                .collect();
            rows.sort_by(|a, b| {
                b.score
                    .total_cmp(&a.score)
                    .then(a.query_id.cmp(&b.query_id))
            });
            let total = rows.len();
            rows.truncate(args.limit);
            println!("{}", crate::render::review_queries(&rows, &catalog));
            println!(
                "{} of {total} quer{} shown",
                rows.len(),
                if total == 1 { "y" } else { "ies" }
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
