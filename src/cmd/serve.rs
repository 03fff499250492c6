//! `stmon serve`: the warehouse over the PostgreSQL wire protocol, read-only.
//!
//! Built on `datafusion-postgres` (pgwire + the `pg_catalog` that psql,
//! DBeaver and psycopg query on connect). stmon adds, as the first query hook:
//! - **read-only**: only queries (SELECT, WITH, VALUES, EXPLAIN), SHOW, SET of
//!   client settings and transaction statements pass; anything else is refused
//!   with SQLSTATE 25006 before it is planned;
//! - **snapshots**: every query runs on one [`Snapshot`], a session whose
//!   Delta tables are opened at fixed versions — the versions readers see
//!   (the last finished run's while a run holds the lock). A background task
//!   swaps in a new snapshot when the published versions change; a query
//!   keeps the snapshot it started on. `SET stmon.run = 'RUN_ID'` pins a
//!   connection to the versions a past run published;
//! - **limits**: each query gets its own memory pool (`query_memory_mb`) and a
//!   deadline (`query_timeout_secs`, or the client's lower
//!   `statement_timeout`), and the server admits `max_sessions` connections.
//!
//! Authentication is SCRAM-SHA-256 against the users of the config file; with
//! no users the server trusts every connection and then refuses to bind
//! anything but a loopback address.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use anyhow::{bail, Context};
use async_trait::async_trait;
use base64::Engine as _;
use datafusion::common::ParamValues;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::SessionStateBuilder;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::{Set, Statement};
use datafusion_postgres::arrow_pg::datatypes::df::encode_dataframe;
use datafusion_postgres::auth::AuthManager;
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::setup_pg_catalog;
use datafusion_postgres::hooks::set_show::SetShowHook;
use datafusion_postgres::hooks::transactions::TransactionStatementHook;
use datafusion_postgres::hooks::HookClient;
use datafusion_postgres::pgwire::api::auth::noop::NoopStartupHandler;
use datafusion_postgres::pgwire::api::auth::sasl::scram::{gen_salted_password, ScramAuth};
use datafusion_postgres::pgwire::api::auth::sasl::SASLAuthStartupHandler;
use datafusion_postgres::pgwire::api::auth::{
    AuthSource, DefaultServerParameterProvider, LoginInfo, Password, StartupHandler,
};
use datafusion_postgres::pgwire::api::portal::Format;
use datafusion_postgres::pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use datafusion_postgres::pgwire::api::results::{
    DataRowEncoder, FieldFormat, FieldInfo, QueryResponse, Response, Tag,
};
use datafusion_postgres::pgwire::api::{ClientInfo, PgWireServerHandlers, Type};
use datafusion_postgres::pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use datafusion_postgres::pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use datafusion_postgres::pgwire::tokio::process_socket;
use datafusion_postgres::pgwire::types::format::FormatOptions;
use datafusion_postgres::{DfSessionService, QueryHook};
use futures::{Sink, StreamExt};
use serde::Deserialize;
use stmon_models::Project;
use stmon_warehouse::{TableId, Warehouse};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default = "default_host")]
    host: String,
    #[serde(default = "default_port")]
    port: u16,
    #[serde(default)]
    users: Vec<User>,
    #[serde(default)]
    tls: Option<Tls>,
    #[serde(default)]
    limits: Limits,
    /// How often to look for newly published versions.
    #[serde(default = "default_refresh")]
    refresh_secs: u64,
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
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct User {
    name: String,
    /// `scram-sha-256$ITERATIONS$SALT$SALTED_PASSWORD` (base64), from `stmon serve --hash-password`.
    password_hash: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Tls {
    cert: PathBuf,
    key: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Limits {
    /// Concurrent connections; one more is refused with SQLSTATE 53300.
    #[serde(default = "default_sessions")]
    max_sessions: usize,
    /// Memory one query may use (its hash tables, sorts, and the result it returns).
    #[serde(default = "default_memory")]
    query_memory_mb: u64,
    /// Longest a query may run; a client's `SET statement_timeout` can only lower it.
    #[serde(default = "default_timeout")]
    query_timeout_secs: u64,
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

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_sessions: default_sessions(),
            query_memory_mb: default_memory(),
            query_timeout_secs: default_timeout(),
        }
    }
}

