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
/// divisions) and writes the long table as CSV and XLSX with Chinese headers;
/// with `--html`, also one offline page with a card and a month-by-month
/// chart per indicator, red first.
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
    /// Folder for progress-<year>-<MM>.csv and .xlsx (and .html).
    #[arg(long, default_value = "reports")]
    pub out: PathBuf,
    /// Also write progress-<year>-<MM>.html: for the city and each county,
    /// every indicator's completion, time progress and light, with a chart
    /// of completion month by month; red first. One file, no outside
    /// resources: it opens from an e-mail attachment.
    #[arg(long)]
    pub html: bool,
    /// Read marts.indicators at this Delta version (as a page's 重现命令
    /// does), not the latest.
    #[arg(long)]
    pub version: Option<u64>,
    /// The public edition, for what leaves the bureau: every value that
    /// disclosure control withholds (marts.disclosure: it rests on fewer
    /// than 3 units, one unit holds more than 85 % of it, or it would give
    /// such a value away) is 保密 / `*`, with its completion, light and
    /// chart points. Files are named progress-<year>-<MM>-public.*.
    /// Without it, the internal edition marks those values in 公开版.
    #[arg(long)]
    pub public: bool,
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
    let mut wh = super::open_warehouse(cli, catalog)?;
    let table = stmon_warehouse::TableId::new("marts", "indicators");
    if let Some(v) = args.version {
        wh = wh.pinned([(table.clone(), v)].into());
    }
    let ctx = stmon_models::run::session(&wh, &project).await?;
    if !ctx.table_exist("marts.indicators")? {
        anyhow::bail!("marts.indicators does not exist yet: run `stmon models run` first");
    }
    let month = match &args.as_of {
        Some(s) => parse_month(s, args.year)?,
        None => progress::latest_month(&ctx, args.year).await?,
    };
    let mut rows = progress::progress(&ctx, &targets, args.year, month).await?;
    if args.public {
        if !ctx.table_exist("marts.disclosure")? {
            anyhow::bail!(
                "marts.disclosure does not exist yet, so nothing can be withheld: run `stmon models run` first"
            );
        }
        progress::public(&mut rows);
    }
    crate::render::print_matrix(&rows, args.year, month);
    let (csv, xlsx) = if args.public {
        files::progress_public(&args.out, args.year, month)
    } else {
        files::progress(&args.out, args.year, month)
    };
    progress::write(&rows, &csv, &xlsx)?;
    println!("written: {} and {}", csv.display(), xlsx.display());
    if args.html {
        let page = progress::Page::read(
            &wh,
            &ctx,
            &targets,
            &targets_path,
            args.year,
            month,
            args.public,
        )
        .await?;
        let path = if args.public {
            files::progress_html_public(&args.out, args.year, month)
        } else {
            files::progress_html(&args.out, args.year, month)
        };
        let pages = page.write(&rows, &path)?;
        if pages.len() == 1 {
            println!("written: {}", path.display());
        } else {
            println!(
                "written: {} (an index) and {} region page(s) beside it: more than {} divisions do not fit one page",
                path.display(),
                pages.len() - 1,
                progress::PAGE_DIVISIONS
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn parse_month(s: &str, year: i32) -> anyhow::Result<u32> {
    progress::parse_month(s, year)
        .with_context(|| format!("--as-of {s}: expected a month YYYY-MM of {year}"))
}
