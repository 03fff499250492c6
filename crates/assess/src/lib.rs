//! `stmon-assess`: the year-end assessment of `assessment.md`, as a pure
//! computation over a table of indicator values (no I/O here).
//!
//! A [`scheme::Scheme`] (YAML under `pipelines/`) names for each indicator a
//! weight, a direction and a normalisation; [`method::assess`] turns values
//! per unit into scores, contributions, a total, a standard competition rank
//! on the rounded total, strongest and weakest indicators and, optionally, a
//! grade; [`montecarlo::robustness`] perturbs the weights (and optionally the
//! normalisation) with a seeded generator and reports rank intervals.

pub mod method;
pub mod montecarlo;
pub mod scheme;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {message}")]
    Scheme { path: String, message: String },
    #[error("{0}")]
    Input(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests;
