//! A DataFusion session over the warehouse, with the views every reader uses.
//!
//! Physical Delta tables are registered as `delta.<layer>_<table>`. What people
//! and later layers query are views that see committed batches only:
//! `audit.batches`, `audit.quarantine`, `audit.warnings`, `raw.<form>` (every
//! version) and `current.<form>` (latest `submitted_at` per key, withdrawn keys
//! removed, conflicting versions ignored).
//!
//! `current.<form>` is decided when rows are written, not when they are read:
//! each batch stores in `audit/superseded_<form>` the versions of the keys it
//! touches that are not current (see `checks`), and the view is the raw rows
//! less the latest committed decision about their key — a scan and a hash
//! join whose build side is that small set, so reading it streams in bounded
//! memory. [`current_view_sql`] computes the same answer from the versions
//! alone (two aggregates over every version); it serves a warehouse written
//! before the superseded tables existed until its next ingest adds them.

use std::sync::Arc;

use datafusion::catalog::MemorySchemaProvider;
use datafusion::execution::memory_pool::{FairSpillPool, TrackConsumersPool};
use datafusion::prelude::SessionContext;
use stmon_schema::Form;

use crate::tables::{TableId, Warehouse};
use crate::{Error, Result};

/// Rows of a file count only when its batch committed it as `loaded`: a file
/// that failed half-way (`unreadable`) keeps none of the rows it had yielded.
pub(crate) const LOADED_FILES: &str =
    "(select batch_id, sha256 from delta.audit_batches where status = 'loaded')";

/// SQL of the current view of a form over a relation of its raw rows.
///
/// Per key: drop `(key, submitted_at)` groups whose rows disagree (a conflict:
/// nobody can tell which is right, so the previous version stays current),
/// then keep the latest `submitted_at`; among identical rows at that time
/// (the same submission ingested from two files) the one of the earliest
/// batch, then the lowest row number, then the file's sha256; then drop keys
/// whose latest version is a withdrawal.
///
/// Two narrow aggregates and one join: per `(key, submitted_at)` whether its
/// rows agree and the smallest *pick* (batch, row number, sha256 as one
/// sortable text); per key the pick of its latest agreeing group; then the
/// wide rows joined to those picks stream through. Memory grows with the
/// keys, not with the width of the form (per-column `first_value … order by`
/// held every column's ordering per key: 4.3 GB for 1.7 M rows), and no
/// window (slow on millions of small partitions). The same answer as three
/// aggregates and three joins (ok groups, latest time, pick) at a third of
/// the passes.
pub fn current_view_sql(form: &Form, raw: &str) -> String {
    let key = form.key.join(", ");
    let on: Vec<String> = form.key.iter().map(|k| format!("a.{k} = p.{k}")).collect();
    let cols: Vec<String> = form
        .columns
        .iter()
        .map(|c| format!("a.{}", c.name))
        .collect();
    format!(
        "with v as (select *, concat(_batch_id, '|', lpad(cast(_row_number as varchar), 12, '0'), '|', _source_sha256) as _pick from {raw}),\n\
         g as (select {key}, submitted_at, min(left(_row_hash, {digits})) = max(left(_row_hash, {digits})) as _agree, min(_pick) as _pick from v group by {key}, submitted_at),\n\
         p as (select {key}, first_value(_pick order by submitted_at desc) filter (where _agree and submitted_at is not null) as _pick from g group by {key})\n\
         select {cols}, a._extra, a._row_hash, a._batch_id, a._source_file, a._source_sha256, a._row_number, a._ingested_at\n\
         from p join v a on {on} and a._pick = p._pick\n\
         where not coalesce(a.withdrawn, false)",
        on = on.join(" and "),
        cols = cols.join(", "),
        digits = stmon_ingest::ROW_HASH_DIGITS,
    )
}

