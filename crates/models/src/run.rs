//! Running models: each selected model, in dependency order, is planned by
//! DataFusion and streamed into its Delta table `<warehouse>/<layer>/<model>`
//! (one overwrite commit: readers see the old table or the new one, never a
//! half-written one), then re-registered so that its dependents read what was
//! just written, then its data tests run. A view model writes nothing: it is
//! defined again at its place in the order, over the tables built before it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use datafusion::catalog::MemorySchemaProvider;
use datafusion::prelude::SessionContext;
use deltalake::operations::write::SchemaMode;
use deltalake::protocol::SaveMode;
use stmon_warehouse::{TableId, Warehouse};

use crate::checks::{self, DataTest};
use crate::{Model, ModelId, Project, Result, LAYERS};

/// Tables `stmon assess` writes under marts/.
pub const ASSESSMENT_TABLES: [&str; 4] = [
    "assessment_counties",
    "assessment_counties_change",
    "assessment_zones",
    "assessment_institutes",
];

/// A session over the warehouse with the reference tables and every model
/// table that exists registered as `<layer>.<model>`.
pub async fn session(wh: &Warehouse, project: &Project) -> Result<SessionContext> {
    let ctx = wh.session().await?;
    crate::reference::register(&ctx, &wh.catalog.divisions)?;
    crate::reference::register_disclosure(&ctx, &project.disclosure)?;
    let catalog = ctx.catalog("datafusion").expect("default catalog");
    for layer in LAYERS {
        if catalog.schema(layer).is_none() {
            catalog.register_schema(layer, Arc::new(MemorySchemaProvider::new()))?;
        }
    }
    for m in &project.models {
        if m.is_view() {
            // Its inputs may not be built yet (a new warehouse): then it is
            // not defined, as a table not yet built is not registered.
            if let Err(e) = define_view(&ctx, m).await {
                tracing::debug!(model = %m.id, "view not defined: {e}");
            }
        } else {
            register_model(wh, &ctx, &m.id).await?;
        }
    }
    // The assessment's tables (written by `stmon assess`, not models).
    for t in ASSESSMENT_TABLES {
        let id = ModelId {
            layer: "marts".into(),
            name: t.into(),
        };
        register_model(wh, &ctx, &id).await?;
    }
    crate::runs::register(wh, &ctx).await?;
    Ok(ctx)
}

/// Registers a model's Delta table under `<layer>.<model>` if it exists.
/// Returns whether it does.
pub async fn register_model(wh: &Warehouse, ctx: &SessionContext, id: &ModelId) -> Result<bool> {
    let table = wh.table(&TableId::new(&id.layer, &id.name)).await?;
    if table.version().is_none() {
        return Ok(false);
    }
    let provider = wh.provider(ctx, &table).await?;
    let name = id.to_string();
    ctx.deregister_table(name.as_str())?;
    ctx.register_table(name.as_str(), provider)?;
    Ok(true)
}

/// Defines a view model (see [`crate::checks::Materialized`]) in a session:
/// a view of its SQL over the tables the session registers now. The view's
/// plan holds those tables, so it is defined again after any of them is
/// re-registered.
pub async fn define_view(ctx: &SessionContext, m: &Model) -> Result<()> {
    let plan = ctx.sql(&m.sql).await?.into_unoptimized_plan();
    replace_view(ctx, &m.id, plan, Some(m.sql.clone()))
}

/// Registers `plan` as the view `id`, replacing what had that name.
pub(crate) fn replace_view(
    ctx: &SessionContext,
    id: &ModelId,
    plan: datafusion::logical_expr::LogicalPlan,
    definition: Option<String>,
) -> Result<()> {
    let name = id.to_string();
    ctx.deregister_table(name.as_str())?;
    ctx.register_table(
        name.as_str(),
        Arc::new(datafusion::datasource::ViewTable::new(plan, definition)),
    )?;
    Ok(())
}

#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Selectors (`name`, `+name`, `name+`); empty selects every model.
    pub select: Vec<String>,
    /// Stop at the first failing model or data test.
    pub fail_fast: bool,
    /// Skip the data tests.
    pub no_tests: bool,
    /// Rebuild only models whose fingerprint (see [`crate::state`]) differs
    /// from the one their table was built from; the others are up to date.
    pub incremental: bool,
    /// Up-to-date models whose data tests run anyway (they failed last time).
    pub retest: std::collections::BTreeSet<ModelId>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Ok,
    /// Built from the same inputs already: not rebuilt (incremental runs).
    UpToDate,
    /// A view model: defined, nothing written.
    View,
    Failed(String),
    Skipped(String),
}

