//! `stmon assess`: the year-end ranking tables.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use stmon_reports::assessment::{self, Assessment};
use stmon_reports::{files, report};

/// Year-end assessment (年度科技进步目标责任制考核): ranking tables for
/// counties (level and change against the previous year), high-tech zones
/// (within their level) and research institutes (with grades).
///
/// Each scheme (YAML under pipelines/) names the indicators, weights,
/// directions and normalisations. Outputs: Delta tables
/// marts/assessment_<table>, and in --out: assessment_<table>.csv,
/// assessment-<year>.xlsx (a sheet per table) and assessment-<year>.html.
/// Every output carries the scheme's sha256, the Delta version of the
/// indicator table it read and the time it ran; `--version V` reads that
/// version again and reproduces the table.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The assessment year (must match the schemes' year).
    #[arg(long)]
    pub year: i32,
    /// Scheme YAML (repeatable). Default: pipelines/assessment-*-<year>.yaml.
    #[arg(long)]
    pub scheme: Vec<PathBuf>,
    /// Read this Delta version of the indicator table (from a past output).
    #[arg(long)]
    pub version: Option<i64>,
    /// Folder for the CSV, XLSX and HTML files.
    #[arg(long, default_value = "reports")]
    pub out: PathBuf,
    /// Rank with every input under an open review query (review.queries)
    /// held at its expected value (marts.indicators' held_value): would an
    /// answer change a rank? Writes beside the published tables, never over
    /// them: marts/assessment_<table>_held, assessment_<table>_held.csv,
    /// assessment-<year>-held.xlsx and .html. The published tables show the
    /// same ranks in their column 待核实值按期望值计排名 where they differ.
    #[arg(long)]
    pub hold_queried: bool,
    /// The public edition, for what leaves the bureau: in the county tables
    /// every indicator value that disclosure control withholds
    /// (marts.disclosure, year end) is `*` with its score, contribution and
    /// change, and so is the total of its row; ranks stay. Written to
    /// <out>/public/; marts.assessment_* keeps the full values.
    #[arg(long)]
    pub public: bool,
}

pub async fn run(cli: &super::Cli, args: &Args) -> anyhow::Result<ExitCode> {
    let schemes = if args.scheme.is_empty() {
        let dir = super::project_file("pipelines");
        let v = files::schemes(&dir, args.year)
            .with_context(|| format!("reading {}", dir.display()))?;
        if v.is_empty() {
            anyhow::bail!(
                "no pipelines/assessment-*-{}.yaml found; name schemes with --scheme",
                args.year
            );
        }
        v
    } else {
        args.scheme.clone()
    };
    let catalog = super::load_catalog(cli)?;
    let wh = super::open_warehouse(cli, catalog)?;
    let mut all: Vec<Assessment> = Vec::new();
    for path in &schemes {
        let values = if args.hold_queried {
            assessment::Values::Held
        } else {
            assessment::Values::Published
        };
        let a = assessment::run_with(&wh, path, args.version, values)
            .await
            .with_context(|| format!("assessing with {}", path.display()))?;
        if a.scheme.year != args.year {
            anyhow::bail!(
                "{} is a scheme for {}, not {}",
                path.display(),
                a.scheme.year,
                args.year
            );
        }
        assessment::write_delta(&wh, &a, None).await?;
        let mut a = a;
        let out = if args.public {
            let n = assessment::public(&wh, &mut a).await?;
            println!("public edition: {n} value(s) withheld (保密)");
            files::public_dir(&args.out)
        } else {
            args.out.clone()
        };
        let csv = report::write_csv(&a, &out)?;
        crate::render::print_assessment(&a);
        for p in csv {
            println!("written: {}", p.display());
        }
        all.push(a);
    }
    let out = if args.public {
        files::public_dir(&args.out)
    } else {
        args.out.clone()
    };
    let (mut xlsx, mut html) = (
        files::assessment_xlsx(&out, args.year),
        files::assessment_html(&out, args.year),
    );
    if args.hold_queried {
        for p in [&mut xlsx, &mut html] {
            let stem = p.file_stem().unwrap_or_default().to_string_lossy();
            let ext = p.extension().unwrap_or_default().to_string_lossy();
            *p = p.with_file_name(format!("{stem}-held.{ext}"));
        }
    }
    report::write_xlsx(&all, &xlsx)?;
    report::write_html(&all, &html)?;
    println!("written: {} and {}", xlsx.display(), html.display());
    Ok(ExitCode::SUCCESS)
}
