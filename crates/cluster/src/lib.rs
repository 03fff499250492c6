//! `stmon-cluster`: stmon on an Apache Ballista cluster.
//!
//! It owns three things, all thin layers over Ballista's own crates:
//!
//! * [`BallistaEngine`]: the warehouse's [`RemoteEngine`] for
//!   `--engine ballista://HOST:PORT`. Its sessions plan a query in this
//!   process and send it to the scheduler, which splits it into stages for
//!   its executors; the rows stream back here.
//! * [`run_scheduler`] and [`run_executor`]: Ballista's scheduler and
//!   executor processes (`stmon cluster scheduler|executor`), carrying
//!   stmon's codec and an object store registry that reaches the
//!   warehouse's `s3://` buckets with the same `AWS_*` settings as stmon.
//! * [`StmonCodec`]: what Ballista cannot ship by itself. A plan over the
//!   warehouse names two kinds of tables Ballista's codec does not know: the
//!   Delta tables, registered on a remote session as a
//!   [`SnapshotTable`] (the Parquet files of the pinned snapshot, see
//!   `stmon_warehouse::SnapshotTable`), and the reference tables `ref.*`
//!   (in-memory). The codec sends the first as its file list and the second
//!   as Arrow IPC; the scheduler plans both to DataFusion's own scans, which
//!   reach executors through Ballista's codec unchanged. stmon registers no
//!   functions of its own, so none travel.
//!
//! What it never does: write to the warehouse, or decide what a model is.
//! The model runner (stmon-models) decides what to build and writes each
//! model as one Delta commit in the driver; the cluster only computes rows.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ballista_core::extension::{SessionConfigExt, SessionStateExt};
use ballista_core::serde::BallistaLogicalExtensionCodec;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::TableProvider;
use datafusion::common::TableReference;
use datafusion::datasource::MemTable;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::object_store::{DefaultObjectStoreRegistry, ObjectStoreRegistry};
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::execution::{SessionStateBuilder, TaskContext};
use datafusion::logical_expr::{Extension, LogicalPlan};
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion_proto::logical_plan::LogicalExtensionCodec;
use object_store::ObjectStore;
use stmon_warehouse::{RemoteEngine, SnapshotSpec, SnapshotTable};
use url::Url;

/// Errors of starting or reaching a cluster.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `--engine` is not `ballista://HOST[:PORT]`.
    #[error(
        "engine {given:?}: {why} (expected ballista://HOST:PORT, e.g. ballista://127.0.0.1:50050)"
    )]
    Address { given: String, why: String },
    /// No scheduler answers at the address.
    #[error("no Ballista scheduler answers at {address}: {source} (start one with `stmon cluster scheduler`)")]
    Unreachable {
        address: String,
        source: std::io::Error,
    },
    /// Ballista's scheduler or executor stopped with an error.
    #[error("{process}: {message}")]
    Process {
        process: &'static str,
        message: String,
    },
}

/// Ballista's default scheduler port.
pub const DEFAULT_SCHEDULER_PORT: u16 = 50050;

/// The engine `--engine ballista://HOST:PORT` names.
#[derive(Debug)]
pub struct BallistaEngine {
    host: String,
    port: u16,
}

impl BallistaEngine {
    /// Parses `ballista://HOST[:PORT]` (port 50050 when left out) and checks
    /// that something listens there, so that a wrong address fails now with
    /// its name rather than at the first model.
    pub async fn connect(address: &str) -> Result<Self, Error> {
        let bad = |why: &str| Error::Address {
            given: address.into(),
            why: why.into(),
        };
        let url = Url::parse(address).map_err(|e| bad(&e.to_string()))?;
        if url.scheme() != "ballista" {
            return Err(bad(&format!("unknown scheme {}", url.scheme())));
        }
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| bad("no host"))?
            .to_string();
        let port = url.port().unwrap_or(DEFAULT_SCHEDULER_PORT);
        let engine = Self { host, port };
        let target = format!("{}:{}", engine.host, engine.port);
        match tokio::time::timeout(
            Duration::from_secs(10),
            tokio::net::TcpStream::connect(target.as_str()),
        )
        .await
        {
            Ok(Ok(_)) => Ok(engine),
            Ok(Err(source)) => Err(Error::Unreachable {
                address: target,
                source,
            }),
            Err(_) => Err(Error::Unreachable {
                address: target,
                source: std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer in 10 s"),
            }),
        }
    }
}

