//! `stmon-pipeline`: the nightly run of a pipeline — ingest → freshness →
//! models → data tests → progress → assessment → reports, doing only the new
//! work.
//!
//! It owns the run's order and its decisions: the run id and `--resume`
//! (which steps of the interrupted run are done), the warehouse lock, what
//! each step skips because an earlier run did it with the same fingerprint,
//! when a failure stops the steps after it, the run record (`audit/runs`,
//! one row per item and step, and the run's first and last rows with the
//! warehouse versions before and after) and `run_results.json`. It reports
//! what happens through an observer ([`Event`]) and never prints: the CLI
//! renders the events (lines, tables, progress bars). The work of each step
//! is the libraries': the warehouse ingests, the models build and test,
//! `stmon_reports::{progress, assessment, report}` compute and write. The
//! pipeline file itself ([`spec`]) and the freshness check ([`freshness`])
//! are this crate's.
//!
//! A run killed at any point leaves every table as before or after the step
//! it was in; the next run completes the work, or `resume` continues the
//! same run from the step that did not finish.

pub mod freshness;
mod results;
pub mod spec;
mod steps;

pub use spec::{AsOf, OnTestFailure, Pipeline, Severity, Step};

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use stmon_models::runs::{self, RowStatus, RunRow};
use stmon_models::Project;
use stmon_reports::assessment::Assessment;
use stmon_warehouse::{BatchReport, Warehouse};

/// What a step, or the run, ended with; ordered from best to worst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    Ok,
    /// A data-quality failure: a data test failed, a county is late under a
    /// `fail` freshness rule, a file was unreadable.
    DqFailed,
    Failed,
}

impl Outcome {
    /// The status in `audit/runs`.
    pub fn status(self) -> RowStatus {
        match self {
            Outcome::Ok => RowStatus::Ok,
            Outcome::DqFailed => RowStatus::DqFailed,
            Outcome::Failed => RowStatus::Failed,
        }
    }
}

/// How to run.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Continue the last failed or interrupted run of this pipeline.
    pub resume: bool,
    /// Wait this long for another run's lock instead of failing at once.
    pub wait: Option<Duration>,
    /// Rebuild every model even if its inputs did not change.
    pub full_refresh: bool,
    /// Where the models step runs (the caller resolves the pipeline's
    /// `engine:` or a command line's `--engine` to it).
    pub engine: stmon_warehouse::Engine,
}

