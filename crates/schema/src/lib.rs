//! `stmon-schema`: the submission forms and the division table, read from data.
//!
//! Each form of the contract lives in `schemas/forms/<form>.yaml` (columns,
//! Chinese labels, types, units, key, cross-field rules); the division table in
//! `schemas/divisions.csv`. Adding a column to a form is a YAML change: nothing
//! in code names a form's columns.
//!
//! ```
//! let forms = stmon_schema::Catalog::load(concat!(env!("CARGO_MANIFEST_DIR"), "/../../schemas")).unwrap();
//! let rd = forms.form("enterprise_rd").unwrap();
//! assert_eq!(rd.key, ["credit_code", "period"]);
//! // Headers match by English name (any case) or NFKC-normalised Chinese label.
//! assert_eq!(rd.column_for_header("其中：基础研究经费").unwrap().name, "basic_research");
//! assert_eq!(rd.column_for_header("CREDIT_CODE").unwrap().name, "credit_code");
//! ```

mod divisions;
mod form;
pub mod review;

pub use divisions::{Division, DivisionLookup, Divisions};
pub use form::{
    listed, Catalog, Column, ColumnType, EnumValue, Form, Frequency, HeaderMatch, PruneBy, Rule,
    META_COLUMNS,
};

use std::path::PathBuf;

/// Errors in the schema files themselves (not in submissions).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Headers and labels are compared after Unicode NFKC normalisation and trimming,
/// so that full-width `（R&D）` and `其中：` match their ASCII forms; English
/// names ignore letter case.
pub fn normalize_label(s: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    let n: String = s.trim().trim_start_matches('\u{feff}').nfkc().collect();
    n.trim().to_lowercase()
}