impl RemoteEngine for BallistaEngine {
    fn address(&self) -> String {
        format!("ballista://{}:{}", self.host, self.port)
    }

    fn session(&self) -> DfResult<SessionContext> {
        let config = SessionConfig::new_with_ballista()
            .with_ballista_logical_extension_codec(Arc::new(StmonCodec::default()))
            .with_ballista_job_name("stmon")
            // Ballista 55's adaptive planner (on by default) re-planned a
            // model's query without end here: 18,999 stages for the
            // Shaoxing enterprise model, "stages to be cancelled but it's
            // not implemented", the scheduler at full CPU. The static
            // distributed planner runs it in a few stages.
            .with_ballista_adaptive_query_planner(false);
        let state = SessionStateBuilder::new()
            .with_default_features()
            .with_config(config)
            .build()
            .upgrade_for_ballista(format!("http://{}:{}", self.host, self.port))?;
        Ok(SessionContext::new_with_state(state))
    }
}

/// Ballista's logical codec, plus the two kinds of tables a plan over the
/// warehouse holds that it does not know (see the crate documentation).
#[derive(Debug, Default)]
pub struct StmonCodec {
    inner: BallistaLogicalExtensionCodec,
}

/// The first byte of an encoded table: which kind follows.
const SNAPSHOT: u8 = b'S';
const MEMORY: u8 = b'M';

impl LogicalExtensionCodec for StmonCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[LogicalPlan],
        ctx: &TaskContext,
    ) -> DfResult<Extension> {
        self.inner.try_decode(buf, inputs, ctx)
    }

    fn try_encode(&self, node: &Extension, buf: &mut Vec<u8>) -> DfResult<()> {
        self.inner.try_encode(node, buf)
    }

    fn try_decode_table_provider(
        &self,
        buf: &[u8],
        table_ref: &TableReference,
        schema: SchemaRef,
        ctx: &TaskContext,
    ) -> DfResult<Arc<dyn TableProvider>> {
        match buf.split_first() {
            Some((&SNAPSHOT, rest)) => {
                let spec: SnapshotSpec = serde_json::from_slice(rest).map_err(|e| {
                    DataFusionError::Internal(format!("{table_ref}: a snapshot's files: {e}"))
                })?;
                Ok(Arc::new(SnapshotTable::new(spec, schema)?))
            }
            Some((&MEMORY, rest)) => {
                let reader = datafusion::arrow::ipc::reader::StreamReader::try_new(rest, None)?;
                let batches = reader.collect::<Result<Vec<_>, _>>()?;
                Ok(Arc::new(MemTable::try_new(schema, vec![batches])?))
            }
            _ => self
                .inner
                .try_decode_table_provider(buf, table_ref, schema, ctx),
        }
    }

    fn try_encode_table_provider(
        &self,
        table_ref: &TableReference,
        node: Arc<dyn TableProvider>,
        buf: &mut Vec<u8>,
    ) -> DfResult<()> {
        if let Some(t) = node.downcast_ref::<SnapshotTable>() {
            buf.push(SNAPSHOT);
            serde_json::to_writer(&mut *buf, t.spec())
                .map_err(|e| DataFusionError::Internal(format!("{table_ref}: {e}")))?;
            return Ok(());
        }
        if let Some(t) = node.downcast_ref::<MemTable>() {
            buf.push(MEMORY);
            let mut w =
                datafusion::arrow::ipc::writer::StreamWriter::try_new(&mut *buf, &t.schema())?;
            for partition in &t.batches {
                // A MemTable's partitions are behind a lock only for inserts,
                // which a read-only session never makes.
                let batches = partition.try_read().map_err(|_| {
                    DataFusionError::Internal(format!("{table_ref}: being written"))
                })?;
                for b in batches.iter() {
                    w.write(b)?;
                }
            }
            w.finish()?;
            return Ok(());
        }
        self.inner.try_encode_table_provider(table_ref, node, buf)
    }

    fn try_decode_file_format(
        &self,
        buf: &[u8],
        ctx: &TaskContext,
    ) -> DfResult<Arc<dyn datafusion::datasource::file_format::FileFormatFactory>> {
        self.inner.try_decode_file_format(buf, ctx)
    }

    fn try_encode_file_format(
        &self,
        buf: &mut Vec<u8>,
        node: Arc<dyn datafusion::datasource::file_format::FileFormatFactory>,
    ) -> DfResult<()> {
        self.inner.try_encode_file_format(buf, node)
    }
}

