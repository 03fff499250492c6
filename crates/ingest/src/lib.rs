//! `stmon-ingest`: reads submission files, recognises their form, types and
//! checks every row, and hands over Arrow batches of accepted rows plus a
//! diagnostic for every rejected row — the good rows of a file load even when
//! some rows are bad.
//!
//! Bad input is data, not an error: [`ingest_file`] returns `Err` only when a
//! file cannot be read at all. Memory stays bounded: rows stream from the file
//! and leave in chunks of `chunk_rows`.
//!
//! ```
//! use stmon_ingest::{probe, ingest_file, Options, Sink, Diagnostic};
//! # let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("economy.csv");
//! std::fs::write(&path, "报告期,区县代码,地区生产总值,高新技术产业投资,填报时间\n\
//!     2023-Q1,330602,\" 1,234.50 \",10,2023-04-10 09:00\n\
//!     2023-Q1,999999,1,1,2023-04-10 09:00\n").unwrap();
//! let catalog = stmon_schema::Catalog::load(concat!(env!("CARGO_MANIFEST_DIR"), "/../../schemas")).unwrap();
//! struct Count(usize, Vec<Diagnostic>);
//! impl Sink for Count {
//!     fn rows(&mut self, _: &stmon_schema::Form, b: arrow::record_batch::RecordBatch) -> Result<(), String> { self.0 += b.num_rows(); Ok(()) }
//!     fn diagnostic(&mut self, d: Diagnostic) -> Result<(), String> { self.1.push(d); Ok(()) }
//! }
//! let mut sink = Count(0, vec![]);
//! let out = ingest_file(&path, &probe(&path).unwrap(), &catalog, &Options::new("b1"), &mut sink).unwrap();
//! assert_eq!((out.form.as_deref(), out.accepted, out.rejected), (Some("county_economy"), 1, 1));
//! assert_eq!(sink.1[0].row, Some(3));
//! assert_eq!(sink.1[0].reason, "unknown county code 999999 (not in the division table)");
//! ```

mod arrow_rows;
mod csv_rows;
mod limits;
mod source;
mod validate;
mod xlsx;

#[cfg(test)]
mod fuzz_test;
#[cfg(test)]
mod hostile_test;
#[cfg(test)]
mod row_numbers_test;

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use stmon_core::Cell;
use stmon_schema::{Catalog, Form};

pub use arrow_rows::{
    arrow_type, raw_schema, Provenance, Row, DECIMAL_PRECISION, DECIMAL_SCALE, META_COLUMNS,
};
pub use limits::{Limits, TooLarge};
pub use source::{
    discover, probe, probe_all, CachedProbe, Encoding, FileKind, Probe, ProbeCache, Stamp,
};
pub use validate::{Checked, Problem, Validator, Value};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read {path}: {reason}")]
    Unreadable { path: PathBuf, reason: String },
    #[error("{path}: stopped: {reason}")]
    Sink { path: PathBuf, reason: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Severity of a diagnostic: rejections go to the quarantine, warnings to the audit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Rejected,
    Warning,
}

/// A rejected row (or file) or a warning, with everything a person needs to find it.
#[derive(Debug, Clone, PartialEq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub file: String,
    pub sha256: String,
    pub form: Option<String>,
    /// Row as a person sees it (header = 1); `None` for the whole file.
    pub row: Option<u64>,
    pub column: Option<String>,
    pub value: Option<String>,
    pub reason: String,
}

impl std::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(r) = self.row {
            write!(f, ":{r}")?;
        }
        if let Some(c) = &self.column {
            write!(f, " [{c}]")?;
        }
        if let Some(v) = &self.value {
            write!(f, " '{v}'")?;
        }
        write!(f, ": {}", self.reason)
    }
}

/// Receives what ingest produces; a sink error stops the file.
pub trait Sink {
    fn rows(&mut self, form: &Form, batch: arrow::record_batch::RecordBatch) -> Result<(), String>;
    fn diagnostic(&mut self, d: Diagnostic) -> Result<(), String>;
}

#[derive(Debug, Clone)]
pub struct Options {
    /// Read every file as this form instead of recognising it (`--form`).
    pub form: Option<String>,
    pub chunk_rows: usize,
    pub batch_id: String,
    pub ingested_at: DateTime<Utc>,
    /// What one file may hold before it is rejected whole.
    pub limits: Limits,
}

impl Options {
    pub fn new(batch_id: &str) -> Self {
        Options {
            form: None,
            chunk_rows: 16_384,
            batch_id: batch_id.to_string(),
            ingested_at: Utc::now(),
            limits: Limits::default(),
        }
    }
}