const ITERATIONS: usize = 4096;

/// A `password_hash` for a password (random salt).
fn hash_password(password: &str) -> String {
    let salt: [u8; 16] = rand::random();
    let salted = gen_salted_password(password, &salt, ITERATIONS);
    let b64 = base64::engine::general_purpose::STANDARD;
    format!(
        "scram-sha-256${ITERATIONS}${}${}",
        b64.encode(salt),
        b64.encode(salted)
    )
}

/// Salt and salted password of a `password_hash`.
fn parse_hash(user: &str, h: &str) -> anyhow::Result<(Vec<u8>, Vec<u8>)> {
    let parts: Vec<&str> = h.split('$').collect();
    let b64 = base64::engine::general_purpose::STANDARD;
    match parts.as_slice() {
        ["scram-sha-256", iters, salt, salted] => {
            if iters.parse::<usize>().ok() != Some(ITERATIONS) {
                bail!("user {user}: password_hash must use {ITERATIONS} iterations (make it with `stmon serve --hash-password`)");
            }
            Ok((
                b64.decode(salt).context("salt is not base64")?,
                b64.decode(salted).context("salted password is not base64")?,
            ))
        }
        _ => bail!(
            "user {user}: password_hash is not scram-sha-256$4096$SALT$KEY (make it with `stmon serve --hash-password`)"
        ),
    }
}

#[derive(Debug)]
struct Users(HashMap<String, (Vec<u8>, Vec<u8>)>);

#[async_trait]
impl AuthSource for Users {
    async fn get_password(&self, login: &LoginInfo) -> PgWireResult<Password> {
        let user = login.user().unwrap_or_default();
        match self.0.get(user) {
            Some((salt, salted)) => Ok(Password::new(Some(salt.clone()), salted.clone())),
            // The same answer as a wrong password: names are not disclosed.
            None => Err(PgWireError::InvalidPassword(user.to_string())),
        }
    }
}

/// One consistent view of the warehouse.
struct Snapshot {
    ctx: SessionContext,
    /// What it is: "newest", "run RUN_ID (a run is writing)", "run RUN_ID (pinned)".
    label: String,
    /// The table versions it reads, to know when a newer one is published.
    key: String,
}

/// The snapshots a server hands out.
struct Snapshots {
    wh: Warehouse,
    project: Project,
    live: RwLock<Arc<Snapshot>>,
    pinned: Mutex<HashMap<String, Arc<Snapshot>>>,
}

/// The table versions a session over `wh` reads, as text.
async fn versions_key(wh: &Warehouse, project: &Project) -> anyhow::Result<String> {
    let tables = super::run::all_versions(wh, project).await?;
    let runs = wh.table(&TableId::new("audit", "runs")).await?.version();
    Ok(format!("{tables:?} runs={runs:?}"))
}

/// A snapshot of `wh`, whose versions are `key`.
async fn open_snapshot(
    wh: &Warehouse,
    project: &Project,
    label: String,
    key: String,
) -> anyhow::Result<Snapshot> {
    let ctx = stmon_models::run::session(wh, project)
        .await
        .context("opening the warehouse (has `stmon run` built it?)")?;
    ctx.sql("set datafusion.catalog.information_schema = true")
        .await?;
    // The physical Delta tables hold uncommitted rows; people read the views.
    if let Some(c) = ctx.catalog("datafusion") {
        c.deregister_schema("delta", true)?;
    }
    setup_pg_catalog(&ctx, "datafusion", Arc::new(AuthManager::default()))
        .map_err(|e| anyhow::anyhow!("pg_catalog: {e}"))?;
    Ok(Snapshot { ctx, label, key })
}

