//! `stmon ingest`: validate submission files and load them as one batch.

use std::path::PathBuf;
use std::process::ExitCode;

use stmon_warehouse::IngestRequest;

/// Validate submission files and load them into the warehouse as one batch.
///
/// PATHs are files or folders (read recursively; .csv and .xlsx only). Each
/// file's form is recognised from its header row. Good rows load; each bad row
/// goes to audit.quarantine with file, row, column and reason. A file already
/// ingested (same sha256) is skipped, so re-running is safe. The batch becomes
/// visible in one commit: an interrupted run leaves the warehouse as it was.
///
/// One writer at a time: ingest takes the warehouse's run lock, as `stmon
/// run` does; while another run or ingest holds it, it exits 2 naming the
/// holder, or waits with --wait.
///
/// Exit status: 0 when every file was read and recorded (rejections are
/// outcomes, not failures); 1 with --strict when any row or file was rejected;
/// 2 on an error (an unreadable file, an unreachable or locked warehouse).
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
    /// Raise or lower a limit of one file (repeatable), e.g.
    /// `--limit row_xml_bytes=16MiB`. A file past a limit is rejected whole
    /// with the limit's name. Limits and defaults: columns 16384, cell_chars
    /// 32767, record_bytes 1MiB (a CSV record), row_xml_bytes 4MiB (an XLSX
    /// row), sheet_xml_bytes 2GiB, shared_strings_bytes 512MiB,
    /// shared_strings 8000000, part_bytes 64MiB (README "Reliability").
    #[arg(long = "limit", value_name = "NAME=VALUE")]
    pub limits: Vec<String>,
    /// If another run or ingest holds the warehouse lock, wait for it (up to
    /// SECS, default 1 hour).
    #[arg(long, value_name = "SECS", num_args = 0..=1, default_missing_value = "3600")]
    pub wait: Option<u64>,
}

pub async fn run(cli: &super::Cli, args: &Args) -> anyhow::Result<ExitCode> {
    let catalog = super::load_catalog(cli)?;
    let wh = super::open_warehouse(cli, catalog)?;
    let mut req = IngestRequest::new(args.paths.clone());
    req.form = args.form.clone();
    req.commit_rows = args.commit_rows.max(1);
    req.check_memory = args.check_memory_mb.max(16) << 20;
    for l in &args.limits {
        req.limits
            .set(l)
            .map_err(|e| anyhow::anyhow!("--limit {e}"))?;
    }
    let lock = super::lock_for(&wh, "ingest", args.wait).await?;
    let bar = crate::render::bar(super::console_is_terminal(), crate::render::BYTES_BAR);
    let report = wh
        .ingest(&req, &|p| crate::render::ingest_progress(&bar, p))
        .await;
    bar.finish_and_clear();
    lock.release().await?;
    let report = report?;
    crate::render::print_report(&wh, &report, true);
    if report.unreadable().next().is_some() {
        return Ok(ExitCode::from(2));
    }
    if args.strict && report.rejected_rows() > 0 {
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}
