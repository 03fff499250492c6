//! `stmon-serve`: the warehouse over the PostgreSQL wire protocol, read-only.
//!
//! It owns the server: its config (host, port, users, TLS, limits), SCRAM
//! authentication, the snapshots queries run on, the read-only guards and
//! the per-query limits. Built on `datafusion-postgres` (pgwire and the
//! `pg_catalog` that psql, DBeaver and psycopg query on connect), with stmon's
//! first query hook in front ([`engine`]). It never writes to the warehouse,
//! never parses command lines and never prints: `stmon serve` reads its
//! arguments, calls [`Server::bind`] and [`Server::run`], and says what it
//! got.
//!
//! - **read-only**: a statement passes when its kind is a query (SELECT,
//!   WITH, VALUES, EXPLAIN), SHOW, a SET of a client setting or a
//!   transaction statement; anything else is refused with SQLSTATE 25006
//!   before it is planned. Every query's plan is checked again
//!   ([`stmon_warehouse::read_only_sql`]), so a write in a form the first
//!   check lets through (`EXPLAIN ANALYZE INSERT …`) is refused too;
//! - **snapshots**: every query runs on one snapshot, a session whose Delta
//!   tables are opened at fixed versions — the versions readers see (the
//!   last finished run's while a run holds the lock). A background task
//!   swaps in a new snapshot when the published versions change; a query
//!   keeps the snapshot it started on. `SET stmon.run = 'RUN_ID'` pins a
//!   connection to the versions a past run published;
//! - **limits**: each query gets its own memory pool (`query_memory_mb`) and
//!   a deadline (`query_timeout_secs`, or the client's lower
//!   `statement_timeout`), and the server admits `max_sessions` connections.
//!
//! - **scopes**: each configured user reads what its `divisions` and
//!   `microdata` allow ([`scope`]): its queries are planned on a copy of the
//!   snapshot whose tables carry the user's filter, or refuse unit-level
//!   tables with SQLSTATE 42501;
//! - **the access log** ([`access`]): every login, session end and query.
//!
//! Authentication is SCRAM-SHA-256 against the users of the config; with no
//! users the server trusts every connection and then refuses to bind
//! anything but a loopback address.

pub mod access;
mod auth;
mod config;
mod engine;
pub mod scope;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use datafusion::prelude::SessionContext;
use datafusion_postgres::auth::AuthManager;
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::setup_pg_catalog;
use datafusion_postgres::hooks::set_show::SetShowHook;
use datafusion_postgres::hooks::transactions::TransactionStatementHook;
use datafusion_postgres::pgwire::tokio::process_socket;
use datafusion_postgres::{DfSessionService, QueryHook};
use stmon_models::Project;
use stmon_warehouse::{TableId, Warehouse};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

pub use auth::hash_password;
pub use config::{Config, Limits, Tls, User};

/// What can keep the server from starting, with its facts.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("reading {path}: {source}")]
    ReadConfig {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    ParseConfig {
        path: PathBuf,
        source: serde_yaml_ng::Error,
    },
    #[error("user {user}: {reason} (make it with `stmon serve --hash-password`)")]
    PasswordHash { user: String, reason: String },
    #[error("host {host}: {reason}")]
    Host { host: String, reason: String },
    #[error("refusing to serve {addr} without passwords: add users to the config (stmon serve --hash-password), or bind 127.0.0.1")]
    NoPasswords { addr: SocketAddr },
    #[error("tls.{field} {path}: {reason}")]
    Tls {
        field: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("starting the heavy lane's threads (limits.heavy_threads): {source}")]
    Runtime { source: std::io::Error },
    #[error("binding {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("opening the warehouse (has `stmon run` built it?): {0}")]
    Open(Box<stmon_models::Error>),
    #[error(transparent)]
    Models(Box<stmon_models::Error>),
    #[error(transparent)]
    Warehouse(Box<stmon_warehouse::Error>),
    #[error("no user {user} in the server's config (its users: {known})")]
    NoUser { user: String, known: String },
    #[error("user {user}: divisions: {reason}")]
    Scope { user: String, reason: String },
    #[error("access_log {path}: {source}")]
    AccessLog {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("pg_catalog: {0}")]
    PgCatalog(String),
    #[error(transparent)]
    Query(Box<datafusion::error::DataFusionError>),
}