/// What became of one file.
#[derive(Debug, Clone, Default)]
pub struct FileOutcome {
    pub form: Option<String>,
    pub rows_read: u64,
    pub accepted: u64,
    pub rejected: u64,
    pub warnings: u64,
    /// Set when the whole file was rejected (missing columns, unknown form,
    /// a limit of [`Limits`]). Rows it had yielded before are then not
    /// `accepted`: a reader keeps no row of a file rejected whole.
    pub file_rejected: Option<String>,
}

/// Reads one file to the end, sending accepted rows and diagnostics to `sink`.
pub fn ingest_file(
    path: &Path,
    probe: &Probe,
    catalog: &Catalog,
    opts: &Options,
    sink: &mut dyn Sink,
) -> Result<FileOutcome> {
    let display = path.display().to_string();
    let kind = FileKind::of(path).ok_or_else(|| Error::Unreadable {
        path: path.into(),
        reason: "not a .csv or .xlsx file".into(),
    })?;
    let mut out = FileOutcome::default();
    let diag = |severity, form: Option<&Form>, row, p: Problem| Diagnostic {
        severity,
        file: display.clone(),
        sha256: probe.sha256.clone(),
        form: form.map(|f| f.name.clone()),
        row,
        column: p.column,
        value: p.value,
        reason: p.reason,
    };
    let mut state: Option<FileState> = None;
    let mut sink_err: Option<String> = None;
    let mut on_row = |row: u64, cells: Vec<Cell>| -> std::result::Result<bool, String> {
        let Some(st) = state.as_mut() else {
            let headers: Vec<String> = cells
                .iter()
                .map(|c| c.display().trim().to_string())
                .collect();
            let recognised = match &opts.form {
                Some(f) => catalog.against(f, &headers),
                None => catalog.recognise(&headers),
            };
            match recognised {
                Ok((form, m)) => {
                    out.form = Some(form.name.clone());
                    if !m.extra.is_empty() {
                        out.warnings += 1;
                        let p = Problem {
                            column: None,
                            value: None,
                            reason: format!(
                                "unknown columns kept in raw._extra: {}",
                                stmon_schema::listed(&m.extra)
                            ),
                        };
                        if let Err(e) =
                            sink.diagnostic(diag(Severity::Warning, Some(form), None, p))
                        {
                            sink_err = Some(e);
                            return Ok(false);
                        }
                    }
                    state = Some(FileState::new(
                        form, catalog, m, headers, &display, probe, opts,
                    ));
                    return Ok(true);
                }
                Err(reason) => {
                    out.file_rejected = Some(reason.clone());
                    let form = opts.form.as_deref().and_then(|f| catalog.form(f));
                    let p = Problem {
                        column: None,
                        value: None,
                        reason,
                    };
                    if let Err(e) = sink.diagnostic(diag(Severity::Rejected, form, None, p)) {
                        sink_err = Some(e);
                    }
                    return Ok(false);
                }
            }
        };
        out.rows_read += 1;
        let checked = st.validator.check(&cells);
        for w in checked.warnings.iter().cloned() {
            out.warnings += 1;
            if let Err(e) = sink.diagnostic(diag(Severity::Warning, Some(st.form), Some(row), w)) {
                sink_err = Some(e);
                return Ok(false);
            }
        }
        if checked.problems.is_empty() {
            out.accepted += 1;
            let hash = row_hash(&checked.values);
            let extra = st.extra_json(&cells);
            st.rows.push(Row {
                values: checked.values,
                extra,
                hash,
                row_number: row,
            });
            if st.rows.len() >= opts.chunk_rows {
                if let Err(e) = st.flush(sink) {
                    sink_err = Some(e);
                    return Ok(false);
                }
            }
        } else {
            out.rejected += 1;
            for p in checked.problems {
                if let Err(e) =
                    sink.diagnostic(diag(Severity::Rejected, Some(st.form), Some(row), p))
                {
                    sink_err = Some(e);
                    return Ok(false);
                }
            }
        }
        Ok(true)
    };
    let read = match kind {
        FileKind::Csv => csv_rows::for_each_row(path, probe.encoding, &opts.limits, &mut on_row),
        FileKind::Xlsx => xlsx::for_each_row(path, &opts.limits, &mut on_row),
    };
    if let Some(reason) = sink_err {
        return Err(Error::Sink {
            path: path.into(),
            reason,
        });
    }
    // The one diagnostic of a file rejected whole, after its rows were read.
    let mut reject_file = |form: Option<&Form>, reason: String| {
        let p = Problem {
            column: None,
            value: None,
            reason,
        };
        sink.diagnostic(diag(Severity::Rejected, form, None, p))
            .map_err(|reason| Error::Sink {
                path: path.into(),
                reason,
            })
    };
    match read {
        Ok(()) => {}
        Err(limits::ReadError::Broken(reason)) => {
            return Err(Error::Unreadable {
                path: path.into(),
                reason,
            })
        }
        Err(limits::ReadError::TooLarge(t)) => {
            // Rejected whole: rows already handed to the sink stay hidden with
            // the file (readers see only a loaded file's rows); the rest are
            // dropped.
            let reason = t.to_string();
            let form = state.as_ref().map(|st| st.form);
            out.file_rejected = Some(reason.clone());
            out.rejected += out.accepted;
            out.accepted = 0;
            reject_file(form, reason)?;
            return Ok(out);
        }
    }
    match state {
        Some(mut st) => st.flush(sink).map_err(|reason| Error::Sink {
            path: path.into(),
            reason,
        })?,
        None if out.file_rejected.is_none() => {
            let reason = "the file has no header row".to_string();
            out.file_rejected = Some(reason.clone());
            reject_file(None, reason)?;
        }
        None => {}
    }
    Ok(out)
}