#[derive(Debug, Clone)]
pub struct TestOutcome {
    pub name: String,
    /// Failing rows (0 = passed).
    pub failures: u64,
    /// The first failing rows, as a table for a person.
    pub sample: String,
    /// The test's SQL itself failed.
    pub error: Option<String>,
}

impl TestOutcome {
    pub fn passed(&self) -> bool {
        self.failures == 0 && self.error.is_none()
    }
}

#[derive(Debug, Clone)]
pub struct ModelOutcome {
    pub id: ModelId,
    pub status: Status,
    pub rows: u64,
    pub elapsed: Duration,
    pub tests: Vec<TestOutcome>,
    /// What the table is built from (see [`crate::state`]).
    pub fingerprint: String,
    /// An incremental model built partially: how many partitions were
    /// rebuilt (0: none changed; only the record was rewritten).
    pub partitions: Option<usize>,
}

#[derive(Debug, Clone, Default)]
pub struct RunReport {
    pub models: Vec<ModelOutcome>,
}

impl RunReport {
    /// The first model `m` reads that this run did not build, find up to
    /// date or define.
    fn blocking<'m>(&self, m: &'m Model) -> Option<&'m ModelId> {
        m.deps.iter().find(|d| {
            self.models.iter().any(|o| {
                &o.id == *d && !matches!(o.status, Status::Ok | Status::UpToDate | Status::View)
            })
        })
    }

    pub fn failed_models(&self) -> usize {
        self.models
            .iter()
            .filter(|m| matches!(m.status, Status::Failed(_)))
            .count()
    }
    pub fn failed_tests(&self) -> usize {
        self.models
            .iter()
            .flat_map(|m| &m.tests)
            .filter(|t| !t.passed())
            .count()
    }
    pub fn ok(&self) -> bool {
        self.failed_models() == 0
            && self.failed_tests() == 0
            && self
                .models
                .iter()
                .all(|m| !matches!(m.status, Status::Skipped(_)))
    }
}

/// What a run reports as it goes.
pub enum Event<'a> {
    Start { total: usize },
    Model(&'a ModelOutcome),
}

/// Runs the selected models and their tests.
pub async fn run(
    wh: &Warehouse,
    project: &Project,
    opts: &RunOptions,
    on: &(dyn Fn(Event) + Sync),
) -> Result<RunReport> {
    let selected: std::collections::BTreeSet<&ModelId> = project
        .select(&opts.select)?
        .into_iter()
        .map(|m| &m.id)
        .collect();
    let ctx = session(wh, project).await?;
    let sources = crate::state::source_fingerprints(wh, &ctx).await?;
    on(Event::Start {
        total: selected.len(),
    });
    let mut report = RunReport::default();
    let mut stop = false;
    // What each model is known by to its dependents (see `state::identity`),
    // filled in dependency order as the run goes.
    let mut identities = std::collections::BTreeMap::new();
    for m in &project.models {
        let fingerprint = crate::state::model_fingerprint(m, &sources.fingerprints, &identities);
        if m.is_view() {
            // Defined selected or not, once what it reads is built: a view
            // defined before holds the tables of then.
            identities.insert(m.id.clone(), fingerprint.clone());
            let defined = define_view(&ctx, m).await;
            if !selected.contains(&m.id) {
                continue;
            }
            let status = match (report.blocking(m), defined) {
                (Some(d), _) => Status::Skipped(format!("upstream {d} did not run")),
                (None, Ok(())) => Status::View,
                (None, Err(e)) => {
                    let e = e.to_string();
                    Status::Failed(format!("{}{}: {e}", m.path.display(), locate(&m.sql, &e)))
                }
            };
            if matches!(status, Status::Failed(_)) && opts.fail_fast {
                stop = true;
            }
            let outcome = ModelOutcome {
                id: m.id.clone(),
                status,
                rows: 0,
                elapsed: Duration::ZERO,
                tests: Vec::new(),
                fingerprint,
                partitions: None,
            };
            on(Event::Model(&outcome));
            report.models.push(outcome);
            continue;
        }
        let table_id = TableId::new(&m.id.layer, &m.id.name);
        let stored = crate::state::stored(wh, &table_id).await?;
        if !selected.contains(&m.id) {
            let known = crate::state::identity(&fingerprint, stored.as_ref());
            identities.insert(m.id.clone(), known);
            continue;
        }
        let t = Instant::now();
        let blocked = report.blocking(m);
        let mut outcome = ModelOutcome {
            id: m.id.clone(),
            status: Status::Ok,
            rows: 0,
            elapsed: Duration::ZERO,
            tests: Vec::new(),
            fingerprint: fingerprint.clone(),
            partitions: None,
        };
        let mut known = crate::state::identity(&fingerprint, stored.as_ref());
        if stop {
            outcome.status = Status::Skipped("--fail-fast: an earlier failure".into());
        } else if let Some(d) = blocked {
            outcome.status = Status::Skipped(format!("upstream {d} did not run"));
        } else if opts.incremental
            && stored.as_ref().map(|s| s.fingerprint.as_str()) == Some(fingerprint.as_str())
        {
            outcome.status = Status::UpToDate;
            if !opts.no_tests && opts.retest.contains(&m.id) {
                outcome.tests =
                    run_tests(&ctx, &checks::compile(&m.id, &m.spec), opts.fail_fast).await;
            }
        } else {
            let build = Build {
                wh,
                ctx: &ctx,
                project,
                sources: &sources,
                partial: opts.incremental,
            };
            match build.materialise(m, &fingerprint).await {
                Ok(built) => {
                    outcome.rows = built.rows;
                    outcome.partitions = built.partitions;
                    known = crate::state::identity(
                        &fingerprint,
                        Some(&crate::state::Stored {
                            fingerprint: fingerprint.clone(),
                            content: built.content,
                        }),
                    );
                    if !opts.no_tests {
                        outcome.tests =
                            run_tests(&ctx, &checks::compile(&m.id, &m.spec), opts.fail_fast).await;
                    }
                }
                Err(message) => outcome.status = Status::Failed(message),
            }
        }
        identities.insert(m.id.clone(), known);
        outcome.elapsed = t.elapsed();
        let failed = matches!(outcome.status, Status::Failed(_))
            || outcome.tests.iter().any(|t| !t.passed());
        if failed && opts.fail_fast {
            stop = true;
        }
        tracing::info!(model = %outcome.id, rows = outcome.rows, elapsed = ?outcome.elapsed, "model");
        on(Event::Model(&outcome));
        report.models.push(outcome);
    }
    Ok(report)
}

