//! `stmon docs`: the documentation site of the warehouse.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use stmon_reports::docs;
use stmon_reports::progress::Targets;

/// Writes a static documentation site of the warehouse, as `dbt docs` does:
/// every submission form (Chinese labels, types, enumerations), every model
/// (description, SQL, columns with types, data tests and their last result),
/// the indicator catalogue (formula, target, source forms), the rankings,
/// a clickable lineage graph from forms to indicators and rankings, and each
/// Delta table's version history (time, operation, run, batch).
///
/// Generated from the project (`sql/`, `schemas/forms`, `sql/lineage`,
/// `pipelines/`) and the warehouse; nothing in it is written by hand. The
/// pages need no server and load nothing from elsewhere: open
/// `<out>/index.html` in a browser (its search runs in the page).
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Folder to write the site to (replaced page by page).
    #[arg(long, default_value = "reports/docs")]
    pub out: PathBuf,
    /// The year whose targets and assessment schemes are documented.
    /// Default: the latest pipelines/targets-<year>.yaml.
    #[arg(long)]
    pub year: Option<i32>,
    /// Folder of the targets and schemes (targets-<year>.yaml,
    /// assessment-*-<year>.yaml).
    #[arg(long)]
    pub pipelines: Option<PathBuf>,
}

pub async fn run(cli: &super::Cli, args: &Args) -> anyhow::Result<ExitCode> {
    let project = super::load_project(cli)?;
    let catalog = super::load_catalog(cli)?;
    let wh = super::open_warehouse(cli, catalog.clone())?;
    let dir = args
        .pipelines
        .clone()
        .unwrap_or_else(|| super::project_file("pipelines"));
    let year = match args.year {
        Some(y) => Some(y),
        None => latest_targets_year(&dir),
    };
    let targets = match year {
        Some(y) => {
            let path = dir.join(format!("targets-{y}.yaml"));
            path.is_file().then(|| Targets::load(&path)).transpose()?
        }
        None => None,
    };
    let schemes = match year {
        Some(y) => docs::schemes(&dir, y).with_context(|| format!("reading {}", dir.display()))?,
        None => Vec::new(),
    };
    let lineage_dir = project.dir.join("lineage");
    let inputs = docs::Inputs {
        project: &project,
        catalog: &catalog,
        lineage_dir: &lineage_dir,
        targets: targets.as_ref(),
        schemes,
    };
    let site = docs::build(&wh, &inputs).await?;
    let n = site.write(&args.out)?;
    println!(
        "written {n} page(s) to {}; open {}",
        args.out.display(),
        args.out.join("index.html").display()
    );
    Ok(ExitCode::SUCCESS)
}

/// The latest year with a `targets-<year>.yaml` in `dir`.
fn latest_targets_year(dir: &std::path::Path) -> Option<i32> {
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_prefix("targets-")?
                .strip_suffix(".yaml")?
                .parse()
                .ok()
        })
        .max()
}
