//! `stmon progress`: actual against target per county and indicator.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use stmon_reports::files;
use stmon_reports::progress::{self, Targets};

/// Progress monitoring (进度监测): each county's and the city's indicators
/// against their targets as of a month.
///
/// Reads `marts.indicators` (run `stmon models run` first) and the targets
/// YAML. Cumulative indicators (counts, amounts) are compared with time
/// progress m/12, rates with 1: green when on track, yellow when at least 80 %
/// of the way, red otherwise. Prints a table (rows: indicators; columns:
/// divisions) and writes the long table as CSV and XLSX with Chinese headers.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The target year.
    #[arg(long)]
    pub year: i32,
    /// As of this month (YYYY-MM). Default: the latest month of the year with
    /// enterprise reports.
    #[arg(long, value_name = "YYYY-MM")]
    pub as_of: Option<String>,
    /// Targets YAML. Default: pipelines/targets-<year>.yaml.
    #[arg(long)]
    pub targets: Option<PathBuf>,
    /// Folder for progress-<year>-<MM>.csv and .xlsx.
    #[arg(long, default_value = "reports")]
    pub out: PathBuf,
}

pub async fn run(cli: &super::Cli, args: &Args) -> anyhow::Result<ExitCode> {
    let targets_path = args
        .targets
        .clone()
        .unwrap_or_else(|| super::project_file(&format!("pipelines/targets-{}.yaml", args.year)));
    let targets = Targets::load(&targets_path)?;
    if targets.year != args.year {
        anyhow::bail!(
            "{} holds targets for {}, not {}",
            targets_path.display(),
            targets.year,
            args.year
        );
    }
    let project = super::load_project(cli)?;
    let catalog = super::load_catalog(cli)?;
    let wh = super::open_warehouse(cli, catalog)?;
    let ctx = stmon_models::run::session(&wh, &project).await?;
    if !ctx.table_exist("marts.indicators")? {
        anyhow::bail!("marts.indicators does not exist yet: run `stmon models run` first");
    }
    let month = match &args.as_of {
        Some(s) => parse_month(s, args.year)?,
        None => progress::latest_month(&ctx, args.year).await?,
    };
    let rows = progress::progress(&ctx, &targets, args.year, month).await?;
    crate::render::print_matrix(&rows, args.year, month);
    let (csv, xlsx) = files::progress(&args.out, args.year, month);
    progress::write(&rows, &csv, &xlsx)?;
    println!("written: {} and {}", csv.display(), xlsx.display());
    Ok(ExitCode::SUCCESS)
}

fn parse_month(s: &str, year: i32) -> anyhow::Result<u32> {
    progress::parse_month(s, year)
        .with_context(|| format!("--as-of {s}: expected a month YYYY-MM of {year}"))
}