/// What the live snapshot is, given the run `runs::reader` pinned it to.
fn live_label(run: Option<String>) -> String {
    match run {
        Some(r) => format!("run {r} (a run is writing)"),
        None => "newest".to_string(),
    }
}

/// The snapshot readers get now (see `runs::reader`).
async fn published(wh: &Warehouse, project: &Project) -> anyhow::Result<Snapshot> {
    let (wh, run) = stmon_models::runs::reader(wh).await?;
    let key = versions_key(&wh, project).await?;
    open_snapshot(&wh, project, live_label(run), key).await
}

impl Snapshots {
    fn live(&self) -> Arc<Snapshot> {
        self.live.read().expect("snapshot lock").clone()
    }

    /// The snapshot of a past run, opened once and kept.
    async fn at_run(&self, run: &str) -> anyhow::Result<Arc<Snapshot>> {
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
    async fn refresh(&self) -> anyhow::Result<bool> {
        let (wh, run) = stmon_models::runs::reader(&self.wh).await?;
        let key = versions_key(&wh, &self.project).await?;
        if key == self.live().key {
            return Ok(false);
        }
        let s = open_snapshot(&wh, &self.project, live_label(run), key).await?;
        tracing::info!(snapshot = %s.label, "serving newly published versions");
        *self.live.write().expect("snapshot lock") = Arc::new(s);
        Ok(true)
    }
}

fn user_error(code: &str, message: impl Into<String>) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "ERROR".to_string(),
        code.to_string(),
        message.into(),
    )))
}

/// The first words of a statement, for messages ("INSERT", "CREATE TABLE"),
/// leading `--` comments skipped.
fn kind_of(text: &str) -> String {
    let mut rest = text.trim_start();
    while let Some(r) = rest.strip_prefix("--") {
        rest = r
            .split_once('\n')
            .map_or("", |(_, after)| after)
            .trim_start();
    }
    let mut words = rest.split_whitespace().map(|w| {
        w.chars()
            .take_while(|c| c.is_ascii_alphabetic())
            .collect::<String>()
            .to_uppercase()
    });
    let first = words.next().unwrap_or_default();
    match words.next() {
        Some(second)
            if matches!(first.as_str(), "CREATE" | "DROP" | "ALTER") && !second.is_empty() =>
        {
            format!("{first} {second}")
        }
        _ => first,
    }
}

/// The refusal of a statement that writes.
fn read_only(kind: &str) -> PgWireError {
    user_error(
        "25006",
        format!(
            "cannot execute {kind} in a read-only server: stmon serve answers queries (SELECT, WITH, VALUES, EXPLAIN, SHOW) only"
        ),
    )
}

/// What the server does with a statement.
enum Class {
    /// Planned and run by stmon on a snapshot.
    Query,
    /// `SET stmon.run = …` / `RESET` / `SHOW stmon.run`.
    Pin(Option<String>),
    ShowPin,
    /// Left to the library's hooks (client settings, transactions).
    PassOn,
    Refuse(PgWireError),
}

fn classify(s: &Statement) -> Class {
    match s {
        Statement::Query(_) | Statement::Explain { .. } | Statement::ExplainTable { .. } => {
            Class::Query
        }
        Statement::Set(set) => match set {
            Set::SingleAssignment {
                variable, values, ..
            } => {
                let var = variable.to_string().to_lowercase();
                if var == "stmon.run" {
                    let v = values
                        .first()
                        .map(|v| v.to_string().trim_matches('\'').to_string())
                        .unwrap_or_default();
                    let v = (!v.is_empty() && !v.eq_ignore_ascii_case("default")).then_some(v);
                    Class::Pin(v)
                } else if var.starts_with("datafusion.") || var.starts_with("stmon.") {
                    Class::Refuse(user_error(
                        "42501",
                        format!(
                            "permission denied to set parameter \"{var}\": the server's engine settings and limits are fixed by its config"
                        ),
                    ))
                } else {
                    Class::PassOn
                }
            }
            _ => Class::PassOn,
        },
        Statement::ShowVariable { variable } => {
            let var = variable
                .iter()
                .map(|v| v.to_string())
                .collect::<String>()
                .to_lowercase()
                .replace(['.', ' '], "");
            if var == "stmonrun" {
                Class::ShowPin
            } else {
                Class::PassOn
            }
        }
        Statement::ShowStatus { .. } | Statement::ShowCatalogs { .. } => Class::PassOn,
        Statement::StartTransaction { .. }
        | Statement::Commit { .. }
        | Statement::Rollback { .. } => Class::PassOn,
        other => Class::Refuse(read_only(&kind_of(&other.to_string()))),
    }
}