stmon_models::boxed_from!(
    Models: stmon_models::Error,
    Warehouse: stmon_warehouse::Error,
    Query: datafusion::error::DataFusionError
);

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One consistent view of the warehouse.
pub(crate) struct Snapshot {
    pub(crate) ctx: SessionContext,
    /// What it is: "newest", "run RUN_ID (a run is writing)", "run RUN_ID (pinned)".
    pub(crate) label: String,
    /// The table versions it reads, to know when a newer one is published.
    key: String,
    /// The sessions of scoped users over it, built at their first query.
    scoped: tokio::sync::Mutex<HashMap<String, SessionContext>>,
}

impl Snapshot {
    /// The session `user` plans on: the snapshot's own for a user who may
    /// read everything, else one whose tables carry the user's scope
    /// ([`scope::scoped`]), built once per snapshot and user.
    pub(crate) async fn for_user(
        &self,
        user: &str,
        covered: &scope::Covered,
    ) -> Result<SessionContext> {
        let (scope, codes) = covered;
        if scope.is_all() {
            return Ok(self.ctx.clone());
        }
        let mut cache = self.scoped.lock().await;
        if let Some(ctx) = cache.get(user) {
            return Ok(ctx.clone());
        }
        let ctx = scope::scoped(&self.ctx, user, scope, codes.as_deref()).await?;
        setup_pg_catalog(&ctx, "datafusion", Arc::new(AuthManager::default()))
            .map_err(|e| Error::PgCatalog(e.to_string()))?;
        cache.insert(user.to_string(), ctx.clone());
        Ok(ctx)
    }
}

/// The snapshots a server hands out.
pub(crate) struct Snapshots {
    wh: Warehouse,
    project: Project,
    live: RwLock<Arc<Snapshot>>,
    pinned: Mutex<HashMap<String, Arc<Snapshot>>>,
    pub(crate) scopes: scope::Scopes,
}

/// The table versions a session over `wh` reads, as text.
async fn versions_key(wh: &Warehouse, project: &Project) -> Result<String> {
    let tables = stmon_models::runs::all_versions(wh, project).await?;
    let runs = wh.table(&TableId::new("audit", "runs")).await?.version();
    Ok(format!("{tables:?} runs={runs:?}"))
}

/// A snapshot of `wh`, whose versions are `key`.
async fn open_snapshot(
    wh: &Warehouse,
    project: &Project,
    label: String,
    key: String,
) -> Result<Snapshot> {
    let ctx = stmon_models::run::session(wh, project)
        .await
        .map_err(|e| Error::Open(Box::new(e)))?;
    ctx.sql("set datafusion.catalog.information_schema = true")
        .await?;
    // The physical Delta tables hold uncommitted rows; people read the views.
    if let Some(c) = ctx.catalog("datafusion") {
        c.deregister_schema("delta", true)?;
    }
    setup_pg_catalog(&ctx, "datafusion", Arc::new(AuthManager::default()))
        .map_err(|e| Error::PgCatalog(e.to_string()))?;
    Ok(Snapshot {
        ctx,
        label,
        key,
        scoped: Default::default(),
    })
}

/// What the live snapshot is, given the run `runs::reader` pinned it to.
fn live_label(run: Option<String>) -> String {
    match run {
        Some(r) => format!("run {r} (a run is writing)"),
        None => "newest".to_string(),
    }
}

/// The snapshot readers get now (see [`settled`]).
async fn published(wh: &Warehouse, project: &Project) -> Result<Snapshot> {
    let (wh, label, key) = settled(wh, project, None).await?;
    open_snapshot(&wh, project, label, key).await
}

/// Every table's latest version, `audit/runs` with them.
async fn latest_versions(wh: &Warehouse, project: &Project) -> Result<BTreeMap<String, u64>> {
    let mut v = stmon_models::runs::all_versions(wh, project).await?;
    let runs = TableId::new("audit", "runs");
    if let Some(n) = wh.table(&runs).await?.version() {
        v.insert(runs.to_string(), n);
    }
    Ok(v)
}

