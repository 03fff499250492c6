//! The steps: each does its work through the libraries, reports through the
//! observer, and returns its outcome, its rows of the run record and a
//! one-line summary.

use std::path::PathBuf;
use std::time::Instant;

use chrono::Utc;
use stmon_models::run::{RunOptions, Status};
use stmon_models::runs::{RowStatus, RunRow};
use stmon_models::state;
use stmon_reports::assessment::{self, Assessment};
use stmon_reports::{files, progress as prog, report};

use crate::freshness as fresh;
use crate::spec::{AsOf, OnHighScore, Severity, Step};
use stmon_warehouse::{FileStatus, IngestRequest, TableId, Warehouse};

use crate::{io, Ctx, Error, Event, Outcome, Result};

pub(crate) type StepResult = Result<(Outcome, Vec<RunRow>, String)>;

pub(crate) async fn ingest(c: &Ctx<'_>) -> StepResult {
    let started = Utc::now();
    let (paths, _tmp) = inbox_paths(c.wh, &c.pipeline.inbox).await?;
    let mut req = IngestRequest::new(paths);
    req.commit_rows = c.pipeline.ingest.commit_rows.max(1);
    req.check_memory = c.pipeline.ingest.check_memory_mb.max(16) << 20;
    req.limits = c
        .pipeline
        .ingest
        .limits()
        .expect("checked when the pipeline loaded");
    let on = c.on;
    let report = c.wh.ingest(&req, &|p| on(Event::Ingesting(p))).await?;
    on(Event::Ingested(&report));
    let mut rows = Vec::new();
    for (form, s) in &report.forms {
        let mut r = c.row(
            Step::Ingest.as_str(),
            Some(form.clone()),
            RowStatus::Ok,
            started,
        );
        r.rows_in = Some(s.rows_read as i64);
        r.rows_accepted = Some(s.accepted as i64);
        r.rows_rejected = Some(s.rejected as i64);
        r.detail = Some(format!(
            "{} file(s), {} corrected, {} warning(s)",
            s.files, s.corrected, s.warnings
        ));
        rows.push(r);
    }
    for f in report
        .files
        .iter()
        .filter(|f| !matches!(f.status, FileStatus::Loaded | FileStatus::Skipped))
    {
        let mut r = c.row(
            Step::Ingest.as_str(),
            Some(f.path.display().to_string()),
            f.status.into(),
            started,
        );
        r.fingerprint = Some(f.sha256.clone());
        r.detail = f.message.clone();
        rows.push(r);
    }
    let loaded = report
        .files
        .iter()
        .filter(|f| f.status == FileStatus::Loaded)
        .count();
    let skipped = report
        .files
        .iter()
        .filter(|f| f.status == FileStatus::Skipped)
        .count();
    let unreadable = report.unreadable().count();
    let summary = match &report.batch_id {
        None => format!("nothing new ({skipped} file(s) already ingested)"),
        Some(b) => format!(
            "batch {b}: {loaded} file(s) loaded, {} rows accepted, {} rejected, {skipped} already ingested{}",
            report.forms.values().map(|s| s.accepted).sum::<u64>(),
            report.rejected_rows(),
            if unreadable > 0 {
                format!(", {unreadable} unreadable")
            } else {
                String::new()
            }
        ),
    };
    let outcome = if unreadable > 0 {
        Outcome::DqFailed
    } else {
        Outcome::Ok
    };
    Ok((outcome, rows, summary))
}

/// The prefix of the review step's count rows (`queries_opened`, …).
pub(crate) const REVIEW_COUNT: &str = "queries_";