/// A one-column, one-row result.
fn single_value(name: &str, value: &str) -> PgWireResult<Response> {
    let fields = Arc::new(vec![FieldInfo::new(
        name.to_string(),
        None,
        None,
        Type::VARCHAR,
        FieldFormat::Text,
    )]);
    let mut encoder = DataRowEncoder::new(fields.clone());
    encoder.encode_field(&Some(value))?;
    let row = encoder.take_row();
    Ok(Response::Query(QueryResponse::new(
        fields,
        futures::stream::once(async move { Ok(row) }),
    )))
}

/// The first hook: read-only guard, snapshots, limits.
struct Engine {
    snapshots: Arc<Snapshots>,
    limits: Limits,
}

const PIN_KEY: &str = "stmon.run";

impl Engine {
    async fn snapshot(
        &self,
        client: &(dyn ClientInfo + Send + Sync),
    ) -> PgWireResult<Arc<Snapshot>> {
        match client.metadata().get(PIN_KEY) {
            Some(run) => self
                .snapshots
                .at_run(run)
                .await
                .map_err(|e| user_error("22023", format!("{e:#}"))),
            None => Ok(self.snapshots.live()),
        }
    }

    /// This query's deadline: the server's, or the client's lower one.
    fn timeout(&self, client: &(dyn ClientInfo + Send + Sync)) -> Duration {
        let server = Duration::from_secs(self.limits.query_timeout_secs);
        client
            .metadata()
            .get("statement_timeout_ms")
            .and_then(|s| s.parse::<u64>().ok())
            .map(Duration::from_millis)
            .map_or(server, |c| c.min(server))
    }

    /// A session over the snapshot with this query's own memory pool.
    fn query_context(&self, snap: &Snapshot) -> PgWireResult<SessionContext> {
        let bytes = (self.limits.query_memory_mb as usize).saturating_mul(1024 * 1024);
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_limit(bytes, 1.0)
            .build_arc()
            .map_err(|e| PgWireError::ApiError(Box::new(e)))?;
        let state = SessionStateBuilder::new_from_existing(snap.ctx.state())
            .with_runtime_env(runtime)
            .build();
        Ok(SessionContext::new_with_state(state))
    }

    fn limit_error(&self, e: datafusion::error::DataFusionError) -> PgWireError {
        let text = e.to_string();
        if text.contains("Resources exhausted") {
            user_error(
                "53200",
                format!(
                    "query needs more than the server's per-query memory limit of {} MB (limits.query_memory_mb): {text}",
                    self.limits.query_memory_mb
                ),
            )
        } else {
            user_error("XX000", text)
        }
    }

