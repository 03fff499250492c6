//! `stmon fixtures generate` and `stmon fixtures mistakes`.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use stmon_fixtures::mistakes::{self, CountySums, Firm, Report};
use stmon_fixtures::Scale;

#[derive(clap::Subcommand, Debug)]
pub enum FixturesCommand {
    /// Write deterministic submissions for 2022–2023 (CSV and XLSX, some
    /// GB18030, some corrections and some invalid rows). The same scale and
    /// seed always give the same bytes. Files go to OUT/submissions/<form>/;
    /// the division table they use to OUT/divisions.csv (give it to
    /// `--divisions` when ingesting province or national data).
    Generate {
        /// shaoxing (6 counties, ~6,000 above-scale firms), province (90
        /// counties) or national (~2,800 counties, ~480,000 firms).
        #[arg(long, value_enum, default_value = "shaoxing")]
        scale: Scale,
        #[arg(long, default_value_t = 2023)]
        seed: u64,
        #[arg(long)]
        out: PathBuf,
    },
    /// Type known mistakes into firms' reports in the warehouse, for
    /// measuring the review: a resubmission of their rows (enterprise_rd,
    /// to ingest) and a manifest of what was typed.
    ///
    /// Kinds in turn: R&D in 元 for 万元 (×10,000) in one month, and from a
    /// month to December; an extra digit (×10); a dropped digit (÷10); R&D
    /// above revenue; value added above revenue. Firms with all twelve
    /// months of YEAR, picked by SEED, one incident each. The manifest has
    /// one line per incident-month with the true and the typed value and
    /// the incident's impact: the largest relative change it makes to its
    /// county's year-end R&D intensity, industrial R&D ratio or high-tech
    /// value-added share (read from marts.indicators; run the models first).
    Mistakes {
        /// Incidents to type in.
        #[arg(long, default_value_t = 100)]
        count: usize,
        #[arg(long, default_value_t = 2023)]
        seed: u64,
        #[arg(long, default_value_t = 2023)]
        year: i32,
        /// The resubmission CSV to write.
        #[arg(long)]
        out: PathBuf,
        /// The manifest CSV to write.
        #[arg(long)]
        manifest: PathBuf,
    },
}