/// Object stores for the cluster's processes: DataFusion's (`file://`),
/// plus one per `s3://` bucket, built on first use from the environment as
/// stmon's own (`AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ALLOW_HTTP`, …).
#[derive(Debug, Default)]
pub struct EnvStores {
    inner: DefaultObjectStoreRegistry,
}

impl ObjectStoreRegistry for EnvStores {
    fn register_store(
        &self,
        url: &Url,
        store: Arc<dyn ObjectStore>,
    ) -> Option<Arc<dyn ObjectStore>> {
        self.inner.register_store(url, store)
    }

    fn deregister_store(&self, url: &Url) -> DfResult<Arc<dyn ObjectStore>> {
        self.inner.deregister_store(url)
    }

    fn get_store(&self, url: &Url) -> DfResult<Arc<dyn ObjectStore>> {
        match self.inner.get_store(url) {
            Ok(store) => Ok(store),
            Err(_) if url.scheme() == "s3" => {
                let bucket = url.host_str().unwrap_or_default();
                let store: Arc<dyn ObjectStore> = Arc::new(
                    object_store::aws::AmazonS3Builder::from_env()
                        .with_bucket_name(bucket)
                        .build()
                        .map_err(|e| {
                            DataFusionError::Execution(format!("object store s3://{bucket}: {e}"))
                        })?,
                );
                self.inner.register_store(url, store.clone());
                Ok(store)
            }
            Err(e) => Err(e),
        }
    }
}

/// A runtime whose object stores are [`EnvStores`] and whose spill files
/// go under `temp` when given.
fn runtime(temp: Option<&str>) -> DfResult<Arc<RuntimeEnv>> {
    let mut b = RuntimeEnvBuilder::new().with_object_store_registry(Arc::new(EnvStores::default()));
    if let Some(t) = temp {
        b = b.with_temp_file_path(t);
    }
    b.build_arc()
}

/// How `stmon cluster scheduler` runs.
#[derive(Debug, Clone)]
pub struct SchedulerOptions {
    /// Where the scheduler listens (gRPC for clients and executors, and
    /// its REST API under `/api/`).
    pub bind: SocketAddr,
    /// The host name executors and clients use to reach it.
    pub external_host: String,
    /// An executor that sent no heartbeat for this long is taken as dead and
    /// its tasks are run again elsewhere.
    pub executor_timeout: Duration,
}

/// Runs Ballista's scheduler with stmon's codec until it stops.
pub async fn run_scheduler(o: &SchedulerOptions) -> Result<(), Error> {
    let fail = |e: ballista_core::error::BallistaError| Error::Process {
        process: "scheduler",
        message: e.to_string(),
    };
    let mut config = ballista_scheduler::config::SchedulerConfig::default();
    config.bind_host = o.bind.ip().to_string();
    config.bind_port = o.bind.port();
    config.external_host = o.external_host.clone();
    config.executor_timeout_seconds = o.executor_timeout.as_secs().max(1);
    config.no_executors_grace_period_seconds = config.executor_timeout_seconds;
    config.expire_dead_executor_interval_seconds =
        (config.executor_timeout_seconds / 4).clamp(1, 15);
    config.override_logical_codec = Some(Arc::new(StmonCodec::default()));
    config.override_session_builder = Some(Arc::new(|c: SessionConfig| {
        let base = ballista_core::utils::default_session_builder(c)?;
        Ok(SessionStateBuilder::new_from_existing(base)
            .with_runtime_env(runtime(None)?)
            .build())
    }));
    let cluster = ballista_scheduler::cluster::BallistaCluster::new_from_config(&config)
        .await
        .map_err(fail)?;
    ballista_scheduler::scheduler_process::start_server(cluster, o.bind, Arc::new(config))
        .await
        .map_err(fail)
}

/// How `stmon cluster executor` runs.
#[derive(Debug, Clone)]
pub struct ExecutorOptions {
    pub scheduler_host: String,
    pub scheduler_port: u16,
    /// Where the executor serves its results (Arrow Flight), and the host
    /// name others reach it by.
    pub bind_host: String,
    pub external_host: Option<String>,
    pub flight_port: u16,
    pub grpc_port: u16,
    /// Tasks run at once (default: the machine's cores).
    pub concurrent_tasks: Option<usize>,
    /// Bytes the executor's tasks may hold before they spill (default:
    /// Ballista's, a share of the machine's memory).
    pub memory_limit: Option<u64>,
    /// Shuffle files and spills.
    pub work_dir: Option<String>,
    pub heartbeat: Duration,
}