/// What building a model needs.
struct Build<'a> {
    wh: &'a Warehouse,
    ctx: &'a SessionContext,
    project: &'a Project,
    sources: &'a crate::state::Sources,
    /// Incremental models may rebuild only changed partitions.
    partial: bool,
}

impl Build<'_> {
    /// Plans and writes one model. An error is a message naming file and line.
    async fn materialise(&self, m: &Model, fingerprint: &str) -> Result<Built, String> {
        let file = m.path.display().to_string();
        let fail = |e: String| format!("{file}{}: {e}", locate(&m.sql, &e));
        let (wh, ctx) = (self.wh, self.ctx);
        let inputs = crate::incremental::inputs(self.project, m);
        let table = wh
            .table(&TableId::new(&m.id.layer, &m.id.name))
            .await
            .map_err(|e| fail(e.to_string()))?;
        let mut props = crate::state::commit_properties(fingerprint);
        let mut plan = crate::incremental::Plan::Whole;
        if let Some(inputs) = &inputs {
            let record = async {
                let deps =
                    crate::incremental::stored_inputs(wh, ctx, self.project, inputs, self.sources)
                        .await?;
                let logic =
                    crate::incremental::logic(ctx, m, inputs, &deps, &self.sources.fingerprints)
                        .await?;
                let files = crate::incremental::files_now(inputs, &deps, &self.sources.files);
                if self.partial && table.version().is_some() {
                    let stored = crate::incremental::stored(wh, &m.id).await?;
                    let (p, why) =
                        crate::incremental::plan(ctx, inputs, &stored, &logic, &files).await?;
                    if matches!(p, crate::incremental::Plan::Whole) {
                        tracing::info!(model = %m.id, why, "incremental model rebuilt whole");
                    }
                    plan = p;
                }
                Ok::<_, crate::Error>(crate::state::commit_properties_with(
                    fingerprint,
                    [
                        (crate::incremental::LOGIC_KEY.to_string(), logic.into()),
                        (
                            crate::incremental::PARTITION_KEY.to_string(),
                            inputs.partition_by.clone().into(),
                        ),
                        (
                            crate::incremental::FILES_KEY.to_string(),
                            serde_json::to_value(&files).unwrap_or_default(),
                        ),
                    ],
                ))
            };
            props = record.await.map_err(|e| fail(e.to_string()))?;
        }
        let partition_columns: Vec<String> =
            inputs.iter().map(|i| i.partition_by.clone()).collect();
        let partial = match &plan {
            crate::incremental::Plan::Whole => {
                let df = ctx.sql(&m.sql).await.map_err(|e| fail(e.to_string()))?;
                let props_w = stmon_warehouse::writer_properties_for(df.schema().as_arrow());
                let (input, state) = wh.write_input(ctx, df).map_err(|e| fail(e.to_string()))?;
                table
                    .write(Vec::<RecordBatch>::new())
                    .with_input_plan(input)
                    .with_writer_properties(props_w)
                    .with_session_state(state)
                    .with_save_mode(SaveMode::Overwrite)
                    .with_schema_mode(SchemaMode::Overwrite)
                    .with_partition_columns(partition_columns)
                    .with_commit_properties(props)
                    .await
                    .map_err(|e| fail(e.to_string()))?;
                None
            }
            crate::incremental::Plan::Partitions(parts) if parts.is_empty() => {
                // The data is right already: a commit of no rows that
                // records the new fingerprint.
                let df = ctx
                    .sql(&format!("select * from {} where false", m.id))
                    .await
                    .map_err(|e| fail(e.to_string()))?;
                let props_w = stmon_warehouse::writer_properties_for(df.schema().as_arrow());
                let (input, state) = wh.write_input(ctx, df).map_err(|e| fail(e.to_string()))?;
                table
                    .write(Vec::<RecordBatch>::new())
                    .with_input_plan(input)
                    .with_writer_properties(props_w)
                    .with_session_state(state)
                    .with_save_mode(SaveMode::Append)
                    .with_commit_properties(props)
                    .await
                    .map_err(|e| fail(e.to_string()))?;
                Some(0)
            }
            crate::incremental::Plan::Partitions(parts) => {
                let inputs = inputs.as_ref().expect("incremental");
                let sub = session(wh, self.project)
                    .await
                    .map_err(|e| fail(e.to_string()))?;
                crate::incremental::restrict(wh, &sub, self.project, inputs, parts)
                    .await
                    .map_err(|e| fail(e.to_string()))?;
                let df = sub.sql(&m.sql).await.map_err(|e| fail(e.to_string()))?;
                let values: Vec<datafusion::prelude::Expr> = parts
                    .iter()
                    .map(|p| datafusion::prelude::lit(p.as_str()))
                    .collect();
                let predicate =
                    datafusion::prelude::col(inputs.partition_by.as_str()).in_list(values, false);
                let props_w = stmon_warehouse::writer_properties_for(df.schema().as_arrow());
                let (input, state) = wh.write_input(&sub, df).map_err(|e| fail(e.to_string()))?;
                table
                    .write(Vec::<RecordBatch>::new())
                    .with_input_plan(input)
                    .with_writer_properties(props_w)
                    .with_session_state(state)
                    .with_save_mode(SaveMode::Overwrite)
                    .with_replace_where(predicate)
                    .with_partition_columns(partition_columns)
                    .with_commit_properties(props)
                    .await
                    .map_err(|e| fail(e.to_string()))?;
                Some(parts.len())
            }
        };
        stmon_warehouse::checkpoint::checkpoint(&format!("model {}", m.id));
        register_model(wh, ctx, &m.id)
            .await
            .map_err(|e| fail(e.to_string()))?;
        let rows = crate::query_i64(ctx, &format!("select count(*) from {}", m.id))
            .await
            .map_err(|e| fail(e.to_string()))?
            .unwrap_or(0) as u64;
        // A small model that is rebuilt whole and read by other models
        // records its content for them (see `state`): a commit of no rows
        // after the data's.
        let mut content = None;
        let read = self.project.models.iter().any(|o| o.deps.contains(&m.id));
        if inputs.is_none() && read && rows <= crate::state::CONTENT_ROWS {
            let digest = crate::incremental::content_hash(ctx, &m.id.to_string())
                .await
                .map_err(|e| fail(e.to_string()))?;
            let props = crate::state::commit_properties_with(
                fingerprint,
                [(
                    crate::state::CONTENT_KEY.to_string(),
                    serde_json::Value::String(digest.clone()),
                )],
            );
            let df = ctx
                .sql(&format!("select * from {} where false", m.id))
                .await
                .map_err(|e| fail(e.to_string()))?;
            let (input, state) = wh.write_input(ctx, df).map_err(|e| fail(e.to_string()))?;
            wh.table(&TableId::new(&m.id.layer, &m.id.name))
                .await
                .map_err(|e| fail(e.to_string()))?
                .write(Vec::<RecordBatch>::new())
                .with_input_plan(input)
                .with_session_state(state)
                .with_save_mode(SaveMode::Append)
                .with_commit_properties(props)
                .await
                .map_err(|e| fail(e.to_string()))?;
            register_model(wh, ctx, &m.id)
                .await
                .map_err(|e| fail(e.to_string()))?;
            content = Some(digest);
        }
        Ok(Built {
            rows,
            partitions: partial,
            content,
        })
    }
}

