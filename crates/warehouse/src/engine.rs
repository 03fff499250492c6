//! Where a warehouse session's queries run, and what a remote engine reads.
//!
//! [`Engine::Local`] (the default) plans and runs every query in this
//! process, over Delta table providers. [`Engine::Remote`] takes its sessions
//! from a [`RemoteEngine`] (stmon-cluster's Ballista client: the plan is sent
//! to a scheduler and runs on its executors) and registers each Delta table
//! as a [`SnapshotTable`]: the Parquet files of the snapshot this session
//! pinned, with their partition values. A snapshot table is a plain Parquet
//! scan, so a scheduler plans it to DataFusion's own `DataSourceExec`, which
//! Ballista ships to executors natively; only the snapshot's description (a
//! [`SnapshotSpec`]) needs a codec, because no Delta table provider crosses
//! the wire (deltalake 1.1 has no codec for its scan).
//!
//! What this module never does: write. A remote session only reads; every
//! write of a model stays one Delta commit by this process
//! ([`Warehouse::write_input`]).

use std::sync::Arc;

use arrow::datatypes::{Field, FieldRef, Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::{DFSchema, ScalarValue};
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder, ParquetSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::datasource::table_schema::TableSchema;
use datafusion::datasource::TableType;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::SessionContext;
use deltalake::DeltaTable;
use serde::{Deserialize, Serialize};

use crate::{Error, Result, Warehouse};

/// Where a warehouse session's queries run.
#[derive(Debug, Clone, Default)]
pub enum Engine {
    /// In this process.
    #[default]
    Local,
    /// On a cluster: see [`RemoteEngine`].
    Remote(Arc<dyn RemoteEngine>),
}

/// A query engine outside this process: it hands out sessions whose plans
/// run there. Tables registered in them must be [`SnapshotTable`]s or
/// in-memory tables (see the module documentation).
pub trait RemoteEngine: Send + Sync + std::fmt::Debug {
    /// The engine's address, as the user gave it (`ballista://host:port`).
    fn address(&self) -> String;
    /// A new session on the engine, nothing registered.
    fn session(&self) -> datafusion::error::Result<SessionContext>;
}

/// One data file of a pinned snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotFile {
    /// The object's path in the store of [`SnapshotSpec::store`].
    pub path: String,
    pub size: u64,
    /// The file's value of each partition column, as Delta writes them
    /// (text; `None` is null), in [`SnapshotSpec::partition_columns`] order.
    pub partition_values: Vec<Option<String>>,
}

/// What a [`SnapshotTable`] reads: everything but its schema, which travels
/// with the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotSpec {
    /// The Delta table's URL, for messages.
    pub table: String,
    /// The Delta version whose files these are.
    pub version: u64,
    /// The object store holding the files (`s3://bucket/`, `file:///`).
    pub store: String,
    pub partition_columns: Vec<String>,
    pub files: Vec<SnapshotFile>,
}

/// The Parquet files of one Delta snapshot, read as a table: what a remote
/// engine's executors read instead of the Delta table (see the module
/// documentation).
#[derive(Debug)]
pub struct SnapshotTable {
    spec: SnapshotSpec,
    /// The table's columns in the Delta provider's order.
    schema: SchemaRef,
}

impl SnapshotTable {
    /// A snapshot table of `spec` whose columns are `schema` (which must hold
    /// every partition column).
    pub fn new(spec: SnapshotSpec, schema: SchemaRef) -> datafusion::error::Result<Self> {
        for c in &spec.partition_columns {
            schema.field_with_name(c).map_err(|_| {
                datafusion::error::DataFusionError::Plan(format!(
                    "{}: partition column {c} is not a column of the table",
                    spec.table
                ))
            })?;
        }
        Ok(Self { spec, schema })
    }

