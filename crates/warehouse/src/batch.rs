//! One ingest batch, start to commit.
//!
//! ```text
//!  recover ─▶ probe files ─▶ stream rows ─▶ conflicts & ─▶ commit audit/batches
//!  (delete rows  (sha256: skip   (raw/<form>,   corrections    (one Delta commit:
//!  of batches    what a past     audit/*:       (one sorted    the batch now
//!  never         batch already   appended in    pass over the  exists for every
//!  committed)    committed)      chunks)        touched units) reader)
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Int64Array, StringArray, TimestampMicrosecondArray};
use arrow::record_batch::RecordBatch;
use chrono::{DateTime, Utc};
use datafusion::prelude::SessionContext;
use stmon_ingest::{Diagnostic, FileOutcome, Probe, Severity};
use stmon_schema::Form;
use tokio::runtime::Handle;

use crate::tables::{batches_schema, diagnostics_schema, TableId, Warehouse};
use crate::{Error, Result};

/// What to ingest.
#[derive(Debug, Clone)]
pub struct IngestRequest {
    pub paths: Vec<PathBuf>,
    /// Read every file as this form (`--form`).
    pub form: Option<String>,
    /// Rows per Arrow batch handed over by the reader.
    pub chunk_rows: usize,
    /// Rows buffered per table before a Delta append (bounds memory).
    pub commit_rows: usize,
    /// Bytes the checks after loading may hold (their sort spills to disk
    /// beyond it; see [`crate::checks`]).
    pub check_memory: usize,
    /// What one file may hold before it is rejected whole.
    pub limits: stmon_ingest::Limits,
}

impl IngestRequest {
    pub fn new(paths: Vec<PathBuf>) -> Self {
        IngestRequest {
            paths,
            form: None,
            chunk_rows: 16_384,
            commit_rows: 400_000,
            check_memory: 512 << 20,
            limits: stmon_ingest::Limits::default(),
        }
    }
}

/// The fate of one file of the batch.
#[derive(Debug, Clone)]
pub struct FileReport {
    pub path: PathBuf,
    pub sha256: String,
    pub bytes: u64,
    pub encoding: Option<String>,
    pub status: FileStatus,
    pub message: Option<String>,
    pub outcome: FileOutcome,
    pub corrected: u64,
}

/// What a batch did with a file; `as_str` is the `status` column of
/// `audit/batches`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileStatus {
    /// Read; its rows are in raw or the quarantine.
    Loaded,
    /// Rejected whole (e.g. a required column is missing).
    Rejected,
    /// Could not be read (e.g. a broken workbook); its rows do not count.
    Unreadable,
    /// Already ingested (same sha256), or the same content as another file
    /// of the batch.
    Skipped,
}

impl FileStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            FileStatus::Loaded => "loaded",
            FileStatus::Rejected => "rejected",
            FileStatus::Unreadable => "unreadable",
            FileStatus::Skipped => "skipped",
        }
    }
}

impl std::fmt::Display for FileStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Per-form totals of a batch, with the most frequent reasons for rejection.
#[derive(Debug, Clone, Default)]
pub struct FormSummary {
    pub files: u64,
    pub rows_read: u64,
    pub accepted: u64,
    pub corrected: u64,
    pub rejected: u64,
    pub warnings: u64,
    /// (column, reason) → count, most frequent first.
    pub reasons: Vec<(String, u64)>,
}

#[derive(Debug, Clone, Default)]
pub struct BatchReport {
    /// None when there was nothing new to commit.
    pub batch_id: Option<String>,
    pub files: Vec<FileReport>,
    /// Files neither CSV nor XLSX.
    pub not_submissions: Vec<PathBuf>,
    pub forms: BTreeMap<String, FormSummary>,
    /// Batches that an interrupted run left behind and this run removed.
    pub recovered: Vec<String>,
    /// Bytes the checks after loading spilled to disk (their memory limit was
    /// reached; see [`IngestRequest::check_memory`]).
    pub check_spilled_bytes: u64,
    /// Tables this batch compacted after its commit (see `maintain`).
    pub compacted: Vec<crate::Compaction>,
    /// Why compaction failed, if it did (the batch stays committed; the next
    /// batch that writes the table compacts it).
    pub compaction_error: Option<String>,
}