/// What building a model wrote.
struct Built {
    rows: u64,
    /// For a partial build of an incremental model, the partitions rebuilt.
    partitions: Option<usize>,
    /// The digest of its rows, for a small model built whole.
    content: Option<String>,
}

/// `:line` of the SQL a DataFusion message points at, where it can be told:
/// the parser's "Line: N", or the first line naming the field or table the
/// message complains about.
pub fn locate(sql: &str, message: &str) -> String {
    if let Some(i) = message.find("Line: ") {
        let n: String = message[i + 6..]
            .chars()
            .take_while(|c| c.is_ascii_digit())
            .collect();
        if !n.is_empty() {
            return format!(":{n}");
        }
    }
    let word = ["No field named ", "table '", "Invalid function '"]
        .iter()
        .find_map(|p| {
            message.find(p).map(|i| {
                message[i + p.len()..]
                    .trim_start_matches(['"', '\''])
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '.')
                    .collect::<String>()
                    .trim_end_matches('.')
                    .to_string()
            })
        });
    if let Some(w) = word.filter(|w| !w.is_empty()) {
        // A qualified field (t.col) is written as such, or as its last part.
        let last = w.rsplit('.').next().unwrap_or(&w).to_string();
        for (i, line) in sql.lines().enumerate() {
            if line.contains(&w) || line.contains(&last) {
                return format!(":{}", i + 1);
            }
        }
    }
    String::new()
}

