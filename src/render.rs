//! What the commands print: the reports of a batch, a progress matrix, the
//! ranking tables, freshness, and the progress bars of long work. Shared by
//! the commands that show the same things (`stmon ingest` and `stmon run`
//! print the same batch report), so that no command module imports another.

use comfy_table::{presets::UTF8_FULL_CONDENSED, Cell, CellAlignment, Color, Table};
use indicatif::{ProgressBar, ProgressStyle};
use stmon_pipeline::{freshness, Severity};
use stmon_reports::assessment::Assessment;
use stmon_reports::progress::{self, Light, ProgressRow};
use stmon_warehouse::{BatchReport, FileStatus, Progress, Warehouse};

/// The bar of work counted in bytes (ingest).
pub const BYTES_BAR: &str = "{spinner} [{elapsed_precise}] {bar:30} {bytes}/{total_bytes} {msg}";

/// Moves an ingest's bar along.
pub fn ingest_progress(bar: &ProgressBar, p: Progress<'_>) {
    match p {
        Progress::Start { bytes, .. } => bar.set_length(bytes),
        Progress::File { path } => bar.set_message(path.display().to_string()),
        Progress::Bytes(b) => bar.inc(b),
        Progress::Rows(_) => bar.tick(),
        Progress::Stage(s) => bar.set_message(s.to_string()),
    }
}

/// A progress bar on standard error when it is a terminal, hidden otherwise.
pub fn bar(terminal: bool, template: &str) -> ProgressBar {
    let bar = ProgressBar::hidden();
    if terminal {
        bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
    }
    bar.set_style(ProgressStyle::with_template(template).expect("valid template"));
    bar
}

