//! `stmon-review`: the review (审核) of submissions — plausibility rules
//! declared in each form's YAML (`review:`), the queries they raise on
//! doubtful values, their scores and their life (open, confirmed,
//! corrected, superseded).
//!
//! It owns the rules' arithmetic (`rules`, pure), the reasons as codes with
//! arguments and their Chinese wording (`reason`). It never rejects or
//! changes a submitted value: a query is a question to a county office.

pub mod reason;
pub mod rules;

pub use reason::Reason;
pub mod queries;
pub mod run;

pub use queries::{Query, Status};
pub use run::{review, Options, Summary};

/// Errors of a review: each keeps the table or query it concerns.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Warehouse(Box<stmon_warehouse::Error>),
    #[error("table {table}: {source}")]
    Delta {
        table: String,
        source: deltalake::DeltaTableError,
    },
    #[error("review query failed: {0}")]
    Query(Box<datafusion::error::DataFusionError>),
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<stmon_warehouse::Error> for Error {
    fn from(e: stmon_warehouse::Error) -> Self {
        Error::Warehouse(Box::new(e))
    }
}

impl From<datafusion::error::DataFusionError> for Error {
    fn from(e: datafusion::error::DataFusionError) -> Self {
        Error::Query(Box::new(e))
    }
}
