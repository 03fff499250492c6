//! `stmon models run|list|graph`.

use std::process::ExitCode;

use stmon_models::run::{Event, RunOptions, Status};
use stmon_warehouse::Warehouse;

/// SQL models: run them into the warehouse, list them, draw their graph.
///
/// Models are the `.sql` files under the project's `sql/` folder, in layers
/// `staging/`, `intermediate/` and `marts/`, one SELECT per file. Each is
/// written as the Delta table `<warehouse>/<layer>/<model>` and queryable as
/// `<layer>.<model>`. Dependencies are the tables each model's SQL reads.
#[derive(clap::Subcommand, Debug)]
pub enum ModelsCommand {
    /// Run models in dependency order, then their data tests.
    ///
    /// A model that fails stops the models that read it (reported as skipped).
    /// Exit codes: 0 all models and tests passed; 1 a data test failed; 2 a
    /// model failed or was skipped, or another error.
    Run(RunArgs),
    /// List the models in run order with their descriptions.
    List,
    /// Print the dependency graph (text, or Graphviz DOT with --dot).
    Graph {
        /// Graphviz DOT instead of text (`stmon models graph --dot | dot -Tsvg`).
        #[arg(long)]
        dot: bool,
    },
}

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// Models to run: NAME, +NAME (with everything it reads), NAME+ (with
    /// everything that reads it), +NAME+. Repeatable; default: all.
    #[arg(long, short = 's')]
    pub select: Vec<String>,
    /// Stop at the first failing model or data test.
    #[arg(long)]
    pub fail_fast: bool,
    /// Do not run the data tests.
    #[arg(long)]
    pub no_tests: bool,
    /// Where the models' SQL runs: `local` (this process) or an Apache
    /// Ballista cluster, `ballista://HOST:PORT` (see `stmon cluster`). The
    /// tables are written by this process either way.
    #[arg(long, env = "STMON_ENGINE", default_value = "local")]
    pub engine: String,
    /// If a run or ingest holds the warehouse lock, wait for it (up to SECS,
    /// default 1 hour); without, exit 2 naming the holder.
    #[arg(long, value_name = "SECS", num_args = 0..=1, default_missing_value = "3600")]
    pub wait: Option<u64>,
}

pub async fn run(cli: &super::Cli, c: &ModelsCommand) -> anyhow::Result<ExitCode> {
    let project = super::load_project(cli)?;
    match c {
        ModelsCommand::List => {
            for m in &project.models {
                println!(
                    "{:<36} {}",
                    m.id.to_string(),
                    m.spec
                        .description
                        .as_deref()
                        .map(|d| d.split_whitespace().collect::<Vec<_>>().join(" "))
                        .unwrap_or_default()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        ModelsCommand::Graph { dot } => {
            if *dot {
                print!("{}", project.graph_dot());
            } else {
                print!("{}", project.graph_text());
            }
            Ok(ExitCode::SUCCESS)
        }
        ModelsCommand::Run(args) => {
            let catalog = super::load_catalog(cli)?;
            let engine = super::engine(Some(&args.engine)).await?;
            if let stmon_warehouse::Engine::Remote(r) = &engine {
                println!("models run on {}", r.address());
            }
            let wh = super::open_warehouse(cli, catalog)?.with_engine(engine);
            let lock = super::lock_for(&wh, "models run", args.wait).await?;
            let code = run_models(&wh, &project, args).await;
            lock.release().await?;
            code
        }
    }
}

pub async fn run_models(
    wh: &Warehouse,
    project: &stmon_models::Project,
    args: &RunArgs,
) -> anyhow::Result<ExitCode> {
    let opts = RunOptions {
        select: args.select.clone(),
        fail_fast: args.fail_fast,
        no_tests: args.no_tests,
        ..Default::default()
    };
    let bar = crate::render::bar(
        super::console_is_terminal(),
        "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} models",
    );
    let on = |e: Event| match e {
        Event::Start { total } => bar.set_length(total as u64),
        Event::Model(o) => {
            super::release_memory();
            bar.inc(1);
            let line = match &o.status {
                Status::Ok => {
                    let passed = o.tests.iter().filter(|t| t.passed()).count();
                    let tests = if o.tests.is_empty() {
                        String::new()
                    } else {
                        format!(", tests {passed}/{}", o.tests.len())
                    };
                    format!(
                        "ok      {:<36} {:>10} rows  {:>6.1}s{tests}{}",
                        o.id.to_string(),
                        o.rows,
                        o.elapsed.as_secs_f64(),
                        crate::render::partitions_note(o.partitions)
                    )
                }
                Status::UpToDate => format!("up to date {}", o.id),
                Status::View => format!("view    {} (nothing written)", o.id),
                Status::Failed(m) => format!("FAILED  {}\n        {m}", o.id),
                Status::Skipped(why) => format!("skipped {} ({why})", o.id),
            };
            bar.suspend(|| {
                println!("{line}");
                for t in o.tests.iter().filter(|t| !t.passed()) {
                    match &t.error {
                        Some(err) => println!("  test ERROR  {}: {err}", t.name),
                        None => {
                            println!("  test FAILED {}: {} failing row(s)", t.name, t.failures);
                            for l in t.sample.lines() {
                                println!("    {l}");
                            }
                        }
                    }
                }
            });
        }
    };
    let report = stmon_models::run::run(wh, project, &opts, &on).await?;
    bar.finish_and_clear();
    let tests: usize = report.models.iter().map(|m| m.tests.len()).sum();
    println!(
        "{} model(s): {} failed, {} skipped; {} data test(s): {} failed",
        report.models.len(),
        report.failed_models(),
        report
            .models
            .iter()
            .filter(|m| matches!(m.status, Status::Skipped(_)))
            .count(),
        tests,
        report.failed_tests()
    );
    Ok(
        if report.failed_models() > 0
            || report
                .models
                .iter()
                .any(|m| matches!(m.status, Status::Skipped(_)))
        {
            ExitCode::from(2)
        } else if report.failed_tests() > 0 {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        },
    )
}