/// The review (审核) of what the batches since the last review touched:
/// queries on doubtful values in `review/queries`. A query opened with a
/// score at the form's `high_score` makes the step data-quality-failed
/// (exit 1) unless the pipeline says `review: {on_high_score: warn}`.
pub(crate) async fn review(c: &Ctx<'_>) -> StepResult {
    let started = Utc::now();
    let opts = stmon_review::Options {
        memory: c.pipeline.review.memory_mb << 20,
        rows_memory: c.pipeline.review.rows_memory_mb << 20,
        all: false,
    };
    let s = stmon_review::review(c.wh, &opts)
        .await
        .map_err(|e| Error::Review(Box::new(e)))?;
    (c.on)(Event::Reviewed(&s));
    if !s.batches.is_empty() {
        // The query lists of the county offices, for what changed.
        let dir = files::review_lists_dir(&c.pipeline.reports);
        stmon_reports::queries::write_lists(&dir, &s.queries, &c.wh.catalog)
            .map_err(|e| Error::Reports(Box::new(e)))?;
    }
    let mut rows = Vec::new();
    for (form, units) in &s.units {
        let mut r = c.row(
            Step::Review.as_str(),
            Some(form.clone()),
            RowStatus::Ok,
            started,
        );
        r.rows_in = Some(*units as i64);
        rows.push(r);
    }
    // The counts, as rows of the run record: run_results.json's `review`
    // reads them back (a resumed run's review may be an earlier attempt's).
    let mut counts: Vec<(String, u64)> = vec![
        (format!("{REVIEW_COUNT}opened"), s.opened),
        (format!("{REVIEW_COUNT}opened_high"), s.opened_high),
    ];
    for status in stmon_review::Status::ALL.iter().filter(|x| x.is_closed()) {
        counts.push((
            format!("{REVIEW_COUNT}closed_{}", status.as_str()),
            s.closed.get(status.as_str()).copied().unwrap_or(0),
        ));
    }
    counts.push((format!("{REVIEW_COUNT}open"), s.open));
    counts.push((format!("{REVIEW_COUNT}open_high"), s.open_high));
    for (item, n) in counts {
        let mut r = c.row(Step::Review.as_str(), Some(item), RowStatus::Ok, started);
        r.rows_out = Some(n as i64);
        rows.push(r);
    }
    let closed: u64 = s.closed.values().sum();
    let summary = if s.batches.is_empty() {
        format!(
            "nothing new to review; {} open quer(ies), {} high",
            s.open, s.open_high
        )
    } else {
        format!(
            "{} batch(es): {} quer(ies) opened ({} high), {closed} closed; {} open, {} high",
            s.batches.len(),
            s.opened,
            s.opened_high,
            s.open,
            s.open_high
        )
    };
    let outcome = if s.opened_high > 0 && c.pipeline.review.on_high_score == OnHighScore::Fail {
        Outcome::DqFailed
    } else {
        Outcome::Ok
    };
    Ok((outcome, rows, summary))
}

/// The inbox's files: a local folder as is; an object-store prefix copied to
/// a temporary folder first (kept alive by the returned guard).
async fn inbox_paths(
    wh: &Warehouse,
    inbox: &str,
) -> Result<(Vec<PathBuf>, Option<tempfile::TempDir>)> {
    if !inbox.contains("://") || inbox.starts_with("file://") {
        let p = inbox.strip_prefix("file://").unwrap_or(inbox);
        return Ok((vec![PathBuf::from(p)], None));
    }
    let tmp = tempfile::tempdir().map_err(io(&std::env::temp_dir()))?;
    let n = wh
        .download_prefix(inbox, tmp.path())
        .await
        .map_err(|e| Error::Inbox {
            inbox: inbox.to_string(),
            source: Box::new(e),
        })?;
    tracing::info!(files = n, inbox, "inbox copied");
    Ok((vec![tmp.path().to_path_buf()], Some(tmp)))
}

pub(crate) async fn freshness(c: &Ctx<'_>) -> StepResult {
    let started = Utc::now();
    if c.pipeline.freshness.rules.is_empty() {
        return Ok((Outcome::Ok, Vec::new(), "no freshness rules".into()));
    }
    let day = match &c.pipeline.freshness.as_of {
        AsOf::Today => chrono::Local::now().date_naive(),
        AsOf::Date(d) => *d,
    };
    let ctx = c.wh.session().await?;
    let rows = fresh::check(&ctx, &c.wh.catalog, &c.pipeline.freshness.rules, day).await?;
    let path = files::freshness_csv(&c.pipeline.reports);
    fresh::write_csv(&rows, &path)?;
    (c.on)(Event::Freshness {
        day,
        rows: &rows,
        path: &path,
    });
    let late: Vec<&fresh::Row> = rows.iter().filter(|r| r.is_late()).collect();
    let fails = late.iter().filter(|r| r.severity == Severity::Fail).count();
    let mut out = Vec::new();
    for r in &late {
        let mut row = c.row(
            Step::Freshness.as_str(),
            Some(format!("{}/{}", r.form, r.county_code)),
            r.status.into(),
            started,
        );
        row.detail = Some(
            serde_json::json!({
                "latest_period": r.latest_period,
                "latest_submitted_at": r.latest_submitted_at,
                "expected_period": r.expected_period,
                "days_overdue": r.days_overdue,
                "severity": r.severity.as_str(),
            })
            .to_string(),
        );
        out.push(row);
    }
    let outcome = if fails > 0 {
        Outcome::DqFailed
    } else {
        Outcome::Ok
    };
    Ok((
        outcome,
        out,
        format!(
            "{} late or missing of {} ({fails} fail, {} warn) as of {day}",
            late.len(),
            rows.len(),
            late.len() - fails
        ),
    ))
}