/// SQL of the current view of a form: the committed rows of its raw table
/// (`raw`, a physical table, restricted to `filter` when given), less the
/// versions the latest committed decision about each key superseded
/// (`superseded`: the form's `audit/superseded_<form>` table).
///
/// The decisions are few (a national year: 2 % of the versions), so the
/// hash join builds on them and every raw row streams through: a right join
/// with an `is null` test rather than an anti join, on the physical table
/// (its row count is known) rather than on `raw.<form>`, whose join with the
/// loaded files DataFusion estimates at a few rows and would then hash whole
/// (2.9 GB nationally). The loaded files are joined last, as the small
/// side. The test is on a column only the decisions have:
/// `h._row_number is null` was pushed into the raw scan as
/// `_row_number is null` (DataFusion 55), which emptied the view.
pub fn current_from_decisions_sql(
    form: &Form,
    raw: &str,
    filter: Option<&str>,
    superseded: &str,
) -> String {
    let key = form.key.join(", ");
    let on = |a: &str, b: &str, cols: &[&str]| {
        cols.iter()
            .map(|k| format!("{a}.{k} = {b}.{k}"))
            .collect::<Vec<_>>()
            .join(" and ")
    };
    let keys: Vec<&str> = form.key.iter().map(String::as_str).collect();
    let mut identity = keys.clone();
    identity.extend(["_batch_id", "_source_sha256", "_row_number"]);
    let cols: Vec<String> = form
        .columns
        .iter()
        .map(|c| format!("a.{}", c.name))
        .collect();
    let filter = filter.map(|f| format!(" where {f}")).unwrap_or_default();
    format!(
        "with s as (select x.* from {superseded} x join (select distinct batch_id from delta.audit_batches) b on x.batch_id = b.batch_id),\n\
         l as (select {key}, max(batch_id) as batch_id from s group by {key}),\n\
         h as (select s.*, true as _superseded from s join l on {sl} and s.batch_id = l.batch_id),\n\
         a as (select a.* from h right join (select * from {raw}{filter}) a on {ha}\n\
               where h._superseded is null and not coalesce(a.withdrawn, false))\n\
         select {cols}, a._extra, a._row_hash, a._batch_id, a._source_file, a._source_sha256, a._row_number, a._ingested_at\n\
         from {loaded} f join a on a._batch_id = f.batch_id and a._source_sha256 = f.sha256",
        sl = on("s", "l", &keys),
        ha = on("h", "a", &identity),
        cols = cols.join(", "),
        loaded = LOADED_FILES,
    )
}

/// `col in ('v1', 'v2', …)`, the values quoted as SQL strings.
pub fn in_list(col: &str, values: &[String]) -> String {
    let list: Vec<String> = values
        .iter()
        .map(|v| format!("'{}'", v.replace('\'', "''")))
        .collect();
    format!("{col} in ({})", list.join(", "))
}

/// The form's [`stmon_schema::PruneBy`], if the raw table registered in the
/// session as `delta.raw_<form>` stores its column (one created before the
/// form named it does not).
pub(crate) async fn stored_prune_by<'f>(
    ctx: &SessionContext,
    form: &'f Form,
) -> Result<Option<&'f stmon_schema::PruneBy>> {
    let Some(p) = &form.prune_by else {
        return Ok(None);
    };
    let raw = format!("delta.raw_{}", form.name);
    let stored = ctx
        .table_provider(raw.as_str())
        .await?
        .schema()
        .index_of(&p.name)
        .is_ok();
    Ok(stored.then_some(p))
}

/// A session with the warehouse's query planner and, when `limit` is given,
/// a memory pool of that many bytes for the operators that track memory;
/// nothing registered.
pub(crate) fn bare_session(limit: Option<usize>) -> Result<SessionContext> {
    let mut runtime = datafusion::execution::runtime_env::RuntimeEnvBuilder::new();
    let mut config = datafusion::prelude::SessionConfig::new();
    if let Some(limit) = limit {
        // Fair: each spilling operator (a sort per partition) gets its share.
        let pool = TrackConsumersPool::new(
            FairSpillPool::new(limit),
            std::num::NonZeroUsize::new(5).expect("five"),
        );
        let bounds = SortBounds::new(limit, config.target_partitions());
        runtime = runtime
            .with_memory_pool(Arc::new(pool))
            .with_max_spill_merge_fan_in(bounds.fan_in);
        // No RepartitionExec in a memory-limited plan: under a memory limit
        // DataFusion 55's RepartitionExec spills to a pool whose reader can
        // wait forever once two files are open (apache/datafusion#24883,
        // fixed after 55.2). A check hung so, every thread parked, in
        // `history::checks_that_spill_give_the_same_answers_as_in_memory`.
        // Scans still split files and sorts still run per partition.
        config = config
            .with_sort_spill_reservation_bytes(bounds.merge_reservation)
            .with_batch_size(bounds.batch_rows)
            .with_repartition_joins(false)
            .with_repartition_aggregations(false)
            .with_repartition_windows(false)
            .with_repartition_sorts(false)
            .with_round_robin_repartition(false);
    }
    // Delta's planner too, so that a plan of this session can be written
    // to a Delta table (`WriteBuilder::with_input_plan`).
    let state = datafusion::execution::SessionStateBuilder::new()
        .with_default_features()
        .with_config(config)
        .with_runtime_env(runtime.build_arc()?)
        .with_query_planner(deltalake::delta_datafusion::planner::DeltaPlanner::new())
        .build();
    Ok(SessionContext::new_with_state(state))
}