    /// Plans (unless given), runs within the limits, and collects the result.
    async fn execute(
        &self,
        client: &(dyn ClientInfo + Send + Sync),
        statement: &Statement,
        params: Option<&ParamValues>,
        format: &Format,
    ) -> PgWireResult<Response> {
        let snap = self.snapshot(client).await?;
        let ctx = self.query_context(&snap)?;
        let timeout = self.timeout(client);
        let cap = (self.limits.query_memory_mb as usize).saturating_mul(1024 * 1024);
        let work = async {
            let mut plan = ctx
                .state()
                .statement_to_plan(DfStatement::Statement(Box::new(statement.clone())))
                .await
                .map_err(|e| user_error("42601", e.to_string()))?;
            if let Some(p) = params {
                plan = plan
                    .replace_params_with_values(p)
                    .map_err(|e| user_error("22023", e.to_string()))?;
            }
            let df = ctx
                .execute_logical_plan(plan)
                .await
                .map_err(|e| self.limit_error(e))?;
            let schema = df.schema().clone();
            let mut stream = df.execute_stream().await.map_err(|e| self.limit_error(e))?;
            let mut batches = Vec::new();
            let mut held = 0usize;
            while let Some(b) = stream.next().await {
                let b = b.map_err(|e| self.limit_error(e))?;
                held += b.get_array_memory_size();
                if held > cap {
                    return Err(user_error(
                        "53200",
                        format!(
                            "the result is larger than the server's per-query memory limit of {} MB (limits.query_memory_mb); add a LIMIT or aggregate",
                            self.limits.query_memory_mb
                        ),
                    ));
                }
                batches.push(b);
            }
            Ok((schema, batches))
        };
        let (schema, batches) = tokio::time::timeout(timeout, work).await.map_err(|_| {
            user_error(
                "57014",
                format!(
                    "canceling statement due to statement timeout ({} s; limits.query_timeout_secs or statement_timeout)",
                    timeout.as_secs_f64()
                ),
            )
        })??;
        let table = datafusion::datasource::MemTable::try_new(
            Arc::new(schema.as_arrow().clone()),
            vec![batches],
        )
        .map_err(|e| PgWireError::ApiError(Box::new(e)))?;
        let df = ctx
            .read_table(Arc::new(table))
            .map_err(|e| PgWireError::ApiError(Box::new(e)))?;
        let options = Arc::new(FormatOptions::from_client_metadata(client.metadata()));
        Ok(Response::Query(
            encode_dataframe(df, format, Some(options)).await?,
        ))
    }

    async fn handle(
        &self,
        statement: &Statement,
        params: Option<&ParamValues>,
        client: &mut dyn HookClient,
        format: &Format,
    ) -> Option<PgWireResult<Response>> {
        match classify(statement) {
            Class::Query => Some(self.execute(&*client, statement, params, format).await),
            Class::Pin(Some(run)) => Some(match self.snapshots.at_run(&run).await {
                Ok(_) => {
                    client.metadata_mut().insert(PIN_KEY.into(), run);
                    Ok(Response::Execution(Tag::new("SET")))
                }
                Err(e) => Err(user_error("22023", format!("stmon.run: {e:#}"))),
            }),
            Class::Pin(None) => {
                client.metadata_mut().remove(PIN_KEY);
                Some(Ok(Response::Execution(Tag::new("SET"))))
            }
            Class::ShowPin => Some(match self.snapshot(&*client).await {
                Ok(s) => single_value("stmon.run", &s.label),
                Err(e) => Err(e),
            }),
            Class::PassOn => None,
            Class::Refuse(e) => Some(Err(e)),
        }
    }
}

#[async_trait]
impl QueryHook for Engine {
    async fn handle_simple_query(
        &self,
        statement: &Statement,
        _ctx: &SessionContext,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        self.handle(statement, None, client, &Format::UnifiedText)
            .await
    }

    async fn handle_extended_parse_query(
        &self,
        statement: &Statement,
        _ctx: &SessionContext,
        client: &(dyn ClientInfo + Send + Sync),
    ) -> Option<PgWireResult<LogicalPlan>> {
        match classify(statement) {
            // Planned on the client's snapshot for the parameter and result
            // types; executed again, on the snapshot of that moment.
            Class::Query => Some(match self.snapshot(client).await {
                Ok(snap) => snap
                    .ctx
                    .state()
                    .statement_to_plan(DfStatement::Statement(Box::new(statement.clone())))
                    .await
                    .map_err(|e| user_error("42601", e.to_string())),
                Err(e) => Err(e),
            }),
            Class::Refuse(e) => Some(Err(e)),
            Class::Pin(_) | Class::ShowPin | Class::PassOn => None,
        }
    }