/// Runs one model's data tests.
pub async fn test_model(ctx: &SessionContext, m: &Model) -> Vec<TestOutcome> {
    run_tests(ctx, &checks::compile(&m.id, &m.spec), false).await
}

/// How many of a model's data tests run at once, each as its own task.
const TESTS_AT_ONCE: usize = 2;

async fn run_tests(ctx: &SessionContext, tests: &[DataTest], fail_fast: bool) -> Vec<TestOutcome> {
    use futures::StreamExt;
    // Each test a task of its own, so that two run on two cores (a future
    // polled beside another in one task shares that task's thread).
    let mut outcomes = futures::stream::iter(tests.iter().map(|t| {
        let (ctx, t) = (ctx.clone(), t.clone());
        let name = t.name.clone();
        let task = tokio::spawn(async move { run_test(&ctx, &t).await });
        async move {
            match task.await {
                Ok(outcome) => outcome,
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Err(e) => TestOutcome {
                    name,
                    failures: 0,
                    sample: String::new(),
                    error: Some(e.to_string()),
                },
            }
        }
    }))
    .buffered(TESTS_AT_ONCE);
    let mut out = Vec::new();
    while let Some(outcome) = outcomes.next().await {
        let failed = !outcome.passed();
        out.push(outcome);
        if failed && fail_fast {
            break;
        }
    }
    out
}

/// Rows shown of a failing test.
const SAMPLE_ROWS: usize = 5;

/// One data test: its failing rows counted as they stream (a test that
/// fails on every row of a big table holds only the sample).
async fn run_test(ctx: &SessionContext, t: &DataTest) -> TestOutcome {
    use futures::TryStreamExt;
    let result = async {
        let mut stream = ctx.sql(&t.sql).await?.execute_stream().await?;
        let (mut n, mut sample) = (0usize, Vec::new());
        while let Some(b) = stream.try_next().await? {
            let take = SAMPLE_ROWS.saturating_sub(n).min(b.num_rows());
            if take > 0 {
                sample.push(b.slice(0, take));
            }
            n += b.num_rows();
        }
        Ok::<_, datafusion::error::DataFusionError>((n, sample))
    }
    .await;
    match result {
        Ok((n, sample)) => TestOutcome {
            name: t.name.clone(),
            failures: n as u64,
            sample: if n > 0 {
                arrow::util::pretty::pretty_format_batches(&sample)
                    .map(|s| s.to_string())
                    .unwrap_or_default()
            } else {
                String::new()
            },
            error: None,
        },
        Err(e) => TestOutcome {
            name: t.name.clone(),
            failures: 0,
            sample: String::new(),
            error: Some(e.to_string()),
        },
    }
}