impl BatchReport {
    pub fn unreadable(&self) -> impl Iterator<Item = &FileReport> {
        self.files
            .iter()
            .filter(|f| f.status == FileStatus::Unreadable)
    }
    pub fn rejected_rows(&self) -> u64 {
        self.forms.values().map(|f| f.rejected).sum::<u64>()
            + self
                .files
                .iter()
                .filter(|f| f.status == FileStatus::Rejected)
                .count() as u64
    }
}

/// Progress events for a terminal display.
pub enum Progress<'a> {
    Start { files: usize, bytes: u64 },
    File { path: &'a std::path::Path },
    Bytes(u64),
    Rows(u64),
    Stage(&'a str),
}

fn new_batch_id(now: DateTime<Utc>) -> String {
    format!(
        "b{}-{}",
        now.format("%Y%m%dT%H%M%S%3f"),
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}

struct DeltaSink<'a> {
    wh: &'a Warehouse,
    handle: Handle,
    batch_id: String,
    commit_rows: usize,
    pending: HashMap<String, (Vec<RecordBatch>, usize)>,
    quarantine: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
    reasons: HashMap<(String, String), u64>,
    /// The tables appended to: the only ones that need upkeep afterwards.
    written: BTreeSet<TableId>,
    /// Per form, the values of its `prune_by` column among the rows read:
    /// what the night's checks may restrict their scan to.
    prune_values: HashMap<String, BTreeSet<String>>,
    progress: &'a (dyn Fn(Progress) + Sync),
}

impl DeltaSink<'_> {
    fn flush_form(&mut self, form: &str) -> Result<()> {
        if let Some((batches, _)) = self.pending.remove(form) {
            let id = TableId::new("raw", form);
            let batches = self.handle.block_on(self.wh.fit_raw(form, batches))?;
            self.handle.block_on(self.wh.append(&id, batches))?;
            self.written.insert(id);
        }
        Ok(())
    }

    fn flush_diagnostics(&mut self) -> Result<()> {
        let now = Utc::now();
        for (name, list) in [
            ("quarantine", std::mem::take(&mut self.quarantine)),
            ("warnings", std::mem::take(&mut self.warnings)),
        ] {
            if !list.is_empty() {
                let batch = diagnostics_batch(&self.batch_id, &list, now)?;
                let id = TableId::new("audit", name);
                self.handle.block_on(self.wh.append(&id, vec![batch]))?;
                self.written.insert(id);
            }
        }
        Ok(())
    }

    fn flush_all(&mut self) -> Result<()> {
        let forms: Vec<String> = self.pending.keys().cloned().collect();
        for f in forms {
            self.flush_form(&f)?;
        }
        self.flush_diagnostics()
    }
}