/// `raw.<form>` (committed rows; those passing `filter` when given) and
/// `current.<form>` over it.
async fn register_form_views(
    ctx: &SessionContext,
    form: &Form,
    filter: Option<&str>,
) -> Result<()> {
    let superseded = TableId::superseded(&form.name).session_name();
    let decided = ctx.table_exist(superseded.as_str())?;
    let filter_sql = filter;
    let filter = filter.map(|f| format!(" where {f}")).unwrap_or_default();
    for sql in [
        format!(
            "create or replace view raw.{0} as select r.* from delta.raw_{0} r \
             join {LOADED_FILES} f on r._batch_id = f.batch_id and r._source_sha256 = f.sha256{filter}",
            form.name
        ),
        format!(
            "create or replace view current.{0} as {1}",
            form.name,
            if decided {
                current_from_decisions_sql(form, &format!("delta.raw_{}", form.name), filter_sql, &superseded)
            } else {
                current_view_sql(form, &format!("raw.{}", form.name))
            }
        ),
    ] {
        ctx.sql(&sql).await?;
    }
    Ok(())
}

/// `review.queries` in a warehouse no review has run on: no rows, the
/// columns the models read (the table's schema: stmon-review's `queries`).
const NO_QUERIES: &str = "create or replace view review.queries as \
     select cast(null as varchar) as form, cast(null as varchar) as unit, \
     cast(null as varchar) as period, cast(null as varchar) as \"column\", \
     cast(null as double) as reported, cast(null as double) as expected, \
     cast(null as varchar) as status where false";

/// Creates the warehouse's schemas (`delta`, `raw`, `current`, `audit`,
/// `review`) in a session.
fn ensure_schemas(ctx: &SessionContext) -> Result<()> {
    let catalog = ctx
        .catalog("datafusion")
        .expect("a session has its default catalog");
    for s in ["delta", "raw", "current", "audit", "review"] {
        if catalog.schema(s).is_none() {
            catalog.register_schema(s, Arc::new(MemorySchemaProvider::new()))?;
        }
    }
    Ok(())
}

/// How a session with a memory limit sizes its sorts, so that spilling sorts
/// stay inside the limit however many runs they spill.
///
/// A sort that spilled merges its runs at the end, holding two batches of
/// each run it reads, in a reservation that cannot spill; DataFusion's merge
/// takes as many runs at once as the pool allows, so the first partition to
/// finish would take the whole pool and starve the others and the final merge
/// of the partitions ("resources exhausted" in `SortPreservingMergeExec`).
/// Bounding the fan-in makes the merge go in passes instead (each pass
/// writes a run of `fan_in` runs) with a fixed share of the limit per
/// partition: half the limit for the merges, the rest for sorting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SortBounds {
    /// Rows per batch: a sort must hold twice a batch before it can spill.
    pub batch_rows: usize,
    /// What a sort keeps back for merging its spilled runs.
    pub merge_reservation: usize,
    /// Runs one merge pass reads at once (two batches of each).
    pub fan_in: usize,
}

/// Bytes a row of the ingest checks takes in a sorted batch read back from a
/// spill (keys, hashes, file and batch ids, measures; measured nationally:
/// 25.2 MB reserved for two batches of 8,192 rows).
const SORT_ROW_BYTES: usize = 1_600;