    /// The snapshot `table` is loaded at, with the columns `schema` (its
    /// Delta provider's). Refuses a snapshot a plain Parquet scan would read
    /// wrongly: files with deletion vectors, or column mapping.
    pub fn of_delta(table: &DeltaTable, schema: SchemaRef) -> Result<Self> {
        let name = table.table_url().to_string();
        let delta = |source| Error::Delta {
            table: name.clone(),
            source,
        };
        let state = table.snapshot().map_err(delta)?;
        let refuse = |why: &str| Error::Location {
            location: name.clone(),
            message: format!("cannot be read on a remote engine: {why}"),
        };
        let mapping = state
            .metadata()
            .configuration()
            .get("delta.columnMapping.mode")
            .cloned();
        if mapping.is_some_and(|m| m != "none") {
            return Err(refuse("the table uses column mapping"));
        }
        let root = table.table_url();
        let store = format!("{}://{}/", root.scheme(), root.host_str().unwrap_or(""));
        // The table's folder as an object path: a file's path is relative to it.
        let base = object_store::path::Path::from_url_path(root.path())
            .map_err(|e| refuse(&e.to_string()))?;
        let partition_columns: Vec<String> = state.metadata().partition_columns().to_vec();
        let mut files = Vec::new();
        for f in state.log_data().iter() {
            if f.deletion_vector_descriptor().is_some() {
                return Err(refuse("a file has a deletion vector"));
            }
            let values = f.partition_values_map();
            files.push(SnapshotFile {
                path: if base.as_ref().is_empty() {
                    f.object_store_path().to_string()
                } else {
                    format!("{base}/{}", f.object_store_path())
                },
                size: f.size().max(0) as u64,
                partition_values: partition_columns
                    .iter()
                    .map(|c| values.get(c).cloned().flatten())
                    .collect(),
            });
        }
        let spec = SnapshotSpec {
            table: name.clone(),
            version: table.version().unwrap_or(0),
            store,
            partition_columns,
            files,
        };
        Self::new(spec, schema).map_err(|e| Error::Location {
            location: name,
            message: e.to_string(),
        })
    }

    pub fn spec(&self) -> &SnapshotSpec {
        &self.spec
    }

    /// The scan's columns: the files' columns, then the partition columns
    /// (DataFusion's order for a file scan), as indexes into `self.schema`.
    fn scan_order(&self) -> Vec<usize> {
        let part = |i: &usize| {
            self.spec
                .partition_columns
                .contains(self.schema.field(*i).name())
        };
        let all = 0..self.schema.fields().len();
        let mut order: Vec<usize> = all.clone().filter(|i| !part(i)).collect();
        order.extend(
            self.spec
                .partition_columns
                .iter()
                .filter_map(|c| self.schema.index_of(c).ok()),
        );
        order
    }
}

#[async_trait]
impl TableProvider for SnapshotTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> datafusion::error::Result<Vec<TableProviderFilterPushDown>> {
        // Used to skip row groups; the rows are filtered again above the scan.
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        let order = self.scan_order();
        let n_files = self.schema.fields().len() - self.spec.partition_columns.len();
        let fields: Vec<FieldRef> = order
            .iter()
            .map(|i| Arc::new(self.schema.field(*i).clone()))
            .collect();
        let file_schema = Arc::new(Schema::new(fields[..n_files].to_vec()));
        let partition_fields: Vec<FieldRef> = fields[n_files..].to_vec();
        let scan_schema = Arc::new(Schema::new(
            fields
                .iter()
                .map(|f| f.as_ref().clone())
                .collect::<Vec<Field>>(),
        ));
        let mut source = ParquetSource::new(
            TableSchema::builder(file_schema)
                .with_table_partition_cols(partition_fields.clone())
                .build(),
        );
        if let Some(expr) = conjunction(filters.to_vec()) {
            let df_schema = DFSchema::try_from(scan_schema.as_ref().clone())?;
            source = source.with_predicate(state.create_physical_expr(expr, &df_schema)?);
        }
        if self.spec.files.is_empty() {
            // A table with no file (a model that wrote no row): a scan of no
            // partition is refused by Ballista's plan checks ("does not
            // satisfy distribution requirements" under an aggregate), an
            // empty plan of one partition is not.
            let wanted: Vec<usize> = match projection {
                Some(p) => p.clone(),
                None => (0..self.schema.fields().len()).collect(),
            };
            return Ok(Arc::new(datafusion::physical_plan::empty::EmptyExec::new(
                Arc::new(self.schema.project(&wanted)?),
            )));
        }
        let mut files = Vec::with_capacity(self.spec.files.len());
        for f in &self.spec.files {
            let values = partition_fields
                .iter()
                .zip(&f.partition_values)
                .map(|(field, v)| match v {
                    Some(v) => ScalarValue::try_from_string(v.clone(), field.data_type()),
                    None => ScalarValue::try_from(field.data_type()),
                })
                .collect::<datafusion::error::Result<Vec<_>>>()?;
            files.push(
                datafusion::datasource::listing::PartitionedFile::new(f.path.clone(), f.size)
                    .with_partition_values(values),
            );
        }
        // As many groups as the session runs partitions, each about as large.
        let groups = state
            .config()
            .target_partitions()
            .max(1)
            .min(files.len().max(1));
        files.sort_by_key(|f| std::cmp::Reverse(f.object_meta.size));
        let mut buckets: Vec<(u64, Vec<_>)> = (0..groups).map(|_| (0, Vec::new())).collect();
        for f in files {
            let smallest = buckets
                .iter_mut()
                .min_by_key(|(bytes, _)| *bytes)
                .expect("at least one group");
            smallest.0 += f.object_meta.size;
            smallest.1.push(f);
        }
        let groups: Vec<FileGroup> = buckets
            .into_iter()
            .filter(|(_, fs)| !fs.is_empty())
            .map(|(_, fs)| FileGroup::new(fs))
            .collect();
        // The projection, in the provider's column indexes, to the scan's.
        let wanted: Vec<usize> = match projection {
            Some(p) => p.clone(),
            None => (0..self.schema.fields().len()).collect(),
        };
        let indices: Vec<usize> = wanted
            .iter()
            .map(|i| order.iter().position(|o| o == i).expect("a column"))
            .collect();
        let config =
            FileScanConfigBuilder::new(ObjectStoreUrl::parse(&self.spec.store)?, Arc::new(source))
                .with_file_groups(groups)
                .with_projection_indices(Some(indices))?
                .with_limit(limit)
                .build();
        Ok(DataSourceExec::from_data_source(config))
    }
}