/// "N partitions rebuilt" of an incremental model, for the run record.
fn partitions_detail(n: usize) -> String {
    match n {
        0 => "(incremental: no partition changed)".into(),
        1 => "(incremental: 1 partition rebuilt)".into(),
        n => format!("(incremental: {n} partitions rebuilt)"),
    }
}

pub(crate) async fn models(
    c: &Ctx<'_>,
    full_refresh: bool,
    engine: &stmon_warehouse::Engine,
) -> StepResult {
    let started = Utc::now();
    let opts = RunOptions {
        no_tests: true,
        incremental: !full_refresh,
        ..Default::default()
    };
    let on = c.on;
    // Only where the SQL runs changes; the writes are this process's.
    let wh = c.wh.clone().with_engine(engine.clone());
    let report = stmon_models::run::run(&wh, c.project, &opts, &|e| on(Event::Model(e))).await?;
    let mut rows = Vec::new();
    let (mut built, mut fresh, mut failed) = (0, 0, 0);
    for o in &report.models {
        let (status, detail) = match &o.status {
            Status::View => continue, // the run record lists tables
            Status::Ok => {
                built += 1;
                (RowStatus::Built, o.partitions.map(partitions_detail))
            }
            Status::UpToDate => {
                fresh += 1;
                (RowStatus::UpToDate, None)
            }
            Status::Failed(m) => {
                failed += 1;
                (RowStatus::Failed, Some(m.clone()))
            }
            Status::Skipped(m) => {
                failed += 1;
                (RowStatus::Skipped, Some(m.clone()))
            }
        };
        let mut r = c.row(
            Step::Models.as_str(),
            Some(o.id.to_string()),
            status,
            started,
        );
        r.rows_out = (status == RowStatus::Built).then_some(o.rows as i64);
        r.fingerprint = Some(o.fingerprint.clone());
        r.detail = detail;
        r.elapsed_ms = Some(o.elapsed.as_millis() as i64);
        rows.push(r);
    }
    let outcome = if failed > 0 {
        Outcome::Failed
    } else {
        Outcome::Ok
    };
    Ok((
        outcome,
        rows,
        format!("{built} built, {fresh} up to date, {failed} failed or skipped"),
    ))
}

pub(crate) async fn tests(c: &Ctx<'_>, engine: &stmon_warehouse::Engine) -> StepResult {
    let started = Utc::now();
    // The data tests' queries run where the models do.
    let wh = c.wh.clone().with_engine(engine.clone());
    let ctx = stmon_models::run::session(&wh, c.project).await?;
    let mut rows = Vec::new();
    let (mut ran, mut passed_before, mut failed) = (0, 0, 0);
    for m in c.project.tables() {
        let id = TableId::new(&m.id.layer, &m.id.name);
        let Some(fp) = state::stored_fingerprint(c.wh, &id).await? else {
            continue;
        };
        let item = m.id.to_string();
        if c.done_before(Step::Tests, &item, &fp, RowStatus::Pass) {
            passed_before += 1;
            continue;
        }
        let t = Instant::now();
        let outcomes = stmon_models::run::test_model(&ctx, m).await;
        if outcomes.is_empty() {
            continue;
        }
        ran += 1;
        let bad: Vec<_> = outcomes.iter().filter(|t| !t.passed()).collect();
        let mut r = c.row(
            Step::Tests.as_str(),
            Some(item.clone()),
            if bad.is_empty() {
                RowStatus::Pass
            } else {
                RowStatus::Fail
            },
            started,
        );
        r.fingerprint = Some(fp);
        r.rows_in = Some(outcomes.len() as i64);
        r.rows_rejected = Some(bad.len() as i64);
        r.elapsed_ms = Some(t.elapsed().as_millis() as i64);
        let mut text = String::new();
        for b in &bad {
            match &b.error {
                Some(e) => text.push_str(&format!("{}: ERROR {e}\n", b.name)),
                None => text.push_str(&format!(
                    "{}: {} failing row(s)\n{}\n",
                    b.name, b.failures, b.sample
                )),
            }
        }
        (c.on)(Event::Tested {
            model: &item,
            tests: outcomes.len(),
            failures: &text,
        });
        if !bad.is_empty() {
            failed += 1;
            r.detail = Some(text);
        }
        rows.push(r);
    }
    let outcome = if failed > 0 {
        Outcome::DqFailed
    } else {
        Outcome::Ok
    };
    Ok((
        outcome,
        rows,
        format!("{ran} model(s) tested, {failed} with failures; {passed_before} passed before on the same data"),
    ))
}