/// The versions a new snapshot reads, no writer being part-way through them:
/// the warehouse pinned to them, what they are, and their key. While a writer
/// holds the lock, the last finished run's (`runs::reader`). Otherwise the
/// latest, read twice between two looks at the lock, and taken only when
/// the lock was free at both and the reads agree: a writer that took the lock
/// after the first look and committed while the versions were read changes
/// one between the reads, or still holds the lock at the second look. (Read
/// once, a run starting meanwhile could be seen with its ingest and without
/// its models.) When writes keep coming, the last finished run's. A first
/// read equal to `served` (a key this function returned) means nothing
/// changed: that key is returned at once.
async fn settled(
    wh: &Warehouse,
    project: &Project,
    served: Option<&str>,
) -> Result<(Warehouse, String, String)> {
    for attempt in 0..5 {
        let (reader, run) = stmon_models::runs::reader(wh).await?;
        if run.is_some() {
            let key = versions_key(&reader, project).await?;
            return Ok((reader, live_label(run), key));
        }
        let first = latest_versions(wh, project).await?;
        if served == Some(format!("{first:?}").as_str()) {
            return Ok((wh.clone(), live_label(None), format!("{first:?}")));
        }
        let second = latest_versions(wh, project).await?;
        if first == second && wh.lock_holder().await?.is_none() {
            let key = format!("{first:?}");
            return Ok((
                wh.pinned(stmon_models::runs::pins_of(&first)),
                live_label(None),
                key,
            ));
        }
        tracing::debug!(
            attempt,
            "a writer committed while the versions were read: again"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    match stmon_models::runs::last_snapshot(wh).await? {
        Some((run, pins)) => {
            let pinned = wh.pinned(pins);
            let key = versions_key(&pinned, project).await?;
            Ok((pinned, format!("run {run} (writes are coming)"), key))
        }
        None => {
            let key = versions_key(wh, project).await?;
            Ok((wh.clone(), live_label(None), key))
        }
    }
}

impl Snapshots {
    pub(crate) fn live(&self) -> Arc<Snapshot> {
        self.live.read().expect("snapshot lock").clone()
    }

    /// The snapshot of a past run, opened once and kept.
    pub(crate) async fn at_run(&self, run: &str) -> Result<Arc<Snapshot>> {
        if let Some(s) = self.pinned.lock().expect("pins").get(run) {
            return Ok(s.clone());
        }
        let wh = stmon_models::runs::at_run(&self.wh, run).await?;
        let key = versions_key(&wh, &self.project).await?;
        let s = open_snapshot(&wh, &self.project, format!("run {run} (pinned)"), key).await?;
        let s = Arc::new(s);
        self.pinned
            .lock()
            .expect("pins")
            .insert(run.to_string(), s.clone());
        Ok(s)
    }

    /// Swaps in the published snapshot when its versions changed.
    async fn refresh(&self) -> Result<bool> {
        let served = self.live().key.clone();
        let (wh, label, key) = settled(&self.wh, &self.project, Some(&served)).await?;
        if key == self.live().key {
            return Ok(false);
        }
        let s = open_snapshot(&wh, &self.project, label, key).await?;
        tracing::info!(snapshot = %s.label, "serving newly published versions");
        *self.live.write().expect("snapshot lock") = Arc::new(s);
        Ok(true)
    }
}

/// A server bound to its address, with its first snapshot open; [`Server::run`]
/// accepts connections.
pub struct Server {
    config: Config,
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    users: Option<Arc<dyn datafusion_postgres::pgwire::api::auth::AuthSource>>,
    snapshots: Arc<Snapshots>,
    access: Option<Arc<access::AccessLog>>,
}

impl Server {
    /// Checks the config (password hashes, TLS files, a loopback address
    /// when nobody has a password), opens the snapshot readers see now and
    /// binds the address.
    pub async fn bind(config: Config, wh: Warehouse, project: Project) -> Result<Server> {
        let users = auth::users(&config.users)?;
        let addr: SocketAddr = tokio::net::lookup_host((config.host.as_str(), config.port))
            .await
            .map_err(|e| Error::Host {
                host: config.host.clone(),
                reason: e.to_string(),
            })?
            .next()
            .ok_or_else(|| Error::Host {
                host: config.host.clone(),
                reason: "no address".into(),
            })?;
        if users.is_none() && !addr.ip().is_loopback() {
            return Err(Error::NoPasswords { addr });
        }
        let tls = config.tls.as_ref().map(config::tls_acceptor).transpose()?;
        let scopes = scope::Scopes::new(&config.users, &wh.catalog.divisions)?;
        let access = match &config.access_log {
            None => None,
            Some(c) => Some(Arc::new(access::AccessLog::open(c).map_err(|source| {
                Error::AccessLog {
                    path: c.path.clone(),
                    source,
                }
            })?)),
        };
        let first = published(&wh, &project).await?;
        let snapshots = Arc::new(Snapshots {
            wh,
            project,
            live: RwLock::new(Arc::new(first)),
            pinned: Mutex::new(HashMap::new()),
            scopes,
        });
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| Error::Bind { addr, source })?;
        Ok(Server {
            config,
            listener,
            tls,
            users,
            snapshots,
            access,
        })
    }

    /// The address it listens on (the port chosen when the config said 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// What new connections read: "newest", or "run RUN_ID (a run is writing)".
    pub fn snapshot_label(&self) -> String {
        self.snapshots.live().label.clone()
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Accepts connections until `shutdown` completes; sessions in progress
    /// end with the process. Looks for newly published versions every
    /// `refresh_secs` meanwhile.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<()> {
        let engine = Arc::new(engine::Engine {
            snapshots: self.snapshots.clone(),
            limits: self.config.limits.clone(),
            memory: Arc::new(engine::ServerMemory::new(&self.config.limits)),
            heavy: engine::heavy_lane(self.config.limits.heavy_threads)
                .map_err(|source| Error::Runtime { source })?,
            access: self.access.clone(),
        });
        let logins = Arc::new(auth::Logins::new(&self.config.limits));
        let hooks: Vec<Arc<dyn QueryHook>> = vec![
            engine,
            Arc::new(SetShowHook),
            Arc::new(TransactionStatementHook),
        ];
        // The library plans extended-protocol statements with this context
        // before the hooks see them; stmon's hook replans on a snapshot.
        let base = Arc::new(SessionContext::new_with_state(
            self.snapshots.live().ctx.state(),
        ));
        let service = Arc::new(DfSessionService::new_with_hooks(base, hooks));
        let full = Arc::new(engine::Handlers {
            service: service.clone(),
            startup: Arc::new(auth::Full(self.config.limits.max_sessions)),
        });

        let refresher = self.snapshots.clone();
        let every = Duration::from_secs(self.config.refresh_secs.max(1));
        let refreshing = tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                if let Err(e) = refresher.refresh().await {
                    tracing::warn!("looking for newly published versions: {e}");
                }
            }
        });

        let sessions = Arc::new(Semaphore::new(self.config.limits.max_sessions.max(1)));
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => {
                    refreshing.abort();
                    return Ok(());
                }
                accepted = self.listener.accept() => {
                    let (socket, peer) = match accepted {
                        Ok(x) => x,
                        Err(e) => {
                            tracing::warn!("accept: {e}");
                            continue;
                        }
                    };
                    let tls = self.tls.clone();
                    match sessions.clone().try_acquire_owned() {
                        Ok(permit) => {
                            let startup = Arc::new(auth::startup(
                                self.users.as_ref(),
                                peer,
                                logins.clone(),
                                self.access.clone(),
                            ));
                            let h = Arc::new(engine::Handlers {
                                service: service.clone(),
                                startup: startup.clone(),
                            });
                            let access = self.access.clone();
                            tokio::spawn(async move {
                                if let Err(e) = process_socket(socket, tls, h).await {
                                    tracing::info!("session from {peer}: {e}");
                                }
                                if let (Some(log), Some(user)) = (&access, startup.user()) {
                                    log.record(&user, peer, &access::Event::End);
                                }
                                drop(permit);
                            });
                        }
                        Err(_) => {
                            let h = full.clone();
                            tokio::spawn(async move {
                                let _ = process_socket(socket, tls, h).await;
                            });
                        }
                    }
                }
            }
        }
    }
}

/// The session `user` of `config` would plan on over `ctx` (a session of
/// the whole warehouse): what `stmon sql --as USER` queries. Plans over it
/// must still be checked with [`scope::denied_table`].
pub async fn session_as(
    ctx: &SessionContext,
    config: &Config,
    user: &str,
    divisions: &stmon_schema::Divisions,
) -> Result<SessionContext> {
    let Some(u) = config.users.iter().find(|u| u.name == user) else {
        let known: Vec<&str> = config.users.iter().map(|u| u.name.as_str()).collect();
        return Err(Error::NoUser {
            user: user.to_string(),
            known: if known.is_empty() {
                "none".into()
            } else {
                known.join(", ")
            },
        });
    };
    let (scope, codes) = scope::Scopes::new(std::slice::from_ref(u), divisions)?.of(user);
    if scope.is_all() {
        return Ok(ctx.clone());
    }
    Ok(scope::scoped(ctx, user, &scope, codes.as_deref()).await?)
}

/// Binds and serves until `shutdown` completes: [`Server::bind`] then
/// [`Server::run`].
pub async fn serve(
    config: Config,
    wh: Warehouse,
    project: Project,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    Server::bind(config, wh, project).await?.run(shutdown).await
}