pub async fn run(cli: &super::Cli, c: &FixturesCommand) -> anyhow::Result<ExitCode> {
    match c {
        FixturesCommand::Generate { scale, seed, out } => {
            let catalog = super::load_catalog(cli)?;
            let summary = stmon_fixtures::generate(*scale, *seed, out, &catalog)
                .with_context(|| format!("writing fixtures to {}", out.display()))?;
            print!("{summary}");
            Ok(ExitCode::SUCCESS)
        }
        FixturesCommand::Mistakes {
            count,
            seed,
            year,
            out,
            manifest,
        } => {
            let project = super::load_project(cli)?;
            let catalog = super::load_catalog(cli)?;
            let wh = super::open_warehouse(cli, catalog)?;
            let ctx = stmon_models::run::session(&wh, &project).await?;
            // Four candidates an incident: a kind fits most firms.
            let (firms, all) = full_year_firms(&ctx, *year, count * 4, *seed).await?;
            let sums = county_sums(&ctx, *year).await?;
            let incidents = mistakes::pick(&firms, *count, *seed, &sums);
            if incidents.len() < *count {
                anyhow::bail!(
                    "only {} of {count} incidents fit: {all} firms report every month of {year}",
                    incidents.len(),
                );
            }
            let submitted = format!("{}-03-01 09:00", year + 1);
            let csv = mistakes::resubmission(&firms, &incidents, *year, &submitted);
            std::fs::write(out, csv).with_context(|| format!("writing {}", out.display()))?;
            std::fs::write(manifest, mistakes::manifest(&incidents))
                .with_context(|| format!("writing {}", manifest.display()))?;
            let high = incidents.iter().filter(|i| i.impact >= 0.01).count();
            println!(
                "{} incidents ({} firm-months) in {}; manifest {}; {high} move a county's year-end indicator by 1 % or more",
                incidents.len(),
                incidents.iter().map(|i| i.months.len()).sum::<usize>(),
                out.display(),
                manifest.display()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Firms reporting all twelve months of `year`, with their reports: up to
/// `want` of them, picked by `seed` among all such firms (whose codes alone
/// are read first), then their rows.
async fn full_year_firms(
    ctx: &datafusion::prelude::SessionContext,
    year: i32,
    want: usize,
    seed: u64,
) -> anyhow::Result<(Vec<Firm>, usize)> {
    let sql = format!(
        "select credit_code from current.enterprise_rd where period like '{year}-%' \
         group by credit_code having count(*) = 12 order by credit_code"
    );
    let mut codes: Vec<String> = Vec::new();
    for b in ctx.sql(&sql).await?.collect().await? {
        let c = stmon_models::text_column(&b, 0)?;
        codes.extend((0..b.num_rows()).map(|r| c.value(r).to_string()));
    }
    let all = codes.len();
    let codes = mistakes::candidates(codes, want, seed);
    let mut by: BTreeMap<String, Firm> = BTreeMap::new();
    for chunk in codes.chunks(2000) {
        let list = chunk
            .iter()
            .map(|c| format!("'{}'", c.replace('\'', "''")))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "select credit_code, name, cast(substr(period, 6, 2) as int), county_code, industry_code, \
                    above_scale, high_tech_industry, cast(revenue as double), cast(rd_expenditure as double), \
                    cast(basic_research as double), cast(value_added as double) \
             from current.enterprise_rd \
             where period like '{year}-%' and credit_code in ({list}) \
             order by credit_code, period"
        );
        for b in ctx.sql(&sql).await?.collect().await? {
            let t = |i| stmon_models::text_column(&b, i);
            let f = |i| stmon_models::float_column(&b, i);
            let (code, name, month, county, industry, above, ht) =
                (t(0)?, t(1)?, f(2)?, t(3)?, t(4)?, t(5)?, t(6)?);
            let (rev, rd, basic, va) = (f(7)?, f(8)?, f(9)?, f(10)?);
            use arrow::array::Array;
            let opt = |a: &arrow::array::Float64Array, r: usize| a.is_valid(r).then(|| a.value(r));
            for r in 0..b.num_rows() {
                by.entry(code.value(r).to_string())
                    .or_insert_with(|| Firm {
                        credit_code: code.value(r).to_string(),
                        name: name.value(r).to_string(),
                        reports: Vec::new(),
                    })
                    .reports
                    .push(Report {
                        month: month.value(r) as u32,
                        county_code: county.value(r).to_string(),
                        industry_code: industry.value(r).to_string(),
                        above_scale: above.value(r) == "true",
                        high_tech_industry: ht.value(r) == "true",
                        revenue: rev.value(r),
                        rd_expenditure: rd.value(r),
                        basic_research: opt(&basic, r),
                        value_added: opt(&va, r),
                    });
            }
        }
    }
    Ok((by.into_values().collect(), all))
}

/// Each county's year-end numerator and denominator of the indicators a
/// firm's R&D or value added enters.
async fn county_sums(
    ctx: &datafusion::prelude::SessionContext,
    year: i32,
) -> anyhow::Result<CountySums> {
    let sql = format!(
        "select division_code, indicator_id, numerator, denominator from marts.indicators \
         where year = {year} and as_of_month = 12 and level = 'county' \
           and indicator_id in ('rd_intensity', 'industrial_rd_ratio', 'high_tech_va_share') \
           and numerator is not null and denominator is not null"
    );
    let batches = ctx
        .sql(&sql)
        .await
        .context("reading marts.indicators (run `stmon models run` first)")?
        .collect()
        .await?;
    let mut out: HashMap<(String, String), (f64, f64)> = HashMap::new();
    for b in batches {
        let t = |i| stmon_models::text_column(&b, i);
        let f = |i| stmon_models::float_column(&b, i);
        let (d, id, n, den) = (t(0)?, t(1)?, f(2)?, f(3)?);
        for r in 0..b.num_rows() {
            out.insert(
                (d.value(r).to_string(), id.value(r).to_string()),
                (n.value(r), den.value(r)),
            );
        }
    }
    Ok(out.into_iter().collect())
}
