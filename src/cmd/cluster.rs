//! `stmon cluster scheduler|executor`: an Apache Ballista cluster for
//! `--engine ballista://HOST:PORT` (README "Beyond one machine").

use std::process::ExitCode;

/// Run a Ballista scheduler or executor carrying stmon's codec.
///
/// A cluster is one scheduler and any number of executors, each a process
/// (on one machine or many). `stmon models run --engine ballista://HOST:PORT`,
/// `stmon sql --engine …` and a pipeline's `engine:` plan their SQL here and
/// send it to the scheduler; executors read the warehouse's Parquet files
/// straight from its object store (`s3://…`, or a folder every machine
/// mounts at the same path) and stream the rows back. The warehouse is only
/// ever written by the stmon that runs the models.
///
/// Executors reach `s3://` with the same environment as stmon
/// (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION,
/// AWS_ALLOW_HTTP). The scheduler's REST API (`/api/state`,
/// `/api/executors`, `/api/jobs`) is served on its port.
#[derive(clap::Subcommand, Debug)]
pub enum ClusterCommand {
    /// Run the scheduler: it plans submitted queries into stages and hands
    /// their tasks to executors.
    Scheduler(SchedulerArgs),
    /// Run an executor: it registers with the scheduler and runs tasks.
    Executor(ExecutorArgs),
}

#[derive(clap::Args, Debug)]
pub struct SchedulerArgs {
    /// Address to listen on (gRPC for stmon and executors, REST under /api).
    #[arg(long, default_value = "127.0.0.1:50050")]
    pub bind: std::net::SocketAddr,
    /// Host name by which executors and clients reach this scheduler.
    #[arg(long, default_value = "localhost")]
    pub external_host: String,
    /// Seconds without a heartbeat after which an executor is taken as lost
    /// and its tasks run again on others.
    #[arg(long, value_name = "SECS", default_value_t = 180)]
    pub executor_timeout: u64,
}

#[derive(clap::Args, Debug)]
pub struct ExecutorArgs {
    /// The scheduler, HOST:PORT.
    #[arg(long, default_value = "127.0.0.1:50050")]
    pub scheduler: String,
    /// Address to listen on for other executors and stmon to fetch results.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind_host: String,
    /// Host name by which others reach this executor (default: --bind-host).
    #[arg(long)]
    pub external_host: Option<String>,
    /// Port of its Arrow Flight service (results and shuffles).
    #[arg(long, default_value_t = 50051)]
    pub port: u16,
    /// Port of its gRPC service (tasks from the scheduler).
    #[arg(long, default_value_t = 50052)]
    pub grpc_port: u16,
    /// Tasks run at once (default: the machine's cores).
    #[arg(long)]
    pub concurrent_tasks: Option<usize>,
    /// Memory its tasks may hold before they spill, in MiB (default:
    /// Ballista's: a share of the machine's memory).
    #[arg(long, value_name = "MIB")]
    pub memory_limit_mb: Option<u64>,
    /// Folder for shuffle files and spills (default: a temporary folder).
    #[arg(long)]
    pub work_dir: Option<String>,
    /// Seconds between heartbeats to the scheduler.
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    pub heartbeat: u64,
}

#[cfg(feature = "cluster")]
pub async fn run(c: &ClusterCommand) -> anyhow::Result<ExitCode> {
    use std::time::Duration;
    match c {
        ClusterCommand::Scheduler(a) => {
            eprintln!(
                "stmon cluster scheduler on {} (REST: http://{}/api/state)",
                a.bind, a.bind
            );
            stmon_cluster::run_scheduler(&stmon_cluster::SchedulerOptions {
                bind: a.bind,
                external_host: a.external_host.clone(),
                executor_timeout: Duration::from_secs(a.executor_timeout),
            })
            .await?;
        }
        ClusterCommand::Executor(a) => {
            let (host, port) = match a.scheduler.rsplit_once(':') {
                Some((h, p)) => (
                    h.to_string(),
                    p.parse::<u16>().map_err(|_| {
                        anyhow::anyhow!("--scheduler {}: the port is not a number", a.scheduler)
                    })?,
                ),
                None => (a.scheduler.clone(), stmon_cluster::DEFAULT_SCHEDULER_PORT),
            };
            eprintln!(
                "stmon cluster executor on {}:{} (tasks from scheduler {host}:{port})",
                a.bind_host, a.port
            );
            stmon_cluster::run_executor(&stmon_cluster::ExecutorOptions {
                scheduler_host: host,
                scheduler_port: port,
                bind_host: a.bind_host.clone(),
                external_host: a.external_host.clone(),
                flight_port: a.port,
                grpc_port: a.grpc_port,
                concurrent_tasks: a.concurrent_tasks,
                memory_limit: a.memory_limit_mb.map(|m| m << 20),
                work_dir: a.work_dir.clone(),
                heartbeat: Duration::from_secs(a.heartbeat),
            })
            .await?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(not(feature = "cluster"))]
pub async fn run(_: &ClusterCommand) -> anyhow::Result<ExitCode> {
    anyhow::bail!("{}", super::NO_CLUSTER)
}