    async fn handle_extended_query(
        &self,
        statement: &Statement,
        _plan: &LogicalPlan,
        params: &ParamValues,
        _ctx: &SessionContext,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        // The portal's result format is not passed to hooks: text, which
        // every client reads.
        self.handle(statement, Some(params), client, &Format::UnifiedText)
            .await
    }
}

/// A startup handler: SCRAM when users are configured, trust otherwise.
enum Startup {
    Scram(SASLAuthStartupHandler<DefaultServerParameterProvider>),
    Trust(TrustStartup),
}

struct TrustStartup;

impl NoopStartupHandler for TrustStartup {}

/// Refuses a connection over the session limit.
struct Full(usize);

#[async_trait]
impl StartupHandler for Full {
    async fn on_startup<C>(
        &self,
        _client: &mut C,
        _message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: std::fmt::Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        Err(PgWireError::UserError(Box::new(ErrorInfo::new(
            "FATAL".into(),
            "53300".into(),
            format!(
                "sorry, too many clients already: stmon serve admits {} sessions (limits.max_sessions)",
                self.0
            ),
        ))))
    }
}

#[async_trait]
impl StartupHandler for Startup {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: std::fmt::Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        match self {
            Startup::Scram(h) => h.on_startup(client, message).await,
            Startup::Trust(h) => h.on_startup(client, message).await,
        }
    }
}

/// Statements that write, by their first word: refused before parsing, so
/// that one the PostgreSQL parser cannot read (DataFusion's `CREATE EXTERNAL
/// TABLE … LOCATION '/any/path'`) gets the read-only error, not a syntax error.
fn refuse_by_text(query: &str) -> Option<PgWireError> {
    const WRITES: [&str; 12] = [
        "INSERT", "UPDATE", "DELETE", "MERGE", "CREATE", "DROP", "ALTER", "TRUNCATE", "COPY",
        "GRANT", "REVOKE", "VACUUM",
    ];
    let kind = kind_of(query);
    let first = kind.split(' ').next().unwrap_or_default();
    WRITES.contains(&first).then(|| read_only(&kind))
}

/// The library's simple-query handler behind [`refuse_by_text`].
struct Guarded(Arc<DfSessionService>);

#[async_trait]
impl SimpleQueryHandler for Guarded {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo
            + datafusion_postgres::pgwire::api::ClientPortalStore
            + Sink<PgWireBackendMessage>
            + Unpin
            + Send
            + Sync,
        C::PortalStore: datafusion_postgres::pgwire::api::store::PortalStore,
        C::Error: std::fmt::Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if let Some(e) = refuse_by_text(query) {
            return Err(e);
        }
        SimpleQueryHandler::do_query(&*self.0, client, query).await
    }
}

struct Handlers<S> {
    service: Arc<DfSessionService>,
    startup: Arc<S>,
}

impl<S: StartupHandler + 'static> PgWireServerHandlers for Handlers<S> {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        Arc::new(Guarded(self.service.clone()))
    }
    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        self.service.clone()
    }
    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        self.startup.clone()
    }
}

fn load_config(path: Option<&Path>) -> anyhow::Result<Config> {
    let Some(path) = path else {
        return Ok(Config::default());
    };
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_yaml_ng::from_str(&text).with_context(|| format!("{}", path.display()))
}