/// Progress as of the pipeline's month: the session it was read in, the
/// targets, the month, the rows and the fingerprint of what they come from
/// (the indicators' build, the targets file, the month).
pub(crate) struct Progress {
    ctx: datafusion::prelude::SessionContext,
    targets: prog::Targets,
    month: u32,
    rows: Vec<prog::ProgressRow>,
    fingerprint: String,
}

async fn progress_of(c: &Ctx<'_>) -> Result<Progress> {
    let p = c.pipeline;
    let targets = prog::Targets::load(&p.targets)?;
    let ctx = stmon_models::run::session(c.wh, c.project).await?;
    if !ctx.table_exist("marts.indicators")? {
        return Err(Error::NoIndicators);
    }
    let month = match p.progress.as_of.as_deref() {
        Some(m) if m != "latest" => {
            prog::parse_month(m, p.year).ok_or_else(|| Error::AsOf(m.to_string()))?
        }
        _ => prog::latest_month(&ctx, p.year).await?,
    };
    let rows = prog::progress(&ctx, &targets, p.year, month).await?;
    let source = state::stored_fingerprint(c.wh, &TableId::new("marts", "indicators"))
        .await?
        .unwrap_or_default();
    let fingerprint = state::sha256_hex(&[
        source.as_bytes(),
        &std::fs::read(&p.targets).map_err(io(&p.targets))?,
        month.to_string().as_bytes(),
    ]);
    Ok(Progress {
        ctx,
        targets,
        month,
        rows,
        fingerprint,
    })
}

pub(crate) async fn progress(c: &mut Ctx<'_>) -> StepResult {
    let started = Utc::now();
    let p = c.pipeline;
    if c.progress.is_none() {
        c.progress = Some(progress_of(c).await?);
    }
    let pr = c.progress.as_ref().expect("computed above");
    let (month, rows, fp) = (pr.month, &pr.rows, pr.fingerprint.clone());
    (c.on)(Event::Progress {
        rows,
        year: p.year,
        month,
    });
    let (csv, xlsx) = files::progress(&p.reports, p.year, month);
    let item = csv.display().to_string();
    let (status, summary) = if c.done_before(Step::Progress, &item, &fp, RowStatus::Written)
        && csv.is_file()
        && xlsx.is_file()
    {
        (
            RowStatus::UpToDate,
            format!("{} and .xlsx up to date", csv.display()),
        )
    } else {
        prog::write(rows, &csv, &xlsx)?;
        (
            RowStatus::Written,
            format!("written {} and {}", csv.display(), xlsx.display()),
        )
    };
    let mut r = c.row(Step::Progress.as_str(), Some(item), status, started);
    r.fingerprint = Some(fp);
    r.rows_out = Some(rows.len() as i64);
    Ok((Outcome::Ok, vec![r], summary))
}