/// The mark of a session whose queries run on a remote engine.
#[derive(Debug)]
pub(crate) struct RemoteSession;

/// Whether `ctx` runs its queries on a remote engine.
pub(crate) fn is_remote(ctx: &SessionContext) -> bool {
    ctx.state()
        .config()
        .get_extension::<RemoteSession>()
        .is_some()
}

impl Warehouse {
    /// The warehouse whose sessions ([`Warehouse::session`]) run on `engine`.
    pub fn with_engine(mut self, engine: Engine) -> Self {
        self.engine = engine;
        self
    }

    /// What `ctx` reads `table` through: its Delta provider, or on a remote
    /// session its [`SnapshotTable`].
    pub async fn provider(
        &self,
        ctx: &SessionContext,
        table: &DeltaTable,
    ) -> Result<Arc<dyn TableProvider>> {
        let delta = |source| Error::Delta {
            table: table.table_url().to_string(),
            source,
        };
        table
            .update_datafusion_session(&ctx.state())
            .map_err(delta)?;
        let provider = table.table_provider().await?;
        if !is_remote(ctx) {
            return Ok(provider);
        }
        Ok(Arc::new(SnapshotTable::of_delta(table, provider.schema())?))
    }

    /// A session with nothing registered on this warehouse's engine.
    pub(crate) fn engine_session(&self, limit: Option<usize>) -> Result<SessionContext> {
        match &self.engine {
            Engine::Local => crate::session::bare_session(limit),
            Engine::Remote(r) => {
                let ctx = r.session().map_err(|e| Error::Engine {
                    engine: r.address(),
                    message: e.to_string(),
                })?;
                ctx.state_ref()
                    .write()
                    .config_mut()
                    .set_extension(Arc::new(RemoteSession));
                Ok(ctx)
            }
        }
    }

    /// What a Delta write of `df`'s rows is given: the plan and the session
    /// to run it in. On the local engine, `df`'s own plan and session. On a
    /// remote one, a local plan whose one scan streams `df`'s rows as the
    /// engine returns them, and a local session: the engine computes, this
    /// process writes (one commit, as on the local engine).
    pub fn write_input(
        &self,
        ctx: &SessionContext,
        df: datafusion::dataframe::DataFrame,
    ) -> Result<(
        datafusion::logical_expr::LogicalPlan,
        Arc<datafusion::execution::SessionState>,
    )> {
        if !is_remote(ctx) {
            return Ok((df.logical_plan().clone(), Arc::new(ctx.state())));
        }
        let local = crate::session::bare_session(None)?;
        let schema = Arc::new(df.schema().as_arrow().clone());
        let stream = Arc::new(RemoteRows {
            schema: schema.clone(),
            df: std::sync::Mutex::new(Some(df)),
        });
        let table = datafusion::catalog::streaming::StreamingTable::try_new(schema, vec![stream])?;
        let plan = local.read_table(Arc::new(table))?.into_unoptimized_plan();
        Ok((plan, Arc::new(local.state())))
    }
}

/// The rows of a remote query, read once.
struct RemoteRows {
    schema: SchemaRef,
    df: std::sync::Mutex<Option<datafusion::dataframe::DataFrame>>,
}

