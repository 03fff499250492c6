//! stmon's first query hook: the read-only guards, the snapshot a query runs
//! on, and its limits; and the handlers that put the library's simple-query
//! handler behind the guard by text.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::ParamValues;
use datafusion::error::DataFusionError;
use datafusion::execution::memory_pool::{
    MemoryConsumer, MemoryLimit, MemoryPool, MemoryReservation, TrackConsumersPool,
};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::{SessionStateBuilder, TaskContext};
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::{execute_stream, ExecutionPlan, StatisticsArgs, StatisticsContext};
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::{Set, Statement};
use datafusion_postgres::arrow_pg::datatypes::df::encode_dataframe;
use datafusion_postgres::hooks::HookClient;
use datafusion_postgres::pgwire::api::auth::StartupHandler;
use datafusion_postgres::pgwire::api::portal::Format;
use datafusion_postgres::pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use datafusion_postgres::pgwire::api::results::{
    DataRowEncoder, FieldFormat, FieldInfo, QueryResponse, Response, Tag,
};
use datafusion_postgres::pgwire::api::{ClientInfo, PgWireServerHandlers, Type};
use datafusion_postgres::pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use datafusion_postgres::pgwire::messages::PgWireBackendMessage;
use datafusion_postgres::pgwire::types::format::FormatOptions;
use datafusion_postgres::{DfSessionService, QueryHook};
use futures::{Sink, StreamExt};

use crate::{Limits, Snapshot, Snapshots};

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