/// How an incremental model was built, for a person: "" when whole.
pub fn partitions_note(partitions: Option<usize>) -> String {
    match partitions {
        None => String::new(),
        Some(0) => "  (incremental: no partition changed)".into(),
        Some(1) => "  (incremental: 1 partition rebuilt)".into(),
        Some(n) => format!("  (incremental: {n} partitions rebuilt)"),
    }
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
    let skipped: Vec<_> = r
        .files
        .iter()
        .filter(|f| f.status == FileStatus::Skipped)
        .collect();
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
    let n = r
        .files
        .iter()
        .filter(|f| f.status != FileStatus::Skipped)
        .count();
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
        .filter(|f| matches!(f.status, FileStatus::Rejected | FileStatus::Unreadable))
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

/// The progress matrix: division × indicator, actual and completion with its light.
pub fn print_matrix(rows: &[ProgressRow], year: i32, month: u32) {
    let mut divisions: Vec<(String, String)> = Vec::new();
    let mut indicators: Vec<(String, String)> = Vec::new();
    for r in rows {
        if !divisions.iter().any(|d| d.0 == r.division_code) {
            divisions.push((r.division_code.clone(), r.division_name.clone()));
        }
        if !indicators.iter().any(|i| i.0 == r.indicator_id) {
            indicators.push((r.indicator_id.clone(), r.label.clone()));
        }
    }
    println!(
        "\n{year} progress as of {year}-{month:02} (time progress {:.0}%): actual / completion, ● green ◐ yellow ○ red, – no value",
        f64::from(month) / 12.0 * 100.0
    );
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    let mut header = vec![Cell::new("indicator")];
    header.extend(
        divisions
            .iter()
            .map(|d| Cell::new(format!("{}\n{}", d.1, d.0))),
    );
    t.set_header(header);
    for (id, label) in &indicators {
        let mut line = vec![Cell::new(format!("{label}\n{id}"))];
        for (code, _) in &divisions {
            let cell = match rows
                .iter()
                .find(|r| &r.division_code == code && &r.indicator_id == id)
            {
                None => Cell::new(""),
                Some(r) => match (r.actual, r.completion, r.status) {
                    (Some(a), Some(c), Some(s)) => {
                        let (mark, color) = match s {
                            Light::Green => ("●", Color::Green),
                            Light::Yellow => ("◐", Color::Yellow),
                            Light::Red => ("○", Color::Red),
                        };
                        // `*`: the value carries a note (what it covers, or
                        // that it is 0 because nothing was sent), listed below.
                        let note = if r.reason.is_some() { "*" } else { "" };
                        Cell::new(format!(
                            "{}{note}\n{mark} {:.0}%",
                            progress::display(a, r.unit.as_deref()),
                            c * 100.0
                        ))
                        .fg(color)
                    }
                    _ => Cell::new("–"),
                },
            };
            line.push(cell.set_alignment(CellAlignment::Right));
        }
        t.add_row(line);
    }
    println!("{t}");
    let notes: Vec<&ProgressRow> = rows.iter().filter(|r| r.reason.is_some()).collect();
    if !notes.is_empty() {
        println!("notes (* and –):");
        for r in notes {
            println!(
                "  {} {} {}: {}",
                r.division_code,
                r.division_name,
                r.indicator_id,
                r.reason.as_deref().unwrap_or_default()
            );
        }
    }
}

/// An assessment's ranking tables, as committees read them.
pub fn print_assessment(a: &Assessment) {
    let p = &a.provenance;
    for t in &a.tables {
        println!(
            "\n{} — scheme {} (sha256 {}…), {} @ version {}",
            t.title,
            p.scheme_name,
            &p.scheme_hash[..12],
            p.source_table,
            p.source_version
        );
        let keep: Vec<usize> = t
            .columns
            .iter()
            .enumerate()
            .filter(|(_, c)| {
                [
                    "rank",
                    "unit_id",
                    "unit_name",
                    "group",
                    "score",
                    "change_score",
                    "grade",
                    "previous_rank",
                    "rank_change",
                    "held_rank",
                    "published_rank",
                    "strongest",
                    "weakest",
                    "mc_median_rank",
                    "mc_p05_rank",
                    "mc_p95_rank",
                ]
                .contains(&c.0.as_str())
            })
            .map(|(i, _)| i)
            .collect();
        let mut table = Table::new();
        table.load_preset(UTF8_FULL_CONDENSED);
        table.set_header(keep.iter().map(|&i| t.columns[i].1.clone()));
        for r in &t.rows {
            table.add_row(keep.iter().map(|&i| r[i].text()));
        }
        println!("{table}");
    }
}

/// The freshness step's summary and its late or missing pairs (at most 30).
pub fn print_freshness(day: chrono::NaiveDate, rows: &[freshness::Row], path: &std::path::Path) {
    let late: Vec<&freshness::Row> = rows.iter().filter(|r| r.is_late()).collect();
    let fails = late.iter().filter(|r| r.severity == Severity::Fail).count();
    println!(
        "freshness on {day}: {} form × county pair(s), {} late or missing ({fails} under a fail rule); all in {}",
        rows.len(),
        late.len(),
        path.display()
    );
    if !late.is_empty() {
        let mut t = comfy_table::Table::new();
        t.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
        t.set_header([
            "form",
            "county",
            "latest period",
            "latest submitted",
            "due period",
            "status",
            "days overdue",
            "rule",
        ]);
        for r in late.iter().take(30) {
            t.add_row([
                r.form.clone(),
                format!("{} {}", r.county_code, r.county_name),
                r.latest_period.clone().unwrap_or_else(|| "–".into()),
                r.latest_submitted_at
                    .clone()
                    .unwrap_or_else(|| "never".into()),
                r.expected_period.clone().unwrap_or_else(|| "–".into()),
                r.status.to_string(),
                r.days_overdue.map(|d| d.to_string()).unwrap_or_default(),
                r.severity.as_str().to_string(),
            ]);
        }
        println!("{t}");
        if late.len() > 30 {
            println!("… {} more in {}", late.len() - 30, path.display());
        }
    }
}

/// An error and its causes, `a: b: c`, each cause said once: a cause whose
/// text the message already holds (object_store's and delta-rs's errors
/// print their source themselves) is left out.
pub fn chain(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

/// The line a review prints.
pub fn review_summary(s: &stmon_review::Summary) -> String {
    if s.batches.is_empty() {
        return format!(
            "review: nothing new to review; {} open quer{} ({} high)",
            s.open,
            if s.open == 1 { "y" } else { "ies" },
            s.open_high
        );
    }
    let units: Vec<String> = s.units.iter().map(|(f, n)| format!("{f} {n}")).collect();
    let closed: Vec<String> = s.closed.iter().map(|(k, n)| format!("{n} {k}")).collect();
    let unmatched = if s.unmatched.is_empty() {
        String::new()
    } else {
        format!(
            "\n  {} answer(s) name no query: {}",
            s.unmatched.len(),
            s.unmatched
                .iter()
                .take(10)
                .cloned()
                .collect::<Vec<_>>()
                .join("; ")
        )
    };
    format!(
        "review: {} batch(es), units reviewed: {}; {} quer{} opened ({} high), closed: {}; {} open ({} high){unmatched}",
        s.batches.len(),
        units.join(", "),
        s.opened,
        if s.opened == 1 { "y" } else { "ies" },
        s.opened_high,
        if closed.is_empty() { "none".to_string() } else { closed.join(", ") },
        s.open,
        s.open_high
    )
}

/// A table of queries, as `stmon review list` prints it.
pub fn review_queries(rows: &[stmon_review::Query], catalog: &stmon_schema::Catalog) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header([
        "score", "status", "form", "unit", "name", "county", "period", "column", "reported",
        "expected", "why",
    ]);
    for q in rows {
        let form = catalog.form(&q.form);
        t.add_row(vec![
            Cell::new(format!("{:.4}", q.score)).set_alignment(CellAlignment::Right),
            Cell::new(q.status.as_str()),
            Cell::new(&q.form),
            Cell::new(&q.unit),
            Cell::new(q.name.as_deref().unwrap_or("")),
            Cell::new(q.division.as_deref().unwrap_or("")),
            Cell::new(&q.period),
            Cell::new(&q.column),
            Cell::new(format!("{:.2}", q.reported)).set_alignment(CellAlignment::Right),
            Cell::new(format!("{:.2}", q.expected)).set_alignment(CellAlignment::Right),
            Cell::new(q.why_zh(form)),
        ]);
    }
    t
}