impl SortBounds {
    pub(crate) fn new(limit: usize, partitions: usize) -> Self {
        // At 512 MiB: 4,096 rows (6.4 MiB a batch); at 16 MiB: 128.
        let batch_rows = (limit >> 17).clamp(128, 8192);
        // A run being merged holds two batches, each reserved at twice its size.
        let per_run = 4 * batch_rows * SORT_ROW_BYTES;
        let merge_share = limit / 2 / partitions.max(1);
        Self {
            batch_rows,
            merge_reservation: (limit / 64).min(16 << 20),
            fan_in: (merge_share / per_run).clamp(2, 64),
        }
    }
}

impl Warehouse {
    /// A session with every warehouse table and view registered.
    pub async fn session(&self) -> Result<SessionContext> {
        self.session_with_memory(None).await
    }

    /// A session whose queries may hold at most `limit` bytes in the operators
    /// that track memory (sorts and aggregates spill to the OS temp folder
    /// beyond it; others fail with "resources exhausted"). `None`: no limit.
    pub async fn session_with_memory(
        &self,
        limit: impl Into<Option<usize>>,
    ) -> Result<SessionContext> {
        let ctx = self.engine_session(limit.into())?;
        self.register(&ctx).await?;
        Ok(ctx)
    }

    /// A session like [`Warehouse::session_with_memory`] with only what the
    /// batch checks of `forms` read: `audit/batches` and each form's raw and
    /// superseded tables, with its `raw` and `current` views. Each table
    /// registered is a read of its log, and a batch touches few forms.
    pub(crate) async fn session_for_forms<'f>(
        &self,
        limit: Option<usize>,
        forms: impl IntoIterator<Item = &'f Form>,
    ) -> Result<SessionContext> {
        let ctx = bare_session(limit)?;
        self.register_physical(&ctx, &TableId::new("audit", "batches"))
            .await?;
        for form in forms {
            self.register_physical(&ctx, &TableId::new("raw", &form.name))
                .await?;
            self.register_if_exists(&ctx, &TableId::superseded(&form.name))
                .await?;
            register_form_views(&ctx, form, None).await?;
        }
        Ok(ctx)
    }

    /// Registers the tables and views into an existing session.
    pub async fn register(&self, ctx: &SessionContext) -> Result<()> {
        for id in self.ingest_tables().into_keys() {
            if id.is_superseded() {
                // Missing in a warehouse written before superseded tables:
                // its current views aggregate (`register_form_views`).
                self.register_if_exists(ctx, &id).await?;
            } else {
                self.register_physical(ctx, &id).await?;
            }
        }
        let q = |sql: String| async move { ctx.sql(&sql).await.map(|_| ()) };
        q("create or replace view audit.batches as select * from delta.audit_batches".into())
            .await?;
        for t in ["quarantine", "warnings"] {
            q(format!(
                "create or replace view audit.{t} as select d.* from delta.audit_{t} d \
                 join (select distinct batch_id from delta.audit_batches) b on d.batch_id = b.batch_id \
                 left join (select batch_id, sha256 from delta.audit_batches where status = 'unreadable') u \
                 on d.batch_id = u.batch_id and d.sha256 = u.sha256 \
                 where u.batch_id is null"
            ))
            .await?;
        }
        for form in self.catalog.forms.values() {
            register_form_views(ctx, form, None).await?;
        }
        // The review's queries (stmon-review), once a review has run; before
        // the first, no query with the columns the models read
        // (sql/intermediate/division_queried.sql).
        let queries = TableId::new("review", "queries");
        if self.register_if_exists(ctx, &queries).await? {
            q(format!(
                "create or replace view review.queries as select * from {}",
                queries.session_name()
            ))
            .await?;
        } else {
            q(NO_QUERIES.to_string()).await?;
        }
        Ok(())
    }

    /// Re-creates `raw.<form>` and `current.<form>` in a session over only the
    /// raw rows whose `expr` (SQL over the form's columns) is one of `values`:
    /// an incremental model build reads the partitions it rebuilds and no
    /// others. The expression must be a function of the form's key, so that
    /// every version of a row passes or none does and `current` stays
    /// correct. When it is the form's [`stmon_schema::PruneBy`] and the raw
    /// table stores that column, the filter names the column too, and the
    /// scan skips the files whose smallest and largest values of it exclude
    /// every one of `values`.
    pub async fn restrict_form(
        &self,
        ctx: &SessionContext,
        form: &str,
        expr: &str,
        values: &[String],
    ) -> Result<()> {
        let form = self
            .catalog
            .forms
            .get(form)
            .ok_or_else(|| Error::UnknownForm(form.to_string()))?;
        let mut filter = in_list(&format!("cast({expr} as varchar)"), values);
        if let Some(p) = stored_prune_by(ctx, form).await?.filter(|p| p.is(expr)) {
            filter = format!("{} and {filter}", in_list(&p.name, values));
        }
        register_form_views(ctx, form, Some(&filter)).await
    }

    pub(crate) async fn register_physical(&self, ctx: &SessionContext, id: &TableId) -> Result<()> {
        if self.register_if_exists(ctx, id).await? {
            Ok(())
        } else {
            Err(Error::NoTable(id.clone()))
        }
    }

    /// Registers a physical table as [`TableId::session_name`] if it exists
    /// (one open of its log). Returns whether it does.
    async fn register_if_exists(&self, ctx: &SessionContext, id: &TableId) -> Result<bool> {
        ensure_schemas(ctx)?;
        let delta = |source| Error::Delta {
            table: id.to_string(),
            source,
        };
        let table = self.table(id).await?;
        if table.version().is_none() {
            return Ok(false);
        }
        let provider = self.provider(ctx, &table).await.map_err(|e| match e {
            Error::Delta { source, .. } => delta(source),
            e => e,
        })?;
        let name = id.session_name();
        ctx.deregister_table(name.as_str())?;
        ctx.register_table(name.as_str(), provider)?;
        Ok(true)
    }
}

