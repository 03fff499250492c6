//! `stmon-reports`: what people read, computed from the built warehouse.
//!
//! It owns progress against the year's targets ([`progress`]: completion,
//! time progress, the traffic light), the year-end assessment fed from
//! `marts.indicators` and written back as `marts/assessment_*`
//! ([`assessment`]; the method itself is `stmon_assess`'s), the ranking
//! reports as CSV, one XLSX workbook and one offline HTML file ([`report`]),
//! the explanation of one indicator value down to its submissions
//! ([`explain`]), and the names of every report file ([`files`]). It reads the
//! warehouse through the models' session and never builds a model, ingests,
//! decides what a nightly run skips (that is `stmon_pipeline`'s) or prints.

pub mod assessment;
pub mod docs;
pub mod explain;
pub mod files;
pub mod html;
pub mod progress;
pub mod queries;
pub mod report;

use std::path::PathBuf;

use stmon_warehouse::TableId;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A file (targets, catalogue, report) is malformed or could not be encoded.
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    /// A target names a division the division table does not know.
    #[error("targets: {indicator} has a target for {code}, which is not in the division table")]
    UnknownDivision { indicator: String, code: String },
    /// The table a report reads has never been built.
    #[error("{table} does not exist yet: run `stmon models run` first")]
    NotBuilt { table: TableId },
    /// A Delta version asked for is gone (or never was).
    #[error("{table} has no version {version} (or it was vacuumed): {source}")]
    NoVersion {
        table: TableId,
        version: i64,
        source: Box<deltalake::DeltaTableError>,
    },
    #[error(transparent)]
    Scheme(#[from] stmon_assess::Error),
    /// A scheme found nothing to assess.
    #[error("{path}: no {unit} values for {year} in {table} (version {version})")]
    NoUnits {
        path: PathBuf,
        unit: &'static str,
        year: i32,
        table: TableId,
        version: i64,
    },
    #[error("unknown indicator {indicator} (known: {})", known.join(", "))]
    UnknownIndicator {
        indicator: String,
        known: Vec<String>,
    },
    /// `explain` found no value for the unit.
    #[error(
        "no value of {indicator} for {unit} in {year} (as of month {month}); \
         is {unit} a {kind} and have the models run?"
    )]
    NoValue {
        indicator: String,
        unit: String,
        year: i32,
        month: u32,
        kind: &'static str,
    },
    /// A lineage query of `explain` failed.
    #[error("{path}: {source}")]
    Lineage { path: PathBuf, source: Box<Error> },
    #[error(transparent)]
    Models(Box<stmon_models::Error>),
    #[error(transparent)]
    Warehouse(Box<stmon_warehouse::Error>),
    #[error("query failed: {0}")]
    Query(Box<datafusion::error::DataFusionError>),
    #[error("delta: {0}")]
    Delta(Box<deltalake::DeltaTableError>),
    #[error("arrow: {0}")]
    Arrow(Box<arrow::error::ArrowError>),
}

stmon_models::boxed_from!(
    Models: stmon_models::Error,
    Warehouse: stmon_warehouse::Error,
    Query: datafusion::error::DataFusionError,
    Delta: deltalake::DeltaTableError,
    Arrow: arrow::error::ArrowError
);

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A file error with its path.
pub(crate) fn file_error(path: &std::path::Path, e: impl std::fmt::Display) -> Error {
    Error::File {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// An I/O error with its path.
pub(crate) fn io_error(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}
