//! `stmon run PIPELINE`: the nightly batch.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{DateTime, Utc};
use indicatif::{ProgressBar, ProgressStyle};
use stmon_models::assessment::{self, Assessment};
use stmon_models::pipeline::{AsOf, Pipeline, Severity};
use stmon_models::run::{Event, RunOptions, Status};
use stmon_models::runs::{self, RunRow, RunSummary};
use stmon_models::{freshness, progress, report, state, Project};
use stmon_warehouse::{IngestRequest, TableId, Warehouse};

/// Run a pipeline: ingest → freshness → models → data tests → progress →
/// assessment → reports, doing only the new work.
///
/// Files in the inbox already ingested (same sha256) are skipped; a model is
/// rebuilt only when what it reads changed (its fingerprint: SQL, YAML and
/// inputs); the progress and assessment outputs are rewritten only when their
/// inputs changed. With nothing new, a run changes nothing.
///
/// Every run is recorded in the Delta table audit/runs (see `stmon runs`) and
/// in <reports>/run_results.json. One run at a time per warehouse: a second
/// exits with a message naming the first, or waits with --wait. A run killed
/// at any point leaves every table as before or after the step it was in;
/// the next run completes the work (or `--resume` continues the same run).
///
/// Exit status: 0 ok; 1 data-quality failure (a data test failed, a county
/// is late under a `fail` freshness rule, an unreadable file); 2 error (a
/// model failed, the warehouse is locked or unreachable, a bad pipeline).
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The pipeline YAML (e.g. pipelines/shaoxing-2023.yaml).
    pub pipeline: PathBuf,
    /// Continue the last failed or interrupted run of this pipeline from the
    /// step that did not finish (same run id).
    #[arg(long)]
    pub resume: bool,
    /// If another run holds the lock, wait for it (up to SECS, default 1 hour).
    #[arg(long, value_name = "SECS", num_args = 0..=1, default_missing_value = "3600")]
    pub wait: Option<u64>,
    /// Rebuild every model even if its inputs did not change.
    #[arg(long)]
    pub full_refresh: bool,
}

/// What a step ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    Ok,
    DqFailed,
    Failed,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::DqFailed => "dq_failed",
            Outcome::Failed => "failed",
        }
    }
}

struct Ctx<'a> {
    pipeline: &'a Pipeline,
    project: &'a Project,
    wh: &'a Warehouse,
    run_id: String,
    /// Earlier rows of the record (to find what is already done).
    history: Vec<RunRow>,
    /// Models rebuilt by this run.
    assessments: Vec<Assessment>,
    terminal: bool,
    json_logs: bool,
}

impl Ctx<'_> {
    fn row(
        &self,
        step: &str,
        item: Option<String>,
        status: &str,
        started: DateTime<Utc>,
    ) -> RunRow {
        let now = Utc::now();
        RunRow {
            run_id: self.run_id.clone(),
            pipeline: self.pipeline.name.clone(),
            step: step.into(),
            item,
            status: status.into(),
            started_at: started,
            finished_at: Some(now),
            elapsed_ms: Some((now - started).num_milliseconds()),
            ..Default::default()
        }
    }

    /// Whether an earlier run recorded this step item done with this fingerprint.
    fn done_before(&self, step: &str, item: &str, fingerprint: &str, status: &str) -> bool {
        self.history.iter().any(|r| {
            r.step == step
                && r.item.as_deref() == Some(item)
                && r.fingerprint.as_deref() == Some(fingerprint)
                && r.status == status
        })
    }

    /// A line of the run's story: on stdout, and as a JSON log event with
    /// `--log-format json`.
    fn say(&self, line: &str) {
        println!("{line}");
        if self.json_logs {
            tracing::info!(run_id = %self.run_id, "{line}");
        }
    }
}