fn tls_acceptor(tls: &Tls) -> anyhow::Result<tokio_rustls::TlsAcceptor> {
    use tokio_rustls::rustls;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut cert_file = std::io::BufReader::new(
        std::fs::File::open(&tls.cert)
            .with_context(|| format!("tls.cert {}", tls.cert.display()))?,
    );
    let certs = rustls_pemfile::certs(&mut cert_file)
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("tls.cert {}: not PEM certificates", tls.cert.display()))?;
    if certs.is_empty() {
        bail!("tls.cert {}: no certificate in it", tls.cert.display());
    }
    let mut key_file = std::io::BufReader::new(
        std::fs::File::open(&tls.key).with_context(|| format!("tls.key {}", tls.key.display()))?,
    );
    let key = rustls_pemfile::private_key(&mut key_file)
        .with_context(|| format!("tls.key {}", tls.key.display()))?
        .with_context(|| format!("tls.key {}: no private key in it", tls.key.display()))?;
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("tls: the key does not fit the certificate")?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

pub async fn run(cli: &super::Cli, args: &Args) -> anyhow::Result<ExitCode> {
    if args.hash_password {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        let password = line.trim_end_matches(['\n', '\r']);
        if password.is_empty() {
            bail!("--hash-password: give the password on standard input");
        }
        println!("{}", hash_password(password));
        return Ok(ExitCode::SUCCESS);
    }
    let mut config = load_config(args.config.as_deref())?;
    if let Some(h) = &args.host {
        config.host = h.clone();
    }
    if let Some(p) = args.port {
        config.port = p;
    }
    let mut users = HashMap::new();
    for u in &config.users {
        users.insert(u.name.clone(), parse_hash(&u.name, &u.password_hash)?);
    }
    let addr: SocketAddr = tokio::net::lookup_host((config.host.as_str(), config.port))
        .await
        .with_context(|| format!("host {}", config.host))?
        .next()
        .with_context(|| format!("host {}: no address", config.host))?;
    if users.is_empty() && !addr.ip().is_loopback() {
        bail!(
            "refusing to serve {addr} without passwords: add users to the config (stmon serve --hash-password), or bind 127.0.0.1"
        );
    }
    let tls = config.tls.as_ref().map(tls_acceptor).transpose()?;

    let project = super::load_project(cli)?;
    let catalog = super::load_catalog(cli)?;
    let wh = Warehouse::open(&cli.warehouse, catalog).context("opening the warehouse")?;
    let first = published(&wh, &project).await?;
    let label = first.label.clone();
    let snapshots = Arc::new(Snapshots {
        wh,
        project,
        live: RwLock::new(Arc::new(first)),
        pinned: Mutex::new(HashMap::new()),
    });

    let engine = Arc::new(Engine {
        snapshots: snapshots.clone(),
        limits: config.limits.clone(),
    });
    let hooks: Vec<Arc<dyn QueryHook>> = vec![
        engine,
        Arc::new(SetShowHook),
        Arc::new(TransactionStatementHook),
    ];
    // The library plans extended-protocol statements with this context
    // before the hooks see them; stmon's hook replans on a snapshot.
    let base = Arc::new(SessionContext::new_with_state(snapshots.live().ctx.state()));
    let service = Arc::new(DfSessionService::new_with_hooks(base, hooks));
    // A SASL exchange keeps its state in the handler: one per connection.
    let users: Option<Arc<dyn AuthSource>> =
        (!users.is_empty()).then(|| Arc::new(Users(users)) as Arc<dyn AuthSource>);
    let startup = move || match &users {
        None => Startup::Trust(TrustStartup),
        Some(users) => {
            let mut scram = ScramAuth::new(users.clone());
            scram.set_iterations(ITERATIONS);
            Startup::Scram(
                SASLAuthStartupHandler::new(Arc::new(DefaultServerParameterProvider::default()))
                    .with_scram(scram),
            )
        }
    };
    let full = Arc::new(Handlers {
        service: service.clone(),
        startup: Arc::new(Full(config.limits.max_sessions)),
    });

    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    let local = listener.local_addr()?;
    println!(
        "stmon serve: listening on {local} ({}, {}), reading the warehouse at {} ({label}); \
         at most {} sessions, {} MB and {} s per query",
        if tls.is_some() { "TLS" } else { "no TLS" },
        if config.users.is_empty() {
            "no password: loopback only".to_string()
        } else {
            format!("{} user(s), SCRAM-SHA-256", config.users.len())
        },
        cli.warehouse,
        config.limits.max_sessions,
        config.limits.query_memory_mb,
        config.limits.query_timeout_secs,
    );
    println!(
        "connect: psql -h {} -p {} -U USER stmon",
        local.ip(),
        local.port()
    );

    let refresher = snapshots.clone();
    let every = Duration::from_secs(config.refresh_secs.max(1));
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            if let Err(e) = refresher.refresh().await {
                tracing::warn!("looking for newly published versions: {e:#}");
            }
        }
    });

    let sessions = Arc::new(Semaphore::new(config.limits.max_sessions.max(1)));
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {
                println!("stmon serve: stopped");
                return Ok(ExitCode::SUCCESS);
            }
            accepted = listener.accept() => {
                let (socket, peer) = match accepted {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!("accept: {e}");
                        continue;
                    }
                };
                let tls = tls.clone();
                match sessions.clone().try_acquire_owned() {
                    Ok(permit) => {
                        let h = Arc::new(Handlers {
                            service: service.clone(),
                            startup: Arc::new(startup()),
                        });
                        tokio::spawn(async move {
                            if let Err(e) = process_socket(socket, tls, h).await {
                                tracing::info!("session from {peer}: {e}");
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_hash_round_trips_and_names_its_mistakes() {
        let h = hash_password("s3cret");
        let (salt, salted) = parse_hash("a", &h).unwrap();
        assert_eq!(salt.len(), 16);
        assert_eq!(salted, gen_salted_password("s3cret", &salt, ITERATIONS));
        assert_ne!(hash_password("s3cret"), h, "salted at random");
        let e = parse_hash("a", "md5abc").unwrap_err().to_string();
        assert!(e.contains("user a") && e.contains("--hash-password"), "{e}");
    }

    #[test]
    fn only_reads_pass() {
        let parse = |sql: &str| {
            datafusion_postgres::datafusion_pg_catalog::sql::PostgresCompatibilityParser::new()
                .parse(sql)
                .unwrap()
                .remove(0)
        };
        for ok in [
            "select 1",
            "with a as (select 1) select * from a",
            "explain select 1",
        ] {
            assert!(matches!(classify(&parse(ok)), Class::Query), "{ok}");
        }
        for (bad, kind) in [
            ("insert into marts.indicators values (1)", "INSERT"),
            ("delete from marts.indicators", "DELETE"),
            ("update marts.indicators set value = 1", "UPDATE"),
            ("create table t (a int)", "CREATE TABLE"),
            ("drop table marts.indicators", "DROP TABLE"),
            ("copy marts.indicators to '/tmp/x.csv'", "COPY"),
        ] {
            match classify(&parse(bad)) {
                Class::Refuse(e) => {
                    let text = format!("{e}");
                    assert!(
                        text.contains(kind) && text.contains("read-only"),
                        "{bad}: {text}"
                    );
                }
                _ => panic!("{bad} passed"),
            }
        }
        assert!(matches!(
            classify(&parse("set datafusion.execution.target_partitions = 64")),
            Class::Refuse(_)
        ));
        assert!(
            matches!(classify(&parse("set stmon.run = 'r1'")), Class::Pin(Some(r)) if r == "r1")
        );
        assert!(matches!(
            classify(&parse("set extra_float_digits = 3")),
            Class::PassOn
        ));
        let ext =
            refuse_by_text("-- load it\n  create external table x stored as csv location '/etc'")
                .expect("refused");
        assert!(format!("{ext}").contains("CREATE EXTERNAL"), "{ext}");
        assert!(refuse_by_text("select * from creates").is_none());
        assert!(refuse_by_text("with x as (select 1) select * from x").is_none());
    }
}