/// What a reader's statement may plan to: queries only. DataFusion checks a
/// plan against it (`SQLOptions::verify_plan`, or `SessionContext::sql_with_options`)
/// after parsing, so a statement that writes is refused whatever its text:
/// DDL (`CREATE [EXTERNAL] TABLE`, `CREATE VIEW`, `DROP`), DML (`INSERT`,
/// `UPDATE`, `DELETE`, `COPY … TO`) and statements (`SET`, transactions).
/// `stmon serve` and `stmon sql` plan every statement of their users under
/// it, behind their own checks of the statement's kind.
pub fn read_only_sql() -> datafusion::execution::context::SQLOptions {
    datafusion::execution::context::SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
}

/// Plans `sql` in `ctx` and refuses the plan unless it only reads
/// ([`read_only_sql`]).
pub async fn plan_read_only(
    ctx: &SessionContext,
    sql: &str,
) -> std::result::Result<datafusion::logical_expr::LogicalPlan, ReadOnlyError> {
    let plan = ctx
        .state()
        .create_logical_plan(sql)
        .await
        .map_err(ReadOnlyError::Plan)?;
    read_only_sql()
        .verify_plan(&plan)
        .map_err(ReadOnlyError::Writes)?;
    Ok(plan)
}

/// Why [`plan_read_only`] gave no plan.
#[derive(Debug)]
pub enum ReadOnlyError {
    /// The statement does not plan (syntax, an unknown table, …).
    Plan(datafusion::error::DataFusionError),
    /// It plans, to something that writes or changes the session.
    Writes(datafusion::error::DataFusionError),
}

impl std::fmt::Display for ReadOnlyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadOnlyError::Plan(e) => write!(f, "{e}"),
            ReadOnlyError::Writes(e) => write!(
                f,
                "read-only: only queries (SELECT, WITH, VALUES, EXPLAIN, SHOW) run; {e}"
            ),
        }
    }
}

impl std::error::Error for ReadOnlyError {}

/// Splits on `;` outside quotes and comments; drops empty statements.
pub fn split_statements(sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match quote {
            Some(q) => {
                cur.push(c);
                if c == q {
                    quote = None;
                }
            }
            None => match c {
                '\'' | '"' => {
                    quote = Some(c);
                    cur.push(c);
                }
                '-' if chars.peek() == Some(&'-') => {
                    for c in chars.by_ref() {
                        if c == '\n' {
                            cur.push('\n');
                            break;
                        }
                    }
                }
                ';' => out.push(std::mem::take(&mut cur)),
                _ => cur.push(c),
            },
        }
    }
    out.push(cur);
    out.into_iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}