pub async fn run(cli: &super::Cli, args: &Args) -> anyhow::Result<ExitCode> {
    let catalog = super::load_catalog(cli)?;
    let pipeline = Pipeline::load(&args.pipeline, &catalog)?;
    let project = super::load_project(cli)?;
    let wh = Warehouse::open(&cli.warehouse, catalog).context("opening the warehouse")?;
    let terminal = super::console_is_terminal();

    let history = runs::read(&wh).await?;
    let mut done_steps: BTreeSet<String> = BTreeSet::new();
    let new_id = || {
        format!(
            "r{}-{}",
            Utc::now().format("%Y%m%dT%H%M%S"),
            &uuid_like()[..6]
        )
    };
    let mut resumed = false;
    let run_id = if args.resume {
        let runs = runs::summarise(&history);
        match runs.iter().rev().find(|r| r.pipeline == pipeline.name) {
            Some(last) if last.status != "ok" => {
                for s in &last.steps {
                    if s.status == "ok" {
                        done_steps.insert(s.step.clone());
                    }
                }
                resumed = true;
                last.run_id.clone()
            }
            Some(last) => {
                println!(
                    "nothing to resume: the last run of {} ({}) finished ok; starting a new run",
                    pipeline.name, last.run_id
                );
                new_id()
            }
            None => {
                println!(
                    "nothing to resume: no earlier run of {}; starting a new run",
                    pipeline.name
                );
                new_id()
            }
        }
    } else {
        new_id()
    };

    let wait = args.wait.map(Duration::from_secs);
    let lock = match wh
        .lock_run(&run_id, &pipeline.name, wait, &|h| {
            eprintln!("waiting for the warehouse lock, held by {h} …")
        })
        .await
    {
        Ok(l) => l,
        Err(stmon_warehouse::Error::Locked(m)) => {
            eprintln!("error: {m}");
            return Ok(ExitCode::from(2));
        }
        Err(e) => return Err(e.into()),
    };

    let started = Utc::now();
    let t0 = Instant::now();
    let versions_before = stmon_models::runs::all_versions(&wh, &project).await?;
    let mut c = Ctx {
        pipeline: &pipeline,
        project: &project,
        wh: &wh,
        run_id: run_id.clone(),
        history,
        assessments: Vec::new(),
        terminal,
        json_logs: cli.log_format == super::LogFormat::Json,
    };
    c.say(&format!(
        "run {run_id}{} of {} ({}) on {}",
        if resumed { " (resumed)" } else { "" },
        pipeline.name,
        pipeline.file.display(),
        wh.root
    ));
    let mut first = c.row("run", None, "running", started);
    first.finished_at = None;
    first.elapsed_ms = None;
    first.fingerprint = Some(pipeline.hash.clone());
    first.detail = Some(
        serde_json::json!({
            "pipeline_file": pipeline.file.display().to_string(),
            "resumed": resumed,
            "versions_before": versions_before,
        })
        .to_string(),
    );
    runs::append(&wh, std::slice::from_ref(&first)).await?;

    let mut worst = Outcome::Ok;
    let mut stop_reason: Option<String> = None;
    // This run's rows, in commit order: an earlier attempt's (when resumed),
    // then this attempt's, as appended to audit/runs.
    let mut this_run: Vec<RunRow> = c
        .history
        .iter()
        .filter(|r| r.run_id == run_id)
        .cloned()
        .collect();
    this_run.push(first);
    for step in &pipeline.steps {
        if done_steps.contains(step) {
            c.say(&format!("· {step}: done in the interrupted run, skipped"));
            continue;
        }
        let step_started = Utc::now();
        if let Some(why) = &stop_reason {
            let mut r = c.row(step, None, "skipped", step_started);
            r.detail = Some(why.clone());
            c.say(&format!("· {step}: skipped ({why})"));
            runs::append(&wh, std::slice::from_ref(&r)).await?;
            this_run.push(r);
            continue;
        }
        if terminal {
            println!();
        }
        c.say(&format!("▶ {step}"));
        let ts = Instant::now();
        let result = match step.as_str() {
            "ingest" => step_ingest(&c).await,
            "freshness" => step_freshness(&c).await,
            "models" => step_models(&c, args.full_refresh).await,
            "tests" => step_tests(&c).await,
            "progress" => step_progress(&c).await,
            "assessment" => step_assessment(&mut c).await,
            "reports" => step_reports(&mut c).await,
            other => Err(anyhow::anyhow!("unknown step {other}")),
        };
        super::release_memory();
        let (outcome, mut rows, summary) = match result {
            Ok(x) => x,
            Err(e) => (Outcome::Failed, Vec::new(), format!("{e:#}")),
        };
        let mut r = c.row(step, None, outcome.as_str(), step_started);
        r.detail = Some(summary.clone());
        rows.push(r.clone());
        runs::append(&wh, &rows).await?;
        this_run.extend(rows);
        c.say(&format!(
            "{} {step}: {} in {:.1}s — {summary}",
            match outcome {
                Outcome::Ok => "✓",
                Outcome::DqFailed => "!",
                Outcome::Failed => "✗",
            },
            outcome.as_str(),
            ts.elapsed().as_secs_f64()
        ));
        worst = worst.max(outcome);
        match outcome {
            Outcome::Failed => stop_reason = Some(format!("step {step} failed")),
            Outcome::DqFailed if step == "tests" && pipeline.stop_on_test_failure => {
                stop_reason = Some("data tests failed (on_test_failure: stop)".into())
            }
            _ => {}
        }
    }

    let versions_after = stmon_models::runs::all_versions(&wh, &project).await?;
    let finished = Utc::now();
    let mut last = c.row("run", None, worst.as_str(), started);
    last.fingerprint = Some(pipeline.hash.clone());
    last.detail = Some(
        serde_json::json!({
            "versions_before": versions_before,
            "versions_after": versions_after,
        })
        .to_string(),
    );
    runs::append(&wh, std::slice::from_ref(&last)).await?;

    this_run.push(last);

    // run_results.json, like dbt's.
    let summary = runs::summarise(&this_run);
    let results = run_results(
        &pipeline,
        summary.first(),
        &versions_before,
        &versions_after,
        finished,
    );
    std::fs::create_dir_all(&pipeline.reports)?;
    let json_path = pipeline.reports.join("run_results.json");
    std::fs::write(&json_path, serde_json::to_string_pretty(&results)?)?;
    lock.release().await?;

    let changed: Vec<&String> = versions_after
        .iter()
        .filter(|(k, v)| versions_before.get(*k) != Some(*v))
        .map(|(k, _)| k)
        .collect();
    println!();
    c.say(&format!(
        "run {run_id} {} in {:.1}s; {} table(s) changed{}; record: audit/runs and {}",
        worst.as_str(),
        t0.elapsed().as_secs_f64(),
        changed.len(),
        if changed.is_empty() {
            " (nothing new)".to_string()
        } else if changed.len() <= 6 {
            format!(
                " ({})",
                changed
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        } else {
            String::new()
        },
        json_path.display()
    ));
    Ok(match worst {
        Outcome::Ok => ExitCode::SUCCESS,
        Outcome::DqFailed => ExitCode::from(1),
        Outcome::Failed => ExitCode::from(2),
    })
}

fn uuid_like() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    h.write_u32(std::process::id());
    format!("{:016x}", h.finish())
}