/// What a run reports as it goes, in order.
pub enum Event<'a> {
    /// `resume` found nothing to continue: the pipeline's last run (if any)
    /// finished ok. A new run starts.
    NothingToResume {
        last_ok: Option<&'a str>,
    },
    /// Another run holds the lock; this one waits.
    Waiting {
        holder: &'a stmon_warehouse::lock::Holder,
    },
    Started {
        run_id: &'a str,
        resumed: bool,
    },
    /// A step the interrupted run finished.
    AlreadyDone(Step),
    /// A step not run because an earlier one failed.
    Skipped {
        step: Step,
        why: &'a str,
    },
    StepStarted(Step),
    /// Ingest's progress (bytes and files read, stages).
    Ingesting(stmon_warehouse::Progress<'a>),
    Ingested(&'a BatchReport),
    Freshness {
        day: chrono::NaiveDate,
        rows: &'a [freshness::Row],
        path: &'a std::path::Path,
    },
    /// The review step's queries opened and closed.
    Reviewed(&'a stmon_review::Summary),
    Model(stmon_models::run::Event<'a>),
    /// One model's data tests; `failures` describes each failing test.
    Tested {
        model: &'a str,
        tests: usize,
        failures: &'a str,
    },
    Progress {
        rows: &'a [stmon_reports::progress::ProgressRow],
        year: i32,
        month: u32,
    },
    Assessed(&'a Assessment),
    StepEnded {
        step: Step,
        outcome: Outcome,
        summary: &'a str,
        elapsed: Duration,
    },
    /// The run is recorded and the lock released.
    Finished(&'a Finished),
}

/// What a run did.
#[derive(Debug)]
pub struct Finished {
    pub run_id: String,
    pub outcome: Outcome,
    pub elapsed: Duration,
    /// Tables whose version the run changed (`layer/name`).
    pub changed: Vec<String>,
    pub results: PathBuf,
}

/// Why a run could not start or be recorded. A step's own failure is not an
/// error: it is recorded as the step's outcome and stops the steps after it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Another run holds the warehouse lock (and `wait` ran out, if given).
    #[error(transparent)]
    Locked(stmon_warehouse::lock::Locked),
    #[error(transparent)]
    Warehouse(Box<stmon_warehouse::Error>),
    #[error(transparent)]
    Models(Box<stmon_models::Error>),
    #[error("reading the inbox {inbox}: {source}")]
    Inbox {
        inbox: String,
        source: Box<stmon_warehouse::Error>,
    },
    #[error(transparent)]
    Reports(Box<stmon_reports::Error>),
    #[error("review: {0}")]
    Review(Box<stmon_review::Error>),
    #[error("assessing with {path}: {source}")]
    Scheme {
        path: PathBuf,
        source: Box<stmon_reports::Error>,
    },
    /// The pipeline file is malformed; every mistake found, at once.
    #[error("{}: {} problem(s):\n  - {}", path.display(), problems.len(), problems.join("\n  - "))]
    Pipeline {
        path: PathBuf,
        problems: Vec<String>,
    },
    #[error("{path} is a scheme for {scheme_year}, not the pipeline's {year}")]
    SchemeYear {
        path: PathBuf,
        scheme_year: i32,
        year: i32,
    },
    #[error("the public edition needs marts.disclosure, which is not built: is `models` among the steps?")]
    NoDisclosure,
    #[error("marts.indicators does not exist: the models step has not run")]
    NoIndicators,
    #[error("progress.as_of: `{0}` is not a month YYYY-MM of the pipeline's year")]
    AsOf(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Query(Box<datafusion::error::DataFusionError>),
}

impl From<stmon_warehouse::Error> for Error {
    fn from(e: stmon_warehouse::Error) -> Self {
        match e {
            stmon_warehouse::Error::Locked(l) => Error::Locked(l),
            e => Error::Warehouse(Box::new(e)),
        }
    }
}

stmon_models::boxed_from!(
    Models: stmon_models::Error,
    Reports: stmon_reports::Error,
    Query: datafusion::error::DataFusionError
);

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The I/O error of a path.
pub(crate) fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What the steps share.
pub(crate) struct Ctx<'a> {
    pub(crate) pipeline: &'a Pipeline,
    pub(crate) project: &'a Project,
    pub(crate) wh: &'a Warehouse,
    pub(crate) run_id: String,
    /// Earlier rows of the record (to find what is already done).
    pub(crate) history: Vec<RunRow>,
    /// The assessments of this run, once computed.
    pub(crate) assessments: Vec<Assessment>,
    /// Progress as of the pipeline's month, once computed (the progress
    /// step's, reused by the reports step's page).
    pub(crate) progress: Option<steps::Progress>,
    pub(crate) on: &'a (dyn Fn(Event<'_>) + Sync),
}

impl Ctx<'_> {
    pub(crate) fn row(
        &self,
        step: &str,
        item: Option<String>,
        status: RowStatus,
        started: DateTime<Utc>,
    ) -> RunRow {
        let now = Utc::now();
        RunRow {
            run_id: self.run_id.clone(),
            pipeline: self.pipeline.name.clone(),
            step: step.into(),
            item,
            status,
            started_at: started,
            finished_at: Some(now),
            elapsed_ms: Some((now - started).num_milliseconds()),
            ..Default::default()
        }
    }

    /// Whether an earlier run recorded this step item done with this fingerprint.
    pub(crate) fn done_before(
        &self,
        step: Step,
        item: &str,
        fingerprint: &str,
        status: RowStatus,
    ) -> bool {
        self.history.iter().any(|r| {
            r.step == step.as_str()
                && r.item.as_deref() == Some(item)
                && r.fingerprint.as_deref() == Some(fingerprint)
                && r.status == status
        })
    }
}

/// A new run id: the time and six random hex digits.
fn new_run_id() -> String {
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("r{}-{}", Utc::now().format("%Y%m%dT%H%M%S"), &random[..6])
}

/// Runs `pipeline` on `wh` and records it. Returns what it did; the run's
/// outcome is the worst of its steps'.
pub async fn run(
    wh: &Warehouse,
    project: &Project,
    pipeline: &Pipeline,
    opts: &Options,
    on: &(dyn Fn(Event<'_>) + Sync),
) -> Result<Finished> {
    let history = runs::read(wh).await?;
    let mut done_steps: BTreeSet<Step> = BTreeSet::new();
    let mut resumed = false;
    let run_id = if opts.resume {
        let runs = runs::summarise(&history);
        match runs.iter().rev().find(|r| r.pipeline == pipeline.name) {
            Some(last) if last.status != RowStatus::Ok => {
                done_steps.extend(
                    last.steps
                        .iter()
                        .filter(|s| s.status == RowStatus::Ok)
                        .filter_map(|s| Step::parse(&s.step)),
                );
                resumed = true;
                last.run_id.clone()
            }
            Some(last) => {
                on(Event::NothingToResume {
                    last_ok: Some(&last.run_id),
                });
                new_run_id()
            }
            None => {
                on(Event::NothingToResume { last_ok: None });
                new_run_id()
            }
        }
    } else {
        new_run_id()
    };

    let lock = wh
        .lock_run(&run_id, &pipeline.name, opts.wait, &|holder| {
            on(Event::Waiting { holder })
        })
        .await?;

    let started = Utc::now();
    let t0 = Instant::now();
    let versions_before = runs::all_versions(wh, project).await?;
    let mut c = Ctx {
        pipeline,
        project,
        wh,
        run_id: run_id.clone(),
        history,
        assessments: Vec::new(),
        progress: None,
        on,
    };
    on(Event::Started {
        run_id: &run_id,
        resumed,
    });
    let mut first = c.row("run", None, RowStatus::Running, started);
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
    runs::append(wh, std::slice::from_ref(&first)).await?;

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
    for &step in &pipeline.steps {
        if done_steps.contains(&step) {
            on(Event::AlreadyDone(step));
            continue;
        }
        let step_started = Utc::now();
        if let Some(why) = &stop_reason {
            let mut r = c.row(step.as_str(), None, RowStatus::Skipped, step_started);
            r.detail = Some(why.clone());
            on(Event::Skipped { step, why });
            runs::append(wh, std::slice::from_ref(&r)).await?;
            this_run.push(r);
            continue;
        }
        on(Event::StepStarted(step));
        let ts = Instant::now();
        let result = match step {
            Step::Ingest => steps::ingest(&c).await,
            Step::Freshness => steps::freshness(&c).await,
            Step::Review => steps::review(&c).await,
            Step::Models => steps::models(&c, opts.full_refresh, &opts.engine).await,
            Step::Tests => steps::tests(&c, &opts.engine).await,
            Step::Progress => steps::progress(&mut c).await,
            Step::Assessment => steps::assessment(&mut c).await,
            Step::Reports => steps::reports(&mut c).await,
        };
        let (outcome, mut rows, summary) = match result {
            Ok(x) => x,
            Err(e) => (Outcome::Failed, Vec::new(), e.to_string()),
        };
        let mut r = c.row(step.as_str(), None, outcome.status(), step_started);
        r.detail = Some(summary.clone());
        rows.push(r);
        runs::append(wh, &rows).await?;
        this_run.extend(rows);
        on(Event::StepEnded {
            step,
            outcome,
            summary: &summary,
            elapsed: ts.elapsed(),
        });
        worst = worst.max(outcome);
        match outcome {
            Outcome::Failed => stop_reason = Some(format!("step {step} failed")),
            Outcome::DqFailed
                if step == Step::Tests && pipeline.on_test_failure == OnTestFailure::Stop =>
            {
                stop_reason = Some("data tests failed (on_test_failure: stop)".into())
            }
            _ => {}
        }
    }

    let versions_after = runs::all_versions(wh, project).await?;
    let finished = Utc::now();
    let mut last = c.row("run", None, worst.status(), started);
    last.fingerprint = Some(pipeline.hash.clone());
    last.detail = Some(
        serde_json::json!({
            "versions_before": versions_before,
            "versions_after": versions_after,
        })
        .to_string(),
    );
    runs::append(wh, std::slice::from_ref(&last)).await?;
    this_run.push(last);

    // run_results.json, like dbt's.
    let summary = runs::summarise(&this_run);
    let results = results::run_results(
        pipeline,
        summary.first(),
        &versions_before,
        &versions_after,
        finished,
    );
    std::fs::create_dir_all(&pipeline.reports).map_err(io(&pipeline.reports))?;
    let json_path = stmon_reports::files::run_results_json(&pipeline.reports);
    let text = serde_json::to_string_pretty(&results).expect("JSON values serialise");
    std::fs::write(&json_path, text).map_err(io(&json_path))?;
    lock.release().await?;

    let changed: Vec<String> = versions_after
        .iter()
        .filter(|(k, v)| versions_before.get(*k) != Some(*v))
        .map(|(k, _)| k.clone())
        .collect();
    let done = Finished {
        run_id,
        outcome: worst,
        elapsed: t0.elapsed(),
        changed,
        results: json_path,
    };
    on(Event::Finished(&done));
    Ok(done)
}

/// The versions before and after, by table: for `run_results.json`.
pub(crate) type Versions = BTreeMap<String, u64>;