/// The second guard: a plan that would write or change the session
/// (`EXPLAIN ANALYZE INSERT …` is a query by its kind, and runs the insert)
/// is refused, whatever the statement looked like.
///
/// Before that, a plan that scans a table the user may not read (a
/// unit-level table for a user without microdata, [`crate::scope`]) is
/// refused with 42501, naming the table.
fn refuse_by_plan(plan: &LogicalPlan) -> PgWireResult<()> {
    if let Some(message) = crate::scope::denied_table(plan) {
        return Err(user_error("42501", message));
    }
    stmon_warehouse::read_only_sql()
        .verify_plan(plan)
        .map_err(|e| {
            user_error(
                "25006",
                format!(
                    "cannot execute this statement in a read-only server: stmon serve answers queries (SELECT, WITH, VALUES, EXPLAIN, SHOW) only ({e})"
                ),
            )
        })
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
pub(crate) struct Engine {
    pub(crate) snapshots: Arc<Snapshots>,
    pub(crate) limits: Limits,
    pub(crate) memory: Arc<ServerMemory>,
    /// Where heavy queries run (`limits.heavy_rows`, `limits.heavy_threads`).
    pub(crate) heavy: tokio::runtime::Handle,
    pub(crate) access: Option<Arc<crate::access::AccessLog>>,
}

/// What the access log says of a failed statement: its SQLSTATE.
fn outcome_of(e: &PgWireError) -> String {
    match e {
        PgWireError::UserError(info) => info.code.clone(),
        _ => "XX000".to_string(),
    }
}

/// The logged-in user of a connection.
fn user_of(client: &(dyn ClientInfo + Send + Sync)) -> String {
    client.metadata().get("user").cloned().unwrap_or_default()
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
                .map_err(|e| user_error("22023", e.to_string())),
            None => Ok(self.snapshots.live()),
        }
    }

    /// The session the client's user plans on: its snapshot (live or
    /// pinned), with the user's scope.
    async fn user_context(
        &self,
        client: &(dyn ClientInfo + Send + Sync),
    ) -> PgWireResult<SessionContext> {
        let snap = self.snapshot(client).await?;
        let user = user_of(client);
        let covered = self.snapshots.scopes.of(&user);
        snap.for_user(&user, &covered)
            .await
            .map_err(|e| user_error("XX000", e.to_string()))
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

    /// A session over the snapshot with this query's own memory pool, drawn
    /// from the server's.
    fn query_context(&self, base: &SessionContext) -> PgWireResult<SessionContext> {
        let pool = QueryPool {
            cap: mib(self.limits.query_memory_mb),
            used: AtomicUsize::new(0),
            server: self.memory.clone(),
        };
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_pool(Arc::new(TrackConsumersPool::new(
                pool,
                NonZeroUsize::new(5).expect("5 > 0"),
            )))
            .build_arc()
            .map_err(|e| PgWireError::ApiError(Box::new(e)))?;
        let state = SessionStateBuilder::new_from_existing(base.state())
            .with_runtime_env(runtime)
            .build();
        Ok(SessionContext::new_with_state(state))
    }

    /// Plans on the user's session, runs within the limits, and collects
    /// the result; with the number of rows it has.
    async fn execute(
        &self,
        client: &(dyn ClientInfo + Send + Sync),
        statement: &Statement,
        params: Option<&ParamValues>,
        format: &Format,
    ) -> PgWireResult<(Response, u64)> {
        let base = self.user_context(client).await?;
        let ctx = self.query_context(&base)?;
        let timeout = self.timeout(client);
        let work = async {
            let mut plan = ctx
                .state()
                .statement_to_plan(DfStatement::Statement(Box::new(statement.clone())))
                .await
                .map_err(|e| user_error("42601", e.to_string()))?;
            refuse_by_plan(&plan)?;
            if let Some(p) = params {
                plan = plan
                    .replace_params_with_values(p)
                    .map_err(|e| user_error("22023", e.to_string()))?;
            }
            let df = ctx
                .execute_logical_plan(plan)
                .await
                .map_err(|e| limit_error(&self.limits, e))?;
            let schema = df.schema().clone();
            let physical = df
                .create_physical_plan()
                .await
                .map_err(|e| limit_error(&self.limits, e))?;
            let run = collect(physical.clone(), ctx.task_ctx(), self.limits.clone());
            let (batches, held) = match heavy(&physical, self.limits.heavy_rows) {
                None => run.await?,
                Some((rows, at)) => {
                    tracing::debug!("heavy lane: {rows} rows estimated at {at}");
                    let task = self.heavy.spawn(run);
                    // A query that times out, or whose client leaves, stops.
                    let _stop = AbortOnDrop(task.abort_handle());
                    task.await
                        .map_err(|e| user_error("XX000", e.to_string()))??
                }
            };
            PgWireResult::Ok((schema, batches, held))
        };
        let (schema, batches, _held) = tokio::time::timeout(timeout, work).await.map_err(|_| {
            user_error(
                "57014",
                format!(
                    "canceling statement due to statement timeout ({} s; limits.query_timeout_secs or statement_timeout)",
                    timeout.as_secs_f64()
                ),
            )
        })??;
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        let table = datafusion::datasource::MemTable::try_new(
            Arc::new(schema.as_arrow().clone()),
            vec![batches],
        )
        .map_err(|e| PgWireError::ApiError(Box::new(e)))?;
        let df = ctx
            .read_table(Arc::new(table))
            .map_err(|e| PgWireError::ApiError(Box::new(e)))?;
        let options = Arc::new(FormatOptions::from_client_metadata(client.metadata()));
        Ok((
            Response::Query(encode_dataframe(df, format, Some(options)).await?),
            rows as u64,
        ))
    }

    /// [`Engine::execute`], recorded in the access log.
    async fn logged(
        &self,
        client: &(dyn ClientInfo + Send + Sync),
        statement: &Statement,
        params: Option<&ParamValues>,
        format: &Format,
    ) -> PgWireResult<Response> {
        let started = std::time::Instant::now();
        let result = self.execute(client, statement, params, format).await;
        if let Some(log) = &self.access {
            let (outcome, rows) = match &result {
                Ok((_, n)) => ("ok".to_string(), Some(*n)),
                Err(e) => (outcome_of(e), None),
            };
            log.record(
                &user_of(client),
                client.socket_addr(),
                &crate::access::Event::Query {
                    statement: statement.to_string(),
                    outcome,
                    rows,
                    millis: started.elapsed().as_millis() as u64,
                },
            );
        }
        result.map(|(r, _)| r)
    }

    async fn handle(
        &self,
        statement: &Statement,
        params: Option<&ParamValues>,
        client: &mut dyn HookClient,
        format: &Format,
    ) -> Option<PgWireResult<Response>> {
        match classify(statement) {
            Class::Query => Some(self.logged(&*client, statement, params, format).await),
            Class::Pin(Some(run)) => Some(match self.snapshots.at_run(&run).await {
                Ok(_) => {
                    client.metadata_mut().insert(PIN_KEY.into(), run);
                    Ok(Response::Execution(Tag::new("SET")))
                }
                Err(e) => Err(user_error("22023", format!("stmon.run: {e}"))),
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
            Class::Query => {
                let started = std::time::Instant::now();
                let planned = match self.user_context(client).await {
                    Ok(ctx) => ctx
                        .state()
                        .statement_to_plan(DfStatement::Statement(Box::new(statement.clone())))
                        .await
                        .map_err(|e| user_error("42601", e.to_string()))
                        .and_then(|plan| refuse_by_plan(&plan).map(|()| plan)),
                    Err(e) => Err(e),
                };
                // A statement refused here never executes: it is logged now.
                if let (Err(e), Some(log)) = (&planned, &self.access) {
                    log.record(
                        &user_of(client),
                        client.socket_addr(),
                        &crate::access::Event::Query {
                            statement: statement.to_string(),
                            outcome: outcome_of(e),
                            rows: None,
                            millis: started.elapsed().as_millis() as u64,
                        },
                    );
                }
                Some(planned)
            }
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

pub(crate) struct Handlers<S> {
    pub(crate) service: Arc<DfSessionService>,
    pub(crate) startup: Arc<S>,
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

#[cfg(test)]
mod tests {
    use super::*;

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

    /// Statements whose kind passes the first guard but whose plan writes
    /// or changes the session are refused at the plan.
    #[tokio::test]
    async fn the_plan_guard_refuses_what_the_kind_lets_through() {
        let ctx = SessionContext::new();
        ctx.sql("create table t (a int)").await.unwrap();
        let parse = |sql: &str| {
            datafusion_postgres::datafusion_pg_catalog::sql::PostgresCompatibilityParser::new()
                .parse(sql)
                .unwrap()
                .remove(0)
        };
        for (sql, passes) in [
            ("select a from t", true),
            ("explain select a from t", true),
            ("explain analyze insert into t values (1)", false),
            ("explain insert into t values (1)", false),
        ] {
            let statement = parse(sql);
            assert!(matches!(classify(&statement), Class::Query), "{sql}");
            let plan = ctx
                .state()
                .statement_to_plan(DfStatement::Statement(Box::new(statement)))
                .await
                .unwrap();
            match refuse_by_plan(&plan) {
                Ok(()) => assert!(passes, "{sql} passed the plan guard"),
                Err(e) => {
                    assert!(!passes, "{sql}: {e}");
                    let text = e.to_string();
                    assert!(
                        text.contains("read-only") && text.contains("25006"),
                        "{text}"
                    );
                }
            }
        }
    }
}

fn mib(mb: u64) -> usize {
    (mb as usize).saturating_mul(1024 * 1024)
}

/// How the server's pool names itself in an error ([`Engine::limit_error`]
/// tells the two limits apart by it).
const SERVER_POOL: &str = "the server's memory for all queries (limits.server_memory_mb)";

/// The memory every query draws on (`limits.server_memory_mb`).
#[derive(Debug)]
pub(crate) struct ServerMemory {
    pub(crate) cap: usize,
    pub(crate) used: AtomicUsize,
}

impl ServerMemory {
    pub(crate) fn new(limits: &Limits) -> Self {
        ServerMemory {
            cap: mib(limits.server_memory_mb),
            used: AtomicUsize::new(0),
        }
    }
}

/// One query's memory pool: its own cap (`limits.query_memory_mb`) within
/// the server's, so that the operators of all queries together never hold
/// more than `limits.server_memory_mb`.
#[derive(Debug)]
struct QueryPool {
    cap: usize,
    used: AtomicUsize,
    server: Arc<ServerMemory>,
}

impl std::fmt::Display for QueryPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the query's memory (limits.query_memory_mb: {} MB)",
            self.cap / (1024 * 1024)
        )
    }
}

/// Adds `n` to `used` if that stays within `cap`; the amount in use otherwise.
fn take(used: &AtomicUsize, cap: usize, n: usize) -> std::result::Result<usize, usize> {
    used.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |u| {
        u.checked_add(n).filter(|t| *t <= cap)
    })
}

impl MemoryPool for QueryPool {
    fn name(&self) -> &str {
        "stmon-query"
    }

    fn grow(&self, _: &MemoryReservation, n: usize) {
        self.used.fetch_add(n, Ordering::Relaxed);
        self.server.used.fetch_add(n, Ordering::Relaxed);
    }

    fn shrink(&self, _: &MemoryReservation, n: usize) {
        self.used.fetch_sub(n, Ordering::Relaxed);
        self.server.used.fetch_sub(n, Ordering::Relaxed);
    }

    fn try_grow(&self, r: &MemoryReservation, n: usize) -> datafusion::error::Result<()> {
        let mb = |b: usize| b as f64 / (1024.0 * 1024.0);
        take(&self.used, self.cap, n).map_err(|used| {
            DataFusionError::ResourcesExhausted(format!(
                "{:.1} MB more for {} would pass {self} ({:.1} MB in use)",
                mb(n),
                r.consumer().name(),
                mb(used)
            ))
        })?;
        if let Err(used) = take(&self.server.used, self.server.cap, n) {
            self.used.fetch_sub(n, Ordering::Relaxed);
            return Err(DataFusionError::ResourcesExhausted(format!(
                "{:.1} MB more for {} would pass {SERVER_POOL}: {} MB, {:.1} MB in use by queries now",
                mb(n),
                r.consumer().name(),
                self.server.cap / (1024 * 1024),
                mb(used)
            )));
        }
        Ok(())
    }

    fn reserved(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    fn memory_limit(&self) -> MemoryLimit {
        MemoryLimit::Finite(self.cap)
    }
}

/// A failed query's error; running out of the query's memory pool
/// (DataFusion's `ResourcesExhausted`, however deep it is wrapped) says
/// which limit it hit.
fn limit_error(limits: &Limits, e: DataFusionError) -> PgWireError {
    let text = e.to_string();
    if matches!(e.find_root(), DataFusionError::ResourcesExhausted(_)) && text.contains(SERVER_POOL)
    {
        user_error(
            "53200",
            format!(
                "the memory of all queries together ({} MB, limits.server_memory_mb) is in use by other queries now; try again: {text}",
                limits.server_memory_mb
            ),
        )
    } else if matches!(e.find_root(), DataFusionError::ResourcesExhausted(_)) {
        user_error(
            "53200",
            format!(
                "query needs more than the server's per-query memory limit of {} MB (limits.query_memory_mb): {text}",
                limits.query_memory_mb
            ),
        )
    } else {
        user_error("XX000", text)
    }
}

/// Runs a physical plan and collects its result, counting it in the
/// query's memory pool while it is collected (the result is held until it
/// is sent).
async fn collect(
    plan: Arc<dyn ExecutionPlan>,
    task: Arc<TaskContext>,
    limits: Limits,
) -> PgWireResult<(Vec<RecordBatch>, MemoryReservation)> {
    let held = MemoryConsumer::new("query result").register(task.memory_pool());
    let mut stream = execute_stream(plan, task).map_err(|e| limit_error(&limits, e))?;
    let mut batches = Vec::new();
    while let Some(b) = stream.next().await {
        let b = b.map_err(|e| limit_error(&limits, e))?;
        if let Err(e) = held.try_grow(b.get_array_memory_size()) {
            return Err(match limit_error(&limits, e) {
                PgWireError::UserError(info) if info.message.contains("limits.query_memory_mb") => {
                    user_error(
                        "53200",
                        format!(
                            "the result is larger than the server's per-query memory limit of {} MB (limits.query_memory_mb); add a LIMIT or aggregate",
                            limits.query_memory_mb
                        ),
                    )
                }
                other => other,
            });
        }
        batches.push(b);
    }
    Ok((batches, held))
}

/// Whether a plan goes to the heavy lane: the most rows DataFusion
/// estimates at any of its steps, and the step, when that passes
/// `limits.heavy_rows`.
fn heavy(plan: &Arc<dyn ExecutionPlan>, rows: usize) -> Option<(usize, String)> {
    fn walk(
        stats: &StatisticsContext,
        plan: &Arc<dyn ExecutionPlan>,
        rows: usize,
    ) -> Option<(usize, String)> {
        let here = stats
            .compute(plan.as_ref(), &StatisticsArgs::new())
            .ok()
            .and_then(|s| s.num_rows.get_value().copied())
            .filter(|n| *n > rows)
            .map(|n| (n, plan.name().to_string()));
        here.into_iter()
            .chain(
                plan.children()
                    .into_iter()
                    .filter_map(|c| walk(stats, c, rows)),
            )
            .max_by_key(|(n, _)| *n)
    }
    walk(&StatisticsContext::new(), plan, rows)
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The runtime of the heavy lane: `threads` worker threads, for the life of
/// the process (a runtime may not be dropped inside another).
pub(crate) fn heavy_lane(threads: usize) -> std::io::Result<tokio::runtime::Handle> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .thread_name("stmon-heavy")
        .enable_all()
        .build()?;
    let handle = rt.handle().clone();
    std::mem::forget(rt);
    Ok(handle)
}