type StepResult = anyhow::Result<(Outcome, Vec<RunRow>, String)>;

async fn step_ingest(c: &Ctx<'_>) -> StepResult {
    let started = Utc::now();
    let (paths, _tmp) = inbox_paths(c.wh, &c.pipeline.inbox).await?;
    let mut req = IngestRequest::new(paths);
    req.commit_rows = c.pipeline.ingest.commit_rows.max(1);
    req.check_memory = c.pipeline.ingest.check_memory_mb.max(16) << 20;
    let bar = bar(
        c.terminal,
        "{spinner} [{elapsed_precise}] {bar:30} {bytes}/{total_bytes} {msg}",
    );
    let progress = |p: stmon_warehouse::Progress| match p {
        stmon_warehouse::Progress::Start { bytes, .. } => bar.set_length(bytes),
        stmon_warehouse::Progress::File { path } => bar.set_message(path.display().to_string()),
        stmon_warehouse::Progress::Bytes(b) => bar.inc(b),
        stmon_warehouse::Progress::Rows(_) => bar.tick(),
        stmon_warehouse::Progress::Stage(s) => bar.set_message(s.to_string()),
    };
    let report = c.wh.ingest(&req, &progress).await?;
    bar.finish_and_clear();
    super::ingest::print_report(c.wh, &report, false);
    let mut rows = Vec::new();
    for (form, s) in &report.forms {
        let mut r = c.row("ingest", Some(form.clone()), "ok", started);
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
        .filter(|f| f.status != "loaded" && f.status != "skipped")
    {
        let mut r = c.row(
            "ingest",
            Some(f.path.display().to_string()),
            &f.status,
            started,
        );
        r.fingerprint = Some(f.sha256.clone());
        r.detail = f.message.clone();
        rows.push(r);
    }
    let loaded = report.files.iter().filter(|f| f.status == "loaded").count();
    let skipped = report
        .files
        .iter()
        .filter(|f| f.status == "skipped")
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

/// The inbox's files: a local folder as is; an object-store prefix copied to
/// a temporary folder first (kept alive by the returned guard).
async fn inbox_paths(
    wh: &Warehouse,
    inbox: &str,
) -> anyhow::Result<(Vec<PathBuf>, Option<tempfile::TempDir>)> {
    if !inbox.contains("://") || inbox.starts_with("file://") {
        let p = inbox.strip_prefix("file://").unwrap_or(inbox);
        return Ok((vec![PathBuf::from(p)], None));
    }
    let tmp = tempfile::tempdir()?;
    let n = wh
        .download_prefix(inbox, tmp.path())
        .await
        .with_context(|| format!("reading the inbox {inbox}"))?;
    tracing::info!(files = n, inbox, "inbox copied");
    Ok((vec![tmp.path().to_path_buf()], Some(tmp)))
}

async fn step_freshness(c: &Ctx<'_>) -> StepResult {
    let started = Utc::now();
    if c.pipeline.freshness.rules.is_empty() {
        return Ok((Outcome::Ok, Vec::new(), "no freshness rules".into()));
    }
    let day = match &c.pipeline.freshness.as_of {
        AsOf::Today => chrono::Local::now().date_naive(),
        AsOf::Date(d) => *d,
    };
    let ctx = c.wh.session().await?;
    let rows = freshness::check(&ctx, &c.wh.catalog, &c.pipeline.freshness.rules, day).await?;
    let path = c.pipeline.reports.join("freshness.csv");
    freshness::write_csv(&rows, &path)?;
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
    let mut out = Vec::new();
    for r in &late {
        let mut row = c.row(
            "freshness",
            Some(format!("{}/{}", r.form, r.county_code)),
            r.status,
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

async fn step_models(c: &Ctx<'_>, full_refresh: bool) -> StepResult {
    let started = Utc::now();
    let opts = RunOptions {
        no_tests: true,
        incremental: !full_refresh,
        ..Default::default()
    };
    let bar = bar(
        c.terminal,
        "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} models {msg}",
    );
    let on = |e: Event| match e {
        Event::Start { total } => bar.set_length(total as u64),
        Event::Model(o) => {
            super::release_memory();
            bar.inc(1);
            bar.set_message(o.id.to_string());
            if matches!(o.status, Status::Ok) {
                bar.suspend(|| {
                    println!(
                        "  built   {:<36} {:>10} rows {:>7.1}s{}",
                        o.id.to_string(),
                        o.rows,
                        o.elapsed.as_secs_f64(),
                        partitions_note(o.partitions)
                    )
                });
            } else if let Status::Failed(m) | Status::Skipped(m) = &o.status {
                bar.suspend(|| println!("  FAILED  {}\n          {m}", o.id));
            }
        }
    };
    let report = stmon_models::run::run(c.wh, c.project, &opts, &on).await?;
    bar.finish_and_clear();
    let mut rows = Vec::new();
    let (mut built, mut fresh, mut failed) = (0, 0, 0);
    for o in &report.models {
        let (status, detail) = match &o.status {
            Status::View => continue, // the run record lists tables
            Status::Ok => {
                built += 1;
                (
                    "built",
                    o.partitions
                        .map(|n| partitions_note(Some(n)).trim().to_string()),
                )
            }
            Status::UpToDate => {
                fresh += 1;
                ("up_to_date", None)
            }
            Status::Failed(m) => {
                failed += 1;
                ("failed", Some(m.clone()))
            }
            Status::Skipped(m) => {
                failed += 1;
                ("skipped", Some(m.clone()))
            }
        };
        let mut r = c.row("models", Some(o.id.to_string()), status, started);
        r.rows_out = (status == "built").then_some(o.rows as i64);
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

async fn step_tests(c: &Ctx<'_>) -> StepResult {
    let started = Utc::now();
    let ctx = stmon_models::run::session(c.wh, c.project).await?;
    let mut rows = Vec::new();
    let (mut ran, mut passed_before, mut failed) = (0, 0, 0);
    for m in c.project.tables() {
        let id = TableId::new(&m.id.layer, &m.id.name);
        let Some(fp) = state::stored_fingerprint(c.wh, &id).await? else {
            continue;
        };
        let item = m.id.to_string();
        if c.done_before("tests", &item, &fp, "pass") {
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
            "tests",
            Some(item.clone()),
            if bad.is_empty() { "pass" } else { "fail" },
            started,
        );
        r.fingerprint = Some(fp);
        r.rows_in = Some(outcomes.len() as i64);
        r.rows_rejected = Some(bad.len() as i64);
        r.elapsed_ms = Some(t.elapsed().as_millis() as i64);
        if !bad.is_empty() {
            failed += 1;
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
            println!("  FAILED tests of {item}:\n{text}");
            r.detail = Some(text);
        } else {
            println!("  pass    {item:<36} {} test(s)", outcomes.len());
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

async fn step_progress(c: &Ctx<'_>) -> StepResult {
    let started = Utc::now();
    let p = c.pipeline;
    let targets = progress::Targets::load(&p.targets)?;
    let ctx = stmon_models::run::session(c.wh, c.project).await?;
    if !ctx.table_exist("marts.indicators")? {
        anyhow::bail!("marts.indicators does not exist: the models step has not run");
    }
    let month = match p.progress.as_of.as_deref() {
        Some(m) if m != "latest" => {
            stmon_models::pipeline::parse_month(m, p.year).context("progress.as_of")?
        }
        _ => super::progress::latest_month(&ctx, p.year).await?,
    };
    let rows = progress::progress(&ctx, &targets, p.year, month).await?;
    super::progress::print_matrix(&rows, p.year, month);
    let source = state::stored_fingerprint(c.wh, &TableId::new("marts", "indicators"))
        .await?
        .unwrap_or_default();
    let fp = state::sha256_hex(&[
        source.as_bytes(),
        &std::fs::read(&p.targets)?,
        month.to_string().as_bytes(),
    ]);
    let stem = format!("progress-{}-{month:02}", p.year);
    let csv = p.reports.join(format!("{stem}.csv"));
    let xlsx = p.reports.join(format!("{stem}.xlsx"));
    let item = csv.display().to_string();
    let (status, summary) =
        if c.done_before("progress", &item, &fp, "written") && csv.is_file() && xlsx.is_file() {
            (
                "up_to_date",
                format!("{} and .xlsx up to date", csv.display()),
            )
        } else {
            progress::write(&rows, &csv, &xlsx)?;
            (
                "written",
                format!("written {} and {}", csv.display(), xlsx.display()),
            )
        };
    let mut r = c.row("progress", Some(item), status, started);
    r.fingerprint = Some(fp);
    r.rows_out = Some(rows.len() as i64);
    Ok((Outcome::Ok, vec![r], summary))
}

/// The assessment's fingerprint: the scheme (with its targets) and what the
/// indicator table it read was built from.
async fn assessment_fingerprint(wh: &Warehouse, a: &Assessment) -> anyhow::Result<String> {
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

async fn compute_assessments(c: &Ctx<'_>) -> anyhow::Result<Vec<Assessment>> {
    let mut out = Vec::new();
    for path in &c.pipeline.schemes {
        let a = assessment::run(c.wh, path, None)
            .await
            .with_context(|| format!("assessing with {}", path.display()))?;
        if a.scheme.year != c.pipeline.year {
            anyhow::bail!(
                "{} is a scheme for {}, not the pipeline's {}",
                path.display(),
                a.scheme.year,
                c.pipeline.year
            );
        }
        out.push(a);
    }
    Ok(out)
}

async fn step_assessment(c: &mut Ctx<'_>) -> StepResult {
    let started = Utc::now();
    let all = compute_assessments(c).await?;
    let mut rows = Vec::new();
    let (mut written, mut fresh) = (0, 0);
    for a in &all {
        let fp = assessment_fingerprint(c.wh, a).await?;
        let mut up_to_date = true;
        for t in &a.tables {
            let id = TableId::new("marts", &format!("assessment_{}", t.name));
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
        super::assess::print(a);
        let mut r = c.row(
            "assessment",
            Some(a.provenance.scheme_name.clone()),
            if up_to_date { "up_to_date" } else { "written" },
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

async fn step_reports(c: &mut Ctx<'_>) -> StepResult {
    let started = Utc::now();
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
    let xlsx = out.join(format!("assessment-{year}.xlsx"));
    let html = out.join(format!("assessment-{year}.html"));
    let item = html.display().to_string();
    let mut files: Vec<PathBuf> = vec![xlsx.clone(), html.clone()];
    for a in &c.assessments {
        for t in &a.tables {
            files.push(out.join(format!("assessment_{}.csv", t.name)));
        }
    }
    if c.done_before("reports", &item, &fp, "written") && files.iter().all(|f| f.is_file()) {
        let mut r = c.row("reports", Some(item), "up_to_date", started);
        r.fingerprint = Some(fp);
        return Ok((
            Outcome::Ok,
            vec![r],
            format!(
                "{} report file(s) in {} up to date",
                files.len(),
                out.display()
            ),
        ));
    }
    for a in &c.assessments {
        report::write_csv(a, out)?;
    }
    report::write_xlsx(&c.assessments, &xlsx)?;
    report::write_html(&c.assessments, &html)?;
    let mut r = c.row("reports", Some(item), "written", started);
    r.fingerprint = Some(fp);
    r.rows_out = Some(files.len() as i64);
    r.detail = Some(
        files
            .iter()
            .map(|f| f.display().to_string())
            .collect::<Vec<_>>()
            .join("\n"),
    );
    Ok((
        Outcome::Ok,
        vec![r],
        format!("written {} file(s) to {}", files.len(), out.display()),
    ))
}

fn bar(terminal: bool, template: &str) -> ProgressBar {
    let bar = ProgressBar::hidden();
    if terminal {
        bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
    }
    bar.set_style(ProgressStyle::with_template(template).expect("valid template"));
    bar
}

fn run_results(
    p: &Pipeline,
    run: Option<&RunSummary>,
    before: &BTreeMap<String, u64>,
    after: &BTreeMap<String, u64>,
    generated: DateTime<Utc>,
) -> serde_json::Value {
    let Some(run) = run else {
        return serde_json::json!({});
    };
    let steps: Vec<serde_json::Value> = run
        .steps
        .iter()
        .map(|s| {
            let items: Vec<&RunRow> = run
                .rows
                .iter()
                .filter(|r| r.step == s.step && r.item.is_some())
                .collect();
            serde_json::json!({
                "step": s.step,
                "status": s.status,
                "started_at": s.started_at,
                "finished_at": s.finished_at,
                "elapsed_s": s.elapsed_ms.map(|m| m as f64 / 1000.0),
                "message": s.detail,
                "results": items.iter().map(|r| serde_json::json!({
                    "item": r.item,
                    "status": r.status,
                    "rows_in": r.rows_in,
                    "rows_accepted": r.rows_accepted,
                    "rows_rejected": r.rows_rejected,
                    "rows_out": r.rows_out,
                    "fingerprint": r.fingerprint,
                    "elapsed_s": r.elapsed_ms.map(|m| m as f64 / 1000.0),
                    "message": r.detail,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    serde_json::json!({
        "metadata": {
            "run_id": run.run_id,
            "pipeline": p.name,
            "pipeline_file": p.file.display().to_string(),
            "pipeline_sha256": p.hash,
            "stmon_version": env!("CARGO_PKG_VERSION"),
            "generated_at": generated,
        },
        "status": run.status,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "elapsed_s": run.finished_at.map(|f| (f - run.started_at).num_milliseconds() as f64 / 1000.0),
        "warehouse_versions": {"before": before, "after": after},
        "steps": steps,
    })
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
