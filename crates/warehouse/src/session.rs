//! A DataFusion session over the warehouse, with the views every reader uses.
//!
//! Physical Delta tables are registered as `delta.<layer>_<table>`. What people
//! and later layers query are views that see committed batches only:
//! `audit.batches`, `audit.quarantine`, `audit.warnings`, `raw.<form>` (every
//! version) and `current.<form>` (latest `submitted_at` per key, withdrawn keys
//! removed, conflicting versions ignored).

use std::sync::Arc;

use datafusion::catalog::MemorySchemaProvider;
use datafusion::prelude::SessionContext;
use stmon_schema::Form;

use crate::tables::{TableId, Warehouse};
use crate::{Error, Result};

/// Rows of a file count only when its batch committed it as `loaded`: a file
/// that failed half-way (`unreadable`) keeps none of the rows it had yielded.
const LOADED_FILES: &str =
    "(select batch_id, sha256 from delta.audit_batches where status = 'loaded')";

/// SQL of the current view of a form over a relation of its raw rows.
///
/// Per key: drop `(key, submitted_at)` groups whose rows disagree (a conflict:
/// nobody can tell which is right, so the previous version stays current),
/// then take the latest `submitted_at` with an aggregate (`first_value … order
/// by`, much faster than a window on millions of small partitions), then drop
/// keys whose latest version is a withdrawal.
pub fn current_view_sql(form: &Form, raw: &str) -> String {
    let key = form.key.join(", ");
    let on: Vec<String> = form
        .key
        .iter()
        .chain(std::iter::once(&"submitted_at".to_string()))
        .map(|k| format!("v.{k} = ok.{k}"))
        .collect();
    let others: Vec<String> = form
        .columns
        .iter()
        .filter(|c| !form.is_key(&c.name))
        .map(|c| c.name.clone())
        .chain(
            [
                "_extra",
                "_row_hash",
                "_batch_id",
                "_source_file",
                "_source_sha256",
                "_row_number",
                "_ingested_at",
            ]
            .map(String::from),
        )
        .map(|c| {
            format!("first_value({c} order by submitted_at desc, _batch_id, _row_number) as {c}")
        })
        .collect();
    let cols: Vec<String> = form.columns.iter().map(|c| c.name.clone()).collect();
    format!(
        "with v as (select * from {raw}),\n\
         ok as (select {key}, submitted_at from v group by {key}, submitted_at having min(_row_hash) = max(_row_hash)),\n\
         agreed as (select v.* from v join ok on {on}),\n\
         latest as (select {key}, {others} from agreed group by {key})\n\
         select {cols}, _extra, _row_hash, _batch_id, _source_file, _source_sha256, _row_number, _ingested_at\n\
         from latest where not coalesce(withdrawn, false)",
        on = on.join(" and "),
        others = others.join(", "),
        cols = cols.join(", "),
    )
}

/// Creates the warehouse's schemas (`delta`, `raw`, `current`, `audit`) in a session.
fn ensure_schemas(ctx: &SessionContext) -> Result<()> {
    let catalog = ctx
        .catalog("datafusion")
        .ok_or_else(|| Error::Other("no default catalog".into()))?;
    for s in ["delta", "raw", "current", "audit"] {
        if catalog.schema(s).is_none() {
            catalog.register_schema(s, Arc::new(MemorySchemaProvider::new()))?;
        }
    }
    Ok(())
}

impl Warehouse {
    /// A session with every warehouse table and view registered.
    pub async fn session(&self) -> Result<SessionContext> {
        // Delta's planner too, so that a plan of this session can be written
        // to a Delta table (`WriteBuilder::with_input_plan`).
        let state = datafusion::execution::SessionStateBuilder::new()
            .with_default_features()
            .with_query_planner(deltalake::delta_datafusion::planner::DeltaPlanner::new())
            .build();
        let ctx = SessionContext::new_with_state(state);
        self.register(&ctx).await?;
        Ok(ctx)
    }

    /// Registers the tables and views into an existing session.
    pub async fn register(&self, ctx: &SessionContext) -> Result<()> {
        ctx.register_udf(crate::bucket::udf());
        for id in self.ingest_tables().into_keys() {
            self.register_physical(ctx, &id).await?;
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
            q(format!(
                "create or replace view raw.{0} as select r.* from delta.raw_{0} r \
                 join {LOADED_FILES} f on r._batch_id = f.batch_id and r._source_sha256 = f.sha256",
                form.name
            ))
            .await?;
            q(format!(
                "create or replace view current.{0} as {1}",
                form.name,
                current_view_sql(form, &format!("raw.{}", form.name))
            ))
            .await?;
        }
        Ok(())
    }

    pub(crate) async fn register_physical(&self, ctx: &SessionContext, id: &TableId) -> Result<()> {
        ensure_schemas(ctx)?;
        let delta = |source| Error::Delta {
            table: id.to_string(),
            source,
        };
        let table = self.table(id).await?;
        if table.version().is_none() {
            return Err(Error::Other(format!(
                "table {id} does not exist; run `stmon ingest` first"
            )));
        }
        table
            .update_datafusion_session(&ctx.state())
            .map_err(delta)?;
        let provider = table.table_provider().await?;
        let name = format!("delta.{}_{}", id.layer, id.name);
        ctx.deregister_table(name.as_str())?;
        ctx.register_table(name.as_str(), provider)?;
        Ok(())
    }
}
