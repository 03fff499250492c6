//! Subcommands. Exit codes: 0 ok, 1 data-quality failure (`--strict`), 2 error.

mod assess;
mod cluster;
mod docs;
mod explain;
mod fixtures;
mod ingest;
mod models;
mod progress;
mod review;
mod run;
mod runs;
mod serve;
mod sql;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};

/// `stmon --version`: the version, and whether this build has Apache
/// Ballista (`--features cluster`), which scripts check (bench/scale.sh).
#[cfg(feature = "cluster")]
const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (cluster)");
#[cfg(not(feature = "cluster"))]
const VERSION: &str = env!("CARGO_PKG_VERSION");

/// stmon — statistical monitoring of science & technology progress.
///
/// Submissions (CSV/XLSX, UTF-8 or GB18030, English or Chinese headers) are
/// validated and loaded into a Delta Lake warehouse; later layers turn them
/// into indicators per county and into the year-end rankings.
#[derive(Parser, Debug)]
#[command(name = "stmon", version = VERSION, about, long_about)]
pub struct Cli {
    /// Warehouse location: a local folder or an object-store URL (s3://bucket/prefix).
    #[arg(
        long,
        global = true,
        env = "STMON_WAREHOUSE",
        default_value = "./warehouse"
    )]
    pub warehouse: String,
    /// An object-store option, KEY=VALUE, for every table of the warehouse
    /// (repeat, or separate with commas). Retries: max_retries (default 10),
    /// retry_timeout (3min), backoff_config.init_backoff (100ms),
    /// backoff_config.max_backoff (15s), backoff_config.base (2); requests:
    /// timeout (30s), connect_timeout (5s); S3: aws_region, aws_endpoint, …
    /// (AWS_* environment variables are read too).
    #[arg(
        long = "storage-option",
        global = true,
        env = "STMON_STORAGE_OPTIONS",
        value_name = "KEY=VALUE",
        value_delimiter = ','
    )]
    pub storage_options: Vec<String>,
    /// Folder with the form definitions (forms/*.yaml) and divisions.csv.
    #[arg(long, global = true, env = "STMON_SCHEMAS")]
    pub schemas: Option<PathBuf>,
    /// Another division table (code,name,parent_code,successor), e.g. a province's.
    #[arg(long, global = true, env = "STMON_DIVISIONS")]
    pub divisions: Option<PathBuf>,
    /// Folder of the SQL models (staging/, intermediate/, marts/).
    #[arg(long = "sql-dir", global = true, env = "STMON_SQL")]
    pub sql_dir: Option<PathBuf>,
    /// Log format on stderr: plain text, or one JSON object per line (for
    /// log collectors; `stmon run` then logs each step at info).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Plain)]
    pub log_format: LogFormat,
    /// More log output (-v info, -vv debug).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Plain,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    Run(run::Args),
    Runs(runs::Args),
    Ingest(ingest::Args),
    #[command(subcommand)]
    Models(models::ModelsCommand),
    Progress(progress::Args),
    #[command(subcommand)]
    Review(review::ReviewCommand),
    Sql(sql::Args),
    Serve(serve::Args),
    Assess(assess::Args),
    Explain(explain::Args),
    Docs(docs::Args),
    /// Deterministic test data in the contract's format.
    #[command(subcommand)]
    Fixtures(fixtures::FixturesCommand),
    #[command(subcommand)]
    Cluster(cluster::ClusterCommand),
}