/// The assessment's fingerprint: the scheme (with its targets) and what the
/// indicator table it read was built from.
async fn assessment_fingerprint(wh: &Warehouse, a: &Assessment) -> Result<String> {
    let (layer, name) = a
        .provenance
        .source_table
        .split_once('.')
        .unwrap_or(("marts", "indicators"));
    let source = state::stored_fingerprint(wh, &TableId::new(layer, name))
        .await?
        .unwrap_or_default();
    Ok(state::sha256_hex(&[
        a.provenance.scheme_hash.as_bytes(),
        source.as_bytes(),
        a.scheme.year.to_string().as_bytes(),
    ]))
}

async fn compute_assessments(c: &Ctx<'_>) -> Result<Vec<Assessment>> {
    let mut out = Vec::new();
    for path in &c.pipeline.schemes {
        let a = assessment::run(c.wh, path, None)
            .await
            .map_err(|e| Error::Scheme {
                path: path.clone(),
                source: Box::new(e),
            })?;
        if a.scheme.year != c.pipeline.year {
            return Err(Error::SchemeYear {
                path: path.clone(),
                scheme_year: a.scheme.year,
                year: c.pipeline.year,
            });
        }
        out.push(a);
    }
    Ok(out)
}

pub(crate) async fn assessment(c: &mut Ctx<'_>) -> StepResult {
    let started = Utc::now();
    let all = compute_assessments(c).await?;
    let mut rows = Vec::new();
    let (mut written, mut fresh) = (0, 0);
    for a in &all {
        let fp = assessment_fingerprint(c.wh, a).await?;
        let mut up_to_date = true;
        for t in &a.tables {
            let id = files::assessment_table(&t.name);
            if state::stored_fingerprint(c.wh, &id).await?.as_deref() != Some(fp.as_str()) {
                up_to_date = false;
            }
        }
        if !up_to_date {
            assessment::write_delta(c.wh, a, Some(&fp)).await?;
            written += 1;
        } else {
            fresh += 1;
        }
        (c.on)(Event::Assessed(a));
        let mut r = c.row(
            Step::Assessment.as_str(),
            Some(a.provenance.scheme_name.clone()),
            if up_to_date {
                RowStatus::UpToDate
            } else {
                RowStatus::Written
            },
            started,
        );
        r.fingerprint = Some(fp);
        r.rows_out = Some(a.results.len() as i64);
        r.detail = Some(format!(
            "{} @ version {}",
            a.provenance.source_table, a.provenance.source_version
        ));
        rows.push(r);
    }
    c.assessments = all;
    Ok((
        Outcome::Ok,
        rows,
        format!("{written} scheme(s) written, {fresh} up to date"),
    ))
}

/// The progress page (`progress-<year>-<MM>.html`) of the reports step:
/// its run record row, and how many files were written (0: up to date; more
/// than 1: an index and its region pages, see `Page::write`).
async fn progress_page(c: &mut Ctx<'_>, started: chrono::DateTime<Utc>) -> Result<(RunRow, usize)> {
    let p = c.pipeline;
    if c.progress.is_none() {
        c.progress = Some(progress_of(c).await?);
    }
    let pr = c.progress.as_ref().expect("computed above");
    let path = files::progress_html(&p.reports, p.year, pr.month);
    let item = path.display().to_string();
    let fresh =
        c.done_before(Step::Reports, &item, &pr.fingerprint, RowStatus::Written) && path.is_file();
    let mut pages = Vec::new();
    if !fresh {
        let page = prog::Page::read(
            c.wh,
            &pr.ctx,
            &pr.targets,
            &p.targets,
            p.year,
            pr.month,
            false,
        )
        .await?;
        pages = page.write(&pr.rows, &path)?;
    }
    let status = if fresh {
        RowStatus::UpToDate
    } else {
        RowStatus::Written
    };
    let mut r = c.row(Step::Reports.as_str(), Some(item), status, started);
    r.fingerprint = Some(pr.fingerprint.clone());
    r.rows_out = Some(pr.rows.len() as i64);
    if pages.len() > 1 {
        r.detail = Some(
            pages
                .iter()
                .map(|f| f.display().to_string())
                .collect::<Vec<_>>()
                .join("\n"),
        );
    }
    Ok((r, pages.len()))
}

