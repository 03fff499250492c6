//! `stmon progress`: actual against target per county and indicator.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use comfy_table::{presets::UTF8_FULL_CONDENSED, Cell, CellAlignment, Color, Table};
use stmon_models::progress::{self, Light, ProgressRow, Targets};
use stmon_warehouse::Warehouse;

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
    let wh = Warehouse::open(&cli.warehouse, catalog).context("opening the warehouse")?;
    let ctx = stmon_models::run::session(&wh, &project).await?;
    if !ctx.table_exist("marts.indicators")? {
        anyhow::bail!("marts.indicators does not exist yet: run `stmon models run` first");
    }
    let month = match &args.as_of {
        Some(s) => parse_month(s, args.year)?,
        None => latest_month(&ctx, args.year).await?,
    };
    let rows = progress::progress(&ctx, &targets, args.year, month).await?;
    print_matrix(&rows, args.year, month);
    let stem = format!("progress-{}-{month:02}", args.year);
    let csv = args.out.join(format!("{stem}.csv"));
    let xlsx = args.out.join(format!("{stem}.xlsx"));
    progress::write(&rows, &csv, &xlsx)?;
    println!("written: {} and {}", csv.display(), xlsx.display());
    Ok(ExitCode::SUCCESS)
}

fn parse_month(s: &str, year: i32) -> anyhow::Result<u32> {
    stmon_models::pipeline::parse_month(s, year)
        .with_context(|| format!("--as-of {s}: expected a month YYYY-MM of {year}"))
}

pub async fn latest_month(
    ctx: &datafusion::prelude::SessionContext,
    year: i32,
) -> anyhow::Result<u32> {
    let b = ctx
        .sql(&format!(
            "select cast(coalesce(max(month), 12) as bigint) from staging.enterprise_rd_months where year = {year}"
        ))
        .await?
        .collect()
        .await?;
    let v = b
        .first()
        .and_then(|b| {
            b.column(0)
                .as_any()
                .downcast_ref::<arrow::array::Int64Array>()
                .map(|a| a.value(0))
        })
        .unwrap_or(12);
    Ok(v.clamp(1, 12) as u32)
}

pub fn print_matrix(rows: &[ProgressRow], year: i32, month: u32) {
    let mut divisions: Vec<(String, String)> = Vec::new();
    let mut indicators: Vec<(String, String)> = Vec::new();
    for r in rows {
        if !divisions.iter().any(|d| d.0 == r.division_code) {
            divisions.push((r.division_code.clone(), r.division_name.clone()));
        }
        if !indicators.iter().any(|i| i.0 == r.indicator_id) {
            indicators.push((r.indicator_id.clone(), r.label.clone()));
        }
    }
    println!(
        "\n{year} progress as of {year}-{month:02} (time progress {:.0}%): actual / completion, ● green ◐ yellow ○ red, – no value",
        f64::from(month) / 12.0 * 100.0
    );
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    let mut header = vec![Cell::new("indicator")];
    header.extend(
        divisions
            .iter()
            .map(|d| Cell::new(format!("{}\n{}", d.1, d.0))),
    );
    t.set_header(header);
    for (id, label) in &indicators {
        let mut line = vec![Cell::new(format!("{label}\n{id}"))];
        for (code, _) in &divisions {
            let cell = match rows
                .iter()
                .find(|r| &r.division_code == code && &r.indicator_id == id)
            {
                None => Cell::new(""),
                Some(r) => match (r.actual, r.completion, r.status) {
                    (Some(a), Some(c), Some(s)) => {
                        let (mark, color) = match s {
                            Light::Green => ("●", Color::Green),
                            Light::Yellow => ("◐", Color::Yellow),
                            Light::Red => ("○", Color::Red),
                        };
                        // `*`: the value carries a note (what it covers, or
                        // that it is 0 because nothing was sent), listed below.
                        let note = if r.reason.is_some() { "*" } else { "" };
                        Cell::new(format!(
                            "{}{note}\n{mark} {:.0}%",
                            progress::display(a, r.unit.as_deref()),
                            c * 100.0
                        ))
                        .fg(color)
                    }
                    _ => Cell::new("–"),
                },
            };
            line.push(cell.set_alignment(CellAlignment::Right));
        }
        t.add_row(line);
    }
    println!("{t}");
    let notes: Vec<&ProgressRow> = rows.iter().filter(|r| r.reason.is_some()).collect();
    if !notes.is_empty() {
        println!("notes (* and –):");
        for r in notes {
            println!(
                "  {} {} {}: {}",
                r.division_code,
                r.division_name,
                r.indicator_id,
                r.reason.as_deref().unwrap_or_default()
            );
        }
    }
}
