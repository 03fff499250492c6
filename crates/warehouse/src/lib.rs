//! `stmon-warehouse`: the Delta Lake warehouse and its batch protocol.
//!
//! Layout (stable, documented in ARCHITECTURE.md): `<warehouse>/<layer>/<table>`,
//! each a Delta table on `object_store` — a local folder or `s3://…`.
//!
//! * `raw/<form>` — every version of every accepted row, with `_batch_id`,
//!   `_source_file`, `_source_sha256`, `_row_number`, `_row_hash`, `_extra`.
//! * `audit/quarantine` — rejected rows and files (file, sha256, row, column,
//!   raw value, reason); `audit/warnings` — accepted with a warning.
//! * `audit/batches` — one row per ingested file; **the commit point**.
//!
//! A batch counts only once its rows in `audit/batches` are committed (one
//! Delta commit). Rows that an interrupted batch left in other tables carry a
//! `_batch_id` that `audit/batches` does not know: every reader ignores them
//! (the `raw.*` and `audit.*` views filter on committed batches) and the next
//! ingest deletes them. So a crash at any moment leaves every table, as
//! readers see it, as before the batch or as after it.
//!
//! After its commit a batch compacts the tables it wrote once small files
//! pile up (see `maintain`), so a night's cost does not grow with the number
//! of nights before it.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use std::sync::Arc;
//! use stmon_warehouse::{IngestRequest, Warehouse};
//! let dir = tempfile::tempdir().unwrap();
//! let schemas = concat!(env!("CARGO_MANIFEST_DIR"), "/../../schemas");
//! let catalog = Arc::new(stmon_schema::Catalog::load(schemas).unwrap());
//! let wh = Warehouse::open(dir.path().join("wh").to_str().unwrap(), catalog).unwrap();
//! let file = dir.path().join("contracts.csv");
//! std::fs::write(&file, "contract_id,registered_on,county_code,seller_credit_code,contract_type,amount,submitted_at\n\
//!     C1,2023-03-01,330602,91330100716105852F,development,12.5,2023-03-02 09:00\n").unwrap();
//! let report = wh.ingest(&IngestRequest::new(vec![file.clone()]), &|_| {}).await.unwrap();
//! assert_eq!(report.forms["tech_contract"].accepted, 1);
//! let ctx = wh.session().await.unwrap();
//! assert_eq!(ctx.table("current.tech_contract").await.unwrap().count().await.unwrap(), 1);
//! // The same file again: recognised by its hash, nothing to do.
//! let again = wh.ingest(&IngestRequest::new(vec![file]), &|_| {}).await.unwrap();
//! assert_eq!(again.batch_id, None);
//! # });
//! ```

mod batch;
pub mod checkpoint;
mod checks;
mod engine;
pub mod hash;
mod inflight;
pub mod lock;
mod maintain;
mod probes;
pub mod resilient;
mod session;
pub mod store;
mod tables;

pub use batch::{BatchReport, FileReport, FileStatus, FormSummary, IngestRequest, Progress};
pub use engine::{Engine, RemoteEngine, SnapshotFile, SnapshotSpec, SnapshotTable};
pub use maintain::{Compaction, CHECKPOINT_EVERY, SMALL_FILES, SMALL_FILE_BYTES, TINY_FILE_BYTES};
pub use session::{
    current_from_decisions_sql, current_view_sql, in_list, plan_read_only, read_only_sql,
    split_statements, ReadOnlyError,
};
pub use stmon_ingest::Limits;
pub use tables::{
    commit_properties, table_configuration, writer_properties_for, TableId, Warehouse,
    TOMBSTONE_RETENTION,
};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("warehouse {location}: {message}")]
    Location { location: String, message: String },
    #[error("storage option {option}: {message}")]
    StorageOption { option: String, message: String },
    #[error("table {table}: {source}")]
    Delta {
        table: String,
        source: deltalake::DeltaTableError,
    },
    #[error("query failed: {0}")]
    Query(#[from] datafusion::error::DataFusionError),
    #[error(transparent)]
    Ingest(#[from] stmon_ingest::Error),
    /// Another run holds the warehouse lock.
    #[error(transparent)]
    Locked(#[from] lock::Locked),
    /// A request to the object store failed.
    #[error("{what} {path}: {source}")]
    Store {
        what: &'static str,
        path: String,
        source: object_store::Error,
    },
    #[error("{}: {source}", path.display())]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("unknown form {0}")]
    UnknownForm(String),
    #[error("table {0} does not exist; run `stmon ingest` first")]
    NoTable(TableId),
    /// Storing a batch's rows failed; the batch is not committed.
    #[error("{0}")]
    Write(String),
    /// A remote engine refused a session.
    #[error("engine {engine}: {message}")]
    Engine { engine: String, message: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