struct FileState<'a> {
    form: &'a Form,
    validator: Validator<'a>,
    schema: arrow::datatypes::SchemaRef,
    extra_cols: Vec<(usize, String)>,
    rows: Vec<Row>,
    prov: Provenance,
}

impl<'a> FileState<'a> {
    fn new(
        form: &'a Form,
        catalog: &'a Catalog,
        m: stmon_schema::HeaderMatch,
        headers: Vec<String>,
        file: &str,
        probe: &Probe,
        opts: &Options,
    ) -> Self {
        let extra_cols = m
            .mapping
            .iter()
            .enumerate()
            .filter(|(i, c)| c.is_none() && !headers[*i].is_empty())
            .map(|(i, _)| (i, headers[i].clone()))
            .collect();
        FileState {
            form,
            validator: Validator::new(form, &catalog.divisions, &m),
            schema: raw_schema(form),
            extra_cols,
            rows: Vec::with_capacity(opts.chunk_rows.min(65_536)),
            prov: Provenance {
                batch_id: opts.batch_id.clone(),
                source_file: file.to_string(),
                sha256: probe.sha256.clone(),
                ingested_at: opts.ingested_at,
            },
        }
    }

    /// Unknown extra columns are kept, as a JSON object, in `_extra`.
    fn extra_json(&self, cells: &[Cell]) -> Option<String> {
        if self.extra_cols.is_empty() {
            return None;
        }
        let map: serde_json::Map<String, serde_json::Value> = self
            .extra_cols
            .iter()
            .map(|(i, h)| {
                (
                    h.clone(),
                    serde_json::Value::String(cells.get(*i).map(Cell::display).unwrap_or_default()),
                )
            })
            .collect();
        Some(serde_json::Value::Object(map).to_string())
    }

    fn flush(&mut self, sink: &mut dyn Sink) -> std::result::Result<(), String> {
        if self.rows.is_empty() {
            return Ok(());
        }
        let batch = arrow_rows::to_batch(self.form, &self.schema, &self.rows, &self.prov)
            .map_err(|e| e.to_string())?;
        self.rows.clear();
        sink.rows(self.form, batch)
    }
}

/// A short content hash of a row's typed values: rows with the same key and
/// `submitted_at` are the same submission when their hashes agree.
///
/// 64 bits (16 hex digits) of a sha256: hashes are only ever compared within
/// one key's versions at one `submitted_at`, where two different rows agree
/// with a chance of 2⁻⁶⁴. It is a third of `raw.enterprise_rd` on disk at
/// 128 bits (203 of 475 MiB nationally), so the width is not free. Tables
/// written before kept 32 digits; readers compare the first 16
/// ([`ROW_HASH_DIGITS`]), which are the same for both.
pub fn row_hash(values: &[Value]) -> String {
    let mut h = Sha256::new();
    for v in values {
        h.update(v.canonical().as_bytes());
        h.update([0x1f]);
    }
    hex::encode(&h.finalize()[..ROW_HASH_DIGITS / 2])
}

/// The hex digits of [`row_hash`] that readers compare.
pub const ROW_HASH_DIGITS: usize = 16;