pub fn init_tracing(cli: &Cli) {
    // The Delta kernel logs an ERROR whenever a table is probed before it
    // exists, which stmon does on purpose when it creates tables.
    let run_logs = matches!(cli.command, Command::Run(_)) && cli.log_format == LogFormat::Json;
    let level = match cli.verbose {
        0 if run_logs => "warn,stmon=info,buoyant_kernel=off,delta_kernel=off",
        0 => "warn,buoyant_kernel=off,delta_kernel=off",
        1 => "info,buoyant_kernel=off,delta_kernel=off",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("STMON_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(console_is_terminal());
    let _ = match cli.log_format {
        LogFormat::Plain => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// The schemas folder: `--schemas`, else `./schemas`, else the one shipped with the source.
fn schemas_dir(cli: &Cli) -> PathBuf {
    if let Some(s) = &cli.schemas {
        return s.clone();
    }
    let local = PathBuf::from("schemas");
    if local.join("forms").is_dir() {
        return local;
    }
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/schemas"))
}

/// A file of the project: relative to the working directory if it is there,
/// else the one shipped with the source.
pub fn project_file(rel: &str) -> PathBuf {
    let local = PathBuf::from(rel);
    if local.exists() {
        return local;
    }
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"))).join(rel)
}

pub fn load_project(cli: &Cli) -> anyhow::Result<stmon_models::Project> {
    let dir = cli.sql_dir.clone().unwrap_or_else(|| project_file("sql"));
    Ok(stmon_models::Project::load(&dir)?)
}

/// The stack of each runtime thread, when a command needs more than tokio's.
pub fn thread_stack(cli: &Cli) -> Option<usize> {
    // Ballista's scheduler plans and serialises a whole query recursively;
    // with tokio's 2 MiB a model's plan overflowed the stack of a worker
    // (Ballista's own scheduler binary runs on 32 MiB stacks, as here).
    matches!(cli.command, Command::Cluster(_)).then_some(32 << 20)
}

/// Tokio worker threads, when a command needs other than one per core.
///
/// `stmon serve` runs every session's queries on the same runtime, and a
/// DataFusion operator that produces many batches from few inputs (a cross
/// join) can keep a worker busy for long stretches: with one worker per
/// core, one runaway query would hold every worker and the other sessions
/// would wait for it. More workers than cores let the operating system share
/// the cores between sessions instead.
pub fn worker_threads(cli: &Cli) -> Option<usize> {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    matches!(cli.command, Command::Serve(_)).then_some((cores * 4).max(8))
}

/// Gives the memory freed by the last step back to the OS. glibc's malloc
/// keeps freed pages in its per-thread arenas: after the enterprise models
/// of twice national data the process held ~1.4 GiB it no longer used, and
/// the next model's memory came on top of it (2.0 GiB peak; 1.6 after
/// trimming between models). Called between models and between steps.
#[allow(unsafe_code)]
pub fn release_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes no pointer and only trims glibc's own heap,
    // under its own locks; it is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

pub fn console_is_terminal() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal()
}

pub fn load_catalog(cli: &Cli) -> anyhow::Result<Arc<stmon_schema::Catalog>> {
    let dir = schemas_dir(cli);
    let catalog = match &cli.divisions {
        Some(d) => stmon_schema::Catalog::load_with_divisions(&dir, d),
        None => stmon_schema::Catalog::load(&dir),
    }
    .with_context(|| format!("loading the forms from {}", dir.display()))?;
    Ok(Arc::new(catalog))
}

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match &cli.command {
        Command::Run(args) => run::run(&cli, args).await,
        Command::Runs(args) => runs::run(&cli, args).await,
        Command::Ingest(args) => ingest::run(&cli, args).await,
        Command::Models(c) => models::run(&cli, c).await,
        Command::Progress(args) => progress::run(&cli, args).await,
        Command::Review(c) => review::run(&cli, c).await,
        Command::Sql(args) => sql::run(&cli, args).await,
        Command::Serve(args) => serve::run(&cli, args).await,
        Command::Assess(args) => assess::run(&cli, args).await,
        Command::Explain(args) => explain::run(&cli, args).await,
        Command::Docs(args) => docs::run(&cli, args).await,
        Command::Fixtures(c) => fixtures::run(&cli, c).await,
        Command::Cluster(c) => cluster::run(c).await,
    }
}

/// Why `--engine ballista://…` and `stmon cluster` do nothing in this build.
#[cfg(not(feature = "cluster"))]
pub const NO_CLUSTER: &str = "this stmon was built without Apache Ballista; \
     build it with `cargo build --release --features cluster` (README \"Beyond one machine\")";

/// The engine an `--engine` option or a pipeline's `engine:` names: `local`
/// (also when not given) or a Ballista scheduler, `ballista://HOST:PORT`,
/// which must answer.
pub async fn engine(spec: Option<&str>) -> anyhow::Result<stmon_warehouse::Engine> {
    match spec {
        None | Some("local") => Ok(stmon_warehouse::Engine::Local),
        Some(s) if s.starts_with("ballista://") => {
            #[cfg(feature = "cluster")]
            {
                let e = stmon_cluster::BallistaEngine::connect(s).await?;
                Ok(stmon_warehouse::Engine::Remote(Arc::new(e)))
            }
            #[cfg(not(feature = "cluster"))]
            anyhow::bail!("engine {s}: {NO_CLUSTER}")
        }
        Some(s) => anyhow::bail!("engine {s:?}: expected local or ballista://HOST:PORT"),
    }
}

/// Takes the warehouse's run lock for a command that writes outside `stmon
/// run` (`stmon ingest`, `stmon models run`): one writer at a time, as for
/// runs. With `wait`, waits up to that many seconds; without, fails at once
/// naming the holder (exit 2).
pub async fn lock_for(
    wh: &stmon_warehouse::Warehouse,
    command: &str,
    wait: Option<u64>,
) -> anyhow::Result<stmon_warehouse::lock::RunLock> {
    let id = format!(
        "{}-{}",
        command.replace(' ', "-"),
        uuid::Uuid::now_v7().simple()
    );
    let lock = wh
        .lock_run(
            &id,
            &format!("stmon {command}"),
            wait.map(std::time::Duration::from_secs),
            &|holder| eprintln!("waiting for the warehouse lock, held by {holder} …"),
        )
        .await?;
    Ok(lock)
}

/// Opens the warehouse the global options name (location and storage options).
pub fn open_warehouse(
    cli: &Cli,
    catalog: Arc<stmon_schema::Catalog>,
) -> anyhow::Result<stmon_warehouse::Warehouse> {
    let wh = stmon_warehouse::Warehouse::open(&cli.warehouse, catalog)
        .context("opening the warehouse")?;
    wh.with_storage_options(&cli.storage_options)
        .context("opening the warehouse")
}