impl stmon_ingest::Sink for DeltaSink<'_> {
    fn rows(&mut self, form: &Form, batch: RecordBatch) -> std::result::Result<(), String> {
        (self.progress)(Progress::Rows(batch.num_rows() as u64));
        if let Some(col) = form
            .prune_by
            .as_ref()
            .and_then(|p| batch.column_by_name(&p.name))
        {
            let values = self.prune_values.entry(form.name.clone()).or_default();
            if let Some(col) = col.as_any().downcast_ref::<StringArray>() {
                values.extend(col.iter().flatten().map(str::to_string));
            }
        }
        let entry = self.pending.entry(form.name.clone()).or_default();
        entry.1 += batch.num_rows();
        entry.0.push(batch);
        if entry.1 >= self.commit_rows {
            self.flush_form(&form.name).map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    fn diagnostic(&mut self, d: Diagnostic) -> std::result::Result<(), String> {
        let form = d.form.clone().unwrap_or_else(|| "(unrecognised)".into());
        let reason = match &d.column {
            Some(c) => format!("[{c}] {}", generalise(&d.reason)),
            None => generalise(&d.reason),
        };
        if d.severity == Severity::Rejected {
            // Whole-file rejections are reported per file, not among row reasons.
            if d.row.is_some() {
                *self.reasons.entry((form, reason)).or_default() += 1;
            }
            self.quarantine.push(d);
        } else {
            self.warnings.push(d);
        }
        if self.quarantine.len() + self.warnings.len() >= 50_000 {
            self.flush_diagnostics().map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

/// What a reader thread hands the writer.
enum Read {
    Rows(String, RecordBatch),
    Diagnostic(Diagnostic),
}

/// The sink of a reader thread: everything goes to the writer.
struct ToWriter(std::sync::mpsc::SyncSender<Read>);

/// A reader's reason when the writer stopped (the writer's own error is
/// the one reported).
const WRITER_STOPPED: &str = "the writer stopped";

impl stmon_ingest::Sink for ToWriter {
    fn rows(&mut self, form: &Form, batch: RecordBatch) -> std::result::Result<(), String> {
        self.0
            .send(Read::Rows(form.name.clone(), batch))
            .map_err(|_| WRITER_STOPPED.to_string())
    }

    fn diagnostic(&mut self, d: Diagnostic) -> std::result::Result<(), String> {
        self.0
            .send(Read::Diagnostic(d))
            .map_err(|_| WRITER_STOPPED.to_string())
    }
}

/// Reads the files on reader threads, as many as the machine has cores (at
/// most 4), each taking the next file when done with one, while this thread
/// writes what they read through `sink`. Reading and typing the cells is
/// most of an ingest's work; this puts it on every core, beside the
/// writer's Parquet encoding. Between them, a channel holds up to about
/// `commit_rows` rows, so that the readers go on while the writer commits,
/// and memory stays bounded: the rows waiting in the channel, plus those
/// waiting for their commit, plus a chunk per reader. Each file's rows
/// reach the writer in their order; files interleave. One outcome per
/// file, in the order given.
fn read_all(
    probes: &[(PathBuf, Probe)],
    catalog: &stmon_schema::Catalog,
    opts: &stmon_ingest::Options,
    sink: &mut DeltaSink<'_>,
    commit_rows: usize,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<Vec<stmon_ingest::Result<FileOutcome>>> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let readers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 4)
        .min(probes.len());
    let chunks = (commit_rows / opts.chunk_rows.max(1)).clamp(2, 64);
    let next = AtomicUsize::new(0);
    let (tx, rx) = std::sync::mpsc::sync_channel::<Read>(chunks);
    std::thread::scope(|scope| {
        let threads: Vec<_> = (0..readers)
            .map(|_| {
                let (tx, next) = (tx.clone(), &next);
                scope.spawn(move || {
                    let mut to_writer = ToWriter(tx);
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some((path, probe)) = probes.get(i) else {
                            break;
                        };
                        progress(Progress::File { path });
                        let r =
                            stmon_ingest::ingest_file(path, probe, catalog, opts, &mut to_writer);
                        progress(Progress::Bytes(probe.bytes));
                        let stopped = matches!(r, Err(stmon_ingest::Error::Sink { .. }));
                        done.push((i, r));
                        if stopped {
                            break;
                        }
                    }
                    done
                })
            })
            .collect();
        drop(tx);
        // `rx` is consumed: when the writer fails, it is dropped with the
        // loop, and the readers' next send fails and stops them.
        let mut failed = None;
        for read in rx {
            let r = match read {
                Read::Rows(form, batch) => match catalog.forms.get(&form) {
                    Some(f) => stmon_ingest::Sink::rows(sink, f, batch),
                    None => Err(format!("rows of unknown form {form}")),
                },
                Read::Diagnostic(d) => stmon_ingest::Sink::diagnostic(sink, d),
            };
            if let Err(e) = r {
                failed = Some(e);
                break;
            }
        }
        let mut outcomes: Vec<Option<stmon_ingest::Result<FileOutcome>>> =
            probes.iter().map(|_| None).collect();
        for t in threads {
            match t.join() {
                Ok(done) => done.into_iter().for_each(|(i, r)| outcomes[i] = Some(r)),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        if let Some(e) = failed {
            return Err(Error::Write(e));
        }
        Ok(outcomes
            .into_iter()
            .zip(probes)
            .map(|(r, (path, _))| {
                r.unwrap_or_else(|| {
                    Err(stmon_ingest::Error::Sink {
                        path: path.clone(),
                        reason: WRITER_STOPPED.into(),
                    })
                })
            })
            .collect())
    })
}

/// Groups reasons for the summary: quoted and bracketed values vary per row,
/// the reason does not.
fn generalise(reason: &str) -> String {
    let mut out = String::new();
    let mut quoted = false;
    let mut depth = 0;
    for c in reason.chars() {
        match c {
            '\'' if depth == 0 => {
                if !quoted {
                    out.push_str("'…'");
                }
                quoted = !quoted;
            }
            '(' if !quoted => {
                if depth == 0 {
                    out.push_str("(…)");
                }
                depth += 1;
            }
            ')' if !quoted && depth > 0 => depth -= 1,
            _ if !quoted && depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

fn diagnostics_batch(
    batch_id: &str,
    list: &[Diagnostic],
    now: DateTime<Utc>,
) -> Result<RecordBatch> {
    let s = |f: &dyn Fn(&Diagnostic) -> Option<String>| -> ArrayRef {
        Arc::new(list.iter().map(f).collect::<StringArray>())
    };
    let cols: Vec<ArrayRef> = vec![
        s(&|_| Some(batch_id.to_string())),
        s(&|d| Some(d.file.clone())),
        s(&|d| Some(d.sha256.clone())),
        s(&|d| d.form.clone()),
        Arc::new(
            list.iter()
                .map(|d| d.row.map(|r| r as i64))
                .collect::<Int64Array>(),
        ),
        s(&|d| d.column.clone()),
        s(&|d| d.value.clone()),
        s(&|d| Some(d.reason.clone())),
        Arc::new(
            TimestampMicrosecondArray::from(vec![now.timestamp_micros(); list.len()])
                .with_timezone("UTC"),
        ),
    ];
    Ok(RecordBatch::try_new(diagnostics_schema(), cols)?)
}

impl Warehouse {
    /// Ingests files as one batch. See the module docs for the protocol.
    /// A table's log is read once between the batch's writes to it (see
    /// [`Warehouse::for_one_batch`]).
    pub async fn ingest(
        &self,
        req: &IngestRequest,
        progress: &(dyn Fn(Progress) + Sync),
    ) -> Result<BatchReport> {
        self.for_one_batch().ingest_batch(req, progress).await
    }

    async fn ingest_batch(
        &self,
        req: &IngestRequest,
        progress: &(dyn Fn(Progress) + Sync),
    ) -> Result<BatchReport> {
        self.ensure_tables().await?;
        // A batch that may have left uncommitted rows marked itself in
        // flight (see `inflight`); only then is every table scanned for them.
        let open = self.open_batches().await?;
        let mut report = BatchReport::default();
        if !open.is_empty() {
            let ctx = self.session().await?;
            report.recovered = self.recover(&ctx).await?;
            self.mark_closed(&open).await?;
        }
        // The files already known are all this session reads.
        let ctx = self.session_for_forms(None, []).await?;
        let (files, skipped) = stmon_ingest::discover(&req.paths)?;
        report.not_submissions = skipped;

        let t = std::time::Instant::now();
        // A file rejected whole is tried again only when --form reinterprets it.
        let retry = if req.form.is_some() {
            "'unreadable', 'rejected'"
        } else {
            "'unreadable'"
        };
        let known: HashMap<String, String> =
            query_pairs(&ctx, &format!("select sha256, min(batch_id) from delta.audit_batches where status not in ({retry}) group by sha256")).await?;

        let started = Utc::now();
        let batch_id = new_batch_id(started);
        let mut probes: Vec<(PathBuf, Probe)> = Vec::new();
        let mut seen: HashMap<String, PathBuf> = HashMap::new();
        let cache = self.probe_cache().await;
        let (probed, kept) =
            tokio::task::block_in_place(|| stmon_ingest::probe_all(&files, &cache));
        if kept != cache {
            self.keep_probe_cache(&kept).await;
        }
        for (path, probed) in files.into_iter().zip(probed) {
            let probe = match probed {
                Ok(p) => p,
                Err(e) => {
                    report.files.push(unreadable(path, e.to_string()));
                    continue;
                }
            };
            if let Some(b) = known.get(&probe.sha256) {
                report.files.push(skipped_file(
                    path,
                    &probe,
                    format!("already ingested in batch {b}"),
                ));
            } else if let Some(first) = seen.get(&probe.sha256) {
                let msg = format!("same content as {}", first.display());
                report.files.push(skipped_file(path, &probe, msg));
            } else {
                seen.insert(probe.sha256.clone(), path.clone());
                probes.push((path, probe));
            }
        }
        if probes.is_empty() {
            return Ok(report);
        }
        tracing::info!(elapsed = ?t.elapsed(), files = probes.len(), "probed files");
        progress(Progress::Start {
            files: probes.len(),
            bytes: probes.iter().map(|(_, p)| p.bytes).sum(),
        });

        let mut opts = stmon_ingest::Options::new(&batch_id);
        opts.form = req.form.clone();
        opts.chunk_rows = req.chunk_rows;
        opts.ingested_at = started;
        opts.limits = req.limits;
        let mut sink = DeltaSink {
            wh: self,
            handle: Handle::current(),
            batch_id: batch_id.clone(),
            commit_rows: req.commit_rows,
            pending: HashMap::new(),
            quarantine: Vec::new(),
            warnings: Vec::new(),
            reasons: HashMap::new(),
            written: BTreeSet::new(),
            prune_values: HashMap::new(),
            progress,
        };
        self.mark_open(&batch_id).await?;
        let results = tokio::task::block_in_place(|| {
            read_all(
                &probes,
                &self.catalog,
                &opts,
                &mut sink,
                req.commit_rows,
                progress,
            )
        })?;
        let mut loaded: Vec<FileReport> = Vec::new();
        for ((path, probe), result) in probes.into_iter().zip(results) {
            let mut fr = FileReport {
                path,
                sha256: probe.sha256.clone(),
                bytes: probe.bytes,
                encoding: Some(probe.encoding.label().to_string()),
                status: FileStatus::Loaded,
                message: None,
                outcome: FileOutcome::default(),
                corrected: 0,
            };
            match result {
                Ok(o) => {
                    if let Some(m) = &o.file_rejected {
                        fr.status = FileStatus::Rejected;
                        fr.message = Some(m.clone());
                    }
                    fr.outcome = o;
                }
                Err(stmon_ingest::Error::Sink { reason, .. }) => return Err(Error::Write(reason)),
                Err(e) => {
                    fr.status = FileStatus::Unreadable;
                    fr.message = Some(e.to_string());
                }
            }
            loaded.push(fr);
        }
        tokio::task::block_in_place(|| sink.flush_all())?;
        tracing::info!(elapsed = ?t.elapsed(), "rows written");
        let reasons = std::mem::take(&mut sink.reasons);
        let prune_values: HashMap<String, Vec<String>> = std::mem::take(&mut sink.prune_values)
            .into_iter()
            .map(|(form, values)| (form, values.into_iter().collect()))
            .collect();
        let mut written = std::mem::take(&mut sink.written);
        drop(sink);

        // Conflicts and corrections need every version of a key: this batch's and
        // the committed ones. Both are read back from the raw tables.
        progress(Progress::Stage("checking conflicts and corrections"));
        let touched: HashSet<String> = loaded
            .iter()
            .filter_map(|f| f.outcome.form.clone())
            .collect();
        // Files whose rows readers will not see: those that failed half-way,
        // and those rejected whole after some rows (a limit of one file).
        let failed: Vec<String> = loaded
            .iter()
            .filter(|f| matches!(f.status, FileStatus::Unreadable | FileStatus::Rejected))
            .map(|f| f.sha256.clone())
            .collect();
        let ctx = self
            .session_for_forms(
                Some(req.check_memory),
                self.catalog
                    .forms
                    .values()
                    .filter(|f| touched.contains(&f.name)),
            )
            .await?;
        let mut conflicts: Vec<Diagnostic> = Vec::new();
        let mut conflict_rows: HashMap<String, u64> = HashMap::new();
        let mut corrected: HashMap<String, u64> = HashMap::new();
        let mut ytd_warnings: Vec<Diagnostic> = Vec::new();
        for form in self
            .catalog
            .forms
            .values()
            .filter(|f| touched.contains(&f.name))
        {
            let first_load =
                query_strings(&ctx, &format!("select 1 from raw.{} limit 1", form.name))
                    .await?
                    .is_empty();
            let (batch_id, failed) = (batch_id.as_str(), failed.as_slice());
            let scope = if first_load {
                crate::checks::Scope::FirstLoad { batch_id, failed }
            } else {
                crate::checks::Scope::Night {
                    batch_id,
                    failed,
                    prune: prune_values.get(&form.name).map(Vec::as_slice),
                }
            };
            let found = crate::checks::check_form(&ctx, form, scope).await?;
            if !found.superseded.is_empty() {
                let id = TableId::superseded(&form.name);
                self.append(&id, found.superseded).await?;
                written.insert(id);
            }
            tracing::info!(form = %form.name, first_load, spilled_bytes = found.spilled_bytes, elapsed = ?t.elapsed(), "checked");
            report.check_spilled_bytes += found.spilled_bytes;
            for (d, mine) in found.conflicts {
                if mine {
                    *conflict_rows.entry(d.sha256.clone()).or_default() += 1;
                }
                conflicts.push(d);
            }
            for (sha, n) in found.corrected {
                *corrected.entry(sha).or_default() += n;
            }
            ytd_warnings.extend(found.ytd_warnings);
        }
        // Units were checked in key order: restore the order of files and rows.
        let order = |d: &Diagnostic| (d.file.clone(), d.row, d.column.clone());
        conflicts.sort_by_key(order);
        ytd_warnings.sort_by_key(order);
        if !ytd_warnings.is_empty() {
            for w in &ytd_warnings {
                if let Some(f) = loaded.iter_mut().find(|f| f.sha256 == w.sha256) {
                    f.outcome.warnings += 1;
                }
            }
            let batch = diagnostics_batch(&batch_id, &ytd_warnings, Utc::now())?;
            let id = TableId::new("audit", "warnings");
            self.append(&id, vec![batch]).await?;
            written.insert(id);
        }
        let mut reasons = reasons;
        if !conflicts.is_empty() {
            for d in &conflicts {
                let key = (
                    d.form.clone().unwrap_or_default(),
                    "conflict: same key and submitted_at, different values".to_string(),
                );
                *reasons.entry(key).or_default() += 1;
            }
            let batch = diagnostics_batch(&batch_id, &conflicts, Utc::now())?;
            let id = TableId::new("audit", "quarantine");
            self.append(&id, vec![batch]).await?;
            written.insert(id);
        }
        for f in &mut loaded {
            let c = conflict_rows.get(&f.sha256).copied().unwrap_or(0);
            f.outcome.accepted -= c.min(f.outcome.accepted);
            f.outcome.rejected += c;
            f.corrected = corrected.get(&f.sha256).copied().unwrap_or(0);
        }

        tracing::info!(elapsed = ?t.elapsed(), "conflicts and corrections checked");
        // The commit point: after this append the batch exists for every reader.
        progress(Progress::Stage("committing"));
        let committed_at = Utc::now();
        let record = batches_batch(&batch_id, &loaded, started, committed_at)?;
        let id = TableId::new("audit", "batches");
        self.append(&id, vec![record]).await?;
        written.insert(id);
        // Committed: a mark left behind would only cost the next batch a scan.
        if let Err(e) = self.mark_closed(std::slice::from_ref(&batch_id)).await {
            tracing::warn!(error = %e, "the batch is committed; its in-flight mark stays");
        }

        for f in &loaded {
            if let Some(form) = &f.outcome.form {
                let s = report.forms.entry(form.clone()).or_default();
                s.files += 1;
                s.rows_read += f.outcome.rows_read;
                s.accepted += f.outcome.accepted;
                s.corrected += f.corrected;
                s.rejected += f.outcome.rejected;
                s.warnings += f.outcome.warnings;
            }
        }
        for ((form, reason), n) in reasons {
            report
                .forms
                .entry(form)
                .or_default()
                .reasons
                .push((reason, n));
        }
        for s in report.forms.values_mut() {
            s.reasons.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        }
        tracing::info!(elapsed = ?t.elapsed(), "batch committed");

        // Upkeep of the tables the batch wrote; the batch is already
        // committed, so a failure here loses nothing and is only reported.
        progress(Progress::Stage("compacting small files"));
        let written: Vec<TableId> = written.into_iter().collect();
        match self.upkeep(&written).await {
            Ok(done) => report.compacted = done,
            Err(e) => {
                tracing::warn!(error = %e, "compaction failed; the batch is committed");
                report.compaction_error = Some(e.to_string());
            }
        }
        report.files.extend(loaded);
        report.batch_id = Some(batch_id);
        Ok(report)
    }

    /// Deletes rows that interrupted batches left behind (their batch never
    /// reached `audit/batches`). Readers ignore such rows anyway; this keeps the
    /// tables clean. Returns the batch ids removed.
    ///
    /// Runs in a session where every ingest table is registered (as
    /// [`TableId::session_name`]); the tables it deletes from are stale in
    /// that session afterwards (not in the batch's kept handles: a delete
    /// drops the table's). Called only when a batch was marked in flight
    /// (see `inflight`).
    async fn recover(&self, ctx: &SessionContext) -> Result<Vec<String>> {
        let mut removed = HashSet::new();
        for id in self
            .ingest_tables()
            .into_keys()
            .filter(|id| id.name != "batches" || id.layer != "audit")
        {
            let col = if id.layer == "raw" {
                "_batch_id"
            } else {
                "batch_id"
            };
            // Distinct on both sides first: `not in` over the raw ids against
            // one audit row per file compared every row with every file of
            // its batch (6 s of a national night that found nothing new).
            let sql = format!(
                "select b from (select distinct {col} as b from {}) \
                 where b not in (select distinct batch_id from delta.audit_batches)",
                id.session_name()
            );
            let orphans = query_strings(ctx, &sql).await?;
            if orphans.is_empty() {
                continue;
            }
            let list: Vec<String> = orphans
                .iter()
                .map(|b| format!("'{}'", b.replace('\'', "''")))
                .collect();
            let table = self.table(&id).await?;
            table
                .delete()
                .with_predicate(format!("{col} IN ({})", list.join(", ")))
                .with_commit_properties(crate::tables::commit_properties())
                .await
                .map_err(|source| Error::Delta {
                    table: id.to_string(),
                    source,
                })?;
            self.forget(&id);
            removed.extend(orphans);
        }
        let mut v: Vec<String> = removed.into_iter().collect();
        v.sort();
        Ok(v)
    }
}

fn unreadable(path: PathBuf, message: String) -> FileReport {
    FileReport {
        path,
        sha256: String::new(),
        bytes: 0,
        encoding: None,
        status: FileStatus::Unreadable,
        message: Some(message),
        outcome: FileOutcome::default(),
        corrected: 0,
    }
}

fn skipped_file(path: PathBuf, probe: &Probe, message: String) -> FileReport {
    FileReport {
        path,
        sha256: probe.sha256.clone(),
        bytes: probe.bytes,
        encoding: Some(probe.encoding.label().into()),
        status: FileStatus::Skipped,
        message: Some(message),
        outcome: FileOutcome::default(),
        corrected: 0,
    }
}

fn batches_batch(
    batch_id: &str,
    files: &[FileReport],
    started: DateTime<Utc>,
    committed: DateTime<Utc>,
) -> Result<RecordBatch> {
    let s = |f: &dyn Fn(&FileReport) -> Option<String>| -> ArrayRef {
        Arc::new(files.iter().map(f).collect::<StringArray>())
    };
    let i = |f: &dyn Fn(&FileReport) -> u64| -> ArrayRef {
        Arc::new(files.iter().map(|x| f(x) as i64).collect::<Int64Array>())
    };
    let t = |v: DateTime<Utc>| -> ArrayRef {
        Arc::new(
            TimestampMicrosecondArray::from(vec![v.timestamp_micros(); files.len()])
                .with_timezone("UTC"),
        )
    };
    let cols: Vec<ArrayRef> = vec![
        s(&|_| Some(batch_id.to_string())),
        s(&|f| Some(f.path.display().to_string())),
        s(&|f| Some(f.sha256.clone())),
        i(&|f| f.bytes),
        s(&|f| f.encoding.clone()),
        s(&|f| f.outcome.form.clone()),
        s(&|f| Some(f.status.as_str().to_string())),
        s(&|f| f.message.clone()),
        i(&|f| f.outcome.rows_read),
        i(&|f| f.outcome.accepted),
        i(&|f| f.corrected),
        i(&|f| f.outcome.rejected),
        i(&|f| f.outcome.warnings),
        t(started),
        t(committed),
    ];
    Ok(RecordBatch::try_new(batches_schema(), cols)?)
}

/// Column `i` of a batch as text, whatever its Arrow type (Utf8View, integers…).
fn text(b: &RecordBatch, i: usize) -> Result<StringArray> {
    let col = arrow::compute::cast(b.column(i), &arrow::datatypes::DataType::Utf8)?;
    Ok(col
        .as_any()
        .downcast_ref::<StringArray>()
        .expect("cast to Utf8")
        .clone())
}

pub(crate) async fn query_strings(ctx: &SessionContext, sql: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for b in ctx.sql(sql).await?.collect().await? {
        let col = text(&b, 0)?;
        out.extend(
            (0..col.len())
                .filter(|i| col.is_valid(*i))
                .map(|i| col.value(i).to_string()),
        );
    }
    Ok(out)
}

async fn query_pairs(ctx: &SessionContext, sql: &str) -> Result<HashMap<String, String>> {
    let mut out = HashMap::new();
    for b in ctx.sql(sql).await?.collect().await? {
        let (k, v) = (text(&b, 0)?, text(&b, 1)?);
        for i in 0..b.num_rows() {
            out.insert(k.value(i).to_string(), v.value(i).to_string());
        }
    }
    Ok(out)
}