/// Runs Ballista's executor with stmon's codec and object stores until it
/// stops.
pub async fn run_executor(o: &ExecutorOptions) -> Result<(), Error> {
    let mut config = ballista_executor::executor_process::ExecutorProcessConfig {
        bind_host: o.bind_host.clone(),
        external_host: o.external_host.clone(),
        port: o.flight_port,
        grpc_port: o.grpc_port,
        scheduler_host: o.scheduler_host.clone(),
        scheduler_port: o.scheduler_port,
        scheduler_connect_timeout_seconds: 30,
        work_dir: o.work_dir.clone(),
        memory_pool_size: o.memory_limit,
        executor_heartbeat_interval_seconds: o.heartbeat.as_secs().max(1),
        print_thread_info: false,
        override_logical_codec: Some(Arc::new(StmonCodec::default())),
        ..Default::default()
    };
    if let Some(n) = o.concurrent_tasks {
        config.vcores = n.max(1);
    }
    let temp = o.work_dir.clone();
    config.override_runtime_producer =
        Some(Arc::new(move |_: &SessionConfig| runtime(temp.as_deref())));
    ballista_executor::executor_process::start_executor_process(Arc::new(config))
        .await
        .map_err(|e| Error::Process {
            process: "executor",
            message: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, RecordBatch, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use stmon_warehouse::SnapshotFile;

    fn roundtrip(t: Arc<dyn TableProvider>) -> Arc<dyn TableProvider> {
        let codec = StmonCodec::default();
        let name = TableReference::bare("t");
        let mut buf = Vec::new();
        codec
            .try_encode_table_provider(&name, t.clone(), &mut buf)
            .unwrap();
        let task = TaskContext::default();
        codec
            .try_decode_table_provider(&buf, &name, t.schema(), &task)
            .unwrap()
    }

    /// A snapshot travels as its file list and partition values, the
    /// reference tables as their rows: what the scheduler decodes is what
    /// the driver registered.
    #[test]
    fn the_codec_ships_snapshots_and_reference_tables() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("v", DataType::Int64, true),
            Field::new("province", DataType::Utf8, true),
        ]));
        let spec = SnapshotSpec {
            table: "s3://b/wh/staging/enterprise_rd/".into(),
            version: 7,
            store: "s3://b/".into(),
            partition_columns: vec!["province".into()],
            files: vec![
                SnapshotFile {
                    path: "wh/staging/enterprise_rd/province=33/part-0.parquet".into(),
                    size: 1234,
                    partition_values: vec![Some("33".into())],
                },
                SnapshotFile {
                    path: "wh/staging/enterprise_rd/province=__null/part-1.parquet".into(),
                    size: 99,
                    partition_values: vec![None],
                },
            ],
        };
        let sent = Arc::new(SnapshotTable::new(spec.clone(), schema.clone()).unwrap());
        let got = roundtrip(sent);
        let got = got
            .downcast_ref::<SnapshotTable>()
            .expect("a snapshot table");
        assert_eq!(got.spec(), &spec);
        assert_eq!(got.schema(), schema);

        let names = Arc::new(Schema::new(vec![
            Field::new("code", DataType::Utf8, false),
            Field::new("level", DataType::Int64, false),
        ]));
        let batch = RecordBatch::try_new(
            names.clone(),
            vec![
                Arc::new(StringArray::from(vec!["330600", "330602"])),
                Arc::new(Int64Array::from(vec![2, 3])),
            ],
        )
        .unwrap();
        let sent = Arc::new(MemTable::try_new(names, vec![vec![batch.clone()]]).unwrap());
        let got = roundtrip(sent);
        let got = got.downcast_ref::<MemTable>().expect("an in-memory table");
        let rows = got.batches[0].try_read().unwrap().clone();
        assert_eq!(rows, vec![batch]);
    }

    #[tokio::test]
    async fn an_engine_address_is_checked_before_use() {
        let e = BallistaEngine::connect("spark://h:1").await.unwrap_err();
        assert!(e.to_string().contains("unknown scheme spark"), "{e}");
        let e = BallistaEngine::connect("ballista://").await.unwrap_err();
        assert!(e.to_string().contains("no host"), "{e}");
        // A port nothing listens on: bound, then closed.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let e = BallistaEngine::connect(&format!("ballista://127.0.0.1:{port}"))
            .await
            .unwrap_err();
        assert!(
            e.to_string().starts_with(&format!(
                "no Ballista scheduler answers at 127.0.0.1:{port}"
            )),
            "{e}"
        );
    }
}
