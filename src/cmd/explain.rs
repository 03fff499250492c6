//! `stmon explain`: where a number comes from.

use std::process::ExitCode;

use anyhow::Context;

/// Explain one indicator value: its formula, numerator and denominator, and
/// every submission row (file, row, submitted_at) it was computed from.
///
/// --unit is a division code (330602, the city 330600, the region 000000) or,
/// for zone and institute indicators, the zone or institute id.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(long)]
    pub unit: String,
    #[arg(long)]
    pub indicator: String,
    #[arg(long)]
    pub year: i32,
    /// As of this month (YYYY-MM); default: year end.
    #[arg(long, value_name = "YYYY-MM")]
    pub as_of: Option<String>,
}

pub async fn run(cli: &super::Cli, args: &Args) -> anyhow::Result<ExitCode> {
    let month = match &args.as_of {
        None => 12,
        Some(s) => stmon_reports::progress::parse_month(s, args.year)
            .with_context(|| format!("--as-of {s}: expected a month of {} (YYYY-MM)", args.year))?,
    };
    let project = super::load_project(cli)?;
    let catalog = super::load_catalog(cli)?;
    let wh = super::open_warehouse(cli, catalog)?;
    let ctx = stmon_models::run::session(&wh, &project).await?;
    let e = stmon_reports::explain::explain(
        &ctx,
        &project.dir.join("lineage"),
        &args.unit,
        &args.indicator,
        args.year,
        month,
    )
    .await?;
    let n = |v: Option<f64>| v.map(|x| x.to_string()).unwrap_or_else(|| "null".into());
    println!(
        "{} of {} {} — {} as of {}-{:02}",
        e.indicator, e.unit, e.unit_name, e.year, e.year, e.month
    );
    println!("  value        {}", n(e.value));
    println!("  formula      {}", e.formula);
    println!("  numerator    {}", n(e.numerator));
    println!("  denominator  {}", n(e.denominator));
    if let Some(r) = &e.reason {
        println!("  reason       {r}");
    }
    println!("\n{} submission row(s) behind it:", e.inputs.len());
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
    t.set_header(["form", "file", "row", "submitted_at", "key", "detail"]);
    for r in &e.inputs {
        t.add_row(r.iter());
    }
    println!("{t}");
    Ok(ExitCode::SUCCESS)
}