impl std::fmt::Debug for RemoteRows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RemoteRows")
    }
}

impl datafusion::physical_plan::streaming::PartitionStream for RemoteRows {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(
        &self,
        _ctx: Arc<datafusion::execution::TaskContext>,
    ) -> datafusion::execution::SendableRecordBatchStream {
        use futures::{StreamExt, TryStreamExt};
        let df = self.df.lock().expect("not poisoned").take();
        let stream = futures::stream::once(async move {
            match df {
                Some(df) => df.execute_stream().await,
                None => Err(datafusion::error::DataFusionError::Internal(
                    "a remote query's rows were read twice".into(),
                )),
            }
        })
        .try_flatten();
        Box::pin(
            datafusion::physical_plan::stream::RecordBatchStreamAdapter::new(
                self.schema.clone(),
                stream.boxed(),
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, RecordBatch, StringArray};
    use arrow::datatypes::DataType;
    use deltalake::protocol::SaveMode;

    async fn rows(ctx: &SessionContext, sql: &str) -> String {
        let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
        arrow::util::pretty::pretty_format_batches(&batches)
            .unwrap()
            .to_string()
    }

    /// A snapshot table reads exactly the files of the version it was made
    /// from, with the partition values Delta keeps in the log (not in the
    /// files), under any projection and filter, in the Delta provider's
    /// column order.
    #[tokio::test]
    async fn a_snapshot_table_reads_its_version_with_partition_values() {
        crate::store::register();
        let dir = tempfile::tempdir().unwrap();
        let url = url::Url::from_directory_path(dir.path()).unwrap();
        let schema = Arc::new(Schema::new(vec![
            Field::new("p", DataType::Utf8, true),
            Field::new("v", DataType::Int64, true),
        ]));
        let batch = |p: Vec<Option<&str>>, v: Vec<i64>| {
            RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(StringArray::from(p)),
                    Arc::new(Int64Array::from(v)),
                ],
            )
            .unwrap()
        };
        let table = DeltaTable::try_from_url(url.clone()).await.unwrap();
        let table = table
            .write(vec![batch(
                vec![Some("a"), Some("b"), Some("a"), None],
                vec![1, 2, 3, 4],
            )])
            .with_partition_columns(["p"])
            .await
            .unwrap();
        // Version 1 replaces every row: its files are not version 0's.
        table
            .write(vec![batch(vec![Some("b")], vec![10])])
            .with_save_mode(SaveMode::Overwrite)
            .await
            .unwrap();

        let ctx = SessionContext::new();
        for (name, version) in [("old", 0), ("new", 1)] {
            let mut t = DeltaTable::try_from_url(url.clone()).await.unwrap();
            t.load_version(version).await.unwrap();
            let provider = t.table_provider().await.unwrap();
            let snapshot = SnapshotTable::of_delta(&t, provider.schema()).unwrap();
            assert_eq!(snapshot.spec().version, version);
            assert_eq!(snapshot.spec().partition_columns, ["p"]);
            assert_eq!(snapshot.schema(), provider.schema());
            ctx.register_table(name, Arc::new(snapshot)).unwrap();
        }
        assert_eq!(
            rows(&ctx, "select p, v from old order by v").await,
            "+---+---+\n| p | v |\n+---+---+\n| a | 1 |\n| b | 2 |\n| a | 3 |\n|   | 4 |\n+---+---+"
        );
        // A filter on the partition column, and one on a data column.
        assert_eq!(
            rows(&ctx, "select v from old where p = 'a' order by v").await,
            "+---+\n| v |\n+---+\n| 1 |\n| 3 |\n+---+"
        );
        assert_eq!(
            rows(
                &ctx,
                "select p from old where v >= 2 and p is not null order by p"
            )
            .await,
            "+---+\n| p |\n+---+\n| a |\n| b |\n+---+"
        );
        assert_eq!(
            rows(&ctx, "select count(*) as n, sum(v) as s from new").await,
            "+---+----+\n| n | s  |\n+---+----+\n| 1 | 10 |\n+---+----+"
        );
    }

    #[test]
    fn a_snapshot_table_needs_its_partition_columns() {
        let spec = SnapshotSpec {
            table: "file:///t/".into(),
            version: 3,
            store: "file:///".into(),
            partition_columns: vec!["province".into()],
            files: vec![],
        };
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, true)]));
        let e = SnapshotTable::new(spec, schema).unwrap_err().to_string();
        assert!(
            e.contains("file:///t/: partition column province is not a column of the table"),
            "{e}"
        );
    }
}
