//! `stmon ingest`: validate submission files and load them as one batch.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use stmon_warehouse::{BatchReport, IngestRequest, Progress, Warehouse};

/// Validate submission files and load them into the warehouse as one batch.
///
/// PATHs are files or folders (read recursively; .csv and .xlsx only). Each
/// file's form is recognised from its header row. Good rows load; each bad row
/// goes to audit.quarantine with file, row, column and reason. A file already
/// ingested (same sha256) is skipped, so re-running is safe. The batch becomes
/// visible in one commit: an interrupted run leaves the warehouse as it was.
///
/// Exit status: 0 when every file was read and recorded (rejections are
/// outcomes, not failures); 1 with --strict when any row or file was rejected;
/// 2 on an error (an unreadable file, an unreachable warehouse).
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Files or folders to ingest.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Read every file as this form instead of recognising it from the header.
    #[arg(long)]
    pub form: Option<String>,
    /// Exit 1 when any row or file is rejected.
    #[arg(long)]
    pub strict: bool,
    /// Rows buffered per table before a Delta append (bounds memory).
    #[arg(long, default_value_t = 400_000)]
    pub commit_rows: usize,
    /// Memory (MiB) the checks after loading (conflicts, corrections,
    /// year-to-date) may hold: they sort the versions of the units the batch
    /// touches and spill to the OS temp folder beyond this.
    #[arg(long, default_value_t = 512, value_name = "MIB")]
    pub check_memory_mb: usize,
}

pub async fn run(cli: &super::Cli, args: &Args) -> anyhow::Result<ExitCode> {
    let catalog = super::load_catalog(cli)?;
    let wh = Warehouse::open(&cli.warehouse, catalog).context("opening the warehouse")?;
    let mut req = IngestRequest::new(args.paths.clone());
    req.form = args.form.clone();
    req.commit_rows = args.commit_rows.max(1);
    req.check_memory = args.check_memory_mb.max(16) << 20;
    let bar = ProgressBar::hidden();
    if super::console_is_terminal() {
        bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
    }
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {bytes}/{total_bytes} {msg}",
        )
        .expect("valid template"),
    );
    let progress = |p: Progress| match p {
        Progress::Start { bytes, .. } => bar.set_length(bytes),
        Progress::File { path } => bar.set_message(path.display().to_string()),
        Progress::Bytes(b) => bar.inc(b),
        Progress::Rows(_) => bar.tick(),
        Progress::Stage(s) => bar.set_message(s.to_string()),
    };
    let report = wh.ingest(&req, &progress).await?;
    bar.finish_and_clear();
    print_report(&wh, &report, true);
    if report.unreadable().next().is_some() {
        return Ok(ExitCode::from(2));
    }
    if args.strict && report.rejected_rows() > 0 {
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints a batch's outcome; `list_skipped` names every file already ingested.
pub fn print_report(wh: &Warehouse, r: &BatchReport, list_skipped: bool) {
    if !r.recovered.is_empty() {
        println!(
            "recovered: removed rows of {} interrupted batch(es): {}",
            r.recovered.len(),
            r.recovered.join(", ")
        );
    }
    for p in &r.not_submissions {
        println!("not a submission (skipped): {}", p.display());
    }
    let skipped: Vec<_> = r.files.iter().filter(|f| f.status == "skipped").collect();
    for f in skipped.iter().filter(|_| list_skipped) {
        println!(
            "skipped {}: {}",
            f.path.display(),
            f.message.as_deref().unwrap_or("")
        );
    }
    let Some(batch) = &r.batch_id else {
        println!(
            "nothing new to ingest into {} ({} file(s) already there)",
            wh.root,
            skipped.len()
        );
        return;
    };
    let n = r.files.iter().filter(|f| f.status != "skipped").count();
    println!("batch {batch} committed to {}: {n} file(s)", wh.root);
    println!();
    println!(
        "{:<18} {:>6} {:>10} {:>10} {:>10} {:>9} {:>9}",
        "form", "files", "rows", "accepted", "corrected", "rejected", "warnings"
    );
    for (form, s) in &r.forms {
        println!(
            "{:<18} {:>6} {:>10} {:>10} {:>10} {:>9} {:>9}",
            form, s.files, s.rows_read, s.accepted, s.corrected, s.rejected, s.warnings
        );
    }
    let with_reasons: Vec<_> = r
        .forms
        .iter()
        .filter(|(_, s)| !s.reasons.is_empty())
        .collect();
    if !with_reasons.is_empty() {
        println!();
        println!("rejections by reason (details in audit.quarantine):");
        for (form, s) in with_reasons {
            for (reason, count) in s.reasons.iter().take(8) {
                println!("  {form:<18} {count:>7}  {reason}");
            }
            if s.reasons.len() > 8 {
                println!(
                    "  {form:<18} {:>7}  … {} more reasons",
                    "",
                    s.reasons.len() - 8
                );
            }
        }
    }
    for f in r
        .files
        .iter()
        .filter(|f| f.status == "rejected" || f.status == "unreadable")
    {
        println!();
        println!(
            "{} file {}: {}",
            f.status,
            f.path.display(),
            f.message.as_deref().unwrap_or("")
        );
    }
    if !r.compacted.is_empty() {
        println!();
    }
    for c in &r.compacted {
        println!(
            "compacted {}: {} small files into {}",
            c.table, c.files_removed, c.files_added
        );
    }
    if let Some(e) = &r.compaction_error {
        println!();
        println!(
            "warning: compaction failed (the batch is committed; the next batch retries): {e}"
        );
    }
}