/// The public edition (`public: true`): the progress table and page and the
/// assessments with every withheld value as 保密 / `*`, in
/// `<reports>/public/`. Written every run it is asked for (a few files).
async fn public_editions(c: &mut Ctx<'_>) -> Result<Vec<PathBuf>> {
    let p = c.pipeline;
    let dir = files::public_dir(&p.reports);
    if c.progress.is_none() {
        c.progress = Some(progress_of(c).await?);
    }
    let pr = c.progress.as_ref().expect("computed above");
    if !pr.ctx.table_exist("marts.disclosure")? {
        return Err(Error::NoDisclosure);
    }
    let mut rows = pr.rows.clone();
    prog::public(&mut rows);
    let (csv, xlsx) = files::progress_public(&dir, p.year, pr.month);
    prog::write(&rows, &csv, &xlsx)?;
    let page = prog::Page::read(
        c.wh,
        &pr.ctx,
        &pr.targets,
        &p.targets,
        p.year,
        pr.month,
        true,
    )
    .await?;
    let mut out = vec![csv, xlsx];
    out.extend(page.write(&rows, &files::progress_html_public(&dir, p.year, pr.month))?);
    let mut all = c.assessments.clone();
    for a in &mut all {
        assessment::public(c.wh, a).await?;
        out.extend(report::write_csv(a, &dir)?);
    }
    let (xlsx, html) = (
        files::assessment_xlsx(&dir, p.year),
        files::assessment_html(&dir, p.year),
    );
    report::write_xlsx(&all, &xlsx)?;
    report::write_html(&all, &html)?;
    out.extend([xlsx, html]);
    Ok(out)
}

pub(crate) async fn reports(c: &mut Ctx<'_>) -> StepResult {
    let (outcome, rows, mut summary) = internal_reports(c).await?;
    if c.pipeline.public {
        let public = public_editions(c).await?;
        summary.push_str(&format!(
            "; public edition: {} file(s) in {}",
            public.len(),
            files::public_dir(&c.pipeline.reports).display()
        ));
    }
    Ok((outcome, rows, summary))
}

async fn internal_reports(c: &mut Ctx<'_>) -> StepResult {
    let started = Utc::now();
    let (progress_row, progress_written) = progress_page(c, started).await?;
    if c.assessments.is_empty() {
        c.assessments = compute_assessments(c).await?;
    }
    let mut fps = Vec::new();
    for a in &c.assessments {
        fps.push(assessment_fingerprint(c.wh, a).await?);
    }
    let fp = state::sha256_hex(&[fps.join(",").as_bytes()]);
    let out = &c.pipeline.reports;
    let year = c.pipeline.year;
    let xlsx = files::assessment_xlsx(out, year);
    let html = files::assessment_html(out, year);
    let item = html.display().to_string();
    let mut outputs: Vec<PathBuf> = vec![xlsx.clone(), html.clone()];
    for a in &c.assessments {
        for t in &a.tables {
            outputs.push(files::assessment_csv(out, &t.name));
        }
    }
    let progress_item = progress_row.item.clone().unwrap_or_default();
    if c.done_before(Step::Reports, &item, &fp, RowStatus::Written)
        && outputs.iter().all(|f| f.is_file())
    {
        let mut r = c.row(
            Step::Reports.as_str(),
            Some(item),
            RowStatus::UpToDate,
            started,
        );
        r.fingerprint = Some(fp);
        let summary = if progress_written > 0 {
            format!(
                "{} report file(s) in {} up to date; written {progress_item}",
                outputs.len(),
                out.display()
            )
        } else {
            format!(
                "{} report file(s) in {} up to date",
                outputs.len() + 1,
                out.display()
            )
        };
        return Ok((Outcome::Ok, vec![progress_row, r], summary));
    }
    for a in &c.assessments {
        report::write_csv(a, out)?;
    }
    report::write_xlsx(&c.assessments, &xlsx)?;
    report::write_html(&c.assessments, &html)?;
    let mut r = c.row(
        Step::Reports.as_str(),
        Some(item),
        RowStatus::Written,
        started,
    );
    r.fingerprint = Some(fp);
    r.rows_out = Some(outputs.len() as i64);
    r.detail = Some(
        outputs
            .iter()
            .map(|f| f.display().to_string())
            .collect::<Vec<_>>()
            .join("\n"),
    );
    let written = outputs.len() + progress_written;
    Ok((
        Outcome::Ok,
        vec![progress_row, r],
        format!("written {written} file(s) to {}", out.display()),
    ))
}
