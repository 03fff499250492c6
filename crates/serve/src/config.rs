//! The server's config file (YAML) and its TLS files.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use crate::{Error, Result};

/// `stmon serve --config FILE`; every field has a default.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default = "default_host")]
    pub host: String,
    /// 0 picks a free port.
    #[serde(default = "default_port")]
    pub port: u16,
    #[serde(default)]
    pub users: Vec<User>,
    #[serde(default)]
    pub tls: Option<Tls>,
    #[serde(default)]
    pub limits: Limits,
    /// How often to look for newly published versions.
    #[serde(default = "default_refresh")]
    pub refresh_secs: u64,
    /// Where every login, session end and query is recorded (JSON lines);
    /// none: nowhere.
    #[serde(default)]
    pub access_log: Option<crate::access::AccessLogConfig>,
}

fn default_host() -> String {
    "127.0.0.1".into()
}
fn default_port() -> u16 {
    5433
}
fn default_refresh() -> u64 {
    5
}

impl Default for Config {
    fn default() -> Self {
        Config {
            host: default_host(),
            port: default_port(),
            users: Vec::new(),
            tls: None,
            limits: Limits::default(),
            refresh_secs: default_refresh(),
            access_log: None,
        }
    }
}

impl Config {
    /// The config in `path`, or the defaults when there is none.
    pub fn load(path: Option<&Path>) -> Result<Config> {
        let Some(path) = path else {
            return Ok(Config::default());
        };
        let text = std::fs::read_to_string(path).map_err(|source| Error::ReadConfig {
            path: path.to_path_buf(),
            source,
        })?;
        serde_yaml_ng::from_str(&text).map_err(|source| Error::ParseConfig {
            path: path.to_path_buf(),
            source,
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    pub name: String,
    /// `scram-sha-256$ITERATIONS$SALT$SALTED_PASSWORD` (base64), from `stmon serve --hash-password`.
    pub password_hash: String,
    /// Division codes the user reads (a city or province covers every
    /// division under it); none: every division.
    #[serde(default)]
    pub divisions: Option<Vec<String>>,
    /// Whether the user may read unit-level rows (firms, zones, institutes,
    /// raw values) of its divisions; false: division-level aggregates only.
    #[serde(default = "default_microdata")]
    pub microdata: bool,
}

fn default_microdata() -> bool {
    true
}

impl User {
    pub fn scope(&self) -> crate::scope::Scope {
        crate::scope::Scope {
            divisions: self.divisions.clone(),
            microdata: self.microdata,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Concurrent connections; one more is refused with SQLSTATE 53300.
    #[serde(default = "default_sessions")]
    pub max_sessions: usize,
    /// Memory one query may use (its hash tables, sorts, and the result it returns).
    #[serde(default = "default_memory")]
    pub query_memory_mb: u64,
    /// Longest a query may run; a client's `SET statement_timeout` can only lower it.
    #[serde(default = "default_timeout")]
    pub query_timeout_secs: u64,
    /// Memory all queries together may use: each draws on it within its own
    /// `query_memory_mb`; a query that finds it taken fails with 53200.
    #[serde(default = "default_server_memory")]
    pub server_memory_mb: u64,
    /// A query whose plan DataFusion estimates at more rows than this at any
    /// step runs in the heavy lane: `heavy_threads` threads shared by all
    /// such queries, so that the others never wait behind them.
    #[serde(default = "default_heavy_rows")]
    pub heavy_rows: usize,
    /// Threads of the heavy lane (default: one per core).
    #[serde(default = "default_heavy_threads")]
    pub heavy_threads: usize,
    /// Failed logins from one client address before it is refused.
    #[serde(default = "default_login_attempts")]
    pub login_attempts: u32,
    /// How long an address is refused after its last failed login once it
    /// has `login_attempts` of them (a failure older than this is forgotten).
    #[serde(default = "default_login_lockout")]
    pub login_lockout_secs: u64,
}

fn default_sessions() -> usize {
    16
}
fn default_memory() -> u64 {
    2048
}
fn default_timeout() -> u64 {
    300
}
fn default_server_memory() -> u64 {
    4096
}
fn default_heavy_rows() -> usize {
    1_000_000
}
/// One per core: the heavy lane's threads then share the machine with the
/// others' by the operating system's scheduler, which preempts.
fn default_heavy_threads() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}
fn default_login_attempts() -> u32 {
    5
}
fn default_login_lockout() -> u64 {
    300
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_sessions: default_sessions(),
            query_memory_mb: default_memory(),
            query_timeout_secs: default_timeout(),
            server_memory_mb: default_server_memory(),
            heavy_rows: default_heavy_rows(),
            heavy_threads: default_heavy_threads(),
            login_attempts: default_login_attempts(),
            login_lockout_secs: default_login_lockout(),
        }
    }
}

/// The TLS acceptor of the config's certificate chain and key (PEM).
pub(crate) fn tls_acceptor(tls: &Tls) -> Result<tokio_rustls::TlsAcceptor> {
    use tokio_rustls::rustls;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let err = |field: &'static str, path: &Path, reason: String| Error::Tls {
        field,
        path: path.to_path_buf(),
        reason,
    };
    let cert_file =
        std::fs::File::open(&tls.cert).map_err(|e| err("cert", &tls.cert, e.to_string()))?;
    let certs = rustls_pemfile::certs(&mut std::io::BufReader::new(cert_file))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err("cert", &tls.cert, format!("not PEM certificates: {e}")))?;
    if certs.is_empty() {
        return Err(err("cert", &tls.cert, "no certificate in it".into()));
    }
    let key_file =
        std::fs::File::open(&tls.key).map_err(|e| err("key", &tls.key, e.to_string()))?;
    let key = rustls_pemfile::private_key(&mut std::io::BufReader::new(key_file))
        .map_err(|e| err("key", &tls.key, e.to_string()))?
        .ok_or_else(|| err("key", &tls.key, "no private key in it".into()))?;
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            err(
                "key",
                &tls.key,
                format!("does not fit the certificate of tls.cert: {e}"),
            )
        })?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}
