//! `stmon serve`: arguments and messages around [`stmon_serve`], which owns
//! the server (read-only guards, snapshots, users, TLS, limits).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::bail;
use stmon_serve::{Config, Server};

/// Serve the warehouse to PostgreSQL clients (psql, DBeaver, Superset, Python), read-only.
///
/// Every query runs on one consistent version of the warehouse: the versions
/// the last finished `stmon run` published while a run is writing, the newest
/// otherwise; `SET stmon.run = 'RUN_ID'` pins a session to a past run's
/// (`stmon runs` lists them), `SET stmon.run = default` returns to the newest, and
/// `SHOW stmon.run` says which one a session reads.
///
/// Examples:
///   stmon serve                                  # 127.0.0.1:5433, no password (loopback only)
///   stmon serve --config serve.yaml              # users, TLS, limits
///   echo 's3cret' | stmon serve --hash-password  # a password_hash line for the config
///   psql -h 127.0.0.1 -p 5433 -U analyst stmon
#[derive(clap::Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Config file (YAML): host, port, users, tls, limits; see the README.
    #[arg(long, env = "STMON_SERVE_CONFIG")]
    config: Option<PathBuf>,
    /// Address to bind (overrides the config; default 127.0.0.1).
    #[arg(long)]
    host: Option<String>,
    /// Port (overrides the config; default 5433; 0 picks a free one).
    #[arg(long)]
    port: Option<u16>,
    /// Read a password from standard input, print its `password_hash` for the config, and exit.
    #[arg(long)]
    hash_password: bool,
}

pub async fn run(cli: &super::Cli, args: &Args) -> anyhow::Result<ExitCode> {
    if args.hash_password {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        let password = line.trim_end_matches(['\n', '\r']);
        if password.is_empty() {
            bail!("--hash-password: give the password on standard input");
        }
        println!("{}", stmon_serve::hash_password(password));
        return Ok(ExitCode::SUCCESS);
    }
    let mut config = Config::load(args.config.as_deref())?;
    if let Some(h) = &args.host {
        config.host = h.clone();
    }
    if let Some(p) = args.port {
        config.port = p;
    }
    let project = super::load_project(cli)?;
    let catalog = super::load_catalog(cli)?;
    let wh = super::open_warehouse(cli, catalog)?;
    let server = Server::bind(config, wh, project).await?;
    let (local, c) = (server.local_addr(), server.config());
    println!(
        "stmon serve: listening on {local} ({}, {}), reading the warehouse at {} ({}); \
         at most {} sessions, {} MB and {} s per query, {} MB for all queries; \
         an address is refused for {} s after {} failed logins",
        if c.tls.is_some() { "TLS" } else { "no TLS" },
        if c.users.is_empty() {
            "no password: loopback only".to_string()
        } else {
            format!("{} user(s), SCRAM-SHA-256", c.users.len())
        },
        cli.warehouse,
        server.snapshot_label(),
        c.limits.max_sessions,
        c.limits.query_memory_mb,
        c.limits.query_timeout_secs,
        c.limits.server_memory_mb,
        c.limits.login_lockout_secs,
        c.limits.login_attempts,
    );
    println!(
        "connect: psql -h {} -p {} -U USER stmon",
        local.ip(),
        local.port()
    );
    server
        .run(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    println!("stmon serve: stopped");
    Ok(ExitCode::SUCCESS)
}
